package cli

import (
	"fmt"
	"io"
	"maps"
	"path/filepath"
	"slices"

	"github.com/goselfsup/goselfsup/engine"
	"github.com/goselfsup/goselfsup/evaluators"
	"github.com/goselfsup/goselfsup/plugins/host"
)

const evaluateUsage = `usage: goselfsup evaluate BENCHMARK_CONFIG [CHECKPOINT] [flags]

Runs the val_evaluator of BENCHMARK_CONFIG, whichever it is: WeightedKNN as tools/knn,
VOC07SVM as tools/svm, or the evaluator of a plugin (see "Writing a plugin" in the README).
A plugin's evaluator receives the features of both splits as tools/extract writes them
(extracted into the work_dir's features/ folder first: --features, by default backbone,
neck and pool_cfg's; or read from --features-dir), the
checkpoint and the work_dir; its metrics are printed and written to metrics.json.

`

// Evaluate is the entry point of tools/evaluate.
func Evaluate(args []string, stdout, stderr io.Writer) int {
	c := newEvalCommand("evaluate", evaluateUsage, stderr)
	c.withFeatureFlags("", "for the evaluator (default: as the evaluator or pool_cfg says)")
	if rc, ok := c.parse(args, stdout, stderr); !ok {
		return rc
	}
	ev, err := c.reg.Decode(c.bench.ValEvaluator)
	if err != nil {
		report(stderr, err)
		return exitFailed
	}
	switch ev := ev.(type) {
	case *evaluators.WeightedKNNConfig:
		if *c.features == "" {
			*c.features = "backbone"
		}
		err = runKNN(c, false, "auto", stdout, stderr)
	case *evaluators.VOC07SVMConfig:
		err = runSVM(c, true, stdout, stderr)
	case *host.PluginComponent:
		err = runPlugin(c, ev, stdout, stderr)
	default:
		err = fmt.Errorf("%s: val_evaluator %s is not one that tools/evaluate runs (WeightedKNN, VOC07SVM or a plugin's)", c.benchPath, c.bench.ValEvaluator.Type)
	}
	if err != nil {
		report(stderr, err)
		return exitFailed
	}
	return exitOK
}

// runPlugin extracts the features (unless --features-dir has them) and runs a plugin's
// evaluator on them.
func runPlugin(c *evalCommand, comp *host.PluginComponent, stdout, stderr io.Writer) error {
	ctx, stop := interruptible()
	defer stop()
	dir := *c.featuresDir
	if dir == "" {
		names := c.featureNames()
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
		e, err := c.open(stderr)
		if err != nil {
			return err
		}
		sets, err := c.featureSets(ctx, e, names)
		e.Close()
		if err != nil {
			return err
		}
		dir = filepath.Join(*c.workDir, "features")
		for _, s := range []string{"train", "val"} {
			if _, err := sets[s].WriteNPY(dir, s); err != nil {
				return err
			}
		}
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	work, err := filepath.Abs(*c.workDir)
	if err != nil {
		return err
	}
	ckpt := c.checkpoint
	if ckpt != "" {
		if ckpt, err = filepath.Abs(ckpt); err != nil {
			return err
		}
	}
	fmt.Fprintf(stderr, "running %s of plugin %s (%s)\n", comp.Spec.Type, comp.Binary.Name, comp.Binary.Path)
	res, err := comp.Run(ctx, host.Request{Checkpoint: ckpt, WorkDir: work, Inputs: map[string]string{"features_dir": abs}},
		func(stage string, done, total int64) {
			c.log.Sugar().Debugf("%s %d/%d", stage, done, total)
		})
	if err != nil {
		return err
	}
	names := slices.Sorted(maps.Keys(res.Metrics))
	metrics := map[string]any{"checkpoint": c.checkpoint, "evaluator": comp.Spec.Type, "plugin": comp.Binary.Name}
	for _, k := range names {
		fmt.Fprintf(stdout, "%-32s %8.2f\n", k, res.Metrics[k])
		metrics[k] = res.Metrics[k]
	}
	for _, a := range res.Artifacts {
		fmt.Fprintf(stdout, "artefact %s: %s (sha256 %s)\n", a.Name, a.Path, a.Sha256)
	}
	return c.writeMetrics(stdout, metrics)
}
