package registry

import (
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// roundTrip dumps a tree and loads the text back.
func roundTrip(t *testing.T, tree *Tree) *Tree {
	t.Helper()
	text := tree.TOML()
	back, err := memLoader(map[string]string{"dump.toml": text}).Load("dump.toml")
	if err != nil {
		t.Fatalf("the dump does not load: %v\n%s", err, text)
	}
	return back
}

func TestDumpRoundTrip(t *testing.T) {
	tree, err := NewTree(map[string]any{
		"type":            "NPID",
		"quote":           "a \"quoted\" \\ back\tslash\nnewline ünïcødé \x01",
		"floats":          []any{0.0001, 1e-5, 30.0, -0.0, 1e300, math.Inf(1), math.Inf(-1)},
		"ints":            []any{int64(0), int64(-1), int64(math.MaxInt64), int64(math.MinInt64)},
		"mixed":           []any{int64(1), "a", true, 2.5},
		"nested":          []any{[]any{int64(1), int64(2)}, []any{}},
		"empty_array":     []any{},
		"empty_table":     map[string]any{},
		"odd key.with\"":  int64(1),
		"":                "empty key",
		"date":            time.Date(2026, 11, 27, 12, 30, 0, 0, time.UTC),
		"long_inline_ok":  map[string]any{"a": strings.Repeat("x", 100)},
		"pipeline":        []any{map[string]any{"type": "A", "scale": []any{0.2, 1.0}, "sub": map[string]any{"k": []any{map[string]any{"deep": true}}}}, map[string]any{}},
		"model":           map[string]any{"type": "NPID", "head": map[string]any{"type": "H", "loss": map[string]any{"type": "CE"}}, "empty": map[string]any{}},
		"only_subtables":  map[string]any{"a": map[string]any{"b": map[string]any{"c": int64(1), "d": map[string]any{"e": strings.Repeat("y", 80)}}}},
		"array_of_arrays": []any{[]any{map[string]any{"x": int64(1)}}},
	}, "test")
	if err != nil {
		t.Fatal(err)
	}
	back := roundTrip(t, tree)
	if !reflect.DeepEqual(back.Map(), tree.Map()) {
		t.Errorf("round trip changed the tree:\n got %#v\nwant %#v\ntext:\n%s", back.Map(), tree.Map(), tree.TOML())
	}
}

func TestDumpLayout(t *testing.T) {
	tree, err := NewTree(map[string]any{
		"log_level": "INFO",
		"model": map[string]any{
			"neg_num":  int64(65536),
			"type":     "NPID",
			"backbone": map[string]any{"depth": int64(50), "type": "ResNet", "norm_cfg": map[string]any{"type": "SyncBN"}},
		},
		"pipeline": []any{map[string]any{"type": "A"}, map[string]any{"type": "B", "prob": 0.5}},
	}, "test")
	if err != nil {
		t.Fatal(err)
	}
	want := `log_level = "INFO"
pipeline = [
  { type = "A" },
  { type = "B", prob = 0.5 },
]

[model]
type = "NPID"
neg_num = 65536

[model.backbone]
type = "ResNet"
depth = 50
norm_cfg = { type = "SyncBN" }
`
	if got := tree.TOML(); got != want {
		t.Errorf("dump:\n%s\nwant:\n%s", got, want)
	}
}

func TestWriteFile(t *testing.T) {
	tree := baseTree(t)
	name := filepath.Join(t.TempDir(), "config.toml")
	if err := tree.WriteFile(name); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	back, err := memLoader(map[string]string{"x.toml": string(data)}).Load("x.toml")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back.Map(), tree.Map()) {
		t.Errorf("the written config differs:\n%s", data)
	}
	if !strings.HasPrefix(string(data), "# The merged config of c.toml") {
		t.Errorf("no header: %q", data[:40])
	}
	entries, _ := os.ReadDir(filepath.Dir(name))
	if len(entries) != 1 {
		t.Errorf("temporary files left behind: %v", entries)
	}
}
