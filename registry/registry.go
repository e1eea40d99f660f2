// Package registry maps component names to their typed configs and builds them, and loads
// configs: TOML files with mmengine-style _base_ inheritance, _delete_, --set overrides and
// a record of which file set every key.
//
// A component is a config struct whose zero-argument constructor fills in its defaults and
// whose Build method makes the component. Packages register their components from init(),
// next to the config, its Build and the type it builds:
//
//	func init() {
//		registry.Add(registry.Backbones, "ResNet", "ResNet 18/34/50/101 with mmselfsup stage indexing",
//			func() *ResNetConfig { return &ResNetConfig{Depth: 50, ...} })
//	}
//
// A config names a component by the namespace its field implies plus its type:
// model.backbone with type = "ResNet" is the component backbones.ResNet.
package registry

import (
	"fmt"
	"runtime"
	"sort"
	"strings"
	"sync"
)

// The namespaces of the built-in components. A namespace is a plain string, so packages may
// add their own.
const (
	Algorithms      = "algorithms"
	Backbones       = "backbones"
	Necks           = "necks"
	Heads           = "heads"
	SharedHeads     = "shared_heads" // the layers a detector's RoI head runs every RoI through (mmdet's SHARED_HEADS)
	Losses          = "losses"
	Memories        = "memories"
	Datasets        = "datasets"
	Transforms      = "transforms"
	Samplers        = "samplers"
	Functions       = "functions" // collate functions, as mmengine's FUNCTIONS registry
	Optimizers      = "optimizers"
	OptimWrappers   = "optim_wrappers"
	ParamSchedulers = "param_schedulers"
	Loops           = "loops"
	Hooks           = "hooks"
	Evaluators      = "evaluators"
	Poolings        = "poolings" // feature pooling for extraction (AvgPool2d, MultiPooling)
	// Benchmarks are downstream benchmarks that fine-tune and test a model of their own from
	// a checkpoint (segmentation, detection): a config's benchmark key.
	Benchmarks = "benchmarks"
)

// Component is a registered config type.
type Component struct {
	Namespace string
	Type      string
	// New returns a pointer to a config struct that already holds the component's defaults.
	New func() any
	// Doc is a one-line description, shown by listings.
	Doc string

	registeredAt string
}

// ID is the component's namespaced identifier, such as "backbones.ResNet".
func (c Component) ID() string { return c.Namespace + "." + c.Type }

// Source is the file and line that registered the component.
func (c Component) Source() string { return c.registeredAt }

// Add registers, in the default registry, the component typ of namespace whose config
// defaults returns with its default values. It panics as Register does.
func Add[C any](namespace, typ, doc string, defaults func() *C) {
	Register(Component{Namespace: namespace, Type: typ, Doc: doc, New: func() any { return defaults() }})
}

// Builder is implemented by component configs that can construct the component.
type Builder interface {
	Build(env *Env) (any, error)
}

// Validator is implemented by component configs that check their values beyond types. Use
// FieldErrorf to point at the offending key.
type Validator interface {
	Validate() error
}

// Registry holds registered components. Register, Lookup and List on the package level use
// Default; tests make their own with New.
type Registry struct {
	mu         sync.RWMutex
	components map[string]map[string]Component // namespace -> type -> component
	parent     *Registry                       // consulted for what this one lacks
	// unavailable notes sources of components that did not load (NoteUnavailable).
	unavailable []Unavailable
	// shared are the keys that every component of a namespace accepts (AddSharedKey).
	shared map[string]map[string]string
}

// AddSharedKey declares, in the default registry, a key that every component of namespace
// accepts in its table and that the component's user reads, not the component: mmengine's
// priority of a hook. The decoder leaves it to that user (Spec.Get); documentation lists it.
func AddSharedKey(namespace, key, doc string) { Default.AddSharedKey(namespace, key, doc) }

// AddSharedKey declares a key that every component of namespace accepts; see the package
// function.
func (r *Registry) AddSharedKey(namespace, key, doc string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.shared == nil {
		r.shared = map[string]map[string]string{}
	}
	if r.shared[namespace] == nil {
		r.shared[namespace] = map[string]string{}
	}
	r.shared[namespace][key] = doc
}

