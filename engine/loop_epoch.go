package engine

import (
	"context"
	"errors"
	"math"

	"github.com/goselfsup/goselfsup/registry"
)

func init() {
	registry.Add(registry.Loops, "EpochBasedTrainLoop", "train for max_epochs epochs, validating every val_interval",
		func() *EpochBasedTrainLoopConfig { return &EpochBasedTrainLoopConfig{ValBegin: 1, ValInterval: 1} })
}

// EpochBasedTrainLoopConfig is mmengine's EpochBasedTrainLoop.
type EpochBasedTrainLoopConfig struct {
	MaxEpochs   int `toml:"max_epochs" doc:"the number of epochs"`
	ValBegin    int `toml:"val_begin" doc:"the first epoch after which validation may run"`
	ValInterval int `toml:"val_interval" doc:"validate after the epochs that are multiples of it (and after the last)"`
}

func (c *EpochBasedTrainLoopConfig) Validate() error {
	var errs []error
	if c.MaxEpochs < 1 {
		errs = append(errs, registry.FieldErrorf("max_epochs", "must be at least 1, got %d", c.MaxEpochs))
	}
	if c.ValInterval < 1 {
		errs = append(errs, registry.FieldErrorf("val_interval", "must be at least 1, got %d", c.ValInterval))
	}
	if c.ValBegin > c.MaxEpochs && c.MaxEpochs >= 1 {
		errs = append(errs, registry.FieldErrorf("val_begin", "is after the last epoch (%d): validation would never run", c.MaxEpochs))
	}
	return errors.Join(errs...)
}

func (c *EpochBasedTrainLoopConfig) Build(*registry.Env) (any, error) { return &epochLoop{*c}, nil }

type epochLoop struct{ EpochBasedTrainLoopConfig }

func (l *epochLoop) Length(ipe int) (int, int) { return l.MaxEpochs, l.MaxEpochs * ipe }
func (l *epochLoop) IterBased() bool           { return false }

func (l *epochLoop) Run(ctx context.Context, r *Runner) error {
	for r.Epoch < l.MaxEpochs {
		if _, err := r.TrainEpoch(ctx, math.MaxInt, nil); err != nil {
			return err
		}
		if l.due(r.Epoch) {
			if err := r.Validate(ctx); err != nil {
				return err
			}
		}
	}
	return nil
}

// due reports whether validation runs after epoch (1-based), as mmengine's
// EpochBasedTrainLoop decides: from val_begin on, at multiples of val_interval and after
// the last epoch.
func (l *epochLoop) due(epoch int) bool {
	return epoch >= max(l.ValBegin, 1) && (epoch%l.ValInterval == 0 || epoch == l.MaxEpochs)
}

// RunLength is the run's length as the config gives it, for CheckRun.
func (c *EpochBasedTrainLoopConfig) RunLength() RunLength { return RunLength{Epochs: c.MaxEpochs} }
