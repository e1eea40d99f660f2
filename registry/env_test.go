package registry

import (
	"fmt"
	"testing"
)

// A parent that builds two children, each with its own scope, must leave its own Env as it
// was: before With, `e := *env; Provide(&e, ...)` wrote into the map the parent shared, so
// the last child's scope leaked into the parent and its later children.

type scopeName string

type envParent struct {
	Left  Spec `toml:"left" registry:"children"`
	Right Spec `toml:"right" registry:"children"`
}

type envChild struct{}

func (*envChild) Build(env *Env) (any, error) {
	s, err := Need[scopeName](env)
	if err != nil {
		return nil, err
	}
	return string(s), nil
}

func (p *envParent) Build(env *Env) (any, error) {
	before, err := Need[scopeName](env)
	if err != nil {
		return nil, err
	}
	left, err := Build[string](With(env, scopeName(before+".left")), p.Left)
	if err != nil {
		return nil, err
	}
	right, err := Build[string](With(env, scopeName(before+".right")), p.Right)
	if err != nil {
		return nil, err
	}
	after, err := Need[scopeName](env)
	if err != nil {
		return nil, err
	}
	return fmt.Sprintf("%s %s %s", left, right, after), nil
}

func TestWithDoesNotChangeTheParentEnv(t *testing.T) {
	r := New()
	r.Register(Component{Namespace: "parents", Type: "P", New: func() any { return &envParent{} }})
	r.Register(Component{Namespace: "children", Type: "C", New: func() any { return &envChild{} }})
	root := With(&Env{Registry: r}, scopeName("model"))
	spec := NewSpec("parents", "P", map[string]any{"left": map[string]any{"type": "C"}, "right": map[string]any{"type": "C"}})
	got, err := Build[string](root, spec)
	if err != nil {
		t.Fatal(err)
	}
	if want := "model.left model.right model"; got != want {
		t.Errorf("built %q, want %q", got, want)
	}
	if s, _ := Need[scopeName](root); s != "model" {
		t.Errorf("the root's scope became %q", s)
	}
	// With on an Env also leaves the other dependencies and the registry in place.
	type other int
	e := With(With(root, other(3)), scopeName("x"))
	if o, _ := Need[other](e); o != 3 || e.Registry != r {
		t.Errorf("With lost a dependency or the registry: %v %v", o, e.Registry)
	}
	if _, err := Need[other](root); err == nil {
		t.Error("a child's dependency reached the root")
	}
}
