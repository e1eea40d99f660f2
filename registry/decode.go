package registry

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"sort"
	"strings"
	"sync"

	"github.com/BurntSushi/toml"
)

// KeyHinter is implemented by config structs that know why a user might write a key they do
// not have, such as a key that mmselfsup 0.x used: the hint replaces "did you mean".
type KeyHinter interface {
	KeyHint(key string) string
}

// Decode decodes the merged config strictly into dst, a pointer to a struct whose fields
// carry `toml` tags, and decodes and checks every component it names, at any depth, against
// the default registry. All problems are returned together as Errors.
func (t *Tree) Decode(dst any) error { return Default.DecodeTree(t, dst) }

// DecodeTree is Tree.Decode against the components of r.
func (r *Registry) DecodeTree(t *Tree, dst any) error {
	rv := reflect.ValueOf(dst)
	if rv.Kind() != reflect.Pointer || rv.Elem().Kind() != reflect.Struct {
		return fmt.Errorf("registry: Decode needs a pointer to a struct, not %T", dst)
	}
	d := &decoder{reg: r, prov: t.prov}
	d.table(t.root, rv.Elem(), "", "")
	d.components(rv)
	return d.errs.orNil()
}

// Decode returns the config struct of the component s names, with its defaults and the keys
// of s, after checking it and every component nested in it.
func (r *Registry) Decode(s Spec) (any, error) {
	d := &decoder{reg: r, prov: s.prov}
	cfg := d.component(s)
	if err := d.errs.orNil(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// Validate checks every component that v (a config struct, or a pointer to one) names.
func (r *Registry) Validate(v any) error {
	d := &decoder{reg: r}
	d.components(reflect.ValueOf(v))
	return d.errs.orNil()
}

var (
	specType        = reflect.TypeFor[Spec]()
	unmarshalerType = reflect.TypeFor[toml.Unmarshaler]()
)

type decoder struct {
	reg  *Registry
	prov *provenance
	errs Errors
}

func (d *decoder) fail(path, msg, hint string) {
	src := ""
	if d.prov != nil {
		src = d.prov.source(path)
	}
	d.errs = append(d.errs, &Error{Path: path, Source: src, Msg: msg, Hint: hint})
}

func (d *decoder) mismatch(path, want string, got any) {
	d.fail(path, fmt.Sprintf("expected %s, got %s", want, describeValue(got)), "")
}

// component decodes the config of the component s names and checks it and its own
// components. It returns nil if s names no registered component.
func (d *decoder) component(s Spec) any {
	if s.prov != nil {
		d.prov = s.prov
	}
	c, ok := d.reg.Lookup(s.Namespace, s.Type)
	if !ok {
		d.unknownType(s)
		return nil
	}
	cfg := c.New()
	own := s.table // the component's keys: without those that its namespace reserves
	if shared := d.reg.sharedKeys(s.Namespace); len(shared) > 0 {
		own = make(map[string]any, len(s.table))
		for k, v := range s.table {
			if _, ok := shared[k]; !ok {
				own[k] = v
			}
		}
	}
	if td, ok := cfg.(TableDecoder); ok {
		table := make(map[string]any, len(own))
		for k, v := range own {
			if k != "type" {
				table[k] = v
			}
		}
		d.validation(td.DecodeTable(table), s.Path)
		return cfg
	}
	d.table(own, reflect.ValueOf(cfg).Elem(), s.Path, c.Type)
	d.components(reflect.ValueOf(cfg))
	return cfg
}

// TableDecoder is implemented by component configs whose keys are not known when goselfsup
// is built (those of plugin components): they receive their table, without "type", and
// check it themselves, reporting problems with FieldErrorf.
type TableDecoder interface {
	DecodeTable(table map[string]any) error
}

func (d *decoder) unknownType(s Spec) {
	path := childPath(s.Path, "type")
	known := d.reg.typeNames(s.Namespace)
	hint := didYouMean(s.Type, known)
	if scope, name, ok := strings.Cut(s.Type, "."); ok && strings.HasPrefix(scope, "mm") {
		if _, found := d.reg.Lookup(s.Namespace, name); found {
			hint = fmt.Sprintf("goselfsup has one registry, without OpenMMLab scopes: write %q", name)
		}
	}
	if hint == "" {
		if len(known) == 0 {
			hint = fmt.Sprintf("no %s are registered", s.Namespace)
		} else {
			hint = "registered: " + strings.Join(known, ", ")
		}
	}
	d.fail(path, fmt.Sprintf("unknown %s type %q", s.Namespace, s.Type), d.reg.withUnavailable(hint))
}

func (d *decoder) validation(err error, path string) {
	for _, e := range flatten(err) {
		var fe *FieldError
		var ce *Error
		switch {
		case errors.As(e, &fe):
			p := path
			if segs, perr := parseKeyPath(fe.Key); perr == nil {
				for _, s := range segs {
					p = childPath(p, s)
				}
			}
			d.fail(p, fe.Msg, "")
		case errors.As(e, &ce):
			d.errs = append(d.errs, ce)
		default:
			d.fail(path, e.Error(), "")
		}
	}
}

// components decodes every Spec reachable from v.
func (d *decoder) components(v reflect.Value) {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() && v.Kind() == reflect.Pointer {
			d.components(v.Elem())
		}
	case reflect.Struct:
		if v.Type() == specType {
			if s := v.Interface().(Spec); !s.IsZero() {
				d.component(s)
			}
			return
		}
		for i := 0; i < v.NumField(); i++ {
			if v.Type().Field(i).IsExported() {
				d.components(v.Field(i))
			}
		}
	case reflect.Slice, reflect.Array:
		for i := 0; i < v.Len(); i++ {
			d.components(v.Index(i))
		}
	case reflect.Map:
		iter := v.MapRange()
		for iter.Next() {
			d.components(iter.Value())
		}
	}
}

// table decodes a TOML table into a struct and, if the struct is a Validator and decoded
// cleanly, validates it. component is the registered type whose config this is ("" for a
// plain struct); its "type" key belongs to the registry.
func (d *decoder) table(m map[string]any, rv reflect.Value, path, component string) {
	fields := fieldsOf(rv.Type())
	before := len(d.errs)
	for _, k := range sortedKeys(m) {
		if component != "" && k == "type" {
			continue
		}
		f, ok := fields.byName[k]
		if !ok {
			d.unknownKey(rv, fields, path, k, component)
			continue
		}
		d.value(m[k], rv.FieldByIndex(f.index), childPath(path, k), f.tag)
	}
	if v, ok := rv.Addr().Interface().(Validator); ok && len(d.errs) == before {
		d.validation(v.Validate(), path)
	}
}

func (d *decoder) unknownKey(rv reflect.Value, fields *structFields, path, key, component string) {
	msg := "unknown key"
	if component != "" {
		msg += " for " + component
	}
	hint := ""
	if h, ok := rv.Addr().Interface().(KeyHinter); ok {
		hint = h.KeyHint(key)
	}
	if hint == "" {
		hint = didYouMean(key, fields.names)
	}
	if hint == "" {
		if len(fields.names) == 0 {
			hint = "it takes no keys"
		} else {
			hint = "valid keys: " + strings.Join(fields.names, ", ")
		}
	}
	d.fail(childPath(path, key), msg, hint)
}

// value decodes one TOML value into rv.
func (d *decoder) value(v any, rv reflect.Value, path string, tag fieldTag) {
	if rv.CanAddr() && rv.Addr().Type().Implements(unmarshalerType) {
		if err := rv.Addr().Interface().(toml.Unmarshaler).UnmarshalTOML(deepCopy(v)); err != nil {
			d.fail(path, err.Error(), "")
		}
		return
	}
	if rv.Type() == specType {
		d.spec(v, rv, path, tag)
		return
	}
	switch rv.Kind() {
	case reflect.Pointer:
		p := reflect.New(rv.Type().Elem())
		d.value(v, p.Elem(), path, tag)
		rv.Set(p)
	case reflect.Interface:
		if rv.NumMethod() != 0 {
			d.fail(path, fmt.Sprintf("cannot decode into %v", rv.Type()), "")
			return
		}
		rv.Set(reflect.ValueOf(deepCopy(v)))
	case reflect.Struct:
		m, ok := v.(map[string]any)
		if !ok {
			d.mismatch(path, "a table", v)
			return
		}
		d.table(m, rv, path, "")
	case reflect.Map:
		m, ok := v.(map[string]any)
		if !ok || rv.Type().Key().Kind() != reflect.String {
			d.mismatch(path, "a table", v)
			return
		}
		out := reflect.MakeMapWithSize(rv.Type(), len(m))
		for _, k := range sortedKeys(m) {
			e := reflect.New(rv.Type().Elem()).Elem()
			d.value(m[k], e, childPath(path, k), tag)
			out.SetMapIndex(reflect.ValueOf(k).Convert(rv.Type().Key()), e)
		}
		rv.Set(out)
	case reflect.Slice:
		arr, ok := v.([]any)
		if !ok {
			if _, isTable := v.(map[string]any); isTable && rv.Type().Elem() == specType {
				arr = []any{v} // mmengine takes a single component where it takes a list
			} else {
				d.mismatch(path, "an array", v)
				return
			}
		}
		out := reflect.MakeSlice(rv.Type(), len(arr), len(arr))
		for i, e := range arr {
			d.value(e, out.Index(i), indexPath(path, i), tag)
		}
		rv.Set(out)
	case reflect.Array:
		arr, ok := v.([]any)
		if !ok {
			d.mismatch(path, fmt.Sprintf("an array of %d elements", rv.Len()), v)
			return
		}
		if len(arr) != rv.Len() {
			d.fail(path, fmt.Sprintf("expected an array of %d elements, got %d: %s", rv.Len(), len(arr), formatInline(v)), "")
			return
		}
		for i, e := range arr {
			d.value(e, rv.Index(i), indexPath(path, i), tag)
		}
	case reflect.String:
		s, ok := v.(string)
		if !ok {
			d.mismatch(path, "a string", v)
			return
		}
		rv.SetString(s)
	case reflect.Bool:
		b, ok := v.(bool)
		if !ok {
			d.mismatch(path, "a boolean (true or false)", v)
			return
		}
		rv.SetBool(b)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, ok := v.(int64)
		if !ok {
			d.mismatch(path, "an integer", v)
			return
		}
		if rv.OverflowInt(n) {
			d.fail(path, fmt.Sprintf("%d does not fit in %v", n, rv.Type()), "")
			return
		}
		rv.SetInt(n)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		n, ok := v.(int64)
		if !ok || n < 0 {
			d.mismatch(path, "a non-negative integer", v)
			return
		}
		if rv.OverflowUint(uint64(n)) {
			d.fail(path, fmt.Sprintf("%d does not fit in %v", n, rv.Type()), "")
			return
		}
		rv.SetUint(uint64(n))
	case reflect.Float32, reflect.Float64:
		switch x := v.(type) {
		case float64:
			if rv.Kind() == reflect.Float32 && math.Abs(x) > math.MaxFloat32 && !math.IsInf(x, 0) {
				d.fail(path, fmt.Sprintf("%g does not fit in float32", x), "")
				return
			}
			rv.SetFloat(x)
		case int64:
			rv.SetFloat(float64(x))
		default:
			d.mismatch(path, "a number", v)
		}
	default:
		d.fail(path, fmt.Sprintf("cannot decode into %v", rv.Type()), "")
	}
}

// spec keeps a component's table for later decoding, after checking that it names a type.
func (d *decoder) spec(v any, rv reflect.Value, path string, tag fieldTag) {
	m, ok := v.(map[string]any)
	if !ok {
		d.mismatch(path, fmt.Sprintf("a table whose type names one of the %s", tag.namespace), v)
		return
	}
	if tag.namespace == "" {
		d.fail(path, "registry: a Spec field needs a `registry:\"namespace\"` tag", "")
		return
	}
	typ := tag.def
	if tv, ok := m["type"]; ok {
		s, ok := tv.(string)
		if !ok {
			d.mismatch(childPath(path, "type"), "a string", tv)
			return
		}
		typ = s
	}
	if typ == "" {
		hint := "registered: " + strings.Join(d.reg.typeNames(tag.namespace), ", ")
		d.fail(path, fmt.Sprintf("missing \"type\", the %s component to build", tag.namespace), hint)
		return
	}
	rv.Set(reflect.ValueOf(Spec{Namespace: tag.namespace, Type: typ, Path: path,
		table: deepCopy(m).(map[string]any), prov: d.prov}))
}

// fieldTag is the parsed `registry:"namespace,default=Type"` tag of a Spec field.
type fieldTag struct {
	namespace string
	def       string
}

type field struct {
	name  string
	index []int
	tag   fieldTag
}

type structFields struct {
	list   []field
	byName map[string]field
	names  []string // sorted
}

var fieldCache sync.Map // reflect.Type -> *structFields

// fieldsOf lists the TOML keys of a struct: exported fields under their `toml` names (or
// their Go names), with untagged embedded structs inlined.
func fieldsOf(t reflect.Type) *structFields {
	if c, ok := fieldCache.Load(t); ok {
		return c.(*structFields)
	}
	sf := &structFields{byName: map[string]field{}}
	var walk func(t reflect.Type, index []int)
	walk = func(t reflect.Type, index []int) {
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			idx := append(index[:len(index):len(index)], i)
			name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
			if name == "-" || !f.IsExported() && !f.Anonymous {
				continue
			}
			if f.Anonymous && name == "" && f.Type.Kind() == reflect.Struct {
				walk(f.Type, idx)
				continue
			}
			if !f.IsExported() {
				continue
			}
			if name == "" {
				name = f.Name
			}
			var tag fieldTag
			ns, rest, _ := strings.Cut(f.Tag.Get("registry"), ",")
			tag.namespace = ns
			if def, ok := strings.CutPrefix(rest, "default="); ok {
				tag.def = def
			}
			fl := field{name: name, index: idx, tag: tag}
			sf.list = append(sf.list, fl)
			sf.byName[name] = fl
		}
	}
	walk(t, nil)
	for n := range sf.byName {
		sf.names = append(sf.names, n)
	}
	sort.Strings(sf.names)
	c, _ := fieldCache.LoadOrStore(t, sf)
	return c.(*structFields)
}

func isStructPointer(v any) bool {
	t := reflect.TypeOf(v)
	return t != nil && t.Kind() == reflect.Pointer && t.Elem().Kind() == reflect.Struct
}
