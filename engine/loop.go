package engine

import (
	"context"

	"github.com/goselfsup/goselfsup/registry"
)

// TrainLoop is a component of the "loops" namespace that train_cfg names: it drives the
// iterations of a run through the Runner (TrainEpoch, Validate).
type TrainLoop interface {
	// Length is the run's length in epochs and iterations, for an epoch of itersPerEpoch.
	Length(itersPerEpoch int) (epochs, iters int)
	// IterBased reports that the loop counts iterations (logs show "Iter(train)").
	IterBased() bool
	// Run trains from the runner's state (a resumed run's included) to the end.
	Run(ctx context.Context, r *Runner) error
}

// EvalLoop is a component of the "loops" namespace that val_cfg and test_cfg name: it runs a
// dataloader through the model and scores the outputs with an evaluator.
type EvalLoop interface {
	// Prepare builds the loop's data and evaluator and compiles what it runs, before the
	// run starts, so that a bad config fails before training.
	Prepare(r *Runner, dataloader *Dataloader, evaluator registry.Spec) error
	// Run evaluates the model as it is now and returns the metrics.
	Run(ctx context.Context, r *Runner) (map[string]float64, error)
	// Close releases what Prepare compiled.
	Close()
}
