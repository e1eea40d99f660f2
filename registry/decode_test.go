package registry

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// A small component tree for the tests: a model with a backbone, a list of transforms and
// a map of hooks.

type testRun struct {
	Model    Spec            `toml:"model" registry:"algorithms"`
	Pipeline []Spec          `toml:"pipeline" registry:"transforms"`
	Hooks    map[string]Spec `toml:"hooks" registry:"hooks"`
	Loop     Spec            `toml:"loop" registry:"loops,default=EpochLoop"`
	Epochs   int             `toml:"epochs"`
	Names    []string        `toml:"names"`
	Scale    [2]float64      `toml:"scale"`
	Opt      *struct {
		LR float64 `toml:"lr"`
	} `toml:"opt"`
	Free any `toml:"free"`
}

func (r *testRun) KeyHint(key string) string {
	if key == "runner" {
		return "0.x key: set epochs"
	}
	return ""
}

type testModel struct {
	Backbone Spec    `toml:"backbone" registry:"backbones"`
	NegNum   int     `toml:"neg_num"`
	Temp     float64 `toml:"temperature"`
	Small    int8    `toml:"small"`
	Count    uint    `toml:"count"`
	Norm     struct {
		Type string `toml:"type"`
	} `toml:"norm_cfg"`
	common
}

type common struct {
	Pretrained string `toml:"pretrained"`
}

func (m *testModel) Validate() error {
	var errs []error
	if m.Temp <= 0 {
		errs = append(errs, FieldErrorf("temperature", "must be positive, got %g", m.Temp))
	}
	if m.NegNum > 100000 {
		errs = append(errs, FieldErrorf("neg_num", "is too large"))
	}
	return errors.Join(errs...)
}

type testBackbone struct {
	Depth int `toml:"depth"`
}

func (b *testBackbone) Build(env *Env) (any, error) {
	if b.Depth == 0 {
		return nil, errors.New("depth 0")
	}
	return fmt.Sprintf("resnet%d", b.Depth), nil
}

type testFlip struct {
	Prob float64 `toml:"prob"`
}

type noKeys struct{}

func testRegistry() *Registry {
	r := New()
	r.Register(Component{Namespace: "algorithms", Type: "NPID", New: func() any { return &testModel{NegNum: 65536, Temp: 0.1} }})
	r.Register(Component{Namespace: "backbones", Type: "ResNet", New: func() any { return &testBackbone{Depth: 50} }})
	r.Register(Component{Namespace: "backbones", Type: "ViT", New: func() any { return &testBackbone{} }})
	r.Register(Component{Namespace: "transforms", Type: "RandomFlip", New: func() any { return &testFlip{Prob: 0.5} }})
	r.Register(Component{Namespace: "hooks", Type: "LoggerHook", New: func() any { return &noKeys{} }})
	r.Register(Component{Namespace: "loops", Type: "EpochLoop", New: func() any { return &noKeys{} }})
	return r
}

func decodeText(t *testing.T, text string, sets ...string) (*testRun, error) {
	t.Helper()
	tree, err := memLoader(map[string]string{"run.toml": text}).Load("run.toml")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range sets {
		if err := tree.Set(s); err != nil {
			t.Fatal(err)
		}
	}
	var run testRun
	return &run, testRegistry().DecodeTree(tree, &run)
}

