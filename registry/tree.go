package registry

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// Tree is a merged config: the tables, arrays and values of a file and its bases after
// inheritance and overrides, with a record of which file or --set argument wrote each key.
type Tree struct {
	root map[string]any
	prov *provenance
	file string
}

// NewTree wraps a table (as toml.Decode produces into a map[string]any) in a Tree whose keys
// are all attributed to source. It is how Go code builds a config without a file.
func NewTree(table map[string]any, source string) (*Tree, error) {
	t := &Tree{root: map[string]any{}, prov: newProvenance(), file: source}
	if err := mergeTable(t.root, normalize(table).(map[string]any), "", source, t.prov); err != nil {
		return nil, err
	}
	return t, nil
}

// File is the config file the tree was loaded from.
func (t *Tree) File() string { return t.file }

// Map returns the merged tree. Callers must not modify it.
func (t *Tree) Map() map[string]any { return t.root }

// Lookup returns the value at a dotted key path; numeric segments index arrays.
func (t *Tree) Lookup(path string) (any, bool) {
	segs, err := parseKeyPath(path)
	if err != nil {
		return nil, false
	}
	var cur any = t.root
	for _, s := range segs {
		switch c := cur.(type) {
		case map[string]any:
			v, ok := c[s]
			if !ok {
				return nil, false
			}
			cur = v
		case []any:
			i, err := strconv.Atoi(s)
			if err != nil || i < 0 || i >= len(c) {
				return nil, false
			}
			cur = c[i]
		default:
			return nil, false
		}
	}
	return cur, true
}

// Source names the file or --set argument that last set the key at path (or the table or
// array that holds it), or "" if nothing did.
func (t *Tree) Source(path string) string {
	segs, err := parseKeyPath(path)
	if err != nil {
		return ""
	}
	return t.prov.source(joinPath(segs...))
}

// Explain describes, in order, every file and override that wrote the key at path, and the
// value that results.
func (t *Tree) Explain(path string) (string, error) {
	segs, err := parseKeyPath(path)
	if err != nil {
		return "", err
	}
	key := joinPath(segs...)
	v, ok := t.Lookup(key)
	if !ok {
		hint := ""
		parent, last := splitLast(segs)
		if m, ok := t.lookupSegs(parent).(map[string]any); ok {
			hint = didYouMean(last, sortedKeys(m))
		}
		return "", &Error{Path: key, Msg: "no such key in the merged config", Hint: hint}
	}
	var b strings.Builder
	if _, isTable := v.(map[string]any); isTable {
		fmt.Fprintf(&b, "%s is a table\n", key)
	} else {
		fmt.Fprintf(&b, "%s = %s\n", key, formatInline(v))
	}
	events := t.prov.history(key)
	if len(events) == 0 {
		b.WriteString("  no file or override set it\n")
	}
	for _, w := range events {
		b.WriteString("  ")
		if w.path != key {
			if w.table {
				fmt.Fprintf(&b, "%s replaced as a whole (_delete_) %s\n", w.path, where(w.source))
			} else {
				fmt.Fprintf(&b, "%s replaced as a whole, %s\n", w.path, where(w.source))
			}
			continue
		}
		b.WriteString(w.describe())
		b.WriteString("\n")
	}
	if m, isTable := v.(map[string]any); isTable {
		b.WriteString("  its keys, and what set each last:\n")
		for _, leaf := range leafPaths(m, key) {
			fmt.Fprintf(&b, "    %s: %s\n", leaf, t.prov.source(leaf))
		}
	}
	return b.String(), nil
}

func (t *Tree) lookupSegs(segs []string) any {
	v, ok := t.Lookup(joinPath(segs...))
	if !ok {
		return nil
	}
	return v
}

// event is one write to a key.
type event struct {
	seq     int
	source  string
	replace bool // the write replaced the whole value (a leaf, an array or a _delete_ table)
	table   bool // the write created or merged into a table
	value   any  // the value written, for leaves
}

func (e event) describe() string {
	switch {
	case e.table && e.replace:
		return "replaced as a whole (_delete_) " + where(e.source)
	case e.table && strings.HasPrefix(e.source, "--set"):
		return "table merged by " + e.source
	case e.table:
		return "table merged from " + e.source
	case e.value != nil:
		return where(e.source) + ": " + formatInline(e.value)
	default:
		return where(e.source)
	}
}

func where(source string) string {
	if strings.HasPrefix(source, "--set") {
		return "set by " + source
	}
	return "set in " + source
}

// provenance records the writes to every key path, in order.
type provenance struct {
	seq    int
	events map[string][]event
}

func newProvenance() *provenance { return &provenance{events: map[string][]event{}} }

func (p *provenance) record(path string, e event) {
	p.seq++
	e.seq = p.seq
	p.events[path] = append(p.events[path], e)
}

// write is one event at a path.
type write struct {
	path string
	event
}

// history returns the writes that shaped the value at path: its own writes and the
// replacements of its ancestors, in order.
func (p *provenance) history(path string) []write {
	var out []write
	for _, e := range p.events[path] {
		out = append(out, write{path, e})
	}
	for _, anc := range ancestors(path) {
		for _, e := range p.events[anc] {
			if e.replace {
				out = append(out, write{anc, e})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].seq < out[j].seq })
	return out
}

// source returns the origin of the latest write that shaped path; for a key nobody wrote,
// that of its nearest ancestor.
func (p *provenance) source(path string) string {
	if h := p.history(path); len(h) > 0 {
		return h[len(h)-1].source
	}
	for _, anc := range ancestors(path) {
		if es := p.events[anc]; len(es) > 0 {
			return es[len(es)-1].source
		}
	}
	return ""
}

// clone returns an independent copy.
func (p *provenance) clone() *provenance {
	c := &provenance{seq: p.seq, events: make(map[string][]event, len(p.events))}
	for k, v := range p.events {
		c.events[k] = append([]event(nil), v...)
	}
	return c
}

// ancestors returns the proper prefixes of a joined path, nearest first.
func ancestors(path string) []string {
	segs, err := parseKeyPath(path)
	if err != nil {
		return nil
	}
	out := make([]string, 0, len(segs))
	for i := len(segs) - 1; i >= 1; i-- {
		out = append(out, joinPath(segs[:i]...))
	}
	return out
}

var bareKey = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// joinPath renders key segments as a dotted TOML key, quoting segments that need it.
func joinPath(segs ...string) string {
	var b strings.Builder
	for i, s := range segs {
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteString(formatKey(s))
	}
	return b.String()
}

func childPath(path, key string) string {
	if path == "" {
		return formatKey(key)
	}
	return path + "." + formatKey(key)
}

func indexPath(path string, i int) string { return path + "." + strconv.Itoa(i) }

func formatKey(k string) string {
	if bareKey.MatchString(k) {
		return k
	}
	return formatScalar(k)
}

func splitLast(segs []string) ([]string, string) {
	if len(segs) == 0 {
		return nil, ""
	}
	return segs[:len(segs)-1], segs[len(segs)-1]
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// leafPaths lists the paths of the non-table values under m.
func leafPaths(m map[string]any, prefix string) []string {
	var out []string
	for _, k := range sortedKeys(m) {
		p := childPath(prefix, k)
		if sub, ok := m[k].(map[string]any); ok {
			out = append(out, leafPaths(sub, p)...)
		} else {
			out = append(out, p)
		}
	}
	return out
}
