package registry

import (
	"io/fs"
	"reflect"
	"strings"
	"testing"
	"testing/fstest"
)

// memLoader loads configs from an in-memory set of files.
func memLoader(files map[string]string) *Loader {
	return &Loader{ReadFile: func(name string) ([]byte, error) {
		s, ok := files[name]
		if !ok {
			return nil, fs.ErrNotExist
		}
		return []byte(s), nil
	}}
}

func TestLoadMergeRules(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		want  map[string]any
	}{{
		name: "tables merge key by key",
		files: map[string]string{
			"base.toml":  "[model]\ntype = \"NPID\"\nneg_num = 65536\n[model.head]\ntemperature = 0.07\nloss = {type = \"CE\"}\n",
			"child.toml": "_base_ = \"base.toml\"\n[model.head]\ntemperature = 0.1\n",
		},
		want: map[string]any{"model": map[string]any{"type": "NPID", "neg_num": int64(65536),
			"head": map[string]any{"temperature": 0.1, "loss": map[string]any{"type": "CE"}}}},
	}, {
		name: "arrays replace whole",
		files: map[string]string{
			"base.toml":  "milestones = [120, 160]\n",
			"child.toml": "_base_ = [\"base.toml\"]\nmilestones = [30]\n",
		},
		want: map[string]any{"milestones": []any{int64(30)}},
	}, {
		name: "arrays of tables replace whole",
		files: map[string]string{
			"base.toml":  "[[pipeline]]\ntype = \"A\"\n[[pipeline]]\ntype = \"B\"\nprob = 0.5\n",
			"child.toml": "_base_ = \"base.toml\"\npipeline = [{type = \"C\"}]\n",
		},
		want: map[string]any{"pipeline": []any{map[string]any{"type": "C"}}},
	}, {
		name: "_delete_ replaces the inherited table",
		files: map[string]string{
			"base.toml":  "[opt]\ntype = \"SGD\"\nlr = 0.03\nmomentum = 0.9\n",
			"child.toml": "_base_ = \"base.toml\"\n[opt]\n_delete_ = true\ntype = \"LARS\"\nlr = 4.8\n",
		},
		want: map[string]any{"opt": map[string]any{"type": "LARS", "lr": 4.8}},
	}, {
		name: "_delete_ = false merges",
		files: map[string]string{
			"base.toml":  "[opt]\ntype = \"SGD\"\nlr = 0.03\n",
			"child.toml": "_base_ = \"base.toml\"\n[opt]\n_delete_ = false\nlr = 0.1\n",
		},
		want: map[string]any{"opt": map[string]any{"type": "SGD", "lr": 0.1}},
	}, {
		name: "_delete_ with nothing to replace is dropped",
		files: map[string]string{
			"child.toml": "[opt]\n_delete_ = true\nlr = 0.1\n",
		},
		want: map[string]any{"opt": map[string]any{"lr": 0.1}},
	}, {
		name: "a scalar may change kind, an array may replace a scalar",
		files: map[string]string{
			"base.toml":  "size = 224\nname = \"a\"\n",
			"child.toml": "_base_ = \"base.toml\"\nsize = [224, 192]\nname = 3\n",
		},
		want: map[string]any{"size": []any{int64(224), int64(192)}, "name": int64(3)},
	}, {
		name: "bases resolve against the including file, recursively",
		files: map[string]string{
			"configs/_base_/models/m.toml":  "[model]\ndepth = 50\nwidth = 64\n",
			"configs/_base_/runtime.toml":   "log_level = \"INFO\"\n",
			"configs/npid/r50.toml":         "_base_ = [\"../_base_/models/m.toml\", \"../_base_/runtime.toml\"]\n[model]\ndepth = 18\n",
			"configs/npid/sub/variant.toml": "_base_ = \"../r50.toml\"\n[model]\nwidth = 32\n",
		},
		want: map[string]any{"log_level": "INFO", "model": map[string]any{"depth": int64(18), "width": int64(32)}},
	}, {
		name: "later bases do not override earlier ones: they are disjoint",
		files: map[string]string{
			"a.toml":     "x = 1\n",
			"b.toml":     "y = 2\n",
			"child.toml": "_base_ = [\"a.toml\", \"b.toml\"]\n",
		},
		want: map[string]any{"x": int64(1), "y": int64(2)},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			name := "child.toml"
			if _, ok := tc.files[name]; !ok {
				name = "configs/npid/sub/variant.toml"
			}
			tree, err := memLoader(tc.files).Load(name)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(tree.Map(), tc.want) {
				t.Errorf("merged tree\n got %#v\nwant %#v", tree.Map(), tc.want)
			}
		})
	}
}

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		want  []string // substrings of the error
	}{{
		name: "table over a scalar names both files",
		files: map[string]string{
			"base.toml":  "[model]\nhead = 3\n",
			"child.toml": "_base_ = \"base.toml\"\n[model.head]\ntemperature = 0.1\n",
		},
		want: []string{"model.head", "a table cannot merge into the integer set in base.toml", "set in child.toml", "_delete_ = true"},
	}, {
		name: "scalar over a table names both files",
		files: map[string]string{
			"base.toml":  "[model.head]\ntemperature = 0.1\n",
			"child.toml": "_base_ = \"base.toml\"\n[model]\nhead = \"x\"\n",
		},
		want: []string{"model.head", "a string cannot replace the table set in base.toml", "set in child.toml"},
	}, {
		name: "sibling bases may not share a top-level key",
		files: map[string]string{
			"a.toml":     "[model]\ndepth = 50\n",
			"b.toml":     "[model]\nwidth = 64\n",
			"child.toml": "_base_ = [\"a.toml\", \"b.toml\"]\n",
		},
		want: []string{"model", "set in b.toml", "also set in a.toml", "sibling bases"},
	}, {
		name: "a cycle shows its chain",
		files: map[string]string{
			"child.toml": "_base_ = \"b.toml\"\n",
			"b.toml":     "_base_ = [\"c.toml\"]\n",
			"c.toml":     "_base_ = \"child.toml\"\n",
		},
		want: []string{"_base_ cycle: child.toml -> b.toml -> c.toml -> child.toml"},
	}, {
		name: "a file that includes itself",
		files: map[string]string{
			"child.toml": "_base_ = \"./child.toml\"\n",
		},
		want: []string{"_base_ cycle: child.toml -> child.toml"},
	}, {
		name:  "a missing base names the including file",
		files: map[string]string{"child.toml": "_base_ = \"nope.toml\"\n"},
		want:  []string{"config file nope.toml not found (a _base_ of child.toml)"},
	}, {
		name:  "_base_ must be paths",
		files: map[string]string{"child.toml": "_base_ = 3\n"},
		want:  []string{"_base_: must be a path or an array of paths, not an integer 3 (set in child.toml)"},
	}, {
		name:  "_delete_ must be a boolean",
		files: map[string]string{"child.toml": "[opt]\n_delete_ = \"yes\"\n"},
		want:  []string{"opt._delete_: _delete_ must be true or false, not a string \"yes\""},
	}, {
		name:  "_delete_ at the top level",
		files: map[string]string{"child.toml": "_delete_ = true\nx = 1\n"},
		want:  []string{"_delete_ only has a meaning inside a table"},
	}, {
		name:  "a syntax error names the file, line and column",
		files: map[string]string{"child.toml": "x = 1\n[model]\ntemperature = 0.1.2\n"},
		want:  []string{"child.toml:3:15: ", "Invalid float value", "temperature = 0.1.2", "^^^^^"},
	}, {
		name:  "a duplicate key is a syntax error",
		files: map[string]string{"child.toml": "x = 1\nx = 2\n"},
		want:  []string{"child.toml:2:", "x"},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := memLoader(tc.files).Load("child.toml")
			if err == nil {
				t.Fatal("loaded without error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestShippedFallback(t *testing.T) {
	shipped := fstest.MapFS{
		"_base_/m.toml":  {Data: []byte("[model]\ndepth = 50\n")},
		"npid/r50.toml":  {Data: []byte("_base_ = \"../_base_/m.toml\"\n[model]\nwidth = 64\n")},
		"npid/over.toml": {Data: []byte("_base_ = \"../../../etc/passwd\"\n")},
	}
	l := memLoader(map[string]string{
		// A user's config outside the repository that inherits a shipped one by prefix.
		"mine.toml": "_base_ = \"goselfsup::npid/r50.toml\"\n[model]\ndepth = 18\n",
	})
	l.Shipped = shipped
	want := map[string]any{"model": map[string]any{"depth": int64(50), "width": int64(64)}}
	for _, name := range []string{"configs/npid/r50.toml", "/somewhere/else/configs/npid/r50.toml", "goselfsup::npid/r50.toml"} {
		tree, err := l.Load(name)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !reflect.DeepEqual(tree.Map(), want) {
			t.Errorf("%s: got %v", name, tree.Map())
		}
		if got := tree.Source("model.depth"); got != "goselfsup::_base_/m.toml" {
			t.Errorf("%s: model.depth set in %q", name, got)
		}
	}
	tree, err := l.Load("mine.toml")
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := tree.Lookup("model.depth"); d != int64(18) {
		t.Errorf("model.depth = %v, want 18", d)
	}
	if _, err := l.Load("goselfsup::npid/over.toml"); err == nil || !strings.Contains(err.Error(), "not among the shipped configs") {
		t.Errorf("a base that leaves the shipped configs: %v", err)
	}
	if _, err := l.Load("configs/npid/missing.toml"); err == nil || !strings.Contains(err.Error(), "configs/npid/missing.toml not found") {
		t.Errorf("a missing config: %v", err)
	}
	names, err := l.ListShipped()
	if err != nil || len(names) != 3 || names[0] != "goselfsup::_base_/m.toml" {
		t.Errorf("ListShipped = %v, %v", names, err)
	}
}

func TestProvenanceAndExplain(t *testing.T) {
	tree, err := memLoader(map[string]string{
		"base.toml":  "[model.head]\ntype = \"ContrastiveHead\"\ntemperature = 0.07\n[opt]\nlr = 0.03\n",
		"child.toml": "_base_ = \"base.toml\"\n[model.head]\ntemperature = 0.1\n[opt]\n_delete_ = true\nlr = 0.5\n",
	}).Load("child.toml")
	if err != nil {
		t.Fatal(err)
	}
	if err := tree.Set("model.head.temperature=0.2"); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{
		"model.head.temperature": "--set model.head.temperature=0.2",
		"model.head.type":        "base.toml",
		"model.head":             "child.toml", // the last file that merged into it
		"opt.lr":                 "child.toml",
		"nothing.here":           "",
	} {
		if got := tree.Source(path); got != want {
			t.Errorf("Source(%s) = %q, want %q", path, got, want)
		}
	}
	text, err := tree.Explain("model.head.temperature")
	if err != nil {
		t.Fatal(err)
	}
	want := "model.head.temperature = 0.2\n" +
		"  set in base.toml: 0.07\n" +
		"  set in child.toml: 0.1\n" +
		"  set by --set model.head.temperature=0.2: 0.2\n"
	if text != want {
		t.Errorf("Explain:\n%s\nwant:\n%s", text, want)
	}
	text, err = tree.Explain("opt.lr")
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"set in base.toml: 0.03", "opt replaced as a whole (_delete_) set in child.toml", "set in child.toml: 0.5"} {
		if !strings.Contains(text, w) {
			t.Errorf("Explain(opt.lr) = %q, lacks %q", text, w)
		}
	}
	if _, err := tree.Explain("model.head.temprature"); err == nil || !strings.Contains(err.Error(), `did you mean "temperature"?`) {
		t.Errorf("Explain of a misspelled key: %v", err)
	}
}
