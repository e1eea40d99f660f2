package mocov2_test

import (
	"context"
	"math"
	"strings"
	"testing"

	"github.com/goselfsup/goselfsup/evaluators"
	"github.com/goselfsup/goselfsup/examples/mocov2"
	"github.com/goselfsup/goselfsup/registry"
)

// Two classes in the plane. Normalised, class 0's training features are (1, 0) and (0, 1),
// whose mean normalises to (0.707, 0.707); class 1's are (-1, 0) and (-3, 0), whose centroid
// is (-1, 0). The test (0.2, 1) has cosine 0.832 to class 0 and -0.196 to class 1: class 0,
// right. (-1, 0.1): -0.633 and 0.995, class 1, right. (1, -2): -0.316 and -0.447, class 0,
// but labelled 1. Two of three: 66.67%.
func TestNearestCentroidByHand(t *testing.T) {
	train := evaluators.Features{N: 4, Dim: 2, Data: []float32{1, 0, 0, 1, -1, 0, -3, 0}}
	test := evaluators.Features{N: 3, Dim: 2, Data: []float32{0.2, 1, -1, 0.1, 1, -2}}
	top1, classes, err := mocov2.NearestCentroidTop1(train, []int{0, 0, 1, 1}, test, []int{0, 1, 1})
	if err != nil {
		t.Fatal(err)
	}
	if classes != 2 || math.Abs(top1-200.0/3) > 1e-9 {
		t.Errorf("top-1 %v with %d classes, want 66.67 with 2", top1, classes)
	}

	// The training features are normalised before they are averaged: class 0 holds (1, 0)
	// and (0, 10), whose centroid is then (0.707, 0.707), and class 1 (1, -1), centroid
	// (0.707, -0.707). The test (1, 0.1) has cosine 0.774 to class 0 and 0.633 to class 1:
	// class 0, right; with the raw mean (0.5, 5), normalised (0.0995, 0.995), its cosine to
	// class 0 would be 0.198 and it would go to class 1. (1, -0.2): 0.555 and 0.832, class
	// 1, right.
	train = evaluators.Features{N: 3, Dim: 2, Data: []float32{1, 0, 0, 10, 1, -1}}
	test = evaluators.Features{N: 2, Dim: 2, Data: []float32{1, 0.1, 1, -0.2}}
	top1, _, err = mocov2.NearestCentroidTop1(train, []int{0, 0, 1}, test, []int{0, 1})
	if err != nil || top1 != 100 {
		t.Errorf("top-1 %v (%v), want 100", top1, err)
	}
}

func TestNearestCentroidEvaluator(t *testing.T) {
	fe, err := registry.Build[evaluators.FeatureEvaluator](nil, registry.NewSpec(registry.Evaluators, "NearestCentroid",
		map[string]any{"feature": "neck"}))
	if err != nil {
		t.Fatal(err)
	}
	if f := fe.Features(); len(f) != 1 || f[0] != "neck" {
		t.Errorf("Features() = %v", f)
	}
	set := func(data []float32, labels []int) *evaluators.FeatureSet {
		return &evaluators.FeatureSet{Features: map[string]evaluators.Features{"neck": {N: len(labels), Dim: 2, Data: data}},
			Labels: labels, Classes: 2}
	}
	var out strings.Builder
	m, err := fe.Evaluate(context.Background(), &evaluators.FeatureInput{
		Train: set([]float32{1, 0, 0, 1}, []int{0, 1}), Val: set([]float32{2, 1, 1, 3}, []int{0, 0}), Out: &out})
	if err != nil {
		t.Fatal(err)
	}
	if m["centroid_top1"] != 50.0 || !strings.Contains(out.String(), "top-1 50.00%") {
		t.Errorf("metrics %v, output %q", m, out.String())
	}
}
