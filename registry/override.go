package registry

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/BurntSushi/toml"
)

// Set applies one command-line override, "key.path=value", the way mmengine applies
// --cfg-options, with TOML value syntax:
//
//	model.head.temperature=0.1           a float
//	param_scheduler.0.milestones=[30,60] an array
//	model.neck={type="LinearNeck", in_channels=512, out_channels=128}
//	work_dir=runs/my run                 not valid TOML, so taken as the string "runs/my run"
//
// Numeric segments index arrays. Missing tables on the way are created. A table value
// merges into the table it lands on, as a file's table would (`_delete_ = true` replaces).
// The override is recorded as the source of the keys it writes.
func (t *Tree) Set(arg string) error {
	source := "--set " + arg
	if !utf8.ValidString(arg) {
		return &Error{Source: strings.ToValidUTF8(source, "\uFFFD"), Msg: "an override must be valid UTF-8"}
	}
	eq := keyEnd(arg)
	if eq < 0 {
		return &Error{Source: source, Msg: "an override must look like key.path=value"}
	}
	segs, err := parseKeyPath(arg[:eq])
	if err != nil {
		return &Error{Source: source, Msg: err.Error()}
	}
	value := parseValue(strings.TrimSpace(arg[eq+1:]))

	var cur any = t.root
	path := ""
	for i, seg := range segs {
		last := i == len(segs)-1
		switch c := cur.(type) {
		case map[string]any:
			p := childPath(path, seg)
			if last {
				old, exists := c[seg]
				nv, err := mergeValue(old, exists, value, p, source, t.prov)
				if err != nil {
					return err
				}
				c[seg] = nv
				return nil
			}
			next, ok := c[seg]
			if !ok {
				next = map[string]any{}
				c[seg] = next
				t.prov.record(p, event{source: source, table: true})
			}
			cur, path = next, p
		case []any:
			idx, ok := isIndex(seg)
			if !ok {
				return &Error{Path: path, Source: source,
					Msg: fmt.Sprintf("is an array, so %q must be an index", seg)}
			}
			p := indexPath(path, idx)
			if last {
				return mergeIndex(c, idx, value, p, source, t.prov)
			}
			if idx >= len(c) {
				return &Error{Path: p, Source: source,
					Msg: fmt.Sprintf("index %d is out of range: the array has %d elements", idx, len(c))}
			}
			cur, path = c[idx], p
		default:
			return &Error{Path: path, Source: source,
				Msg: fmt.Sprintf("is %s, so it has no key %q", describeValue(c), seg)}
		}
	}
	return nil
}

// keyEnd finds the '=' that ends the key, skipping quoted key segments.
func keyEnd(arg string) int {
	var quote byte
	for i := 0; i < len(arg); i++ {
		c := arg[i]
		switch {
		case quote != 0 && c == '\\' && quote == '"':
			i++
		case quote != 0 && c == quote:
			quote = 0
		case quote == 0 && (c == '"' || c == '\''):
			quote = c
		case quote == 0 && c == '=':
			return i
		}
	}
	return -1
}

// parseValue reads an override's value as a TOML value; what is not one (a bare word, a path,
// words with spaces) is taken as a string.
func parseValue(s string) any {
	var doc map[string]any
	if _, err := toml.Decode("v = "+s, &doc); err == nil && len(doc) == 1 {
		if v, ok := doc["v"]; ok {
			return normalize(v)
		}
	}
	return s
}
