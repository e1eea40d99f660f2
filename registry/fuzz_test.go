package registry

import (
	"reflect"
	"testing"
)

// FuzzLoad feeds arbitrary text to the loader as a config that inherits a fixed base, and
// overrides as --set arguments. Nothing may panic, and every config that loads must dump to
// TOML that loads back to the same tree.
func FuzzLoad(f *testing.F) {
	f.Add("[model]\nneg_num = 4096\n", "model.head.temperature=0.1")
	f.Add("_base_ = [\"base.toml\", \"base.toml\"]\n", "a=b")
	f.Add("[model.head]\n_delete_ = true\ntype = \"X\"\n", "pipeline.0.size=[1,2]")
	f.Add("pipeline = [{type = \"A\", sub = {x = [1, {y = 2}]}}]\n", "x.\"q.k\"={a=1}")
	f.Add("_base_ = \"child.toml\"\n", "=")
	f.Add("a = 1979-05-27T07:32:00Z\nb = inf\nc = '''\nx'''\n", "d=nan")
	f.Add("[[model.x]]\n[model.x.y]\nz = 1\n", "model.x.0.y.z=2")
	base := "[model]\ntype = \"NPID\"\n[model.head]\ntemperature = 0.07\n[[pipeline]]\ntype = \"A\"\n"
	f.Fuzz(func(t *testing.T, child, override string) {
		l := memLoader(map[string]string{
			"base.toml":  base,
			"child.toml": "_base_ = \"base.toml\"\n" + child,
			"solo.toml":  child,
		})
		for _, name := range []string{"child.toml", "solo.toml"} {
			tree, err := l.Load(name)
			if err != nil {
				continue
			}
			_ = tree.Set(override)
			_, _ = tree.Explain(override)
			text := tree.TOML()
			back, err := memLoader(map[string]string{"dump.toml": text}).Load("dump.toml")
			if err != nil {
				t.Fatalf("the dump of %q does not load: %v\n%s", child, err, text)
			}
			if !equalTrees(back.Map(), tree.Map()) {
				t.Fatalf("round trip changed the tree of %q:\n got %#v\nwant %#v", child, back.Map(), tree.Map())
			}
		}
	})
}

// equalTrees is reflect.DeepEqual with NaN equal to itself.
func equalTrees(a, b any) bool {
	switch x := a.(type) {
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, v := range x {
			if w, ok := y[k]; !ok || !equalTrees(v, w) {
				return false
			}
		}
		return true
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !equalTrees(x[i], y[i]) {
				return false
			}
		}
		return true
	case float64:
		y, ok := b.(float64)
		return ok && (x == y || x != x && y != y)
	default:
		return reflect.DeepEqual(a, b)
	}
}
