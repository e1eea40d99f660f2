package evaluators

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/goselfsup/goselfsup/internal/npy"
	"github.com/goselfsup/goselfsup/internal/pyref"
)

// multiLabel draws n images of d-dimensional features over nc classes: each class present
// with probability 0.3 (a tenth of those only as difficult objects), the features the sum
// of the present classes' prototypes (the same for every seed) plus noise.
func multiLabel(n, d, nc int, seed uint64) (Matrix, [][]int8) {
	protoRNG := rand.New(rand.NewPCG(99, 2))
	proto := make([][]float64, nc)
	for c := range proto {
		proto[c] = make([]float64, d)
		for j := range proto[c] {
			proto[c][j] = protoRNG.NormFloat64()
		}
	}
	rng := rand.New(rand.NewPCG(seed, 2))
	x := Matrix{Rows: n, Cols: d, Data: make([]float64, n*d)}
	t := make([][]int8, n)
	for i := range n {
		t[i] = make([]int8, nc)
		row := x.Row(i)
		for j := range row {
			row[j] = 2.5 * rng.NormFloat64()
		}
		for c := range nc {
			t[i][c] = Absent
			if rng.Float64() < 0.3 {
				t[i][c] = Present
				if rng.Float64() < 0.1 {
					t[i][c] = Difficult
				}
				axpy(row, 1, proto[c])
			}
		}
	}
	return x, t
}

func writeNPY[T npy.Element](t *testing.T, path string, shape []int, data []T) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := npy.Write(f, shape, data); err != nil {
		t.Fatal(err)
	}
}

func flatTargets(t [][]int8) []int8 {
	var out []int8
	for _, r := range t {
		out = append(out, r...)
	}
	return out
}

func svmReference(t *testing.T) (python, script string) {
	t.Helper()
	python, err := pyref.Python("sklearn", "numpy")
	if err != nil {
		t.Skip(err)
	}
	script, err = filepath.Abs(filepath.Join("..", "benchmarks", "svm_reference.py"))
	if err != nil {
		t.Fatal(err)
	}
	return python, script
}

// Our stratified folds are scikit-learn's.
func TestStratifiedKFoldIsScikitLearns(t *testing.T) {
	python, script := svmReference(t)
	rng := rand.New(rand.NewPCG(3, 3))
	for _, n := range []int{10, 31, 100} {
		for _, k := range []int{2, 3, 5} {
			pos := make([]bool, n)
			y := make([]int8, n)
			rows := make([]int, n)
			for i := range n {
				pos[i] = rng.IntN(4) == 0 || i == 0 && k == 3 // the first label decides the classes' order
				y[i], rows[i] = -1, i
				if pos[i] {
					y[i] = 1
				}
			}
			dir := t.TempDir()
			writeNPY(t, filepath.Join(dir, "y.npy"), []int{n}, y)
			out, err := exec.Command(python, script, "folds", dir, string(rune('0'+k))).Output()
			if err != nil {
				t.Fatal(err)
			}
			var want [][]int
			if err := json.Unmarshal(out, &want); err != nil {
				t.Fatal(err)
			}
			if got := StratifiedKFold(pos, rows, k); !reflect.DeepEqual(got, want) {
				t.Errorf("n %d, k %d: folds %v, scikit-learn's %v", n, k, got, want)
			}
		}
	}
}

