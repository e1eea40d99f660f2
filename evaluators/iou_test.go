package evaluators

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/goselfsup/goselfsup/internal/pyref"
	"github.com/goselfsup/goselfsup/registry"
)

func newIoU(t *testing.T, table map[string]any, classes []string) *IoUMetric {
	t.Helper()
	c, err := registry.Default.Decode(registry.NewSpec(registry.Evaluators, "IoUMetric", table))
	if err != nil {
		t.Fatal(err)
	}
	m, err := c.(*IoUMetricConfig).New(classes)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// Two images worked by hand: totals I = [2 2 0 0], P = [3 3 0 0], L = [3 2 1 0],
// U = [4 3 1 0]; class d is absent, so its IoU and Acc are NaN and the means skip it.
func TestIoUMetricByHand(t *testing.T) {
	add := func(m *IoUMetric) {
		t.Helper()
		// Ignored pixels may be predicted as anything, even outside the classes.
		if err := m.AddUint8([]uint8{0, 1, 1, 1, 0, 7}, []uint8{0, 0, 1, 1, 255, 255}); err != nil {
			t.Fatal(err)
		}
		if err := m.Add([]int32{0, 0}, []int32{0, 2}); err != nil {
			t.Fatal(err)
		}
	}
	classes := []string{"a", "b", "c", "d"}
	m := newIoU(t, map[string]any{}, classes)
	add(m)
	r := m.Compute()
	want := map[string]float64{"aAcc": 66.67, "mIoU": 38.89, "mAcc": 55.56}
	for k, v := range want {
		if r.Summary[k] != v {
			t.Errorf("%s = %v, want %v", k, r.Summary[k], v)
		}
	}
	if len(r.Summary) != len(want) || fmt.Sprint(r.Order) != "[aAcc mIoU mAcc]" {
		t.Errorf("summary %v in order %v", r.Summary, r.Order)
	}
	metrics := r.Metrics()
	for k, v := range map[string]float64{"IoU.a": 50, "IoU.b": 66.67, "IoU.c": 0, "Acc.a": 66.67, "Acc.b": 100, "Acc.c": 0, "mIoU": 38.89} {
		if metrics[k] != v {
			t.Errorf("Metrics()[%s] = %v, want %v", k, metrics[k], v)
		}
	}
	if _, ok := metrics["IoU.d"]; ok {
		t.Errorf("the absent class d has an IoU: %v", metrics)
	}
	table := strings.Join([]string{
		"+-------+-------+-------+",
		"| Class |  IoU  |  Acc  |",
		"+-------+-------+-------+",
		"|   a   |  50.0 | 66.67 |",
		"|   b   | 66.67 | 100.0 |",
		"|   c   |  0.0  |  0.0  |",
		"|   d   |  nan  |  nan  |",
		"+-------+-------+-------+",
	}, "\n")
	if got := r.Table(); got != table {
		t.Errorf("table\n%s\nwant\n%s", got, table)
	}

	// nan_to_num = 0 counts the absent class as 0; mDice and mFscore add their columns.
	m = newIoU(t, map[string]any{"nan_to_num": 0.0, "iou_metrics": []string{"mIoU", "mDice", "mFscore"}}, classes)
	add(m)
	r = m.Compute()
	// Dice = 2I/(P+L) = [2/3 4/5 0 0]; Precision = I/P = [2/3 2/3 0 0]; Recall = Acc;
	// Fscore = 2PR/(P+R) = [2/3 0.8 0 0] (0 for c: 0/0 then nan_to_num).
	want = map[string]float64{"aAcc": 66.67, "mIoU": 29.17, "mAcc": 41.67, "mDice": 36.67, "mFscore": 36.67,
		"mPrecision": 33.33, "mRecall": 41.67}
	for k, v := range want {
		if r.Summary[k] != v {
			t.Errorf("nan_to_num 0: %s = %v, want %v", k, r.Summary[k], v)
		}
	}
	if got := fmt.Sprint(r.Columns); got != "[IoU Acc Dice Fscore Precision Recall]" {
		t.Errorf("columns %s", got)
	}
}

func TestIoUMetricRefusesBadLabels(t *testing.T) {
	m := newIoU(t, map[string]any{}, []string{"a", "b"})
	for _, tc := range []struct{ pred, label []int32 }{
		{[]int32{0, 2}, []int32{0, 1}},    // predicted class 2 of 2
		{[]int32{0, -1}, []int32{0, 1}},   // negative prediction
		{[]int32{0, 1}, []int32{0, 5}},    // label neither a class nor ignored
		{[]int32{0, 1, 1}, []int32{0, 1}}, // sizes differ
	} {
		if err := m.Add(tc.pred, tc.label); err == nil {
			t.Errorf("pred %v, label %v: no error", tc.pred, tc.label)
		}
	}
	if m.Images != 0 || m.Total.Label[0] != 0 {
		t.Errorf("refused images were counted: %d images, %v", m.Images, m.Total)
	}
	c := &IoUMetricConfig{IgnoreIndex: 1, IoUMetrics: []string{"mIoU"}, Beta: 1}
	if _, err := c.New([]string{"a", "b"}); err == nil {
		t.Error("ignore_index 1 of 2 classes accepted")
	}
	for _, bad := range []map[string]any{{"iou_metrics": []string{"mAP"}}, {"beta": 0.0}} {
		if _, err := registry.Default.Decode(registry.NewSpec(registry.Evaluators, "IoUMetric", bad)); err == nil {
			t.Errorf("IoUMetric %v decoded", bad)
		}
	}
}

// Random label maps, accumulated over images of several sizes, against NumPy
// (benchmarks/iou_reference.py): ignored pixels, a class never labelled, one never
// labelled nor predicted (NaN), one never predicted.
func TestIoUMetricAgreesWithNumPy(t *testing.T) {
	python, err := pyref.Python("numpy")
	if err != nil {
		t.Skip(err)
	}
	script, err := filepath.Abs(filepath.Join("..", "benchmarks", "iou_reference.py"))
	if err != nil {
		t.Fatal(err)
	}
	const nc = 8
	classes := make([]string, nc)
	for c := range classes {
		classes[c] = fmt.Sprintf("c%d", c)
	}
	rng := rand.New(rand.NewPCG(13, 21))
	dir := t.TempDir()
	type image struct{ pred, label []uint8 }
	var images []image
	for i := range 5 {
		h, w := 7+rng.IntN(20), 9+rng.IntN(30)
		pred, label := make([]uint8, h*w), make([]uint8, h*w)
		for p := range pred {
			label[p] = uint8(rng.IntN(5)) // classes 0-4 labelled
			if rng.IntN(3) == 0 {
				label[p] = uint8(5 + rng.IntN(2)*2) // and 5, 7; never 6
			}
			switch r := rng.IntN(10); {
			case r < 5:
				pred[p] = label[p]
			case r < 9:
				pred[p] = uint8([]int{0, 1, 2, 3, 4, 7}[rng.IntN(6)]) // never 5 nor 6
			default:
				pred[p] = uint8(rng.IntN(nc))
				if pred[p] == 6 || pred[p] == 5 {
					pred[p] = 1
				}
			}
			if rng.IntN(10) == 0 {
				label[p] = 255
				pred[p] = uint8(rng.IntN(256)) // anything, unseen
			}
		}
		images = append(images, image{pred, label})
		writeNPY(t, filepath.Join(dir, fmt.Sprintf("pred_%d.npy", i)), []int{h, w}, pred)
		writeNPY(t, filepath.Join(dir, fmt.Sprintf("label_%d.npy", i)), []int{h, w}, label)
	}
	for _, tc := range []struct {
		metrics  []string
		nanToNum *float64
		beta     float64
	}{
		{[]string{"mIoU"}, nil, 1},
		{[]string{"mIoU", "mDice", "mFscore"}, nil, 1},
		{[]string{"mFscore", "mIoU"}, new(float64), 0.5},
	} {
		table := map[string]any{"iou_metrics": tc.metrics, "beta": tc.beta}
		nan := "none"
		if tc.nanToNum != nil {
			table["nan_to_num"] = *tc.nanToNum
			nan = fmt.Sprint(*tc.nanToNum)
		}
		m := newIoU(t, table, classes)
		for _, im := range images {
			if err := m.AddUint8(im.pred, im.label); err != nil {
				t.Fatal(err)
			}
		}
		r := m.Compute()
		out, err := exec.Command(python, script, dir, fmt.Sprint(nc), "255", strings.Join(tc.metrics, ","), nan, fmt.Sprint(tc.beta)).Output()
		if err != nil {
			t.Fatal(err)
		}
		var want struct {
			Summary map[string]*float64   `json:"summary"`
			Class   map[string][]*float64 `json:"class"`
			Table   *string               `json:"table"`
		}
		if err := json.Unmarshal(out, &want); err != nil {
			t.Fatal(err)
		}
		same := func(got float64, want *float64) bool {
			if want == nil {
				return math.IsNaN(got)
			}
			return math.Abs(got-*want) < 1e-9
		}
		name := fmt.Sprintf("%v nan_to_num %s beta %g", tc.metrics, nan, tc.beta)
		if len(r.Summary) != len(want.Summary) {
			t.Errorf("%s: summary %v, NumPy's %v", name, r.Summary, want.Summary)
		}
		for k, v := range want.Summary {
			if !same(r.Summary[k], v) {
				t.Errorf("%s: %s = %v, NumPy's %v", name, k, r.Summary[k], *v)
			}
		}
		for k, v := range want.Class {
			for c := range v {
				if !same(r.Class[k][c], v[c]) {
					t.Errorf("%s: %s of class %d = %v, NumPy's %v", name, k, c, r.Class[k][c], v[c])
				}
			}
		}
		if tc.nanToNum == nil && !math.IsNaN(r.Class["IoU"][6]) {
			t.Errorf("%s: class 6 is absent and has IoU %v", name, r.Class["IoU"][6])
		}
		if want.Table != nil && r.Table() != *want.Table {
			t.Errorf("%s: table\n%s\nPrettyTable's\n%s", name, r.Table(), *want.Table)
		}
	}
}