func TestDecodeValid(t *testing.T) {
	run, err := decodeText(t, `
epochs = 3
names = ["a", "b"]
scale = [0.2, 1]
opt = { lr = 1 }
free = { anything = [1, "x"] }
[model]
type = "NPID"
temperature = 0.07
pretrained = "x.ckpt"
backbone = { type = "ResNet", depth = 18 }
[[pipeline]]
type = "RandomFlip"
[hooks]
logger = { type = "LoggerHook" }
[loop]
`)
	if err != nil {
		t.Fatal(err)
	}
	if run.Epochs != 3 || len(run.Names) != 2 || run.Scale != [2]float64{0.2, 1} || run.Opt.LR != 1 {
		t.Errorf("top level: %+v", run)
	}
	if free, ok := run.Free.(map[string]any); !ok || len(free["anything"].([]any)) != 2 {
		t.Errorf("free = %#v", run.Free)
	}
	if run.Model.ID() != "algorithms.NPID" || run.Model.Path != "model" {
		t.Errorf("model spec: %+v", run.Model)
	}
	if run.Loop.Type != "EpochLoop" {
		t.Errorf("a table without type takes the default type, got %q", run.Loop.Type)
	}
	if len(run.Pipeline) != 1 || run.Pipeline[0].Path != "pipeline.0" || run.Hooks["logger"].Path != "hooks.logger" {
		t.Errorf("nested specs: %+v %+v", run.Pipeline, run.Hooks)
	}
	cfg, err := testRegistry().Decode(run.Model)
	if err != nil {
		t.Fatal(err)
	}
	m := cfg.(*testModel)
	if m.NegNum != 65536 || m.Temp != 0.07 || m.Pretrained != "x.ckpt" || m.Backbone.Table()["depth"] != int64(18) {
		t.Errorf("model config: %+v (defaults kept, keys applied, embedded fields inlined)", m)
	}
	env := &Env{Registry: testRegistry()}
	name, err := Build[string](env, m.Backbone)
	if err != nil || name != "resnet18" {
		t.Errorf("Build = %q, %v", name, err)
	}
	if _, err := Build[int](env, m.Backbone); err == nil || !strings.Contains(err.Error(), "builds a string, which is not a int") {
		t.Errorf("Build with the wrong type: %v", err)
	}
	if _, err := Build[string](env, run.Model); err == nil || !strings.Contains(err.Error(), "describes configuration only") {
		t.Errorf("Build of a config without Build: %v", err)
	}
	if _, err := Build[string](env, Spec{Namespace: "backbones", Path: "model.backbone"}); err == nil || !strings.Contains(err.Error(), "model.backbone: is required") {
		t.Errorf("Build of a missing spec: %v", err)
	}
	zero := NewSpec("backbones", "ResNet", map[string]any{"depth": 0})
	if _, err := Build[string](env, zero); err == nil || !strings.Contains(err.Error(), "depth 0") {
		t.Errorf("Build error: %v", err)
	}
}

