package engine

import "github.com/goselfsup/goselfsup/registry"

// mmengine's default hooks whose work the runner does itself: it records the epoch,
// iteration and learning rate (RuntimeInfoHook), times every iteration and its data
// (IterTimerHook), asks the schedule for each iteration's learning rate
// (ParamSchedulerHook) and seeds each epoch's sampler with the epoch (DistSamplerSeedHook).
// They are registered so that mmengine's default_hooks load, with mmengine's priorities.
func init() {
	for _, h := range []struct {
		typ, doc string
		prio     Priority
	}{
		{"RuntimeInfoHook", "record epoch, iteration and learning rate (the runner does it)", PriorityVeryHigh},
		{"IterTimerHook", "time each iteration and its data loading (the runner does it)", PriorityNormal},
		{"ParamSchedulerHook", "step the parameter schedulers (the runner does it)", PriorityLow},
		{"DistSamplerSeedHook", "give the sampler each epoch's seed (the loader does it)", PriorityNormal},
	} {
		registry.Add(registry.Hooks, h.typ, h.doc, func() *RunnerHookConfig { return &RunnerHookConfig{typ: h.typ, prio: h.prio} })
	}
}

// RunnerHookConfig is the config of a hook whose work the runner does; it takes no keys.
type RunnerHookConfig struct {
	typ  string
	prio Priority
}

func (c *RunnerHookConfig) Build(*registry.Env) (any, error) {
	return &Hook{Name: c.typ, Priority: c.prio}, nil
}
