package registry

import (
	"bytes"
	"fmt"
	"reflect"
	"sort"
	"strings"

	"github.com/BurntSushi/toml"
)

// Description documents a component for people: what print_config --describe shows. A
// config struct documents its fields with struct tags next to their `toml` names:
//
//	Depth int `toml:"depth" doc:"18, 34, 50 or 101" required:"true"`
type Description struct {
	ID        string // "backbones.ResNet"
	Namespace string
	Type      string
	Doc       string
	Source    string // the file:line that registered it (Component.Source)
	// Keys are the keys of the component's table, "type" aside, in the order of the config
	// struct's fields; the keys of a nested table follow it, dotted ("norm_cfg.momentum").
	Keys []Key
	// SelfChecked is true for a component that checks its table itself (a TableDecoder)
	// without describing its keys: Keys is empty, not because it takes none.
	SelfChecked bool
}

// Key documents one key of a component's table.
type Key struct {
	Name string // the TOML key; the keys of a nested table are dotted: "norm_cfg.momentum"
	// Type is the value the key takes, in TOML terms: "int", "float", "string", "bool",
	// "array of int", "array of 2 float", "table", "component of losses", "array of
	// components of transforms" ...
	Type string
	// Default is the value the component has when the key is absent, in TOML syntax; ""
	// when it has none (an absent component, an empty list, a required size ...).
	Default string
	Doc     string // the field's `doc:"..."` tag
	// Required is the field's `required:"true"` tag: the component's Validate refuses the
	// config without the key. The tag documents; Validate enforces.
	Required bool
}

// Describer is implemented by component configs whose keys are not the fields of a Go
// struct, such as a plugin component's TableDecoder, to document them.
type Describer interface {
	DescribeKeys() []Key
}

// TOMLTyper is implemented by the types of config fields that decode themselves (a
// toml.Unmarshaler such as a size written as one number or two) to say which TOML values
// they take, such as "int or array of 2 int".
type TOMLTyper interface {
	TOMLType() string
}

// NotFoundError is returned by Find and Describe for a name that names no component.
type NotFoundError struct {
	Name    string
	Nearest []string // the IDs of the registered components nearest to Name, nearest first
}

func (e *NotFoundError) Error() string {
	msg := fmt.Sprintf("no component is registered as %q", e.Name)
	if len(e.Nearest) > 0 {
		msg += "; nearest: " + strings.Join(e.Nearest, ", ")
	}
	return msg
}

// AmbiguousError is returned by Find for a type that several namespaces register.
type AmbiguousError struct {
	Name string
	IDs  []string // the components of that type, sorted
}

func (e *AmbiguousError) Error() string {
	return fmt.Sprintf("%q is registered in several namespaces: %s; name one, such as %q",
		e.Name, strings.Join(e.IDs, ", "), e.IDs[0])
}

// Find returns the component that name names: "namespace.Type", or a bare type that only
// one namespace registers. It returns a *NotFoundError or an *AmbiguousError otherwise.
func (r *Registry) Find(name string) (Component, error) {
	if ns, typ, ok := strings.Cut(name, "."); ok {
		if c, found := r.Lookup(ns, typ); found {
			return c, nil
		}
		return Component{}, &NotFoundError{Name: name, Nearest: r.nearestIDs(name, true)}
	}
	var found []Component
	for _, ns := range r.Namespaces() {
		if c, ok := r.Lookup(ns, name); ok {
			found = append(found, c)
		}
	}
	switch len(found) {
	case 0:
		return Component{}, &NotFoundError{Name: name, Nearest: r.nearestIDs(name, false)}
	case 1:
		return found[0], nil
	}
	ids := make([]string, len(found))
	for i, c := range found {
		ids[i] = c.ID()
	}
	return Component{}, &AmbiguousError{Name: name, IDs: ids}
}