// sharedKeys returns the keys every component of namespace accepts, with their docs.
func (r *Registry) sharedKeys(namespace string) map[string]string {
	var out map[string]string
	if r.parent != nil {
		out = r.parent.sharedKeys(namespace)
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	if len(r.shared[namespace]) == 0 {
		return out
	}
	merged := make(map[string]string, len(out)+len(r.shared[namespace]))
	for k, v := range out {
		merged[k] = v
	}
	for k, v := range r.shared[namespace] {
		merged[k] = v
	}
	return merged
}

// Extend returns a registry that holds r's components and those registered in it later,
// without changing r: how a tool adds the components of plugin processes it discovered.
// A component of the new registry may not shadow one of r.
func (r *Registry) Extend() *Registry {
	return &Registry{components: map[string]map[string]Component{}, parent: r}
}

// Default is the process-wide registry that packages fill from init().
var Default = New()

// New returns an empty registry.
func New() *Registry {
	return &Registry{components: map[string]map[string]Component{}}
}

// Register adds c to the default registry. It panics if c is invalid or already registered,
// as database/sql.Register does: both are programming errors found at start-up.
func Register(c Component) { Default.Register(c) }

// Lookup finds a component of the default registry.
func Lookup(namespace, typ string) (Component, bool) { return Default.Lookup(namespace, typ) }

// List returns the components of a namespace of the default registry, sorted by type.
func List(namespace string) []Component { return Default.List(namespace) }

// Register adds c. It panics if c is invalid or already registered.
func (r *Registry) Register(c Component) {
	switch {
	case !isName(c.Namespace):
		panic(fmt.Sprintf("registry: invalid namespace %q for type %q", c.Namespace, c.Type))
	case !isName(c.Type):
		panic(fmt.Sprintf("registry: invalid type name %q in namespace %q", c.Type, c.Namespace))
	case c.New == nil:
		panic(fmt.Sprintf("registry: %s has no New function", c.ID()))
	}
	if v := c.New(); v == nil || !isStructPointer(v) {
		panic(fmt.Sprintf("registry: %s: New must return a pointer to a config struct, got %T", c.ID(), v))
	}
	c.registeredAt = callerOutsideRegistry()
	r.mu.Lock()
	defer r.mu.Unlock()
	ns := r.components[c.Namespace]
	if ns == nil {
		ns = map[string]Component{}
		r.components[c.Namespace] = ns
	}
	if old, dup := ns[c.Type]; dup {
		panic(fmt.Sprintf("registry: %s registered twice (first at %s, again at %s)", c.ID(), old.registeredAt, c.registeredAt))
	}
	if r.parent != nil {
		if old, dup := r.parent.Lookup(c.Namespace, c.Type); dup {
			panic(fmt.Sprintf("registry: %s registered twice (first at %s, again at %s)", c.ID(), old.registeredAt, c.registeredAt))
		}
	}
	ns[c.Type] = c
}

// TryRegister adds c, or returns an error where Register would panic: for components
// found at run time (plugins), whose clashes are the user's to resolve.
func (r *Registry) TryRegister(c Component) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%v", p)
		}
	}()
	r.Register(c)
	return nil
}

// Lookup finds the component typ of namespace.
func (r *Registry) Lookup(namespace, typ string) (Component, bool) {
	r.mu.RLock()
	c, ok := r.components[namespace][typ]
	r.mu.RUnlock()
	if !ok && r.parent != nil {
		return r.parent.Lookup(namespace, typ)
	}
	return c, ok
}

// List returns the components of namespace, sorted by type.
func (r *Registry) List(namespace string) []Component {
	var out []Component
	if r.parent != nil {
		out = r.parent.List(namespace)
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	for _, c := range r.components[namespace] {
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Type < out[j].Type })
	return out
}

// Namespaces returns the namespaces that hold at least one component, sorted.
func (r *Registry) Namespaces() []string {
	seen := map[string]bool{}
	if r.parent != nil {
		for _, ns := range r.parent.Namespaces() {
			seen[ns] = true
		}
	}
	r.mu.RLock()
	for ns := range r.components {
		seen[ns] = true
	}
	r.mu.RUnlock()
	out := make([]string, 0, len(seen))
	for ns := range seen {
		out = append(out, ns)
	}
	sort.Strings(out)
	return out
}

func (r *Registry) typeNames(namespace string) []string {
	cs := r.List(namespace)
	names := make([]string, len(cs))
	for i, c := range cs {
		names[i] = c.Type
	}
	return names
}

func isName(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if !(c == '_' || c == '-' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return !strings.HasPrefix(s, "-")
}

// callerOutsideRegistry names the first caller outside this file, for duplicate messages.
func callerOutsideRegistry() string {
	pcs := make([]uintptr, 8)
	frames := runtime.CallersFrames(pcs[:runtime.Callers(2, pcs)])
	for {
		f, more := frames.Next()
		if !strings.HasSuffix(f.File, "/registry/registry.go") {
			return fmt.Sprintf("%s:%d", f.File, f.Line)
		}
		if !more {
			return "unknown"
		}
	}
}
