package registry

import (
	"strings"
	"testing"
)

// rawConfig takes any keys but "bad", as a plugin component's config does.
type rawConfig struct{ table map[string]any }

func (r *rawConfig) DecodeTable(t map[string]any) error {
	if _, ok := t["bad"]; ok {
		return FieldErrorf("bad", "is not a key of this plugin component")
	}
	r.table = t
	return nil
}

func TestExtendAndTableDecoder(t *testing.T) {
	base := New()
	base.Register(Component{Namespace: "evaluators", Type: "InProcess", New: func() any { return &struct{ K int }{} }})
	ext := base.Extend()
	if err := ext.TryRegister(Component{Namespace: "evaluators", Type: "FromPlugin", New: func() any { return &rawConfig{} }}); err != nil {
		t.Fatal(err)
	}
	if err := ext.TryRegister(Component{Namespace: "evaluators", Type: "InProcess", New: func() any { return &rawConfig{} }}); err == nil ||
		!strings.Contains(err.Error(), "registered twice") {
		t.Errorf("shadowing a built-in component: %v", err)
	}
	if _, ok := base.Lookup("evaluators", "FromPlugin"); ok {
		t.Error("Extend changed its parent")
	}
	if _, ok := ext.Lookup("evaluators", "InProcess"); !ok {
		t.Error("the extension does not see its parent's components")
	}
	if got := ext.typeNames("evaluators"); strings.Join(got, ",") != "FromPlugin,InProcess" {
		t.Errorf("types %v", got)
	}
	cfg, err := ext.Decode(NewSpec("evaluators", "FromPlugin", map[string]any{"epochs": 3, "lr": 0.5}))
	if err != nil {
		t.Fatal(err)
	}
	if r := cfg.(*rawConfig); len(r.table) != 2 || r.table["epochs"] != int64(3) {
		t.Errorf("table %v", r.table)
	}
	s := NewSpec("evaluators", "FromPlugin", map[string]any{"bad": 1})
	s.Path = "val_evaluator"
	if _, err := ext.Decode(s); err == nil || !strings.Contains(err.Error(), "val_evaluator.bad: is not a key") {
		t.Errorf("a refused key: %v", err)
	}
}
