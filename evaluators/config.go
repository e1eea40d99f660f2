// Package evaluators holds the benchmarks that judge learned features: feature extraction,
// weighted kNN, linear probes, the VOC07 SVM and low-shot SVM, and their metrics.
package evaluators

import (
	"errors"
	"slices"

	"github.com/goselfsup/goselfsup/registry"
)

// WeightedKNNConfig is mmselfsup's weighted kNN (from DINO): L2-normalised features, each of
// the k nearest training samples votes for its class with weight exp(similarity /
// temperature). All k of num_knn come from one top-max(k) search.
type WeightedKNNConfig struct {
	NumKNN      []int   `toml:"num_knn"`
	Temperature float64 `toml:"temperature"`
	// ChunkSize bounds memory: the number of queries whose similarities are computed at once.
	ChunkSize int `toml:"chunk_size"`
}

func (c *WeightedKNNConfig) Validate() error {
	var errs []error
	if c.Temperature <= 0 {
		errs = append(errs, registry.FieldErrorf("temperature", "must be positive, got %g", c.Temperature))
	}
	if c.ChunkSize < 1 {
		errs = append(errs, registry.FieldErrorf("chunk_size", "must be at least 1, got %d", c.ChunkSize))
	}
	return errors.Join(append(errs, positiveList("num_knn", c.NumKNN))...)
}

// VOC07SVMConfig is mmselfsup's VOC07 SVM benchmark: features scaled to f / (||f|| + 1e-5),
// one linear SVM per class (squared hinge, L2, dual coordinate descent as liblinear, weight
// positive_weight on positives), the cost chosen per class from costs by cv_folds-fold
// cross-validated AP; test mAP over the classes, difficult objects excluded.
type VOC07SVMConfig struct {
	Costs          []float64 `toml:"costs"`
	CVFolds        int       `toml:"cv_folds"`
	PositiveWeight float64   `toml:"positive_weight"`
	Tol            float64   `toml:"tol"`
	MaxIter        int       `toml:"max_iter"`
	// Features are the features to evaluate: feat1..feat5 (pool_cfg's MultiPooling),
	// backbone (the last stage, globally pooled) or neck (the embedding).
	Features []string `toml:"features"`
	LowShot  *LowShot `toml:"low_shot"`
}

// LowShot runs the SVM on k positives per class, for each k of shots, samples times each.
type LowShot struct {
	Shots   []int `toml:"shots"`
	Samples int   `toml:"samples"`
}

func (l *LowShot) Validate() error {
	var errs []error
	if l.Samples < 1 {
		errs = append(errs, registry.FieldErrorf("samples", "must be at least 1, got %d", l.Samples))
	}
	return errors.Join(append(errs, positiveList("shots", l.Shots))...)
}

func (c *VOC07SVMConfig) Validate() error {
	var errs []error
	if len(c.Costs) == 0 {
		errs = append(errs, registry.FieldErrorf("costs", "must list at least one cost"))
	}
	for _, cost := range c.Costs {
		if cost <= 0 {
			errs = append(errs, registry.FieldErrorf("costs", "must be positive, got %v", c.Costs))
			break
		}
	}
	if c.CVFolds < 2 {
		errs = append(errs, registry.FieldErrorf("cv_folds", "must be at least 2, got %d", c.CVFolds))
	}
	if c.PositiveWeight <= 0 {
		errs = append(errs, registry.FieldErrorf("positive_weight", "must be positive, got %g", c.PositiveWeight))
	}
	if c.Tol <= 0 {
		errs = append(errs, registry.FieldErrorf("tol", "must be positive, got %g", c.Tol))
	}
	if c.MaxIter < 1 {
		errs = append(errs, registry.FieldErrorf("max_iter", "must be at least 1, got %d", c.MaxIter))
	}
	for _, f := range c.Features {
		if !slices.Contains(featureNames, f) {
			errs = append(errs, registry.FieldErrorf("features", "%q is not one of %v", f, featureNames))
		}
	}
	return errors.Join(errs...)
}

var featureNames = []string{"feat1", "feat2", "feat3", "feat4", "feat5", "backbone", "neck"}

// AvgPool2dConfig pools the last backbone output globally (mmselfsup's Extractor AvgPool2d).
type AvgPool2dConfig struct{}

// MultiPoolingConfig is mmselfsup's MultiPooling: each backbone output of in_indices pooled
// to about 9,000 dimensions, by the table of the backbone ("specified") or adaptively.
type MultiPoolingConfig struct {
	PoolType  string `toml:"pool_type"`
	InIndices []int  `toml:"in_indices"`
	Backbone  string `toml:"backbone"`
}

func (c *MultiPoolingConfig) Validate() error {
	var errs []error
	if c.PoolType != "specified" && c.PoolType != "adaptive" {
		errs = append(errs, registry.FieldErrorf("pool_type", `must be "specified" or "adaptive", got %q`, c.PoolType))
	}
	for _, i := range c.InIndices {
		if i < 0 || i > 4 {
			errs = append(errs, registry.FieldErrorf("in_indices", "%d is not a ResNet output (0 = stem, 1..4 = stages)", i))
		}
	}
	if c.Backbone != "resnet18" && c.Backbone != "resnet50" {
		errs = append(errs, registry.FieldErrorf("backbone", `must be "resnet18" or "resnet50", got %q`, c.Backbone))
	}
	return errors.Join(errs...)
}

func positiveList(key string, xs []int) error {
	if len(xs) == 0 {
		return registry.FieldErrorf(key, "must list at least one value")
	}
	for _, x := range xs {
		if x < 1 {
			return registry.FieldErrorf(key, "must be positive, got %v", xs)
		}
	}
	return nil
}

func init() {
	reg := func(ns, typ, doc string, newCfg func() any) {
		registry.Register(registry.Component{Namespace: ns, Type: typ, Doc: doc, New: newCfg})
	}
	reg(registry.Evaluators, "WeightedKNN", "weighted kNN on L2-normalised features (mmselfsup, DINO)",
		func() any {
			return &WeightedKNNConfig{NumKNN: []int{10, 20, 100, 200}, Temperature: 0.07, ChunkSize: 500}
		})
	reg(registry.Evaluators, "VOC07SVM", "linear SVMs per class on VOC07, with cross-validated costs and low-shot runs",
		func() any {
			return &VOC07SVMConfig{Costs: []float64{1, 10, 100}, CVFolds: 3, PositiveWeight: 2, Tol: 1e-4,
				MaxIter: 2000, Features: []string{"feat5"}}
		})
	reg(registry.Poolings, "AvgPool2d", "global average pooling of the last backbone output",
		func() any { return &AvgPool2dConfig{} })
	reg(registry.Poolings, "MultiPooling", "pooling of several backbone outputs to about 9,000 dimensions each",
		func() any {
			return &MultiPoolingConfig{PoolType: "specified", InIndices: []int{0, 1, 2, 3, 4}, Backbone: "resnet50"}
		})
}
