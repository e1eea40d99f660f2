package registry

import (
	"reflect"
	"strings"
	"testing"
)

func baseTree(t *testing.T) *Tree {
	t.Helper()
	tree, err := memLoader(map[string]string{"c.toml": `
work_dir = "runs/a"
[model]
type = "NPID"
neg_num = 65536
[model.head]
type = "ContrastiveHead"
temperature = 0.07
[[pipeline]]
type = "RandomResizedCrop"
size = 224
[[pipeline]]
type = "RandomGrayscale"
prob = 0.2
`}).Load("c.toml")
	if err != nil {
		t.Fatal(err)
	}
	return tree
}

func TestSet(t *testing.T) {
	tests := []struct {
		args []string
		path string
		want any
	}{
		{[]string{"model.head.temperature=0.1"}, "model.head.temperature", 0.1},
		{[]string{"model.neg_num=4096"}, "model.neg_num", int64(4096)},
		{[]string{"model.ensure_neg=true"}, "model.ensure_neg", true},
		{[]string{"model.milestones=[30, 60]"}, "model.milestones", []any{int64(30), int64(60)}},
		{[]string{"work_dir=runs/b"}, "work_dir", "runs/b"},
		{[]string{"work_dir=my runs/b c"}, "work_dir", "my runs/b c"},
		{[]string{`work_dir="quoted # not a comment"`}, "work_dir", "quoted # not a comment"},
		{[]string{"work_dir = spaced"}, "work_dir", "spaced"},
		{[]string{"backend=xla:cuda"}, "backend", "xla:cuda"},
		{[]string{"pipeline.1.prob=0.5"}, "pipeline.1.prob", 0.5},
		{[]string{"pipeline.0.scale=[0.2, 1.0]"}, "pipeline.0.scale", []any{0.2, 1.0}},
		{[]string{"new.table.key=1"}, "new.table.key", int64(1)},
		{[]string{`model."odd.key"=1`}, `model."odd.key"`, int64(1)},
		{[]string{"model.head={temperature = 0.2}"}, "model.head", map[string]any{"type": "ContrastiveHead", "temperature": 0.2}},
		{[]string{"model.head={_delete_ = true, type = \"X\"}"}, "model.head", map[string]any{"type": "X"}},
		{[]string{"model.neg_num=1", "model.neg_num=2"}, "model.neg_num", int64(2)},
		{[]string{"model.neg_num=1\nmodel.x=2"}, "model.neg_num", "1\nmodel.x=2"},
		{[]string{"a.b="}, "a.b", ""},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			tree := baseTree(t)
			for _, a := range tc.args {
				if err := tree.Set(a); err != nil {
					t.Fatal(err)
				}
			}
			got, ok := tree.Lookup(tc.path)
			if !ok || !reflect.DeepEqual(got, tc.want) {
				t.Errorf("%s = %#v, want %#v", tc.path, got, tc.want)
			}
			if src := tree.Source(tc.path); src != "--set "+tc.args[len(tc.args)-1] {
				t.Errorf("Source(%s) = %q", tc.path, src)
			}
		})
	}
}

func TestSetErrors(t *testing.T) {
	tests := []struct{ arg, want string }{
		{"model", "an override must look like key.path=value"},
		{"=3", "empty key"},
		{"model.head=3", "model.head: an integer cannot replace the table set in c.toml (set by --set model.head=3)"},
		{"pipeline.2.prob=0.1", "pipeline.2: index 2 is out of range: the array has 2 elements"},
		{"pipeline.5.x.y=0.1", "pipeline.5: index 5 is out of range"},
		{"pipeline.first=1", `pipeline: is an array, so "first" must be an index`},
		{"model.neg_num.x=1", `model.neg_num: is an integer 65536, so it has no key "x"`},
		{"model.bad key=1", `expected '.' after "bad"`},
		{"model.b@d=1", "not a valid key segment (quote it)"},
	}
	for _, tc := range tests {
		err := baseTree(t).Set(tc.arg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Set(%q) = %v, want an error containing %q", tc.arg, err, tc.want)
		}
	}
}
