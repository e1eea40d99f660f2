package registry

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/BurntSushi/toml"
)

// WriteTOML writes the merged config as TOML: in every table `type` comes first, then the
// other keys in alphabetical order (as mmengine's pretty_text sorts them); short tables are
// written inline, and arrays of tables as arrays of inline tables, one per line, so that a
// pipeline reads in order.
func (t *Tree) WriteTOML(w io.Writer) error {
	var b bytes.Buffer
	writeTable(&b, nil, t.root)
	_, err := w.Write(b.Bytes())
	return err
}

// TOML returns the merged config as TOML text.
func (t *Tree) TOML() string {
	var b bytes.Buffer
	writeTable(&b, nil, t.root)
	return b.String()
}

// WriteFile writes the merged config atomically to name, as a run writes it to its work_dir.
func (t *Tree) WriteFile(name string) error {
	tmp, err := os.CreateTemp(filepath.Dir(name), "."+filepath.Base(name)+".tmp*")
	if err != nil {
		return fmt.Errorf("writing config: %w", err)
	}
	defer os.Remove(tmp.Name())
	fmt.Fprintf(tmp, "# The merged config of %s, written by goselfsup.\n", t.file)
	if err := t.WriteTOML(tmp); err != nil {
		tmp.Close()
		return fmt.Errorf("writing config %s: %w", name, err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return fmt.Errorf("writing config %s: %w", name, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing config %s: %w", name, err)
	}
	if err := os.Rename(tmp.Name(), name); err != nil {
		return fmt.Errorf("writing config %s: %w", name, err)
	}
	return nil
}

// tableKeys orders a table's keys: "type" first, then alphabetical.
func tableKeys(m map[string]any) []string {
	keys := sortedKeys(m)
	sort.SliceStable(keys, func(i, j int) bool { return keys[i] == "type" && keys[j] != "type" })
	return keys
}

func writeTable(b *bytes.Buffer, header []string, m map[string]any) {
	keys := tableKeys(m)
	var sections []string
	values := 0
	for _, k := range keys {
		if sub, isTable := m[k].(map[string]any); isTable && !inlineable(sub) {
			sections = append(sections, k)
		} else {
			values++
		}
	}
	// A table that holds only sections needs no header of its own.
	if header != nil && (values > 0 || len(m) == 0) {
		if b.Len() > 0 {
			b.WriteByte('\n')
		}
		fmt.Fprintf(b, "[%s]\n", joinPath(header...))
	}
	for _, k := range keys {
		if sub, isTable := m[k].(map[string]any); !isTable || inlineable(sub) {
			fmt.Fprintf(b, "%s = %s\n", formatKey(k), formatTopValue(m[k]))
		}
	}
	for _, k := range sections {
		writeTable(b, append(header[:len(header):len(header)], k), m[k].(map[string]any))
	}
}

// inlineable reports whether a table reads better inline: short, and without tables inside.
func inlineable(m map[string]any) bool {
	for _, v := range m {
		switch x := v.(type) {
		case map[string]any:
			return false
		case []any:
			if hasTable(x) {
				return false
			}
		}
	}
	return len(formatInline(m)) <= 72
}

// formatTopValue formats a value of a [table] section: an array holding tables spreads over
// lines, one element per line.
func formatTopValue(v any) string {
	arr, ok := v.([]any)
	if !ok || !hasTable(arr) {
		return formatInline(v)
	}
	var b strings.Builder
	b.WriteString("[\n")
	for _, e := range arr {
		b.WriteString("  ")
		b.WriteString(formatInline(e))
		b.WriteString(",\n")
	}
	b.WriteString("]")
	return b.String()
}

func hasTable(arr []any) bool {
	for _, e := range arr {
		if _, ok := e.(map[string]any); ok {
			return true
		}
	}
	return false
}

// formatInline formats a value on one line: tables as inline tables.
func formatInline(v any) string {
	switch x := v.(type) {
	case map[string]any:
		if len(x) == 0 {
			return "{}"
		}
		parts := make([]string, 0, len(x))
		for _, k := range tableKeys(x) {
			parts = append(parts, formatKey(k)+" = "+formatInline(x[k]))
		}
		return "{ " + strings.Join(parts, ", ") + " }"
	case []any:
		parts := make([]string, len(x))
		for i, e := range x {
			parts[i] = formatInline(e)
		}
		return "[" + strings.Join(parts, ", ") + "]"
	default:
		return formatScalar(v)
	}
}

// formatScalar formats a string, number, boolean or date with the toml encoder, which knows
// TOML's escapes and float forms.
func formatScalar(v any) string {
	var b bytes.Buffer
	if err := toml.NewEncoder(&b).Encode(map[string]any{"v": v}); err != nil {
		return fmt.Sprintf("%q", fmt.Sprint(v))
	}
	return strings.TrimSuffix(strings.TrimPrefix(b.String(), "v = "), "\n")
}
