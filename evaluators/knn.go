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

// Searcher finds, for each query, the k database vectors of highest inner product, highest
// first: TopK on the CPU, TopKOnDevice on a GoMLX backend.
type Searcher func(queries, database Features, k int) ([][]Neighbour, error)

// CPUSearch is TopK as a Searcher.
func CPUSearch(queries, database Features, k int) ([][]Neighbour, error) {
	return TopK(queries, database, k), nil
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
	return KNN(FromRows(train), trainLabels, FromRows(test), testLabels, numClasses, ks, temperature, CPUSearch)
}

// KNN is WeightedKNN on feature matrices, with the search of the caller's choice. It
// normalises train and test in place, so that ImageNet's 1.28M x 2048 training features
// (10.5 GB) are held once.
func KNN(train Features, trainLabels []int, test Features, testLabels []int,
	numClasses int, ks []int, temperature float64, search Searcher) ([]KNNResult, error) {
	if train.N == 0 || test.N == 0 {
		return nil, fmt.Errorf("kNN needs training and test features, got %d and %d", train.N, test.N)
	}
	if train.N != len(trainLabels) || test.N != len(testLabels) {
		return nil, fmt.Errorf("kNN: %d training features for %d labels, %d test features for %d labels",
			train.N, len(trainLabels), test.N, len(testLabels))
	}
	if train.Dim != test.Dim {
		return nil, fmt.Errorf("kNN: training features of %d dimensions, test features of %d", train.Dim, test.Dim)
	}
	for _, l := range [][]int{trainLabels, testLabels} {
		for _, y := range l {
			if y < 0 || y >= numClasses {
				return nil, fmt.Errorf("kNN: label %d is not one of the %d classes", y, numClasses)
			}
		}
	}
	kmax := 0
	for _, k := range ks {
		kmax = max(kmax, k)
	}
	kmax = min(kmax, train.N)
	NormalizeRows(test)
	NormalizeRows(train)
	neighbours, err := search(test, train, kmax)
	if err != nil {
		return nil, err
	}
	top1 := make([]int, len(ks))
	top5 := make([]int, len(ks))
	votes := make([]float64, numClasses)
	for q, nb := range neighbours {
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
		out[i] = KNNResult{K: k, Top1: 100 * float64(top1[i]) / float64(test.N), Top5: 100 * float64(top5[i]) / float64(test.N)}
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

// NormalizeRows divides each row of f by its L2 norm (at least 1e-12, as PyTorch's
// F.normalize), in place.
func NormalizeRows(f Features) {
	for i := range f.N {
		row := f.Row(i)
		var n float64
		for _, v := range row {
			n += float64(v) * float64(v)
		}
		n = math.Max(math.Sqrt(n), 1e-12)
		for j, v := range row {
			row[j] = float32(float64(v) / n)
		}
	}
}

// TopKAccuracy returns, for each k of topk, the percentage of samples whose label is among
// the k highest of their scores (row i of scores, one column per class); among equal scores
// the lower class ranks first.
func TopKAccuracy(scores Features, labels []int, topk []int) ([]float64, error) {
	if scores.N != len(labels) {
		return nil, fmt.Errorf("accuracy: %d score rows for %d labels", scores.N, len(labels))
	}
	hits := make([]int, len(topk))
	votes := make([]float64, scores.Dim)
	for i, y := range labels {
		if y < 0 || y >= scores.Dim {
			return nil, fmt.Errorf("accuracy: label %d of sample %d is not one of %d classes", y, i, scores.Dim)
		}
		for c, v := range scores.Row(i) {
			votes[c] = float64(v)
		}
		r := rankOf(votes, y)
		for j, k := range topk {
			if r < k {
				hits[j]++
			}
		}
	}
	out := make([]float64, len(topk))
	for j := range topk {
		out[j] = 100 * float64(hits[j]) / float64(max(len(labels), 1))
	}
	return out, nil
}
