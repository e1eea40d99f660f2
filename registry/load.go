package registry

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/BurntSushi/toml"
)

// ShippedPrefix names a config that ships with goselfsup, wherever the binary runs:
// "goselfsup::npid/resnet50_8xb32-steplr-200e.toml". It plays the role of mmengine's
// "mmselfsup::" package prefix.
const ShippedPrefix = "goselfsup::"

// Loader reads config files and resolves their _base_ chains.
type Loader struct {
	// Shipped holds the configs that ship with goselfsup (the repository's configs folder,
	// embedded in every binary). A path such as "configs/npid/x.toml" that is not on disk
	// falls back to Shipped, so the shipped configs load outside the repository too.
	Shipped fs.FS
	// ReadFile reads a file from disk; nil means os.ReadFile.
	ReadFile func(name string) ([]byte, error)
}

// Load reads the config at name with its bases and merges them with mmengine's rules:
//
//   - `_base_` is a path or an array of paths, relative to the including file; bases load
//     recursively and a cycle is an error that shows the chain;
//   - sibling bases may not set the same top-level key;
//   - the file's own keys merge over its bases: tables merge key by key, arrays (arrays of
//     tables too) and values replace, `_delete_ = true` inside a table replaces the
//     inherited table, and a table meeting a non-table is an error naming both files.
func (l *Loader) Load(name string) (*Tree, error) {
	r, err := l.resolve(name, nil)
	if err != nil {
		return nil, err
	}
	return l.load(r, nil)
}

// ref is one config file: on disk, or among the shipped configs.
type ref struct {
	shipped bool
	name    string // OS path on disk; slash path inside Shipped
}

func (r ref) String() string {
	if r.shipped {
		return ShippedPrefix + r.name
	}
	return r.name
}

// id identifies a file for cycle detection.
func (r ref) id() string {
	if r.shipped {
		return r.String()
	}
	if abs, err := filepath.Abs(r.name); err == nil {
		return abs
	}
	return r.name
}

// resolve turns a path, relative to the file from (nil for a command-line argument), into a ref.
func (l *Loader) resolve(name string, from *ref) (ref, error) {
	if name == "" {
		return ref{}, errors.New("empty config path")
	}
	if rest, ok := strings.CutPrefix(name, ShippedPrefix); ok {
		return l.shippedRef(rest, name)
	}
	if from != nil && from.shipped {
		return l.shippedRef(path.Join(path.Dir(from.name), filepath.ToSlash(name)), name)
	}
	p := filepath.Clean(name)
	if from != nil && !filepath.IsAbs(p) {
		p = filepath.Join(filepath.Dir(from.name), p)
	}
	r := ref{name: p}
	if _, err := l.read(r); errors.Is(err, fs.ErrNotExist) && l.Shipped != nil {
		// Outside the repository, configs/... still means the shipped configs.
		slash := filepath.ToSlash(p)
		if i := strings.Index("/"+slash, "/configs/"); i >= 0 {
			rest := slash[i+len("configs/"):]
			if _, err := fs.Stat(l.Shipped, rest); err == nil {
				return ref{shipped: true, name: rest}, nil
			}
		}
	}
	return r, nil
}

func (l *Loader) shippedRef(p, asWritten string) (ref, error) {
	p = path.Clean(p)
	if l.Shipped == nil || !fs.ValidPath(p) {
		return ref{}, fmt.Errorf("%s is not among the shipped configs", asWritten)
	}
	return ref{shipped: true, name: p}, nil
}

func (l *Loader) read(r ref) ([]byte, error) {
	if r.shipped {
		return fs.ReadFile(l.Shipped, r.name)
	}
	if l.ReadFile != nil {
		return l.ReadFile(r.name)
	}
	return os.ReadFile(r.name)
}

