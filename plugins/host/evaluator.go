package host

import (
	"context"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"

	"github.com/goselfsup/goselfsup/evaluators"
	"github.com/goselfsup/goselfsup/plugins/protocol"
	"github.com/goselfsup/goselfsup/registry"
)

// A plugin's evaluator is an evaluators.FeatureEvaluator like a built-in one: tools/evaluate
// builds it through the registry and gives it the features, which it hands to the plugin
// process as files.

// Build returns the component itself: the plugin process starts only when it runs.
func (c *PluginComponent) Build(*registry.Env) (any, error) { return c, nil }

// Features is nil: the plugin receives the backbone and neck features and those of the
// benchmark's pool_cfg.
func (c *PluginComponent) Features() []string { return nil }

// Evaluate writes the features under the work_dir (unless they are in a folder already),
// runs the plugin's component on them and returns its metrics.
func (c *PluginComponent) Evaluate(ctx context.Context, in *evaluators.FeatureInput) (map[string]any, error) {
	dir := in.FeaturesDir
	if dir == "" {
		dir = filepath.Join(in.WorkDir, "features")
		for split, set := range map[string]*evaluators.FeatureSet{"train": in.Train, "val": in.Val} {
			if _, err := set.WriteNPY(dir, split); err != nil {
				return nil, err
			}
		}
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if in.Log != nil {
		in.Log.Sugar().Infof("running %s of plugin %s (%s)", c.Spec.Type, c.Binary.Name, c.Binary.Path)
	}
	res, err := c.Run(ctx, Request{Checkpoint: in.Checkpoint, WorkDir: in.WorkDir, Inputs: map[string]string{protocol.InputFeaturesDir: abs}},
		func(stage string, done, total int64) {
			if in.Log != nil {
				in.Log.Sugar().Debugf("%s %d/%d", stage, done, total)
			}
		})
	if err != nil {
		return nil, err
	}
	metrics := map[string]any{"plugin": c.Binary.Name}
	for _, k := range slices.Sorted(maps.Keys(res.Metrics)) {
		fmt.Fprintf(in.Out, "%-32s %8.2f\n", k, res.Metrics[k])
		metrics[k] = res.Metrics[k]
	}
	for _, a := range res.Artifacts {
		fmt.Fprintf(in.Out, "artefact %s: %s (sha256 %s)\n", a.Name, a.Path, a.Sha256)
	}
	return metrics, nil
}

// A plugin's benchmark (a component of the benchmarks namespace) is an
// evaluators.Benchmark: tools/evaluate builds it through the registry and hands it the
// benchmark's merged config, the checkpoint and the work_dir, as paths.

// RunBenchmark runs the plugin's benchmark on in's paths and returns its metrics: the
// plugin's log lines go to the host's log, its progress to in.Log at debug level and to the
// console every tenth of the run.
func (c *PluginComponent) RunBenchmark(ctx context.Context, in *evaluators.BenchmarkInput) (map[string]any, error) {
	inputs := map[string]string{protocol.InputConfig: in.Config}
	if in.BaseDir != "" {
		inputs[protocol.InputBaseDir] = in.BaseDir
	}
	if in.Resume != "" {
		inputs[protocol.InputResume] = in.Resume
	}
	if in.Log != nil {
		in.Log.Sugar().Infof("running %s of plugin %s", c.Spec.Type, c.Binary.Name)
	}
	lastTenth := int64(-1)
	res, err := c.Run(ctx, Request{Checkpoint: in.Checkpoint, WorkDir: in.WorkDir, Inputs: inputs},
		func(stage string, done, total int64) {
			if in.Log == nil || total <= 0 {
				return
			}
			if tenth := done * 10 / total; tenth != lastTenth {
				lastTenth = tenth
				in.Log.Sugar().Infof("%s: %s %d/%d", c.Binary.Name, stage, done, total)
			}
		})
	if err != nil {
		return nil, err
	}
	metrics := map[string]any{"plugin": c.Binary.Name}
	for _, k := range slices.Sorted(maps.Keys(res.Metrics)) {
		metrics[k] = res.Metrics[k]
		if !strings.Contains(k, ".") { // per-class values (IoU.person) stay in metrics.json
			fmt.Fprintf(in.Out, "%-32s %8.2f\n", k, res.Metrics[k])
		}
	}
	for _, a := range res.Artifacts {
		fmt.Fprintf(in.Out, "artefact %s: %s\n", a.Name, a.Path)
	}
	return metrics, nil
}
