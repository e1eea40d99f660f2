package evaluators

import (
	"fmt"
	"math"
)

// KNNResult is the accuracy of weighted kNN for one k, in percent.
type KNNResult struct {
	K          int
	Top1, Top5 float64
}

// WeightedKNN classifies each query by its nearest training features, mmselfsup's (and
// DINO's) way: features are L2-normalised, the max(ks) most similar training samples are
// found once, and for each k the first k of them vote for their class with weight
// exp(similarity / temperature). Ties between classes go to the lower class index.
func WeightedKNN(train [][]float32, trainLabels []int, test [][]float32, testLabels []int,
	numClasses int, ks []int, temperature float64) ([]KNNResult, error) {
	if len(train) == 0 || len(test) == 0 {
		return nil, fmt.Errorf("kNN needs training and test features, got %d and %d", len(train), len(test))
	}
	if len(train) != len(trainLabels) || len(test) != len(testLabels) {
		return nil, fmt.Errorf("kNN: %d training features for %d labels, %d test features for %d labels",
			len(train), len(trainLabels), len(test), len(testLabels))
	}
	kmax := 0
	for _, k := range ks {
		kmax = max(kmax, k)
	}
	kmax = min(kmax, len(train))
	trainN := FromRows(normalizeAll(train))
	testN := FromRows(normalizeAll(test))
	if trainN.Dim != testN.Dim {
		return nil, fmt.Errorf("kNN: training features of %d dimensions, test features of %d", trainN.Dim, testN.Dim)
	}
	top1 := make([]int, len(ks))
	top5 := make([]int, len(ks))
	votes := make([]float64, numClasses)
	for q, nb := range TopK(testN, trainN, kmax) {
		for ki, k := range ks {
			clear(votes)
			for _, n := range nb[:min(k, len(nb))] {
				votes[trainLabels[n.Index]] += math.Exp(float64(n.Sim) / temperature)
			}
			rank := rankOf(votes, testLabels[q])
			if rank == 0 {
				top1[ki]++
			}
			if rank < 5 {
				top5[ki]++
			}
		}
	}
	out := make([]KNNResult, len(ks))
	for i, k := range ks {
		out[i] = KNNResult{K: k, Top1: 100 * float64(top1[i]) / float64(len(test)), Top5: 100 * float64(top5[i]) / float64(len(test))}
	}
	return out, nil
}

// rankOf returns how many classes score above label (ties broken by lower index first).
func rankOf(votes []float64, label int) int {
	r := 0
	for c, v := range votes {
		if v > votes[label] || v == votes[label] && c < label {
			r++
		}
	}
	return r
}

func normalizeAll(fs [][]float32) [][]float32 {
	out := make([][]float32, len(fs))
	for i, f := range fs {
		var n float64
		for _, v := range f {
			n += float64(v) * float64(v)
		}
		n = math.Max(math.Sqrt(n), 1e-12)
		o := make([]float32, len(f))
		for j, v := range f {
			o[j] = float32(float64(v) / n)
		}
		out[i] = o
	}
	return out
}
