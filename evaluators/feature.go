package evaluators

import (
	"context"
	"io"

	"go.uber.org/zap"
)

// FeatureEvaluator is a component of the "evaluators" namespace that judges the features
// of a model on a benchmark's two splits (the labelled training set and the test set), as
// mmselfsup's kNN and SVM benchmarks do. tools/evaluate runs whichever a benchmark config's
// val_evaluator names: built-in, registered by a user's package, or a plugin's.
type FeatureEvaluator interface {
	// Features names the features to evaluate: backbone, neck, feat1..feat5; nil for those
	// that the benchmark's pool_cfg implies.
	Features() []string
	// Evaluate returns the metrics for metrics.json, having written its human report (tables)
	// to in.Out.
	Evaluate(ctx context.Context, in *FeatureInput) (map[string]any, error)
}

// FeatureInput is what a FeatureEvaluator evaluates.
type FeatureInput struct {
	// Train and Val hold the features named by Features() of the two splits.
	Train, Val *FeatureSet
	// FeaturesDir is a folder where the features are saved as tools/extract writes them, or
	// "" when they were extracted in memory; an evaluator in another process writes them
	// with FeatureSet.WriteNPY under WorkDir.
	FeaturesDir string
	// WorkDir receives the evaluator's files; Checkpoint is the evaluated model's checkpoint
	// ("" for a random initialisation).
	WorkDir, Checkpoint string
	// Search finds nearest neighbours: on the device under XLA, else on the CPU.
	Search Searcher
	// Seed seeds whatever the evaluator samples.
	Seed uint64
	// Out receives the human report; Log the progress.
	Out io.Writer
	Log *zap.Logger
}
