package sdk

import (
	"bytes"
	"encoding"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// Key documents one key of a component's config, as the manifest gives it to the host,
// which checks a config's table against it. Component.Keys derives the keys from the
// component's Config struct.
type Key struct {
	Name string
	// Type is "string", "int", "float", "bool", "array" or "table"; "" for a key whose
	// values the host does not check (an interface field).
	Type     string
	Doc      string
	Default  string // in TOML syntax, "" for none
	Required bool
}

// Keys returns the keys of the component's config table, derived from the struct that
// Config returns, field by field (exported fields, in order; an embedded struct's fields
// as its own, as the TOML decoder does):
//
//   - the key's name is the field's `toml` tag (`toml:"-"` leaves the field out), else the
//     field's name;
//   - its type follows the field's: a string (or a type that unmarshals text, or a
//     time.Duration) is "string", integers "int", floats "float", bool "bool", slices and
//     arrays "array", maps and structs "table";
//   - its doc is the `doc` tag, and `required:"true"` makes it required;
//   - its default is the field's value in the struct Config returns, in TOML syntax (none
//     for a required key, or a nil slice, map or pointer).
func (c Component) Keys() ([]Key, error) {
	if c.Config == nil {
		return nil, nil
	}
	v := reflect.ValueOf(c.Config())
	if v.Kind() != reflect.Pointer || v.IsNil() || v.Elem().Kind() != reflect.Struct {
		return nil, fmt.Errorf("component %s: Config must return a pointer to a struct, got %T", c.Type, c.Config())
	}
	var keys []Key
	if err := structKeys(v.Elem(), &keys); err != nil {
		return nil, fmt.Errorf("component %s: %w", c.Type, err)
	}
	return keys, nil
}

func structKeys(v reflect.Value, keys *[]Key) error {
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		tag, hasTag := f.Tag.Lookup("toml")
		name, _, _ := strings.Cut(tag, ",")
		if !f.IsExported() || name == "-" {
			continue
		}
		if f.Anonymous && !hasTag && f.Type.Kind() == reflect.Struct {
			if err := structKeys(v.Field(i), keys); err != nil {
				return err
			}
			continue
		}
		if name == "" {
			name = f.Name
		}
		if slices.ContainsFunc(*keys, func(k Key) bool { return k.Name == name }) {
			return fmt.Errorf("key %q twice in %s", name, t)
		}
		typ, err := keyType(f.Type)
		if err != nil {
			return fmt.Errorf("field %s (key %q): %w", f.Name, name, err)
		}
		k := Key{Name: name, Type: typ, Doc: f.Tag.Get("doc")}
		if r := f.Tag.Get("required"); r != "" {
			if k.Required, err = strconv.ParseBool(r); err != nil {
				return fmt.Errorf("field %s: required:%q is not a bool", f.Name, r)
			}
		}
		if !k.Required {
			k.Default = tomlValue(v.Field(i))
		}
		*keys = append(*keys, k)
	}
	return nil
}

var (
	textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()
	durationType    = reflect.TypeFor[time.Duration]()
)

// keyType is the manifest's type of a key decoded into a field of type t.
func keyType(t reflect.Type) (string, error) {
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == durationType || reflect.PointerTo(t).Implements(textUnmarshaler) {
		return "string", nil
	}
	switch t.Kind() {
	case reflect.String:
		return "string", nil
	case reflect.Bool:
		return "bool", nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "int", nil
	case reflect.Float32, reflect.Float64:
		return "float", nil
	case reflect.Slice, reflect.Array:
		return "array", nil
	case reflect.Map, reflect.Struct:
		return "table", nil
	case reflect.Interface:
		return "", nil
	}
	return "", fmt.Errorf("a %s cannot hold a TOML value", t)
}

// tomlValue writes a value in TOML syntax, tables inline; "" for a nil one.
func tomlValue(v reflect.Value) string {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return ""
		}
		return tomlValue(v.Elem())
	case reflect.Slice, reflect.Map:
		if v.IsNil() {
			return ""
		}
	}
	if v.Type() != durationType && !reflect.PointerTo(v.Type()).Implements(textUnmarshaler) {
		switch v.Kind() {
		case reflect.Map:
			keys := v.MapKeys()
			slices.SortFunc(keys, func(a, b reflect.Value) int { return strings.Compare(fmt.Sprint(a), fmt.Sprint(b)) })
			var parts []string
			for _, k := range keys {
				if s := tomlValue(v.MapIndex(k)); s != "" {
					parts = append(parts, tomlKey(fmt.Sprint(k))+" = "+s)
				}
			}
			return "{" + strings.Join(parts, ", ") + "}"
		case reflect.Struct:
			var keys []Key
			if structKeys(v, &keys) != nil {
				return ""
			}
			var parts []string
			for _, k := range keys {
				if k.Default != "" {
					parts = append(parts, tomlKey(k.Name)+" = "+k.Default)
				}
			}
			return "{" + strings.Join(parts, ", ") + "}"
		}
	}
	var buf bytes.Buffer
	if err := toml.NewEncoder(&buf).Encode(map[string]any{"v": v.Interface()}); err != nil {
		return ""
	}
	s, ok := strings.CutPrefix(strings.TrimSpace(buf.String()), "v = ")
	if !ok || strings.Contains(s, "\n") {
		return ""
	}
	return s
}

// tomlKey quotes a key that is not a bare TOML key.
func tomlKey(k string) string {
	for _, c := range k {
		if !(c == '_' || c == '-' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return strconv.Quote(k)
		}
	}
	if k == "" {
		return `""`
	}
	return k
}
