package evaluators

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
)

// VOC07 targets, per image and class, as the VOC dataset gives them.
const (
	Absent    int8 = -1
	Difficult int8 = 0 // present only as difficult objects
	Present   int8 = 1
)

// VOC07Options are the SVM benchmark's parameters (VOC07SVMConfig).
type VOC07Options struct {
	Costs          []float64
	CVFolds        int
	PositiveWeight float64
	Tol            float64
	MaxIter        int
	Seed           uint64
}

func (o VOC07Options) svm(cost float64, seed uint64) SVMOptions {
	return SVMOptions{C: cost, PositiveWeight: o.PositiveWeight, Tol: o.Tol, MaxIter: o.MaxIter, Seed: seed}
}

// VOC07Result is the full benchmark's outcome.
type VOC07Result struct {
	CVAP [][]float64 // per class and cost: the mean cross-validated AP
	Cost []float64   // per class: the cost chosen
	AP   []float64   // per class: the test AP
	MAP  float64     // their mean
	// Decisions are, per class, the chosen SVM's decision values on the test images: the
	// one-vs-rest scores whose argmax classifies single-label data (OneVsRestAccuracy).
	Decisions [][]float64
}

// OneVsRestAccuracy is the accuracy, in percent, of classifying each test image as the
// class whose SVM scores it highest (the lower class among equals), as scikit-learn's
// LinearSVC predicts.
func OneVsRestAccuracy(decisions [][]float64, labels []int) float64 {
	if len(decisions) == 0 || len(labels) == 0 {
		return 0
	}
	right := 0
	for i, y := range labels {
		best := 0
		for c := range decisions {
			if decisions[c][i] > decisions[best][i] {
				best = c
			}
		}
		if best == y {
			right++
		}
	}
	return 100 * float64(right) / float64(len(labels))
}

// NormalizeFeatures scales each row to f / (||f|| + 1e-5), the benchmark's normalisation.
func NormalizeFeatures(m Matrix) {
	for i := range m.Rows {
		r := m.Row(i)
		s := 1 / (math.Sqrt(dot(r, r)) + 1e-5)
		for j := range r {
			r[j] *= s
		}
	}
}

// StratifiedKFold splits rows into k test folds as scikit-learn's StratifiedKFold (without
// shuffling) does: the classes are numbered in order of first appearance, the labels so
// numbered and sorted are dealt to the folds in turn to fix how many of each class a fold
// gets, and each class's rows, in order, fill the folds one after the other.
func StratifiedKFold(positive []bool, rows []int, k int) [][]int {
	var cls [2][]int // the class of the first row, then the other
	for _, i := range rows {
		c := 0
		if positive[i] != positive[rows[0]] {
			c = 1
		}
		cls[c] = append(cls[c], i)
	}
	// The sorted labels are len(cls[0]) zeros then len(cls[1]) ones; fold f takes those at
	// f, f+k, f+2k ...
	folds := make([][]int, k)
	for c := range 2 {
		next := 0
		for f := range k {
			count := 0
			for p := f; p < len(rows); p += k {
				if (p >= len(cls[0])) == (c == 1) {
					count++
				}
			}
			folds[f] = append(folds[f], cls[c][next:next+count]...)
			next += count
		}
	}
	for _, f := range folds {
		slices.Sort(f)
	}
	return folds
}

// crossValidatedAP is scikit-learn's cross_val_score(svm, x, y, cv=k,
// scoring="average_precision"), averaged over the folds.
func crossValidatedAP(x Matrix, positive []bool, rows []int, o SVMOptions, k int) float64 {
	sum := 0.0
	for f, test := range StratifiedKFold(positive, rows, k) {
		in := make(map[int]bool, len(test))
		for _, i := range test {
			in[i] = true
		}
		train := make([]int, 0, len(rows)-len(test))
		for _, i := range rows {
			if !in[i] {
				train = append(train, i)
			}
		}
		o.Seed += uint64(f) + 1
		m := TrainSVM(x, positive, train, o)
		scores := make([]float64, len(test))
		pos := make([]bool, len(test))
		for j, i := range test {
			scores[j], pos[j] = m.Decision(x.Row(i)), positive[i]
		}
		sum += AveragePrecision(scores, pos)
	}
	return sum / float64(k)
}

// classLabels returns, for class c, which rows are positive for training: present ones;
// difficult ones count as negatives, as in mmselfsup's training.
func classLabels(targets [][]int8, c int) []bool {
	pos := make([]bool, len(targets))
	for i, t := range targets {
		pos[i] = t[c] == Present
	}
	return pos
}

// testAP is the test AP of model m for class c: difficult images left out.
func testAP(m *LinearSVM, x Matrix, targets [][]int8, c int) float64 {
	var scores []float64
	var pos []bool
	for i, t := range targets {
		if t[c] == Difficult {
			continue
		}
		scores = append(scores, m.Decision(x.Row(i)))
		pos = append(pos, t[c] == Present)
	}
	return VOCAveragePrecision(scores, pos)
}

// forClasses runs f for each class on all cores.
func forClasses(n int, f func(c int)) {
	var wg sync.WaitGroup
	next := make(chan int)
	for range min(n, runtime.GOMAXPROCS(0)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c := range next {
				f(c)
			}
		}()
	}
	for c := range n {
		next <- c
	}
	close(next)
	wg.Wait()
}

func checkTargets(x Matrix, targets [][]int8, what string) (int, error) {
	if x.Rows != len(targets) || x.Rows == 0 {
		return 0, fmt.Errorf("%s: %d feature rows for %d targets", what, x.Rows, len(targets))
	}
	return len(targets[0]), nil
}

