package evaluators

import (
	"context"
	"io"

	"go.uber.org/zap"
)

// Benchmark is a downstream benchmark that is a whole run of its own: it fine-tunes a model
// of its config from a checkpoint's backbone and tests it (mmseg's and mmdet's benchmarks).
// A config names one with its benchmark key (registry.Benchmarks); tools/evaluate builds it
// through the registry and runs it, as it runs a FeatureEvaluator for the feature benchmarks.
// The segmentation plugin's MMSegBenchmark is one.
type Benchmark interface {
	// RunBenchmark runs the benchmark and returns the metrics for metrics.json, having
	// written its human report to in.Out.
	RunBenchmark(ctx context.Context, in *BenchmarkInput) (map[string]any, error)
}

// BenchmarkInput is what a Benchmark runs on: paths only, so that it may run in another
// process.
type BenchmarkInput struct {
	// Config is the benchmark's merged config, a TOML file without the benchmark key:
	// every base and override applied.
	Config string
	// Checkpoint is the checkpoint whose backbone.* weights initialise the model's backbone;
	// "" for the random-initialisation baseline.
	Checkpoint string
	// WorkDir receives the run's checkpoints, logs and pictures.
	WorkDir string
	// BaseDir is the folder against which the config's relative paths (data_root) resolve:
	// the working directory of the tool.
	BaseDir string
	// Resume continues an interrupted run: "auto" for the newest checkpoint in WorkDir, or a
	// checkpoint's path; "" starts afresh.
	Resume string
	// Out receives the human report; Log the run's log lines.
	Out io.Writer
	Log *zap.Logger
}
