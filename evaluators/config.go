// Package evaluators holds the benchmarks that judge learned features: feature extraction,
// weighted kNN, linear probes, the VOC07 SVM and low-shot SVM, and their metrics.
package evaluators

import (
	"github.com/goselfsup/goselfsup/registry"
)

var featureNames = []string{"feat1", "feat2", "feat3", "feat4", "feat5", "backbone", "neck"}

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