// nearestIDs returns up to five registered IDs nearest to name by edit distance, ignoring
// case. A qualified name is compared with each ID, and its type with each type (a type of
// another namespace is one edit away); a bare name with each type. A name that holds a
// registered name of three characters or more, or is part of one, counts as two edits.
func (r *Registry) nearestIDs(name string, qualified bool) []string {
	type cand struct {
		id string
		d  int
	}
	lname := strings.ToLower(name)
	_, ltyp, _ := strings.Cut(lname, ".")
	var cands []cand
	for _, ns := range r.Namespaces() {
		for _, c := range r.List(ns) {
			ctyp := strings.ToLower(c.Type)
			var d int
			if qualified {
				d = min(editDistance(lname, strings.ToLower(c.ID())), editDistance(ltyp, ctyp)+1)
			} else {
				d = editDistance(lname, ctyp)
				if min(len(lname), len(ctyp)) >= 3 && (strings.Contains(lname, ctyp) || strings.Contains(ctyp, lname)) {
					d = min(d, 2)
				}
			}
			cands = append(cands, cand{c.ID(), d})
		}
	}
	sort.SliceStable(cands, func(i, j int) bool {
		if cands[i].d != cands[j].d {
			return cands[i].d < cands[j].d
		}
		return cands[i].id < cands[j].id
	})
	var out []string
	for _, c := range cands[:min(5, len(cands))] {
		out = append(out, c.id)
	}
	return out
}

// Describe documents the component typ of namespace: its doc, where it was registered and
// the keys of its table with their types, defaults (from its New) and docs.
func (r *Registry) Describe(namespace, typ string) (Description, error) {
	c, ok := r.Lookup(namespace, typ)
	if !ok {
		name := namespace + "." + typ
		return Description{}, &NotFoundError{Name: name, Nearest: r.nearestIDs(name, true)}
	}
	d := describe(c)
	shared := r.sharedKeys(namespace)
	for _, k := range sortedKeys(anyMap(shared)) {
		d.Keys = append(d.Keys, Key{Name: k, Type: "any", Doc: shared[k] + " (every " + namespace + " component)"})
	}
	return d, nil
}

func anyMap(m map[string]string) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func describe(c Component) Description {
	d := Description{ID: c.ID(), Namespace: c.Namespace, Type: c.Type, Doc: c.Doc, Source: c.Source()}
	cfg := c.New()
	if dr, ok := cfg.(Describer); ok {
		d.Keys = dr.DescribeKeys()
		return d
	}
	if _, ok := cfg.(TableDecoder); ok {
		d.SelfChecked = true
		return d
	}
	d.Keys = describeStruct(reflect.ValueOf(cfg).Elem(), "", 0)
	return d
}

// maxDepth bounds the nesting of tables that Describe inlines.
const maxDepth = 4

// describeStruct lists the keys of a config struct as the decoder reads them (fieldsOf):
// embedded structs inlined, and each nested table followed by its own keys.
func describeStruct(v reflect.Value, prefix string, depth int) []Key {
	var keys []Key
	for _, f := range fieldsOf(v.Type()).list {
		sf := v.Type().FieldByIndex(f.index)
		fv := v.FieldByIndex(f.index)
		k := Key{Name: prefix + f.name, Type: tomlType(sf.Type, f.tag), Doc: sf.Tag.Get("doc"),
			Required: sf.Tag.Get("required") == "true"}
		if def, ok := tomlDefault(fv); ok {
			k.Default = def
		}
		keys = append(keys, k)
		if t := tableStruct(sf.Type); t != nil && depth < maxDepth {
			sub := reflect.New(t).Elem()
			if fv.Kind() == reflect.Pointer && !fv.IsNil() {
				sub = fv.Elem()
			} else if fv.Kind() == reflect.Struct {
				sub = fv
			}
			keys = append(keys, describeStruct(sub, k.Name+".", depth+1)...)
		}
	}
	return keys
}

// tableStruct returns the struct type whose keys a field of type t holds as a nested
// table (a struct or a pointer to one that decodes key by key), or nil.
func tableStruct(t reflect.Type) reflect.Type {
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct || t == specType || decodesItself(t) {
		return nil
	}
	return t
}

// decodesItself reports whether the decoder hands values of type t to their UnmarshalTOML.
func decodesItself(t reflect.Type) bool {
	return reflect.PointerTo(t).Implements(unmarshalerType)
}

var tomlTyperType = reflect.TypeFor[TOMLTyper]()

