package mocov2

import (
	"context"
	"errors"
	"fmt"
	"math"

	"github.com/goselfsup/goselfsup/evaluators"
	"github.com/goselfsup/goselfsup/registry"
)

func init() {
	registry.Add(registry.Evaluators, "NearestCentroid", "nearest class mean of L2-normalised features, by cosine (examples/mocov2)",
		func() *NearestCentroidConfig { return &NearestCentroidConfig{Feature: "backbone"} })
}

// NearestCentroidConfig classifies each test feature by the most similar class centroid:
// the training features are L2-normalised, averaged per class and normalised again; a test
// feature, normalised, goes to the class of highest cosine similarity. It needs no
// hyper-parameters, which makes it a quick check of how well features group by class.
type NearestCentroidConfig struct {
	Feature string `toml:"feature" doc:"the feature classified: backbone, neck or feat1..feat5"`
}

func (c *NearestCentroidConfig) Validate() error {
	if c.Feature == "" {
		return registry.FieldErrorf("feature", "is required")
	}
	return nil
}

func (c *NearestCentroidConfig) Build(*registry.Env) (any, error) { return &NearestCentroid{*c}, nil }

// NearestCentroid is the built NearestCentroidConfig, an evaluators.FeatureEvaluator.
type NearestCentroid struct{ NearestCentroidConfig }

var _ evaluators.FeatureEvaluator = (*NearestCentroid)(nil)

func (n *NearestCentroid) Features() []string { return []string{n.Feature} }

// Evaluate prints and returns the top-1 accuracy (in percent) as centroid_top1.
func (n *NearestCentroid) Evaluate(_ context.Context, in *evaluators.FeatureInput) (map[string]any, error) {
	train, ok1 := in.Train.Features[n.Feature]
	test, ok2 := in.Val.Features[n.Feature]
	if !ok1 || !ok2 {
		return nil, fmt.Errorf("NearestCentroid: no %q features", n.Feature)
	}
	if in.Train.Labels == nil || in.Val.Labels == nil {
		return nil, errors.New("NearestCentroid needs labelled training and test sets")
	}
	top1, classes, err := NearestCentroidTop1(train, in.Train.Labels, test, in.Val.Labels)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(in.Out, "nearest centroid (%s, %d classes): top-1 %.2f%% on %d test images\n", n.Feature, classes, top1, test.N)
	return map[string]any{"centroid_top1": top1, "feature": n.Feature, "classes": classes, "train": train.N, "test": test.N}, nil
}

// NearestCentroidTop1 returns the percentage of test features whose nearest class centroid
// (by cosine) is their class, and the number of classes with training samples.
func NearestCentroidTop1(train evaluators.Features, trainLabels []int, test evaluators.Features, testLabels []int) (float64, int, error) {
	if len(trainLabels) != train.N || len(testLabels) != test.N {
		return 0, 0, fmt.Errorf("%d training and %d test labels for %d and %d features", len(trainLabels), len(testLabels), train.N, test.N)
	}
	if train.Dim != test.Dim {
		return 0, 0, fmt.Errorf("training features have %d dimensions, test features %d", train.Dim, test.Dim)
	}
	if test.N == 0 {
		return 0, 0, errors.New("no test features")
	}
	classes := 0
	for _, y := range trainLabels {
		classes = max(classes, y+1)
	}
	centroids := make([][]float64, classes)
	for i, y := range trainLabels {
		if y < 0 {
			return 0, 0, fmt.Errorf("training sample %d has no label", i)
		}
		if centroids[y] == nil {
			centroids[y] = make([]float64, train.Dim)
		}
		addUnit(centroids[y], train.Row(i))
	}
	seen := 0
	for _, c := range centroids {
		if c != nil {
			normalize(c)
			seen++
		}
	}
	correct := 0
	q := make([]float64, test.Dim)
	for i := range test.N {
		clear(q)
		addUnit(q, test.Row(i))
		best, bestSim := -1, math.Inf(-1)
		for c, centroid := range centroids {
			if centroid == nil {
				continue
			}
			var sim float64
			for j, v := range centroid {
				sim += v * q[j]
			}
			if sim > bestSim {
				best, bestSim = c, sim
			}
		}
		if best == testLabels[i] {
			correct++
		}
	}
	return 100 * float64(correct) / float64(test.N), seen, nil
}

// addUnit adds x / max(||x||, 1e-12) to sum.
func addUnit(sum []float64, x []float32) {
	var norm float64
	for _, v := range x {
		norm += float64(v) * float64(v)
	}
	norm = math.Max(math.Sqrt(norm), 1e-12)
	for j, v := range x {
		sum[j] += float64(v) / norm
	}
}

func normalize(x []float64) {
	var norm float64
	for _, v := range x {
		norm += v * v
	}
	norm = math.Max(math.Sqrt(norm), 1e-12)
	for j := range x {
		x[j] /= norm
	}
}