// VOC07SVM is the VOC07 SVM benchmark on normalised features (see NormalizeFeatures): per
// class, a linear SVM for each cost scored by cross-validated AP on train, the best cost
// (the first of equals) refitted on all of train, and its AP on test, difficult images
// left out.
func VOC07SVM(train Matrix, trainTargets [][]int8, test Matrix, testTargets [][]int8, o VOC07Options) (VOC07Result, error) {
	nc, err := checkTargets(train, trainTargets, "train")
	if err != nil {
		return VOC07Result{}, err
	}
	if n, err := checkTargets(test, testTargets, "test"); err != nil || n != nc {
		return VOC07Result{}, fmt.Errorf("test: %d classes for train's %d (%v)", n, nc, err)
	}
	res := VOC07Result{CVAP: make([][]float64, nc), Cost: make([]float64, nc), AP: make([]float64, nc),
		Decisions: make([][]float64, nc)}
	forClasses(nc, func(c int) {
		pos := classLabels(trainTargets, c)
		all := make([]int, train.Rows)
		for i := range all {
			all[i] = i
		}
		res.CVAP[c] = make([]float64, len(o.Costs))
		best := 0
		for k, cost := range o.Costs {
			res.CVAP[c][k] = crossValidatedAP(train, pos, all, o.svm(cost, o.Seed+uint64(c)<<8), o.CVFolds)
			if res.CVAP[c][k] > res.CVAP[c][best] {
				best = k
			}
		}
		res.Cost[c] = o.Costs[best]
		m := TrainSVM(train, pos, all, o.svm(o.Costs[best], o.Seed+uint64(c)<<8))
		res.AP[c] = testAP(&m, test, testTargets, c)
		res.Decisions[c] = make([]float64, test.Rows)
		for i := range test.Rows {
			res.Decisions[c][i] = m.Decision(test.Row(i))
		}
	})
	for _, ap := range res.AP {
		res.MAP += ap / float64(nc)
	}
	return res, nil
}

// LowShotResult is the low-shot benchmark's outcome per number of shots: over the samples,
// the mean, lowest, highest and standard deviation of the mAP.
type LowShotResult struct {
	Shots               int
	Mean, Min, Max, Std float64
	PerSample           []float64
}

// LowShotSVM is the VOC07 low-shot SVM benchmark: for each number of shots k and each of
// samples draws, k present and k absent training images per class (mmselfsup's
// create_voc_low_shot_challenge_samples.py), one SVM per class and cost, the mAP on test for
// each cost, and the best cost's mAP for the draw, as mmselfsup's test_svm_low_shot.py and
// aggregate_low_shot_svm_stats.py report it (the cost is chosen on test there).
func LowShotSVM(train Matrix, trainTargets [][]int8, test Matrix, testTargets [][]int8, o VOC07Options,
	shots []int, samples int) ([]LowShotResult, error) {
	nc, err := checkTargets(train, trainTargets, "train")
	if err != nil {
		return nil, err
	}
	if n, err := checkTargets(test, testTargets, "test"); err != nil || n != nc {
		return nil, fmt.Errorf("test: %d classes for train's %d (%v)", n, nc, err)
	}
	var out []LowShotResult
	for _, k := range shots {
		r := LowShotResult{Shots: k}
		for s := range samples {
			rows, err := lowShotSample(trainTargets, nc, k, rand.New(rand.NewPCG(o.Seed, uint64(s)<<16|uint64(k))))
			if err != nil {
				return nil, err
			}
			perCost := make([][]float64, len(o.Costs)) // [cost][class]
			for i := range perCost {
				perCost[i] = make([]float64, nc)
			}
			forClasses(nc, func(c int) {
				pos := classLabels(trainTargets, c)
				for i, cost := range o.Costs {
					m := TrainSVM(train, pos, rows[c], o.svm(cost, o.Seed+uint64(c)))
					perCost[i][c] = testAP(&m, test, testTargets, c)
				}
			})
			best := math.Inf(-1)
			for _, aps := range perCost {
				mean := 0.0
				for _, ap := range aps {
					mean += ap / float64(nc)
				}
				best = math.Max(best, mean)
			}
			r.PerSample = append(r.PerSample, best)
		}
		r.Mean, r.Min, r.Max, r.Std = stats(r.PerSample)
		out = append(out, r)
	}
	return out, nil
}

// lowShotSample draws, per class, k present and k absent rows without replacement.
func lowShotSample(targets [][]int8, nc, k int, rng *rand.Rand) ([][]int, error) {
	rows := make([][]int, nc)
	for c := range nc {
		for _, want := range []int8{Present, Absent} {
			var pool []int
			for i, t := range targets {
				if t[c] == want {
					pool = append(pool, i)
				}
			}
			if len(pool) < k {
				return nil, fmt.Errorf("low-shot: class %d has %d images with target %d, fewer than %d shots", c, len(pool), want, k)
			}
			rng.Shuffle(len(pool), func(a, b int) { pool[a], pool[b] = pool[b], pool[a] })
			rows[c] = append(rows[c], pool[:k]...)
		}
		slices.Sort(rows[c])
	}
	return rows, nil
}

// stats returns the mean, minimum, maximum and (population) standard deviation, as NumPy's
// mean, min, max and std.
func stats(xs []float64) (mean, lo, hi, std float64) {
	lo, hi = math.Inf(1), math.Inf(-1)
	for _, x := range xs {
		mean += x / float64(len(xs))
		lo, hi = math.Min(lo, x), math.Max(hi, x)
	}
	for _, x := range xs {
		std += (x - mean) * (x - mean) / float64(len(xs))
	}
	return mean, lo, hi, math.Sqrt(std)
}
