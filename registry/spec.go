package registry

import (
	"fmt"
	"reflect"
)

// Spec is a nested component in a config: a table whose `type` names a component of the
// namespace given by the field's tag. A config struct declares one as
//
//	Backbone registry.Spec `toml:"backbone" registry:"backbones"`
//	Sampler  registry.Spec `toml:"sampler" registry:"samplers,default=DefaultSampler"`
//
// The default names the type of a table that has no "type" key; a missing table stays a zero
// Spec, which the parent treats as it documents.
// The parent builds it when it builds itself, with Build. Until then it stays a table, so
// that a config is data: it can be printed, compared and overridden.
type Spec struct {
	Namespace string
	Type      string
	Path      string // key path in the config, such as "model.backbone"

	table map[string]any
	prov  *provenance
}

// NewSpec returns a spec for Go code that assembles configs without files. table holds the
// component's keys, without "type".
func NewSpec(namespace, typ string, table map[string]any) Spec {
	t := map[string]any{}
	if table != nil {
		t = normalize(table).(map[string]any)
	}
	return Spec{Namespace: namespace, Type: typ, Path: namespace, table: t}
}

// IsZero reports whether the config left the component out.
func (s Spec) IsZero() bool { return s.Type == "" }

// ID is the component's namespaced identifier, such as "backbones.ResNet".
func (s Spec) ID() string { return s.Namespace + "." + s.Type }

// Table returns a copy of the component's keys, "type" excluded.
func (s Spec) Table() map[string]any {
	t := deepCopy(s.table).(map[string]any)
	delete(t, "type")
	return t
}

// Get returns the value of a key of the component's table.
func (s Spec) Get(key string) (any, bool) {
	v, ok := s.table[key]
	return deepCopy(v), ok
}

// With returns a copy of s whose table has key set to value (for components that derive one
// config from another, such as a training set read with the test pipeline).
func (s Spec) With(key string, value any) Spec {
	t := deepCopy(s.table).(map[string]any)
	t[key] = normalize(value)
	s.table = t
	return s
}

// Without returns a copy of s without key (for keys that the parent reads itself, such as a
// hook's priority).
func (s Spec) Without(key string) Spec {
	t := deepCopy(s.table).(map[string]any)
	delete(t, key)
	s.table = t
	return s
}

// Source names the file or --set argument that set key inside the component (the component
// itself for "").
func (s Spec) Source(key string) string {
	if s.prov == nil {
		return ""
	}
	if key == "" {
		return s.prov.source(s.Path)
	}
	return s.prov.source(childPath(s.Path, key))
}

// Env carries what components need to build themselves: the registry for their nested
// components and the run's shared dependencies (a logger, a compute backend ...), added by
// type with With and fetched with Need. An Env is a value that With copies: a parent
// building its children with their own dependencies never changes its own Env.
type Env struct {
	Registry *Registry
	deps     map[reflect.Type]any
}

// With returns a copy of env (nil: an empty Env of the default registry) in which the
// dependency of type T is v; env itself is unchanged.
func With[T any](env *Env, v T) *Env {
	out := &Env{}
	if env != nil {
		out.Registry = env.Registry
	}
	out.deps = make(map[reflect.Type]any, len(envDeps(env))+1)
	for k, d := range envDeps(env) {
		out.deps[k] = d
	}
	out.deps[reflect.TypeFor[T]()] = v
	return out
}

func envDeps(env *Env) map[reflect.Type]any {
	if env == nil {
		return nil
	}
	return env.deps
}

// Need returns the dependency of type T, or an error naming it.
func Need[T any](env *Env) (T, error) {
	v, ok := envDeps(env)[reflect.TypeFor[T]()]
	if !ok {
		var zero T
		return zero, fmt.Errorf("the build environment provides no %v", reflect.TypeFor[T]())
	}
	return v.(T), nil
}

func (env *Env) registry() *Registry {
	if env == nil || env.Registry == nil {
		return Default
	}
	return env.Registry
}

// Build decodes the component that s names, checks it, builds it and returns it as a T.
func Build[T any](env *Env, s Spec) (T, error) {
	var zero T
	if s.IsZero() {
		return zero, &Error{Path: s.Path, Source: s.Source(""),
			Msg: fmt.Sprintf("is required: a table whose type names one of the %s", s.Namespace)}
	}
	cfg, err := env.registry().Decode(s)
	if err != nil {
		return zero, err
	}
	b, ok := cfg.(Builder)
	if !ok {
		return zero, &Error{Path: s.Path, Source: s.Source("type"),
			Msg: fmt.Sprintf("%s describes configuration only and cannot be built on its own", s.ID())}
	}
	obj, err := b.Build(env)
	if err != nil {
		return zero, fmt.Errorf("%s (%s): %w", s.Path, s.Type, err)
	}
	t, ok := obj.(T)
	if !ok {
		return zero, &Error{Path: s.Path, Source: s.Source("type"),
			Msg: fmt.Sprintf("%s builds a %T, which is not a %v", s.ID(), obj, reflect.TypeFor[T]())}
	}
	return t, nil
}
