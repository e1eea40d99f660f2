package sdk

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
)

func TestPluginCheck(t *testing.T) {
	run := func(context.Context, *Run) error { return nil }
	good := Plugin{Name: "my-probe", Version: "1", Components: []Component{{Type: "Probe", Run: run}}}
	if err := good.check(); err != nil {
		t.Errorf("a valid plugin: %v", err)
	}
	bad := Plugin{Name: "My Probe", Components: []Component{{Type: "Probe"}, {Type: "Probe", Run: run}, {Type: "a.b", Run: run}}}
	err := bad.check()
	for _, want := range []string{`plugin name "My Probe"`, "component Probe has no Run", "component Probe twice", `component type "a.b"`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%v lacks %q", err, want)
		}
	}
}

func TestRunDecode(t *testing.T) {
	r := &Run{Component: "Probe", config: "epochs = 3\nlr = 0.5\n"}
	var c struct {
		Epochs int     `toml:"epochs"`
		LR     float64 `toml:"lr"`
		Name   string  `toml:"name"`
	}
	c.Name = "default"
	if err := r.Decode(&c); err != nil || c.Epochs != 3 || c.LR != 0.5 || c.Name != "default" {
		t.Errorf("decoded %+v (%v)", c, err)
	}
	r.config = "epoch = 3\n"
	if err := r.Decode(&c); err == nil || !strings.Contains(err.Error(), "epoch") {
		t.Errorf("an unknown key: %v", err)
	}
}

type probeConfig struct {
	Feature string   `toml:"feature" doc:"the feature to probe"`
	Epochs  int      `toml:"epochs" doc:"passes over the data"`
	LR      float64  `toml:"lr"`
	Seed    uint64   `toml:"seed"`
	Data    string   `toml:"data" doc:"the data" required:"true"`
	Shots   []int    `toml:"shots"`
	Costs   []int    `toml:"costs"`
	Wait    Duration `toml:"wait"`
	Grid    struct {
		Size int    `toml:"size"`
		Name string `toml:"name,omitempty"`
	} `toml:"grid"`
	Extra   map[string]float64 `toml:"extra"`
	Verbose bool
	Skipped int `toml:"-"`
	hidden  int
	Embedded
}

type Duration = time.Duration

type Embedded struct {
	Depth int `toml:"depth" doc:"from an embedded struct"`
}

func newProbeConfig() any {
	c := &probeConfig{Feature: "backbone", Epochs: 100, LR: 1e-4, Shots: []int{1, 2}, Wait: 5 * time.Second,
		Extra: map[string]float64{"b": 2, "a": 0.5}, Embedded: Embedded{Depth: 50}}
	c.Grid.Size = 3
	return c
}

// A component's keys come from its config struct: names, types, docs, defaults (the
// constructor's values) and which are required.
func TestKeysFromTheConfigStruct(t *testing.T) {
	c := Component{Type: "Probe", Config: newProbeConfig, Run: func(context.Context, *Run) error { return nil }}
	keys, err := c.Keys()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, k := range keys {
		got = append(got, fmt.Sprintf("%s %s %q %s %v", k.Name, k.Type, k.Default, k.Doc, k.Required))
	}
	want := []string{
		`feature string "\"backbone\"" the feature to probe false`,
		`epochs int "100" passes over the data false`,
		`lr float "0.0001"  false`,
		`seed int "0"  false`,
		`data string "" the data true`,
		`shots array "[1, 2]"  false`,
		`costs array ""  false`,
		`wait string "\"5s\""  false`,
		`grid table "{size = 3, name = \"\"}"  false`,
		`extra table "{a = 0.5, b = 2.0}"  false`,
		`Verbose bool "false"  false`,
		`depth int "50" from an embedded struct false`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("keys:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// The manifest carries them.
	m := (&Plugin{Name: "p", Components: []Component{c}}).Manifest()
	if k := m.Components[0].Keys; len(k) != len(want) || k[1].Name != "epochs" || k[1].Default != "100" || !k[4].Required {
		t.Errorf("manifest keys %v", k)
	}

	// Decode starts from the defaults, written once in the constructor.
	r := &Run{Component: "Probe", config: "epochs = 3\ndata = \"x\"\n", defaults: newProbeConfig}
	var cfg probeConfig
	if err := r.Decode(&cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.Epochs != 3 || cfg.Data != "x" || cfg.Feature != "backbone" || cfg.LR != 1e-4 || cfg.Depth != 50 || cfg.Grid.Size != 3 {
		t.Errorf("decoded %+v", cfg)
	}
	// Keys that are not fields are refused.
	r.config = "epoch = 3\n"
	if err := r.Decode(&cfg); err == nil || !strings.Contains(err.Error(), "epoch") {
		t.Errorf("an unknown key: %v", err)
	}

	for _, tc := range []struct {
		config func() any
		want   string
	}{
		{func() any { return probeConfig{} }, "Config must return a pointer to a struct, got sdk.probeConfig"},
		{func() any { return &struct{ F func() }{} }, "field F (key \"F\"): a func() cannot hold a TOML value"},
		{func() any {
			return &struct {
				A int `toml:"a"`
				B int `toml:"a"`
			}{}
		}, `key "a" twice`},
		{func() any {
			return &struct {
				A int `toml:"a" required:"yes"`
			}{}
		}, `field A: required:"yes" is not a bool`},
	} {
		bad := Plugin{Name: "p", Components: []Component{{Type: "Bad", Config: tc.config, Run: c.Run}}}
		if err := bad.check(); err == nil || !strings.Contains(err.Error(), "component Bad: "+tc.want) {
			t.Errorf("check: %v, want %q", err, tc.want)
		}
	}
}

// The plugin's log lines carry hclog's keys, which go-plugin parses on the host's side.
func TestLogLinesAreHclogJSON(t *testing.T) {
	var buf bytes.Buffer
	newLogger(&buf).Warn("careful", zap.Int("n", 2))
	var m map[string]any
	if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
		t.Fatal(err)
	}
	if m["@level"] != "warn" || m["@message"] != "careful" || m["n"] != 2.0 || m["@timestamp"] == nil {
		t.Errorf("log line %s", buf.String())
	}
}
