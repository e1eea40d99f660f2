package registry

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// describedNet is a config with a field of every kind the decoder reads.
type describedNet struct {
	Depth    int             `toml:"depth" doc:"the depth" required:"true"`
	Rate     float64         `toml:"rate" doc:"a rate"`
	Style    string          `toml:"style" doc:"a style"`
	Frozen   bool            `toml:"frozen"`
	Count    uint            `toml:"count"`
	Strides  []int           `toml:"strides" doc:"one per stage"`
	Blocks   []int           `toml:"blocks" doc:"nil: none"`
	Scale    [2]float64      `toml:"scale"`
	Eigvec   [3][3]float64   `toml:"eigvec"`
	Norm     describedNorm   `toml:"norm_cfg" doc:"the norm"`
	Opt      *describedOpt   `toml:"opt" doc:"an optional table"`
	Size     describedPair   `toml:"size" doc:"one number or two"`
	Pad      *describedPair  `toml:"pad"`
	Strength describedJit    `toml:"strength"`
	Raw      describedRaw    `toml:"raw"`
	Loss     Spec            `toml:"loss" registry:"losses" doc:"the loss"`
	Sampler  Spec            `toml:"sampler" registry:"samplers,default=DefaultSampler"`
	Pipeline []Spec          `toml:"pipeline" registry:"transforms"`
	Hooks    map[string]Spec `toml:"hooks" registry:"hooks"`
	Weights  map[string]int  `toml:"weights"`
	Free     any             `toml:"free"`
	Skipped  int             `toml:"-"`
	hidden   int
	describedCommon
	Named describedCommon `toml:"named"`
}

type describedCommon struct {
	Pretrained string `toml:"pretrained" doc:"a checkpoint"`
}

type describedNorm struct {
	Type     string  `toml:"type" doc:"BN or SyncBN"`
	Momentum float64 `toml:"momentum"`
}

type describedOpt struct {
	LR float64 `toml:"lr"`
}

// describedPair decodes itself and says what it takes.
type describedPair [2]int

func (p *describedPair) UnmarshalTOML(any) error { return nil }
func (describedPair) TOMLType() string           { return "int or array of 2 int" }

// describedJit decodes itself and writes itself back.
type describedJit struct{ s float64 }

func (j *describedJit) UnmarshalTOML(any) error     { return nil }
func (j describedJit) MarshalTOML() ([]byte, error) { return []byte(fmt.Sprint(j.s)), nil }

// describedRaw decodes itself and says nothing.
type describedRaw struct{ V string }

func (r *describedRaw) UnmarshalTOML(any) error { return nil }

// describedPlugin checks its own table and documents it.
type describedPlugin struct{ rawConfig }

func (describedPlugin) DescribeKeys() []Key {
	return []Key{{Name: "epochs", Type: "int", Default: "100", Doc: "passes over the data"},
		{Name: "feature", Type: "string", Doc: "the features", Required: true}}
}

func describeRegistry() *Registry {
	r := New()
	r.Register(Component{Namespace: "backbones", Type: "Net", Doc: "a test backbone", New: func() any {
		return &describedNet{Depth: 50, Rate: 0.5, Style: "pytorch", Strides: []int{1, 2}, Scale: [2]float64{0.08, 1},
			Norm: describedNorm{Type: "BN", Momentum: 0.1}, Size: describedPair{224, 224}, Strength: describedJit{0.4},
			Loss:            NewSpec("losses", "CrossEntropyLoss", map[string]any{"loss_weight": 1.0}),
			Weights:         map[string]int{"a": 1},
			describedCommon: describedCommon{Pretrained: "ckpt.pth"}}
	}})
	r.Register(Component{Namespace: "heads", Type: "Net", New: func() any { return &describedOpt{} }})
	r.Register(Component{Namespace: "heads", Type: "NetHead", New: func() any { return &describedOpt{} }})
	r.Register(Component{Namespace: "evaluators", Type: "Probe", Doc: "a plugin's", New: func() any { return &describedPlugin{} }})
	r.Register(Component{Namespace: "evaluators", Type: "Opaque", New: func() any { return &rawConfig{} }})
	return r
}

