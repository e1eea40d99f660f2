package engine

import (
	"context"
	"errors"

	"github.com/goselfsup/goselfsup/registry"
)

func init() {
	registry.Add(registry.Loops, "IterBasedTrainLoop", "train for max_iters iterations, validating every val_interval iterations",
		func() *IterBasedTrainLoopConfig { return &IterBasedTrainLoopConfig{ValBegin: 1, ValInterval: 1000} })
}

// IterBasedTrainLoopConfig is mmengine's IterBasedTrainLoop: the downstream benchmarks count
// iterations. The data goes round epoch after epoch; the epoch hooks run at each epoch's end.
type IterBasedTrainLoopConfig struct {
	MaxIters    int `toml:"max_iters" doc:"the number of iterations"`
	ValBegin    int `toml:"val_begin" doc:"the first iteration after which validation may run"`
	ValInterval int `toml:"val_interval" doc:"validate after the iterations that are multiples of it (and after the last)"`
}

func (c *IterBasedTrainLoopConfig) Validate() error {
	var errs []error
	if c.MaxIters < 1 {
		errs = append(errs, registry.FieldErrorf("max_iters", "must be at least 1, got %d", c.MaxIters))
	}
	if c.ValInterval < 1 {
		errs = append(errs, registry.FieldErrorf("val_interval", "must be at least 1, got %d", c.ValInterval))
	}
	return errors.Join(errs...)
}

func (c *IterBasedTrainLoopConfig) Build(*registry.Env) (any, error) { return &iterLoop{*c}, nil }

type iterLoop struct{ IterBasedTrainLoopConfig }

func (l *iterLoop) Length(ipe int) (int, int) { return (l.MaxIters + ipe - 1) / ipe, l.MaxIters }
func (l *iterLoop) IterBased() bool           { return true }

func (l *iterLoop) Run(ctx context.Context, r *Runner) error {
	validate := func() error {
		if r.Iter >= max(l.ValBegin, 1) && (r.Iter%l.ValInterval == 0 || r.Iter == l.MaxIters) {
			return r.Validate(ctx)
		}
		return nil
	}
	for r.Iter < l.MaxIters {
		if _, err := r.TrainEpoch(ctx, l.MaxIters, validate); err != nil {
			return err
		}
	}
	return nil
}

// RunLength is the run's length as the config gives it, for CheckRun.
func (c *IterBasedTrainLoopConfig) RunLength() RunLength { return RunLength{Iters: c.MaxIters} }