func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		name, text string
		sets       []string
		want       []string // one error line each, in order
	}{{
		name: "a misspelled key names the file and the nearest key",
		text: "[model]\ntype = \"NPID\"\nneg_nmu = 4096\n",
		want: []string{`model.neg_nmu: unknown key for NPID (set in run.toml); did you mean "neg_num"?`},
	}, {
		name: "an unknown key far from any lists the valid keys",
		text: "[model]\ntype = \"NPID\"\nzzzzzzzz = 1\n",
		want: []string{"model.zzzzzzzz: unknown key for NPID (set in run.toml); valid keys: backbone, count, neg_num, norm_cfg, pretrained, small, temperature"},
	}, {
		name: "a key hint explains ported keys",
		text: "runner = { max_epochs = 3 }\n",
		want: []string{"runner: unknown key (set in run.toml); 0.x key: set epochs"},
	}, {
		name: "a key in a component without keys",
		text: "[hooks.logger]\ntype = \"LoggerHook\"\ninterval = 3\n",
		want: []string{"hooks.logger.interval: unknown key for LoggerHook (set in run.toml); it takes no keys"},
	}, {
		name: "a missing type lists the namespace",
		text: "[model]\ntype = \"NPID\"\n[model.backbone]\ndepth = 50\n",
		want: []string{`model.backbone: missing "type", the backbones component to build (set in run.toml); registered: ResNet, ViT`},
	}, {
		name: "an unknown type suggests the nearest",
		text: "[model]\ntype = \"NPID\"\nbackbone = { type = \"resnet\" }\n",
		want: []string{`model.backbone.type: unknown backbones type "resnet" (set in run.toml); did you mean "ResNet"?`},
	}, {
		name: "an unknown type far from any lists the namespace",
		text: "[[pipeline]]\ntype = \"Solarize\"\n",
		want: []string{`pipeline.0.type: unknown transforms type "Solarize" (set in run.toml); registered: RandomFlip`},
	}, {
		name: "an OpenMMLab scope prefix",
		text: "[[pipeline]]\ntype = \"mmcls.RandomFlip\"\n",
		want: []string{`pipeline.0.type: unknown transforms type "mmcls.RandomFlip" (set in run.toml); goselfsup has one registry, without OpenMMLab scopes: write "RandomFlip"`},
	}, {
		name: "wrong value types",
		text: "epochs = \"three\"\nnames = \"a\"\nscale = [1, 2, 3]\n[model]\ntype = \"NPID\"\nneg_num = 1.5\ntemperature = \"hot\"\nsmall = 300\ncount = -1\nnorm_cfg = 3\n",
		want: []string{
			`epochs: expected an integer, got a string "three" (set in run.toml)`,
			`names: expected an array, got a string "a" (set in run.toml)`,
			"scale: expected an array of 2 elements, got 3: [1, 2, 3] (set in run.toml)",
			"model.count: expected a non-negative integer, got an integer -1 (set in run.toml)",
			"model.neg_num: expected an integer, got a float 1.5 (set in run.toml)",
			"model.norm_cfg: expected a table, got an integer 3 (set in run.toml)",
			"model.small: 300 does not fit in int8 (set in run.toml)",
			`model.temperature: expected a number, got a string "hot" (set in run.toml)`,
		},
	}, {
		name: "the type must be a string",
		text: "[model]\ntype = 3\n",
		want: []string{"model.type: expected a string, got an integer 3 (set in run.toml)"},
	}, {
		name: "a component must be a table",
		text: "model = \"NPID\"\n",
		want: []string{`model: expected a table whose type names one of the algorithms, got a string "NPID" (set in run.toml)`},
	}, {
		name: "validation errors name the key, and overrides are blamed",
		text: "[model]\ntype = \"NPID\"\n",
		sets: []string{"model.temperature=-1", "model.neg_num=1000000"},
		want: []string{
			"model.temperature: must be positive, got -1 (set by --set model.temperature=-1)",
			"model.neg_num: is too large (set by --set model.neg_num=1000000)",
		},
	}, {
		name: "errors in nested components carry their full path",
		text: "[model]\ntype = \"NPID\"\n[model.backbone]\ntype = \"ResNet\"\ndepht = 50\n[[pipeline]]\ntype = \"RandomFlip\"\n[[pipeline]]\ntype = \"RandomFlip\"\nprob = \"half\"\n",
		want: []string{
			`model.backbone.depht: unknown key for ResNet (set in run.toml); did you mean "depth"?`,
			`pipeline.1.prob: expected a number, got a string "half" (set in run.toml)`,
		},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := decodeText(t, tc.text, tc.sets...)
			var list Errors
			if !errors.As(err, &list) {
				t.Fatalf("got %v, want Errors", err)
			}
			var got []string
			for _, e := range list {
				got = append(got, e.Error())
			}
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

func TestRegisterPanics(t *testing.T) {
	newCfg := func() any { return &noKeys{} }
	tests := []struct {
		name string
		c    Component
		want string
	}{
		{"duplicate", Component{Namespace: "hooks", Type: "LoggerHook", New: newCfg}, "hooks.LoggerHook registered twice (first at"},
		{"no namespace", Component{Type: "X", New: newCfg}, "invalid namespace"},
		{"bad type", Component{Namespace: "hooks", Type: "a.b", New: newCfg}, "invalid type name"},
		{"no New", Component{Namespace: "hooks", Type: "X"}, "has no New function"},
		{"New returns no struct pointer", Component{Namespace: "hooks", Type: "X", New: func() any { return 3 }}, "must return a pointer to a config struct"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := testRegistry()
			defer func() {
				p := recover()
				if p == nil || !strings.Contains(fmt.Sprint(p), tc.want) {
					t.Errorf("panic %v, want one containing %q", p, tc.want)
				}
			}()
			r.Register(tc.c)
		})
	}
}

func TestListing(t *testing.T) {
	r := testRegistry()
	if got := strings.Join(r.typeNames("backbones"), ","); got != "ResNet,ViT" {
		t.Errorf("List(backbones) = %s", got)
	}
	if got := strings.Join(r.Namespaces(), ","); got != "algorithms,backbones,hooks,loops,transforms" {
		t.Errorf("Namespaces = %s", got)
	}
	if _, ok := r.Lookup("backbones", "ResNet"); !ok {
		t.Error("Lookup(backbones, ResNet) failed")
	}
}

func TestNearest(t *testing.T) {
	for _, tc := range []struct {
		name string
		want string
	}{
		{"neg_nmu", "neg_num"}, {"temprature", "temperature"}, {"resnet", "ResNet"},
		{"NegNum", "neg_num"}, {"x", ""}, {"l", "lr"}, {"momentun", "momentum"},
	} {
		if got := nearest(tc.name, []string{"neg_num", "temperature", "ResNet", "momentum", "lr"}); got != tc.want {
			t.Errorf("nearest(%q) = %q, want %q", tc.name, got, tc.want)
		}
	}
	// Optimal string alignment distances, counted by hand.
	for _, tc := range []struct {
		a, b string
		d    int
	}{{"", "abc", 3}, {"abc", "abc", 0}, {"ab", "ba", 1}, {"kitten", "sitting", 3}, {"ca", "abc", 3}} {
		if got := editDistance(tc.a, tc.b); got != tc.d {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.d)
		}
	}
}
