package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"

	"github.com/gomlx/gomlx/backends"
	"github.com/goselfsup/goselfsup/datasets"
	"github.com/goselfsup/goselfsup/engine"
	"github.com/goselfsup/goselfsup/engine/backend"
	"github.com/goselfsup/goselfsup/evaluators"
	"github.com/goselfsup/goselfsup/registry"
)

const evaluateUsage = `usage: goselfsup evaluate BENCHMARK_CONFIG [CHECKPOINT] [flags]

Runs the benchmark of BENCHMARK_CONFIG.

A config with a benchmark key (benchmark = { type = "MMSegBenchmark" }, as the
segmentation configs of configs/benchmarks/segmentation) is a downstream fine-tuning run:
the benchmark, an evaluators.Benchmark (the segmentation plugin's MMSegBenchmark, built from
this checkout the first time it runs), trains the config's model from CHECKPOINT's backbone
(random init without one) and tests it. Its checkpoints, log and pictures go to the work_dir;
--resume continues an interrupted run from its last checkpoint there.

Otherwise it runs the val_evaluator of BENCHMARK_CONFIG, whichever it is: any component
registered as an evaluators.FeatureEvaluator — WeightedKNN as tools/knn, VOC07SVM as
tools/svm, one of your own build's packages (see "New components in Go" in the README), or a
plugin's (see "Writing a plugin"). It receives the features it asks for of both splits
(--features instead; for a plugin's: backbone, neck and pool_cfg's), extracted from the
model or read from --features-dir, with the checkpoint and the work_dir.

Either way its metrics are printed and written to metrics.json.

`

// Evaluate is the entry point of tools/evaluate.
func Evaluate(args []string, stdout, stderr io.Writer) int {
	c := newEvalCommand("evaluate", evaluateUsage, stderr)
	c.withFeatureFlags("", "for the evaluator (default: as the evaluator or pool_cfg says)")
	resume := c.fs.String("resume", "", "a fine-tuning benchmark's: continue from a checkpoint, `PATH`, or \"auto\" for the newest in the work_dir (--resume alone)")
	if rc, ok := c.parse(optionalValue(args, "resume", "auto"), stdout, stderr); !ok {
		return rc
	}
	var err error
	if !c.bench.Benchmark.IsZero() {
		err = runBenchmark(c, *resume, stdout)
	} else if *resume != "" {
		err = fmt.Errorf("--resume: %s has no benchmark key; only a fine-tuning benchmark resumes", c.benchPath)
	} else {
		var ev evaluators.FeatureEvaluator
		ev, err = registry.Build[evaluators.FeatureEvaluator](&registry.Env{Registry: c.reg}, c.bench.ValEvaluator)
		if err == nil {
			err = runFeatureEvaluator(c, ev, "auto", stdout, stderr)
		}
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

// runBenchmark runs the config's benchmark (a fine-tuning run such as MMSegBenchmark):
// it checks that the data is there, writes the merged config without the benchmark key to
// the work_dir, and hands the benchmark that config, the checkpoint and the work_dir.
func runBenchmark(c *evalCommand, resume string, stdout io.Writer) error {
	for _, f := range []struct {
		name string
		set  bool
	}{{"--model-config", *c.modelConfig != ""}, {"--features", *c.features != ""}, {"--features-dir", *c.featuresDir != ""}} {
		if f.set {
			return fmt.Errorf("%s does not apply to %s: a fine-tuning benchmark trains the model of its config (benchmark = %s)", f.name, c.benchPath, c.bench.Benchmark.Type)
		}
	}
	env := &registry.Env{Registry: c.reg}
	bench, err := registry.Build[evaluators.Benchmark](env, c.bench.Benchmark)
	if err != nil {
		return err
	}
	// The data is checked before the benchmark starts (its plugin is built and started).
	for _, d := range []struct {
		name string
		dl   *engine.Dataloader
	}{{"train_dataloader", c.bench.TrainDataloader}, {"val_dataloader", c.bench.ValDataloader}} {
		if d.dl == nil {
			return fmt.Errorf("%s: a fine-tuning benchmark needs a %s", c.benchPath, d.name)
		}
		if _, err := registry.Build[*datasets.Dataset](env, d.dl.Dataset); err != nil {
			return err // it names train_dataloader.dataset
		}
	}
	if c.checkpoint != "" {
		if _, err := os.Stat(c.checkpoint); err != nil {
			return fmt.Errorf("checkpoint: %w", err)
		}
	}
	work, err := filepath.Abs(*c.workDir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(work, 0o755); err != nil {
		return err
	}
	delete(c.benchTree.Map(), "benchmark")
	config := filepath.Join(work, configName(c.benchPath)+".toml")
	if err := c.benchTree.WriteFile(config); err != nil {
		return err
	}
	base, err := os.Getwd()
	if err != nil {
		return err
	}
	in := &evaluators.BenchmarkInput{Config: config, WorkDir: work, BaseDir: base, Resume: resume, Out: stdout, Log: c.log}
	if c.checkpoint != "" {
		if in.Checkpoint, err = filepath.Abs(c.checkpoint); err != nil {
			return err
		}
	}
	if resume != "" && resume != "auto" {
		if in.Resume, err = filepath.Abs(resume); err != nil {
			return err
		}
	}
	ctx, stop := interruptible()
	defer stop()
	metrics, err := bench.RunBenchmark(ctx, in)
	if err != nil {
		if errors.Is(err, context.Canceled) {
			return fmt.Errorf("interrupted; continue with the same command and --resume: %w", err)
		}
		return err
	}
	metrics["checkpoint"] = c.checkpoint
	metrics["benchmark"] = c.bench.Benchmark.Type
	return c.writeMetrics(stdout, metrics)
}