// tomlType renders a field's Go type as the TOML values the decoder takes for it.
func tomlType(t reflect.Type, tag fieldTag) string {
	if t.Kind() != reflect.Pointer && decodesItself(t) {
		if t.Implements(tomlTyperType) {
			return reflect.Zero(t).Interface().(TOMLTyper).TOMLType()
		}
		if reflect.PointerTo(t).Implements(tomlTyperType) {
			return reflect.New(t).Interface().(TOMLTyper).TOMLType()
		}
		return "custom (" + t.String() + ")"
	}
	if t == specType {
		s := "component of " + tag.namespace
		if tag.def != "" {
			s += " (type " + tag.def + " when not given)"
		}
		return s
	}
	switch t.Kind() {
	case reflect.Pointer:
		return tomlType(t.Elem(), tag)
	case reflect.Interface:
		return "any"
	case reflect.Struct:
		return "table"
	case reflect.Map:
		if t.Elem() == specType {
			return "table of components of " + tag.namespace
		}
		return "table of " + nested(tomlType(t.Elem(), tag))
	case reflect.Slice:
		if t.Elem() == specType {
			return "array of components of " + tag.namespace
		}
		return "array of " + nested(tomlType(t.Elem(), tag))
	case reflect.Array:
		return fmt.Sprintf("array of %d %s", t.Len(), nested(tomlType(t.Elem(), tag)))
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "bool"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "int"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "int (non-negative)"
	case reflect.Float32, reflect.Float64:
		return "float"
	}
	return t.String()
}

// nested brackets an element type that has spaces, so that "array of 3 (array of 3
// float)" reads unambiguously.
func nested(s string) string {
	if strings.Contains(s, " ") {
		return "(" + s + ")"
	}
	return s
}

var marshalerType = reflect.TypeFor[toml.Marshaler]()

// tomlDefault renders a config value in TOML syntax; ok is false for no value: a zero
// component, a nil list, map or pointer, a zero value of a type that decodes itself.
func tomlDefault(v reflect.Value) (string, bool) {
	if v.Type().Implements(marshalerType) && (v.Kind() != reflect.Pointer || !v.IsNil()) {
		b, err := v.Interface().(toml.Marshaler).MarshalTOML()
		if err != nil {
			return "", false
		}
		return string(bytes.TrimSpace(b)), true
	}
	if v.Kind() != reflect.Pointer && decodesItself(v.Type()) && v.IsZero() {
		return "", false
	}
	if t := tableStruct(v.Type()); t != nil {
		return "", false // its keys follow, each with its default
	}
	tv, ok := tomlValue(v)
	if !ok {
		return "", false
	}
	return formatInline(tv), true
}

// tomlValue turns a Go config value into the types of a config tree (see normalize).
func tomlValue(v reflect.Value) (any, bool) {
	if v.Type() == specType {
		s := v.Interface().(Spec)
		if s.IsZero() {
			return nil, false
		}
		t := s.Table()
		t["type"] = s.Type
		return t, true
	}
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return nil, false
		}
		if v.Kind() == reflect.Interface {
			return normalize(v.Interface()), true
		}
		return tomlValue(v.Elem())
	case reflect.Struct:
		out := map[string]any{}
		for _, f := range fieldsOf(v.Type()).list {
			if e, ok := tomlValue(v.FieldByIndex(f.index)); ok {
				out[f.name] = e
			}
		}
		return out, true
	case reflect.Slice, reflect.Map:
		if v.IsNil() {
			return nil, false
		}
	}
	switch v.Kind() {
	case reflect.Slice, reflect.Array:
		out := make([]any, v.Len())
		for i := range out {
			e, ok := tomlValue(v.Index(i))
			if !ok {
				return nil, false
			}
			out[i] = e
		}
		return out, true
	case reflect.Map:
		if v.Type().Key().Kind() != reflect.String {
			return nil, false
		}
		out := map[string]any{}
		iter := v.MapRange()
		for iter.Next() {
			if e, ok := tomlValue(iter.Value()); ok {
				out[iter.Key().String()] = e
			}
		}
		return out, true
	case reflect.String:
		return v.String(), true
	case reflect.Bool:
		return v.Bool(), true
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return v.Int(), true
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return int64(v.Uint()), true
	case reflect.Float32, reflect.Float64:
		return v.Float(), true
	}
	return nil, false
}
