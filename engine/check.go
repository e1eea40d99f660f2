package engine

import (
	"maps"
	"slices"

	"github.com/goselfsup/goselfsup/registry"
)

// RunLength is a run's length as far as it is known: epochs and iterations, 0 where not
// known yet (an epoch-based run's iterations depend on the dataset's size).
type RunLength struct{ Epochs, Iters int }

// RunChecker is implemented by component configs whose keys can be checked against the
// length of the run: a milestone after the last epoch, a checkpoint interval that no
// checkpoint reaches.
type RunChecker interface {
	CheckRun(l RunLength) error
}

// CheckRun checks the keys of cfg that depend on each other: those of the schedulers and
// hooks against the train loop's length (what l leaves at 0 comes from train_cfg). print_config
// and the runner call it, so that a config that would silently do less than it says fails
// before a run starts.
func CheckRun(reg *registry.Registry, cfg *Config, l RunLength) error {
	if reg == nil {
		reg = registry.Default
	}
	if loop, err := reg.Decode(cfg.TrainCfg); err == nil {
		if c, ok := loop.(interface{ RunLength() RunLength }); ok {
			known := c.RunLength()
			l.Epochs, l.Iters = max(l.Epochs, known.Epochs), max(l.Iters, known.Iters)
		}
	}
	specs := append([]registry.Spec{}, cfg.ParamScheduler...)
	for _, n := range slices.Sorted(maps.Keys(cfg.DefaultHooks)) {
		specs = append(specs, cfg.DefaultHooks[n])
	}
	specs = append(specs, cfg.CustomHooks...)
	var errs registry.Errors
	for _, s := range specs {
		if _, ok := s.Get("priority"); ok {
			s = s.Without("priority")
		}
		c, err := reg.Decode(s)
		if err != nil {
			continue // reported by the decoder
		}
		if rc, ok := c.(RunChecker); ok {
			if err := rc.CheckRun(l); err != nil {
				errs = append(errs, &registry.Error{Path: s.Path, Source: s.Source(""), Msg: err.Error()})
			}
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return errs
}