// The VOC07 SVM benchmark agrees with scikit-learn's LinearSVC run through mmselfsup's
// protocol: the same costs chosen, cross-validated and test APs within 0.001.
func TestVOC07SVMAgreesWithScikitLearn(t *testing.T) {
	python, script := svmReference(t)
	const d, nc = 24, 4
	train, trainT := multiLabel(300, d, nc, 1)
	test, testT := multiLabel(200, d, nc, 2)
	dir := t.TempDir()
	writeNPY(t, filepath.Join(dir, "train_x.npy"), []int{train.Rows, d}, train.Data)
	writeNPY(t, filepath.Join(dir, "test_x.npy"), []int{test.Rows, d}, test.Data)
	writeNPY(t, filepath.Join(dir, "train_t.npy"), []int{train.Rows, nc}, flatTargets(trainT))
	writeNPY(t, filepath.Join(dir, "test_t.npy"), []int{test.Rows, nc}, flatTargets(testT))
	costs := []float64{0.01, 0.1, 1, 10}
	out, err := exec.Command(python, script, "voc07", dir, "0.01,0.1,1,10").Output()
	if err != nil {
		t.Fatal(err)
	}
	var want struct {
		CVAP [][]float64 `json:"cv_ap"`
		Cost []float64   `json:"cost"`
		AP   []float64   `json:"ap"`
		MAP  float64     `json:"map"`
	}
	if err := json.Unmarshal(out, &want); err != nil {
		t.Fatalf("%v: %s", err, out)
	}

	NormalizeFeatures(train)
	NormalizeFeatures(test)
	got, err := VOC07SVM(train, trainT, test, testT, VOC07Options{Costs: costs, CVFolds: 3, PositiveWeight: 2, Tol: 1e-4, MaxIter: 2000, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	for c := range nc {
		for k := range costs {
			if math.Abs(got.CVAP[c][k]-want.CVAP[c][k]) > 1e-3 {
				t.Errorf("class %d, cost %g: cross-validated AP %.5f, scikit-learn %.5f", c, costs[k], got.CVAP[c][k], want.CVAP[c][k])
			}
		}
		if got.Cost[c] != want.Cost[c] {
			t.Errorf("class %d: cost %g chosen, scikit-learn chose %g (CV APs %v and %v)", c, got.Cost[c], want.Cost[c], got.CVAP[c], want.CVAP[c])
		}
		if math.Abs(got.AP[c]-want.AP[c]) > 1e-3 {
			t.Errorf("class %d: test AP %.5f, scikit-learn %.5f", c, got.AP[c], want.AP[c])
		}
	}
	t.Logf("mAP %.5f, scikit-learn %.5f", got.MAP, want.MAP)
	if math.Abs(got.MAP-want.MAP) > 1e-3 {
		t.Errorf("mAP %.5f, scikit-learn %.5f", got.MAP, want.MAP)
	}
}

// A low-shot draw takes k present and k absent images of each class, never a difficult one.
func TestLowShotSample(t *testing.T) {
	_, targets := multiLabel(200, 2, 3, 4)
	rows, err := lowShotSample(targets, 3, 8, rand.New(rand.NewPCG(1, 1)))
	if err != nil {
		t.Fatal(err)
	}
	for c, rs := range rows {
		count := map[int8]int{}
		for _, i := range rs {
			count[targets[i][c]]++
		}
		if count[Present] != 8 || count[Absent] != 8 || len(rs) != 16 {
			t.Errorf("class %d: %v", c, count)
		}
	}
	if _, err := lowShotSample(targets, 3, 150, rand.New(rand.NewPCG(1, 1))); err == nil {
		t.Error("150 shots drawn from fewer present images")
	}
	// mean, min, max and NumPy's (population) standard deviation of 1, 2, 3, 6: 3, 1, 6, sqrt(3.5)
	if m, lo, hi, sd := stats([]float64{1, 2, 3, 6}); m != 3 || lo != 1 || hi != 6 || math.Abs(sd-math.Sqrt(3.5)) > 1e-15 {
		t.Errorf("stats: %v %v %v %v", m, lo, hi, sd)
	}
}

// The low-shot benchmark runs end to end, and more shots do not hurt much on average.
func TestLowShotSVM(t *testing.T) {
	train, trainT := multiLabel(300, 24, 3, 5)
	test, testT := multiLabel(200, 24, 3, 6)
	NormalizeFeatures(train)
	NormalizeFeatures(test)
	res, err := LowShotSVM(train, trainT, test, testT,
		VOC07Options{Costs: []float64{0.1, 1, 10}, CVFolds: 3, PositiveWeight: 2, Tol: 1e-4, MaxIter: 2000, Seed: 1}, []int{1, 16}, 3)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 2 || len(res[0].PerSample) != 3 || res[0].Min > res[0].Mean || res[0].Mean > res[0].Max {
		t.Fatalf("%+v", res)
	}
	if res[1].Mean < res[0].Mean {
		t.Errorf("16 shots: mAP %.3f, 1 shot: %.3f", res[1].Mean, res[0].Mean)
	}
}

func TestOneVsRestAccuracy(t *testing.T) {
	// Three images, three classes; image 1's top scores tie between classes 1 and 2, and
	// the tie goes to class 1 (its label), image 2 is misclassified.
	decisions := [][]float64{
		{2.0, -1.0, 0.5},
		{0.1, 0.3, 0.2},
		{-1.0, 0.3, 0.4},
	}
	if got := OneVsRestAccuracy(decisions, []int{0, 1, 1}); math.Abs(got-200.0/3) > 1e-9 {
		t.Errorf("accuracy %v, want 66.67", got)
	}
}
