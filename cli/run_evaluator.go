package cli

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"

	"github.com/gomlx/gomlx/backends"
	"github.com/goselfsup/goselfsup/engine"
	"github.com/goselfsup/goselfsup/engine/backend"
	"github.com/goselfsup/goselfsup/evaluators"
	"github.com/goselfsup/goselfsup/registry"
)

const evaluateUsage = `usage: goselfsup evaluate BENCHMARK_CONFIG [CHECKPOINT] [flags]

Runs the val_evaluator of BENCHMARK_CONFIG, whichever it is: any component registered as an
evaluators.FeatureEvaluator — WeightedKNN as tools/knn, VOC07SVM as tools/svm, one of your own
build's packages (see "New components in Go" in the README), or a plugin's (see "Writing a
plugin"). It receives the features it asks for of both splits (--features instead; for a
plugin's: backbone, neck and pool_cfg's), extracted from the model or read from
--features-dir, with the checkpoint and the work_dir; its metrics are printed and written to
metrics.json.

`

// Evaluate is the entry point of tools/evaluate.
func Evaluate(args []string, stdout, stderr io.Writer) int {
	c := newEvalCommand("evaluate", evaluateUsage, stderr)
	c.withFeatureFlags("", "for the evaluator (default: as the evaluator or pool_cfg says)")
	if rc, ok := c.parse(args, stdout, stderr); !ok {
		return rc
	}
	ev, err := registry.Build[evaluators.FeatureEvaluator](&registry.Env{Registry: c.reg}, c.bench.ValEvaluator)
	if err == nil {
		err = runFeatureEvaluator(c, ev, "auto", stdout, stderr)
	}
	if err != nil {
		report(stderr, err)
		return exitFailed
	}
	return exitOK
}

// runFeatureEvaluator gives an evaluator the features it asks for (or --features), read from
// --features-dir or extracted from the model, prints its report and writes metrics.json.
func runFeatureEvaluator(c *evalCommand, ev evaluators.FeatureEvaluator, search string, stdout, stderr io.Writer) error {
	names := c.featureNames()
	if len(names) == 0 {
		names = ev.Features()
	}
	if len(names) == 0 {
		pooled, err := c.defaultFeatures()
		if err != nil {
			return err
		}
		names = []string{engine.FeatBackbone, engine.FeatNeck}
		for _, n := range pooled {
			if !slices.Contains(names, n) {
				names = append(names, n)
			}
		}
	}
	var e *engine.Evaluation // the model, unless the features are read from files
	if *c.featuresDir == "" {
		var err error
		if e, err = c.open(stderr); err != nil {
			return err
		}
		defer e.Close()
	}
	searcher, release, err := c.searcher(e, search) // before the extraction: --search may be wrong
	if err != nil {
		return err
	}
	defer release()
	ctx, stop := interruptible()
	defer stop()
	sets, err := c.featureSets(ctx, e, names)
	if err != nil {
		return err
	}
	work, err := filepath.Abs(*c.workDir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(work, 0o755); err != nil {
		return err
	}
	in := &evaluators.FeatureInput{Train: sets["train"], Val: sets["val"], WorkDir: work, Search: searcher,
		Seed: uint64(*c.seed), Out: stdout, Log: c.log}
	if *c.featuresDir != "" {
		if in.FeaturesDir, err = filepath.Abs(*c.featuresDir); err != nil {
			return err
		}
	}
	if c.checkpoint != "" {
		if in.Checkpoint, err = filepath.Abs(c.checkpoint); err != nil {
			return err
		}
	}
	metrics, err := ev.Evaluate(ctx, in)
	if err != nil {
		return err
	}
	metrics["checkpoint"] = c.checkpoint
	metrics["evaluator"] = c.bench.ValEvaluator.Type
	return c.writeMetrics(stdout, metrics)
}

// searcher returns the nearest-neighbour search of --search: cpu, device (the backend's),
// or auto (the device under XLA, else the CPU's blocked search, which beats the pure-Go
// backend's). Without the model e, a backend it starts is released by release.
func (c *evalCommand) searcher(e *engine.Evaluation, search string) (_ evaluators.Searcher, release func(), err error) {
	release = func() {}
	if !slices.Contains([]string{"auto", "cpu", "device"}, search) {
		return nil, release, fmt.Errorf("--search %q: use cpu, device or auto", search)
	}
	var bk backends.Backend
	switch {
	case e != nil:
		bk = e.Backend
	case search == "device" || *c.backend != "":
		if bk, err = backend.New(*c.backend); err != nil {
			return nil, release, err
		}
		release = bk.Finalize
	}
	if search == "device" || search == "auto" && bk != nil && !backend.IsPureGo(bk) {
		c.log.Sugar().Infof("nearest neighbours searched on %s", bk.Name())
		return func(q, db evaluators.Features, k int) ([][]evaluators.Neighbour, error) {
			return evaluators.TopKOnDevice(bk, q, db, k)
		}, release, nil
	}
	return evaluators.CPUSearch, release, nil
}
