package evaluators

import (
	"container/heap"
	"fmt"
	"math"
	"runtime"
	"sort"
	"sync"
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
	trainN := normalizeAll(train)
	testN := normalizeAll(test)

	top1 := make([]int, len(ks))
	top5 := make([]int, len(ks))
	var mu sync.Mutex
	var wg sync.WaitGroup
	next := make(chan int)
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			votes := make([]float64, numClasses)
			for q := range next {
				nb := nearest(testN[q], trainN, kmax)
				for ki, k := range ks {
					clear(votes)
					for _, n := range nb[:min(k, len(nb))] {
						votes[trainLabels[n.index]] += math.Exp(float64(n.sim) / temperature)
					}
					rank := rankOf(votes, testLabels[q])
					mu.Lock()
					if rank == 0 {
						top1[ki]++
					}
					if rank < 5 {
						top5[ki]++
					}
					mu.Unlock()
				}
			}
		}()
	}
	for q := range testN {
		next <- q
	}
	close(next)
	wg.Wait()
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

type neighbour struct {
	index int
	sim   float32
}

// minHeap keeps the k largest similarities seen, smallest on top.
type minHeap []neighbour

func (h minHeap) Len() int { return len(h) }
func (h minHeap) Less(i, j int) bool {
	return h[i].sim < h[j].sim || h[i].sim == h[j].sim && h[i].index > h[j].index
}
func (h minHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *minHeap) Push(x any)   { *h = append(*h, x.(neighbour)) }
func (h *minHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// nearest returns the k training features most similar to q, most similar first (equal
// similarities in index order).
func nearest(q []float32, train [][]float32, k int) []neighbour {
	h := make(minHeap, 0, k+1)
	for i, t := range train {
		var s float32
		for j, v := range t {
			s += v * q[j]
		}
		if len(h) < k {
			heap.Push(&h, neighbour{i, s})
		} else if s > h[0].sim {
			h[0] = neighbour{i, s}
			heap.Fix(&h, 0)
		}
	}
	sort.Slice(h, func(a, b int) bool { return h[a].sim > h[b].sim || h[a].sim == h[b].sim && h[a].index < h[b].index })
	return h
}
