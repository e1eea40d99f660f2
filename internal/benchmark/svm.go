package benchmark

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/goselfsup/goselfsup/evaluators"
	"github.com/goselfsup/goselfsup/internal/cmdline"
	"github.com/goselfsup/goselfsup/internal/npy"
)

// benchSVM times the VOC07 SVM benchmark (cross-validated costs, refit, test AP, per class)
// here and with scikit-learn's LinearSVC on the same features.
func benchSVM(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("svm", stderr)
	nTrain := fs.Int("train", 5011, "training images (VOC07 trainval has 5011)")
	nTest := fs.Int("test", 4952, "test images (VOC07 test has 4952)")
	dim := fs.Int("dim", 256, "feature dimensions")
	classes := fs.Int("classes", 20, "classes")
	costList := fs.String("costs", "1,10,100", "costs, comma-separated")
	seed := fs.Uint64("seed", 1, "the synthetic features' seed")
	if _, err := parseArgs(fs, args, stdout); err != nil {
		return cmdline.ExitCode(err)
	}
	var costs []float64
	for _, c := range strings.Split(*costList, ",") {
		v, err := strconv.ParseFloat(strings.TrimSpace(c), 64)
		if err != nil || v <= 0 {
			report(stderr, fmt.Errorf("-costs: %q is not a positive number", c))
			return exitUsage
		}
		costs = append(costs, v)
	}
	python, script, err := reference("benchmarks/svm_reference.py", "sklearn", "numpy")
	if err != nil {
		report(stderr, err)
		return exitFailed
	}
	dir, err := os.MkdirTemp("", "goselfsup-svm-*")
	if err != nil {
		report(stderr, err)
		return exitFailed
	}
	defer os.RemoveAll(dir)

	train, trainT := syntheticVOC(*nTrain, *dim, *classes, *seed, 0)
	test, testT := syntheticVOC(*nTest, *dim, *classes, *seed, 1)
	for name, m := range map[string]evaluators.Matrix{"train_x.npy": train, "test_x.npy": test} {
		if err := writeNPYFile(filepath.Join(dir, name), []int{m.Rows, m.Cols}, m.Data); err != nil {
			report(stderr, err)
			return exitFailed
		}
	}
	for name, t := range map[string][][]int8{"train_t.npy": trainT, "test_t.npy": testT} {
		var flat []int8
		for _, r := range t {
			flat = append(flat, r...)
		}
		if err := writeNPYFile(filepath.Join(dir, name), []int{len(t), *classes}, flat); err != nil {
			report(stderr, err)
			return exitFailed
		}
	}

	fmt.Fprintf(stderr, "scikit-learn on %d + %d images, %d dimensions, %d classes, costs %v...\n", *nTrain, *nTest, *dim, *classes, costs)
	out, err := exec.Command(python, script, "voc07", dir, *costList).Output()
	if err != nil {
		report(stderr, fmt.Errorf("the scikit-learn reference: %w", err))
		return exitFailed
	}
	var ref struct {
		AP      []float64 `json:"ap"`
		MAP     float64   `json:"map"`
		Seconds float64   `json:"seconds"`
	}
	if err := json.Unmarshal(out, &ref); err != nil {
		report(stderr, fmt.Errorf("the scikit-learn reference printed %q", out))
		return exitFailed
	}

	evaluators.NormalizeFeatures(train)
	evaluators.NormalizeFeatures(test)
	opts := evaluators.VOC07Options{Costs: costs, CVFolds: 3, PositiveWeight: 2, Tol: 1e-4, MaxIter: 2000, Seed: 1}
	timeOurs := func(procs int) (evaluators.VOC07Result, float64, error) {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
		t0 := time.Now()
		res, err := evaluators.VOC07SVM(train, trainT, test, testT, opts)
		return res, time.Since(t0).Seconds(), err
	}
	fmt.Fprintf(stderr, "goselfsup on one core, then on %d...\n", runtime.NumCPU())
	res, oneCore, err := timeOurs(1)
	if err != nil {
		report(stderr, err)
		return exitFailed
	}
	_, allCores, err := timeOurs(runtime.NumCPU())
	if err != nil {
		report(stderr, err)
		return exitFailed
	}
	maxDiff := 0.0
	for c := range res.AP {
		maxDiff = math.Max(maxDiff, math.Abs(res.AP[c]-ref.AP[c]))
	}

	fmt.Fprintf(stdout, "The VOC07 SVM benchmark (3-fold CV over costs %v, refit, test AP; %d classes) on\n", costs, *classes)
	fmt.Fprintf(stdout, "synthetic features: %d train and %d test images of %d dimensions\n\n", *nTrain, *nTest, *dim)
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "\tseconds\tmAP")
	fmt.Fprintf(tw, "scikit-learn LinearSVC (one core)\t%.2f\t%.5f\n", ref.Seconds, ref.MAP)
	fmt.Fprintf(tw, "goselfsup, one core\t%.2f\t%.5f\n", oneCore, res.MAP)
	fmt.Fprintf(tw, "goselfsup, %d cores\t%.2f\t\n", runtime.NumCPU(), allCores)
	tw.Flush()
	fmt.Fprintf(stdout, "\nper core: %.2fx scikit-learn's speed; largest per-class AP difference %.5f\n", ref.Seconds/oneCore, maxDiff)
	line, _ := json.Marshal(benchResult{Benchmark: "svm", Ours: oneCore, Reference: ref.Seconds, Ratio: oneCore / ref.Seconds,
		Unit: "s per benchmark, one core", Details: map[string]string{
			"all_cores_s": fmt.Sprintf("%.2f", allCores), "map": fmt.Sprintf("%.5f", res.MAP),
			"reference_map": fmt.Sprintf("%.5f", ref.MAP), "max_ap_diff": fmt.Sprintf("%.5f", maxDiff)}})
	fmt.Fprintln(stdout, string(line))
	return exitOK
}

// syntheticVOC draws multi-label features: each of nc classes present in an image with
// probability 0.25 (a tenth of those only as difficult objects); an image's features are its
// classes' prototypes (shared by every split) plus Gaussian noise of deviation 4, which puts
// the mAP near that of real self-supervised features (0.86 at 256 dimensions), made
// non-negative as pooled ReLU features are.
func syntheticVOC(n, d, nc int, seed, split uint64) (evaluators.Matrix, [][]int8) {
	protoRNG := rand.New(rand.NewPCG(seed, 0x70726f))
	proto := make([][]float64, nc)
	for c := range proto {
		proto[c] = make([]float64, d)
		for j := range proto[c] {
			proto[c][j] = math.Abs(protoRNG.NormFloat64())
		}
	}
	rng := rand.New(rand.NewPCG(seed, split+1))
	x := evaluators.Matrix{Rows: n, Cols: d, Data: make([]float64, n*d)}
	t := make([][]int8, n)
	for i := range n {
		t[i] = make([]int8, nc)
		row := x.Row(i)
		for c := range nc {
			t[i][c] = evaluators.Absent
			if rng.Float64() < 0.25 {
				t[i][c] = evaluators.Present
				if rng.Float64() < 0.1 {
					t[i][c] = evaluators.Difficult
				}
				for j := range row {
					row[j] += proto[c][j]
				}
			}
		}
		for j := range row {
			row[j] = math.Max(0, row[j]+4*rng.NormFloat64())
		}
	}
	return x, t
}

func writeNPYFile[T npy.Element](path string, shape []int, data []T) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := npy.Write(f, shape, data); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
