package sdk

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

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