func TestDescribe(t *testing.T) {
	r := describeRegistry()
	d, err := r.Describe("backbones", "Net")
	if err != nil {
		t.Fatal(err)
	}
	if d.ID != "backbones.Net" || d.Namespace != "backbones" || d.Type != "Net" || d.Doc != "a test backbone" || d.SelfChecked {
		t.Errorf("description %+v", d)
	}
	if !regexp.MustCompile(`registry/describe_test\.go:\d+$`).MatchString(d.Source) {
		t.Errorf("source %q, want this file", d.Source)
	}
	want := []Key{
		{Name: "depth", Type: "int", Default: "50", Doc: "the depth", Required: true},
		{Name: "rate", Type: "float", Default: "0.5", Doc: "a rate"},
		{Name: "style", Type: "string", Default: `"pytorch"`, Doc: "a style"},
		{Name: "frozen", Type: "bool", Default: "false"},
		{Name: "count", Type: "int (non-negative)", Default: "0"},
		{Name: "strides", Type: "array of int", Default: "[1, 2]", Doc: "one per stage"},
		{Name: "blocks", Type: "array of int", Doc: "nil: none"},
		{Name: "scale", Type: "array of 2 float", Default: "[0.08, 1.0]"},
		{Name: "eigvec", Type: "array of 3 (array of 3 float)", Default: "[[0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]"},
		{Name: "norm_cfg", Type: "table", Doc: "the norm"},
		{Name: "norm_cfg.type", Type: "string", Default: `"BN"`, Doc: "BN or SyncBN"},
		{Name: "norm_cfg.momentum", Type: "float", Default: "0.1"},
		{Name: "opt", Type: "table", Doc: "an optional table"},
		{Name: "opt.lr", Type: "float", Default: "0.0"},
		{Name: "size", Type: "int or array of 2 int", Default: "[224, 224]", Doc: "one number or two"},
		{Name: "pad", Type: "int or array of 2 int"},
		{Name: "strength", Type: "custom (registry.describedJit)", Default: "0.4"},
		{Name: "raw", Type: "custom (registry.describedRaw)"},
		{Name: "loss", Type: "component of losses", Default: `{ type = "CrossEntropyLoss", loss_weight = 1.0 }`, Doc: "the loss"},
		{Name: "sampler", Type: "component of samplers (type DefaultSampler when not given)"},
		{Name: "pipeline", Type: "array of components of transforms"},
		{Name: "hooks", Type: "table of components of hooks"},
		{Name: "weights", Type: "table of int", Default: "{ a = 1 }"},
		{Name: "free", Type: "any"},
		{Name: "pretrained", Type: "string", Default: `"ckpt.pth"`, Doc: "a checkpoint"},
		{Name: "named", Type: "table"},
		{Name: "named.pretrained", Type: "string", Default: `""`, Doc: "a checkpoint"},
	}
	if !reflect.DeepEqual(d.Keys, want) {
		t.Errorf("keys:\n%s\nwant:\n%s", formatKeys(d.Keys), formatKeys(want))
	}

	d, err = r.Describe("evaluators", "Probe")
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Keys) != 2 || d.Keys[1] != (Key{Name: "feature", Type: "string", Doc: "the features", Required: true}) || d.SelfChecked {
		t.Errorf("a Describer's keys: %+v", d)
	}
	if d, _ = r.Describe("evaluators", "Opaque"); !d.SelfChecked || len(d.Keys) != 0 {
		t.Errorf("a TableDecoder without a description: %+v", d)
	}
	var nf *NotFoundError
	if _, err := r.Describe("backbones", "Nett"); !errors.As(err, &nf) || nf.Nearest[0] != "backbones.Net" {
		t.Errorf("an unknown type: %v", err)
	}
}

func formatKeys(keys []Key) string {
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "  %q %q %q %q %v\n", k.Name, k.Type, k.Default, k.Doc, k.Required)
	}
	return b.String()
}

func TestFind(t *testing.T) {
	r := describeRegistry()
	for name, want := range map[string]string{
		"backbones.Net": "backbones.Net", "heads.Net": "heads.Net", "NetHead": "heads.NetHead", "Probe": "evaluators.Probe",
	} {
		if c, err := r.Find(name); err != nil || c.ID() != want {
			t.Errorf("Find(%q) = %s, %v; want %s", name, c.ID(), err, want)
		}
	}
	_, err := r.Find("Net")
	if want := `"Net" is registered in several namespaces: backbones.Net, heads.Net; name one, such as "backbones.Net"`; err == nil || err.Error() != want {
		t.Errorf("an ambiguous type: %v\nwant %s", err, want)
	}
	_, err = r.Find("NetHaed")
	if want := `no component is registered as "NetHaed"; nearest: heads.NetHead, backbones.Net, heads.Net, evaluators.Opaque, evaluators.Probe`; err == nil || err.Error() != want {
		t.Errorf("a misspelt type: %v\nwant %s", err, want)
	}
	_, err = r.Find("heads.Probe")
	if want := `no component is registered as "heads.Probe"; nearest: evaluators.Probe, evaluators.Opaque, heads.Net, backbones.Net, heads.NetHead`; err == nil || err.Error() != want {
		t.Errorf("a type of another namespace: %v\nwant %s", err, want)
	}
	if _, err := New().Find("Net"); err == nil || err.Error() != `no component is registered as "Net"` {
		t.Errorf("an empty registry: %v", err)
	}
}

// Describe lists the keys that the decoder takes, no more and no fewer.
func TestDescribeMatchesDecoder(t *testing.T) {
	r := describeRegistry()
	d, _ := r.Describe("backbones", "Net")
	var listed []string
	for _, k := range d.Keys {
		if !strings.Contains(k.Name, ".") {
			listed = append(listed, k.Name)
		}
	}
	slices.Sort(listed)
	if decoded := fieldsOf(reflect.TypeFor[describedNet]()).names; !slices.Equal(listed, decoded) {
		t.Errorf("Describe lists %v\nthe decoder takes %v", listed, decoded)
	}
}