func (l *Loader) load(r ref, chain []ref) (*Tree, error) {
	for i, c := range chain {
		if c.id() == r.id() {
			names := make([]string, 0, len(chain)-i+1)
			for _, c := range chain[i:] {
				names = append(names, c.String())
			}
			names = append(names, r.String())
			return nil, fmt.Errorf("_base_ cycle: %s", strings.Join(names, " -> "))
		}
	}
	data, err := l.read(r)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			msg := fmt.Sprintf("config file %s not found", r)
			if len(chain) > 0 {
				msg += fmt.Sprintf(" (a _base_ of %s)", chain[len(chain)-1])
			}
			return nil, errors.New(msg)
		}
		return nil, fmt.Errorf("reading config %s: %w", r, err)
	}
	table, err := parseTOML(r.String(), data)
	if err != nil {
		return nil, err
	}
	bases, err := baseList(table, r)
	if err != nil {
		return nil, err
	}
	delete(table, baseKey)

	t := &Tree{root: map[string]any{}, prov: newProvenance(), file: r.String()}
	owner := map[string]string{} // top-level key -> the base file that set it
	for _, b := range bases {
		br, err := l.resolve(b, &r)
		if err != nil {
			return nil, fmt.Errorf("%s: _base_ %q: %w", r, b, err)
		}
		bt, err := l.load(br, append(chain[:len(chain):len(chain)], r))
		if err != nil {
			return nil, err
		}
		for _, k := range sortedKeys(bt.root) {
			if first, dup := owner[k]; dup {
				return nil, &Error{Path: formatKey(k), Source: bt.prov.source(formatKey(k)),
					Msg:  fmt.Sprintf("sibling bases of %s both set this top-level key; it is also set in %s", r, first),
					Hint: "sibling bases may not share a top-level key (mmengine's rule): set it in one base only, or in the including file"}
			}
			owner[k] = bt.prov.source(formatKey(k))
			t.root[k] = bt.root[k]
		}
		for p, evs := range bt.prov.events {
			t.prov.events[p] = append(t.prov.events[p], evs...)
		}
		t.prov.seq = max(t.prov.seq, bt.prov.seq)
	}
	if err := mergeTable(t.root, table, "", r.String(), t.prov); err != nil {
		return nil, err
	}
	return t, nil
}

// parseTOML decodes one file; a syntax error names the file, line and column.
func parseTOML(name string, data []byte) (map[string]any, error) {
	var table map[string]any
	if _, err := toml.Decode(string(data), &table); err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return nil, fmt.Errorf("%s:%d:%d: %s\n%s", name, pe.Position.Line, pe.Position.Col,
				pe.Message, excerpt(pe.ErrorWithPosition()))
		}
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return normalize(table).(map[string]any), nil
}

// excerpt keeps the source lines and caret of toml's positioned error message.
func excerpt(msg string) string {
	lines := strings.Split(msg, "\n")
	for i, l := range lines {
		if strings.HasPrefix(l, "At line") {
			return strings.TrimRight(strings.Join(lines[i+1:], "\n"), "\n")
		}
	}
	return ""
}

func baseList(table map[string]any, r ref) ([]string, error) {
	v, ok := table[baseKey]
	if !ok {
		return nil, nil
	}
	bad := &Error{Path: baseKey, Source: r.String(),
		Msg: fmt.Sprintf("must be a path or an array of paths, not %s", describeValue(v))}
	switch x := v.(type) {
	case string:
		return []string{x}, nil
	case []any:
		out := make([]string, 0, len(x))
		for _, e := range x {
			s, ok := e.(string)
			if !ok {
				return nil, bad
			}
			out = append(out, s)
		}
		return out, nil
	default:
		return nil, bad
	}
}

// ListShipped returns the paths of the shipped configs, "goselfsup::" included, sorted.
func (l *Loader) ListShipped() ([]string, error) {
	if l.Shipped == nil {
		return nil, nil
	}
	var out []string
	err := fs.WalkDir(l.Shipped, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasSuffix(p, ".toml") {
			out = append(out, ShippedPrefix+p)
		}
		return nil
	})
	sort.Strings(out)
	return out, err
}
