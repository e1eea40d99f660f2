package registry

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// The keys with a meaning for inheritance, as in mmengine.
const (
	baseKey   = "_base_"
	deleteKey = "_delete_"
)

// mergeTable merges src into dst with mmengine's rules: tables merge key by key, every other
// value (arrays of tables included) replaces what was there, `_delete_ = true` in a table
// replaces the inherited table instead of merging into it, and a table never silently meets
// a non-table. Every write is recorded in prov under source.
func mergeTable(dst, src map[string]any, path, source string, prov *provenance) error {
	var errs Errors
	for _, k := range sortedKeys(src) {
		if k == deleteKey {
			if path == "" {
				errs = append(errs, &Error{Path: deleteKey, Source: source,
					Msg: "_delete_ only has a meaning inside a table, where it replaces the inherited table"})
			}
			continue
		}
		old, exists := dst[k]
		nv, err := mergeValue(old, exists, src[k], childPath(path, k), source, prov)
		if err != nil {
			errs = append(errs, asErrors(err)...)
			continue
		}
		dst[k] = nv
	}
	return errs.orNil()
}

// mergeValue returns the value that results from writing nv over old (which exists only if
// exists is true), recording the writes at path.
func mergeValue(old any, exists bool, nv any, path, source string, prov *provenance) (any, error) {
	newTable, isTable := nv.(map[string]any)
	oldTable, wasTable := old.(map[string]any)
	if !isTable {
		if exists && wasTable {
			return nil, &Error{Path: path, Source: source,
				Msg:  fmt.Sprintf("%s cannot replace the table set in %s", withArticle(kindOf(nv)), prov.source(path)),
				Hint: "to replace a table, write a table with `_delete_ = true`"}
		}
		prov.record(path, event{source: source, replace: true, value: nv})
		return stripDelete(nv), nil
	}
	replace, err := deleteFlag(newTable, path, source)
	if err != nil {
		return nil, err
	}
	if exists && !wasTable && !replace {
		return nil, &Error{Path: path, Source: source,
			Msg:  fmt.Sprintf("a table cannot merge into the %s set in %s", kindOf(old), prov.source(path)),
			Hint: "add `_delete_ = true` to the table to replace the inherited value"}
	}
	if !exists || replace || !wasTable {
		oldTable = map[string]any{}
	}
	prov.record(path, event{source: source, table: true, replace: replace})
	if err := mergeTable(oldTable, newTable, path, source, prov); err != nil {
		return nil, err
	}
	return oldTable, nil
}

// mergeIndex writes nv over the element i of the array arr, for overrides such as
// `--set train_dataloader.dataset.pipeline.1.prob=0.3`.
func mergeIndex(arr []any, i int, nv any, path, source string, prov *provenance) error {
	if i < 0 || i >= len(arr) {
		return &Error{Path: path, Source: source,
			Msg: fmt.Sprintf("index %d is out of range: the array has %d elements", i, len(arr))}
	}
	v, err := mergeValue(arr[i], true, nv, path, source, prov)
	if err != nil {
		return err
	}
	arr[i] = v
	return nil
}

func deleteFlag(t map[string]any, path, source string) (bool, error) {
	d, ok := t[deleteKey]
	if !ok {
		return false, nil
	}
	b, ok := d.(bool)
	if !ok {
		return false, &Error{Path: childPath(path, deleteKey), Source: source,
			Msg: fmt.Sprintf("_delete_ must be true or false, not %s", describeValue(d))}
	}
	return b, nil
}

// stripDelete deep-copies v without `_delete_` keys, which have no meaning inside arrays.
func stripDelete(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			if k != deleteKey {
				out[k] = stripDelete(e)
			}
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = stripDelete(e)
		}
		return out
	default:
		return v
	}
}

// deepCopy copies the tables and arrays of a tree.
func deepCopy(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = deepCopy(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = deepCopy(e)
		}
		return out
	default:
		return v
	}
}

// normalize turns a tree as toml.Decode produces it (arrays of tables as []map[string]any),
// or as Go code writes it (int, []string, map[string]int ...), into the types of a merged
// tree: map[string]any, []any, int64, float64, string, bool and time.Time.
func normalize(v any) any {
	switch x := v.(type) {
	case nil, string, bool, int64, float64, time.Time:
		return v
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = normalize(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = normalize(e)
		}
		return out
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32:
		return rv.Int()
	case reflect.Uint8, reflect.Uint16, reflect.Uint32:
		return int64(rv.Uint())
	case reflect.Float32:
		return rv.Float()
	case reflect.Slice, reflect.Array:
		out := make([]any, rv.Len())
		for i := range out {
			out[i] = normalize(rv.Index(i).Interface())
		}
		return out
	case reflect.Map:
		if rv.Type().Key().Kind() == reflect.String {
			out := make(map[string]any, rv.Len())
			iter := rv.MapRange()
			for iter.Next() {
				out[iter.Key().String()] = normalize(iter.Value().Interface())
			}
			return out
		}
	}
	return v
}

func asErrors(err error) Errors {
	var out Errors
	for _, e := range flatten(err) {
		if ce, ok := e.(*Error); ok {
			out = append(out, ce)
		} else {
			out = append(out, &Error{Msg: e.Error()})
		}
	}
	return out
}

// kindOf names the TOML kind of a value, for messages.
func kindOf(v any) string {
	switch v.(type) {
	case map[string]any:
		return "table"
	case []any:
		return "array"
	case string:
		return "string"
	case int64:
		return "integer"
	case float64:
		return "float"
	case bool:
		return "boolean"
	default:
		return fmt.Sprintf("%T", v)
	}
}

// describeValue names a value's kind and shows it, for messages.
func describeValue(v any) string {
	switch v.(type) {
	case map[string]any:
		return "a table"
	case []any:
		return "an array " + formatInline(v)
	default:
		return withArticle(kindOf(v)) + " " + formatInline(v)
	}
}

func withArticle(noun string) string {
	if noun != "" && strings.ContainsRune("aeiou", rune(noun[0])) {
		return "an " + noun
	}
	return "a " + noun
}

func isIndex(s string) (int, bool) {
	i, err := strconv.Atoi(s)
	return i, err == nil && i >= 0 && strconv.Itoa(i) == s
}
