package engine

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/goselfsup/goselfsup/registry"
)

// Hook is mmengine's Hook: code the runner calls at fixed points of a run. Every point is a
// field, and a nil field does nothing, so a hook sets only the points it needs:
//
//	&engine.Hook{Name: "EMAHook", Priority: engine.PriorityNormal,
//		AfterTrainIter: func(r *engine.Runner, it engine.IterInfo) error { ... }}
//
// Points are fields rather than methods of an interface with a no-op base type on purpose:
// a method whose name is misspelt next to an embedded base compiles and is never called,
// whereas a misspelt field name does not compile.
type Hook struct {
	// Name identifies the hook in errors; the registry's type for hooks built from a config.
	Name string
	// Priority orders the hooks at every point: lower runs first, equal ones in the order
	// they were added (default_hooks, then custom_hooks, then the Options' hooks).
	Priority Priority

	BeforeRun func(r *Runner) error
	AfterRun  func(r *Runner) error

	BeforeTrain func(r *Runner) error
	AfterTrain  func(r *Runner) error

	BeforeTrainEpoch func(r *Runner) error
	AfterTrainEpoch  func(r *Runner) error

	BeforeTrainIter func(r *Runner, it IterInfo) error
	AfterTrainIter  func(r *Runner, it IterInfo) error

	BeforeVal func(r *Runner) error
	// AfterVal receives the metrics of the validation that just ended.
	AfterVal func(r *Runner, metrics map[string]float64) error

	// BeforeSaveCheckpoint may add to or change what a checkpoint holds before it is written.
	BeforeSaveCheckpoint func(r *Runner, c *Checkpoint) error
	// AfterLoadCheckpoint sees the checkpoint a run resumed from or loaded weights of.
	AfterLoadCheckpoint func(r *Runner, c *Checkpoint) error
}

func init() {
	registry.AddSharedKey(registry.Hooks, "priority", `the hook's priority: a number from 0 (first) to 100, or a name such as "NORMAL" or "VERY_LOW"`)
}

// Priority is mmengine's hook priority: 0 (HIGHEST) to 100 (LOWEST).
type Priority int

// mmengine's named priorities.
const (
	PriorityHighest     Priority = 0
	PriorityVeryHigh    Priority = 10
	PriorityHigh        Priority = 30
	PriorityAboveNormal Priority = 40
	PriorityNormal      Priority = 50
	PriorityBelowNormal Priority = 60
	PriorityLow         Priority = 70
	PriorityVeryLow     Priority = 90
	PriorityLowest      Priority = 100
)

var priorityNames = []struct {
	name string
	p    Priority
}{
	{"HIGHEST", PriorityHighest}, {"VERY_HIGH", PriorityVeryHigh}, {"HIGH", PriorityHigh},
	{"ABOVE_NORMAL", PriorityAboveNormal}, {"NORMAL", PriorityNormal}, {"BELOW_NORMAL", PriorityBelowNormal},
	{"LOW", PriorityLow}, {"VERY_LOW", PriorityVeryLow}, {"LOWEST", PriorityLowest},
}

func (p Priority) String() string {
	for _, n := range priorityNames {
		if n.p == p {
			return n.name
		}
	}
	return strconv.Itoa(int(p))
}

// ParsePriority reads a priority as a config gives it: a name such as "NORMAL" or
// "VERY_LOW", or a number from 0 to 100.
func ParsePriority(v any) (Priority, error) {
	switch x := v.(type) {
	case int64:
		if x < 0 || x > 100 {
			return 0, fmt.Errorf("priority %d: must be 0 (HIGHEST) to 100 (LOWEST)", x)
		}
		return Priority(x), nil
	case string:
		for _, n := range priorityNames {
			if strings.EqualFold(n.name, x) {
				return n.p, nil
			}
		}
		names := make([]string, len(priorityNames))
		for i, n := range priorityNames {
			names[i] = n.name
		}
		return 0, fmt.Errorf("priority %q: use a number from 0 to 100 or one of %s", x, strings.Join(names, ", "))
	}
	return 0, fmt.Errorf("priority: a number from 0 to 100 or a name such as \"NORMAL\", got %v", v)
}

// hooks holds a run's hooks in priority order.
type hooks []*Hook

// add inserts h after the hooks of its priority or higher, as mmengine's register_hook.
func (hs hooks) add(h *Hook) hooks {
	i := len(hs)
	for i > 0 && hs[i-1].Priority > h.Priority {
		i--
	}
	return slices.Insert(hs, i, h)
}

// point calls the hook point that pick selects on every hook that sets it, in priority
// order, turning panics into errors that name the hook; it stops at the first error.
func (r *Runner) point(name string, pick func(h *Hook) func(*Runner) error) error {
	for _, h := range r.hooks {
		if fn := pick(h); fn != nil {
			if err := callHook(h.Name, name, func() error { return fn(r) }); err != nil {
				return err
			}
		}
	}
	return nil
}

// pointWith is point for the hook points that take an argument besides the runner.
func pointWith[A any](r *Runner, name string, arg A, pick func(h *Hook) func(*Runner, A) error) error {
	for _, h := range r.hooks {
		if fn := pick(h); fn != nil {
			if err := callHook(h.Name, name, func() error { return fn(r, arg) }); err != nil {
				return err
			}
		}
	}
	return nil
}

func callHook(name, point string, fn func() error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%s.%s: %v", name, point, p)
		}
	}()
	if err := fn(); err != nil {
		return fmt.Errorf("%s.%s: %w", name, point, err)
	}
	return nil
}
