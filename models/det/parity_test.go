package det_test

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"

	"github.com/goselfsup/goselfsup/engine"
	"github.com/goselfsup/goselfsup/engine/backend"
	"github.com/goselfsup/goselfsup/internal/pyref"
	"github.com/goselfsup/goselfsup/models/det"
)

// The parity tests share one run of benchmarks/det_ops_reference.py (importing torch takes
// seconds): the first test to need it writes every test's inputs under one directory, runs the
// reference once in mode "all", and the tests then read their results. Inputs come from fixed
// seeds, so a test regenerates its own instead of reading them back.
var (
	refOnce sync.Once
	refRoot string
	refSkip error // no Python with torch and torchvision
	refErr  error
)

// reference returns the directory the reference wrote into, or skips the test.
func reference(t *testing.T) string {
	t.Helper()
	refOnce.Do(func() {
		python, err := pyref.Python("torch", "torchvision", "numpy")
		if err != nil {
			refSkip = err
			return
		}
		if refRoot, refErr = os.MkdirTemp("", "det-ops-reference-"); refErr != nil {
			return
		}
		if refErr = writeAllInputs(refRoot); refErr != nil {
			return
		}
		cmd := exec.Command(python, filepath.Join("..", "..", "benchmarks", "det_ops_reference.py"), "all", refRoot)
		if out, err := cmd.CombinedOutput(); err != nil {
			refErr = fmt.Errorf("det_ops_reference.py: %v\n%s", err, out)
		}
	})
	if refSkip != nil {
		t.Skip(refSkip)
	}
	if refErr != nil {
		t.Fatal(refErr)
	}
	return refRoot
}

func TestMain(m *testing.M) {
	code := m.Run()
	if refRoot != "" {
		os.RemoveAll(refRoot)
	}
	os.Exit(code)
}

// writeAllInputs writes the inputs of every parity test under root/<mode>/<case>/.
func writeAllInputs(root string) error {
	for _, tc := range dtypeCases {
		for k, p := range iouProblems(tc.dt) {
			if err := writeCase(filepath.Join(root, "iou", fmt.Sprintf("%s-%d", tc.dt, k)), nil, map[string]*tensors.Tensor{
				"a": tensorOf(tc.dt, p[0], len(p[0])/4, 4), "b": tensorOf(tc.dt, p[1], len(p[1])/4, 4)}); err != nil {
				return err
			}
		}
	}
	for _, mode := range []string{"nms", "batched_nms"} {
		for _, gr := range nmsGroups(mode) {
			n := len(gr.cases[0].scores)
			for i, c := range gr.cases {
				if err := writeCase(filepath.Join(root, mode, gr.caseName(i)), map[string]float64{"iou_thr": gr.thr}, map[string]*tensors.Tensor{
					"boxes":   tensorOf(gr.dt, c.boxes, n, 4),
					"scores":  tensorOf(gr.dt, c.scores, n),
					"valid":   tensors.FromFlatDataAndDimensions(c.valid, n),
					"classes": tensors.FromFlatDataAndDimensions(c.classes, n),
				}); err != nil {
					return err
				}
			}
		}
	}
	for _, rc := range roiCases() {
		x := rc.inputs()
		if err := writeCase(filepath.Join(root, "roi_align", rc.name()), map[string]any{"out_h": roiOH, "out_w": roiOW,
			"scale": roiScale, "sampling_ratio": rc.sr, "aligned": rc.aligned},
			map[string]*tensors.Tensor{"feat": x[0], "rois": x[1], "r": x[2]}); err != nil {
			return err
		}
	}
	return nil
}

// writeCase makes dir and writes the tensors (by file stem) and spec into it.
func writeCase(dir string, spec any, arrays map[string]*tensors.Tensor) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for stem, tt := range arrays {
		if err := engine.SaveNPY(filepath.Join(dir, stem+".npy"), tt); err != nil {
			return err
		}
	}
	if spec == nil {
		return nil
	}
	data, err := json.Marshal(spec)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "spec.json"), data, 0o644)
}

func pureGo(t *testing.T) backends.Backend {
	t.Helper()
	b, err := backend.New("go")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func readNPY(t *testing.T, path string) *tensors.Tensor {
	t.Helper()
	tt, err := engine.LoadNPY(path)
	if err != nil {
		t.Fatal(err)
	}
	return tt
}

// floats returns the values of a float or integer tensor as float64.
func floats(t *testing.T, tt *tensors.Tensor) []float64 {
	t.Helper()
	switch tt.DType() {
	case dtypes.Float64:
		return tensors.MustCopyFlatData[float64](tt)
	case dtypes.Float32:
		return conv(tensors.MustCopyFlatData[float32](tt))
	case dtypes.Int64:
		return conv(tensors.MustCopyFlatData[int64](tt))
	case dtypes.Int32:
		return conv(tensors.MustCopyFlatData[int32](tt))
	}
	t.Fatalf("unexpected dtype %s", tt.DType())
	return nil
}

func conv[T float32 | int64 | int32](v []T) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = float64(x)
	}
	return out
}

// maxRelDiff is max |a - b| / max(1, max |b|), +Inf for different shapes.
func maxRelDiff(t *testing.T, a, b *tensors.Tensor) float64 {
	t.Helper()
	if !a.Shape().Equal(b.Shape()) {
		t.Logf("shapes differ: %s vs %s", a.Shape(), b.Shape())
		return math.Inf(1)
	}
	av, bv := floats(t, a), floats(t, b)
	var d, m float64
	for i := range av {
		d = max(d, math.Abs(av[i]-bv[i]))
		m = max(m, math.Abs(bv[i]))
	}
	return d / max(1, m)
}

// tensorOf builds a tensor of dtype from float64 values.
func tensorOf(dt dtypes.DType, v []float64, dims ...int) *tensors.Tensor {
	if dt == dtypes.Float32 {
		f := make([]float32, len(v))
		for i, x := range v {
			f[i] = float32(x)
		}
		return tensors.FromFlatDataAndDimensions(f, dims...)
	}
	return tensors.FromFlatDataAndDimensions(v, dims...)
}

// randomBoxes returns n boxes (x1, y1, x2, y2) clustered around a few centres so that many
// overlap, with some of zero width or height, some identical pairs and some far apart.
func randomBoxes(rng *rand.Rand, n int) []float64 {
	centres := [][2]float64{{20, 20}, {24, 22}, {60, 40}, {10, 50}}
	v := make([]float64, 0, 4*n)
	for i := range n {
		c := centres[rng.IntN(len(centres))]
		cx, cy := c[0]+rng.NormFloat64()*3, c[1]+rng.NormFloat64()*3
		w, h := 4+rng.Float64()*16, 4+rng.Float64()*16
		switch {
		case i%11 == 3:
			w = 0
		case i%13 == 5:
			h = 0
		case i%9 == 7 && i > 0: // a copy of the previous box
			v = append(v, v[len(v)-4:]...)
			continue
		case i%17 == 1:
			cx, cy = 200+rng.Float64()*50, 200
		}
		v = append(v, cx-w/2, cy-h/2, cx+w/2, cy+h/2)
	}
	return v
}

var dtypeCases = []struct {
	dt  dtypes.DType
	tol float64
}{{dtypes.Float64, 1e-9}, {dtypes.Float32, 1e-5}}

// iouProblems returns two problems of boxes (a [23, 4], b [17, 4]) for dt.
func iouProblems(dt dtypes.DType) [2][2][]float64 {
	rng := rand.New(rand.NewPCG(1, uint64(dt)))
	var p [2][2][]float64
	for k := range p {
		p[k] = [2][]float64{randomBoxes(rng, 23), randomBoxes(rng, 17)}
	}
	return p
}

// TestBoxIoUMatchesTorchvision compares BoxIoU with torchvision.ops.box_iou (NaN as 0), on
// both problems at once (a leading batch axis).
func TestBoxIoUMatchesTorchvision(t *testing.T) {
	root := reference(t)
	b := pureGo(t)
	for _, tc := range dtypeCases {
		p := iouProblems(tc.dt)
		n, m := len(p[0][0])/4, len(p[0][1])/4
		got := floats(t, MustExecOnce(b, det.BoxIoU, tensorOf(tc.dt, append(p[0][0], p[1][0]...), 2, n, 4),
			tensorOf(tc.dt, append(p[0][1], p[1][1]...), 2, m, 4)))
		for k := range p {
			want := readNPY(t, filepath.Join(root, "iou", fmt.Sprintf("%s-%d", tc.dt, k), "iou.npy"))
			d := maxRelDiff(t, tensorOf(tc.dt, got[n*m*k:n*m*(k+1)], n, m), want)
			if d > tc.tol {
				t.Errorf("%s problem %d: IoU differs by %.3g", tc.dt, k, d)
			}
			t.Logf("%s problem %d: IoU differs by %.3g", tc.dt, k, d)
		}
	}
}

// nmsCase is one NMS problem.
type nmsCase struct {
	boxes, scores []float64
	classes       []int64
	valid         []bool
}

// randomNMSCase draws n clustered boxes (randomBoxes), scores uniform or, with levels > 0, on
// that many levels (ties; a copied box also copies its predecessor's score), 85% valid, and
// classes in [0, classes).
func randomNMSCase(rng *rand.Rand, n, levels, classes int) nmsCase {
	c := nmsCase{boxes: randomBoxes(rng, n), scores: make([]float64, n), valid: make([]bool, n), classes: make([]int64, n)}
	for i := range n {
		c.scores[i] = rng.Float64()
		if levels > 0 {
			c.scores[i] = float64(rng.IntN(levels)) / float64(levels)
			if i > 0 && slices.Equal(c.boxes[4*i:4*i+4], c.boxes[4*i-4:4*i]) {
				c.scores[i] = c.scores[i-1]
			}
		}
		c.valid[i] = rng.Float64() < 0.85
		c.classes[i] = int64(rng.IntN(classes))
	}
	return c
}

// nmsGroup is a batch of NMS problems of one size, dtype and threshold, checked with every
// maxOut of maxOuts.
type nmsGroup struct {
	name    string
	dt      dtypes.DType
	cases   []nmsCase
	thr     float64
	maxOuts []int
}

func (g nmsGroup) caseName(i int) string { return fmt.Sprintf("%s-%s-%g-%d", g.name, g.dt, g.thr, i) }

// nmsGroups returns the problems of mode "nms" or "batched_nms". Problems with tied scores
// have 16 boxes: PyTorch's CPU sort, which torchvision's nms uses, keeps equal values in index
// order only up to 16 elements (std::sort's insertion sort), and the tie rule of NMS is that
// order; larger problems with ties are checked against a Go greedy loop (nms_test.go).
func nmsGroups(mode string) []nmsGroup {
	var groups []nmsGroup
	for _, tc := range dtypeCases {
		rng := rand.New(rand.NewPCG(3, uint64(tc.dt)))
		if mode == "nms" {
			var cont, ties []nmsCase
			for i := range 6 {
				cont = append(cont, randomNMSCase(rng, 40, 0, 1))
				ties = append(ties, randomNMSCase(rng, 16, 3-i%2, 1))
			}
			groups = append(groups,
				nmsGroup{"uniform", tc.dt, cont, 0.5, []int{40, 5}},
				nmsGroup{"uniform", tc.dt, cont, 0.7, []int{43}},
				nmsGroup{"uniform", tc.dt, cont, 0.3, []int{40}},
				nmsGroup{"ties", tc.dt, ties, 0.5, []int{16, 3}},
				nmsGroup{"ties", tc.dt, ties, 0.3, []int{16}})
			continue
		}
		var cont, ties []nmsCase
		for range 4 {
			cont = append(cont, randomNMSCase(rng, 40, 0, 3))
			ties = append(ties, randomNMSCase(rng, 16, 2, 2))
		}
		groups = append(groups,
			nmsGroup{"uniform", tc.dt, cont, 0.5, []int{40, 7}},
			nmsGroup{"ties", tc.dt, ties, 0.5, []int{16}})
	}
	return groups
}

// checkNMS runs (Batched)NMS on all problems of each group at once (a leading batch axis) and
// compares the kept indices with the reference's, truncated to maxOut.
func checkNMS(t *testing.T, mode string) {
	root := reference(t)
	b := pureGo(t)
	for _, gr := range nmsGroups(mode) {
		k, n := len(gr.cases), len(gr.cases[0].scores)
		var boxes, scores []float64
		var classes []int64
		var valid []bool
		for _, c := range gr.cases {
			boxes, scores = append(boxes, c.boxes...), append(scores, c.scores...)
			classes, valid = append(classes, c.classes...), append(valid, c.valid...)
		}
		for _, maxOut := range gr.maxOuts {
			outs := MustExecOnceN(b, func(bx, sc, cl, va *Node) []*Node {
				var keep, ok *Node
				if mode == "nms" {
					keep, ok = det.NMS(bx, sc, va, gr.thr, maxOut)
				} else {
					keep, ok = det.BatchedNMS(bx, sc, cl, va, gr.thr, maxOut)
				}
				return []*Node{keep, ok}
			}, tensorOf(gr.dt, boxes, k, n, 4), tensorOf(gr.dt, scores, k, n),
				tensors.FromFlatDataAndDimensions(classes, k, n), tensors.FromFlatDataAndDimensions(valid, k, n))
			keep := tensors.MustCopyFlatData[int32](outs[0])
			ok := tensors.MustCopyFlatData[bool](outs[1])
			for i := range gr.cases {
				want := floats(t, readNPY(t, filepath.Join(root, mode, gr.caseName(i), "keep.npy")))
				want = want[:min(len(want), maxOut)]
				var got []float64
				for j := range maxOut {
					if ok[i*maxOut+j] {
						if len(got) != j {
							t.Fatalf("%s %s: keepValid is not a prefix", mode, gr.caseName(i))
						}
						got = append(got, float64(keep[i*maxOut+j]))
					} else if keep[i*maxOut+j] != 0 {
						t.Errorf("%s %s: invalid slot %d holds %d", mode, gr.caseName(i), j, keep[i*maxOut+j])
					}
				}
				if fmt.Sprint(got) != fmt.Sprint(want) {
					t.Errorf("%s %s maxOut %d:\n got %v\nwant %v", mode, gr.caseName(i), maxOut, got, want)
				}
			}
		}
	}
}

// TestNMSMatchesTorchvision compares NMS with torchvision.ops.nms on overlapping random boxes
// (zero-area ones and identical pairs included), with uniform scores and with tied ones, about
// 15% of the boxes invalid, keeping all or only the first few.
func TestNMSMatchesTorchvision(t *testing.T) { checkNMS(t, "nms") }

// TestBatchedNMSMatchesTorchvision compares BatchedNMS with torchvision's batched_nms by
// coordinate offsets (mmcv's batched_nms below its split_thr).
func TestBatchedNMSMatchesTorchvision(t *testing.T) { checkNMS(t, "batched_nms") }

// The RoIAlign parity problems: features [2, 9, 11, 3] at spatial scale 1/2, output 3 x 4.
const (
	roiB, roiH, roiW, roiC = 2, 9, 11, 3
	roiOH, roiOW           = 3, 4
	roiScale               = 0.5
	roiMaxGrid             = 10
)

type roiCase struct {
	dt      dtypes.DType
	tol     float64
	sr      int
	aligned bool
	seed    uint64
}

func (rc roiCase) name() string {
	return fmt.Sprintf("%s-sr%d-aligned%v", rc.dt, rc.sr, rc.aligned)
}

func roiCases() []roiCase {
	var cases []roiCase
	for _, tc := range dtypeCases {
		for i, cfg := range []struct {
			sr      int
			aligned bool
		}{{0, true}, {2, true}, {0, false}, {1, true}} {
			cases = append(cases, roiCase{tc.dt, tc.tol, cfg.sr, cfg.aligned, uint64(10*int(tc.dt) + i)})
		}
	}
	return cases
}

// inputs returns feat [B, H, W, C], rois [R, 5] and the output's cotangent [R, oh, ow, C]:
// ROIs of many sizes (tiny, empty, inverted, crossing the border, larger than the map, whose
// adaptive grid is 9 x 7, within roiMaxGrid) and random ones.
func (rc roiCase) inputs() [3]*tensors.Tensor {
	rng := rand.New(rand.NewPCG(7, rc.seed))
	rois := [][5]float64{
		{0, 2, 3, 14, 12},       // medium
		{1, 0.3, 0.2, 0.9, 0.7}, // tiny
		{0, 5, 5, 5, 5},         // empty
		{1, 10, 8, 6, 4},        // inverted
		{0, -6, -5, 8, 30},      // crossing the top, left and bottom borders
		{1, 14, 10, 26, 21},     // crossing the bottom and right borders
		{0, -10, -10, 40, 40},   // larger than the map
		{1, 21.7, 17.2, 22.9, 18.4},
		{0, 18, 1, 19.5, 16.9}, // thin and tall
	}
	for i := range 7 {
		x, y := rng.Float64()*24-2, rng.Float64()*20-2
		rois = append(rois, [5]float64{float64(i % 2), x, y, x + rng.Float64()*20, y + rng.Float64()*20})
	}
	var rv []float64
	for _, roi := range rois {
		rv = append(rv, roi[:]...)
	}
	feat := make([]float64, roiB*roiH*roiW*roiC)
	for i := range feat {
		feat[i] = rng.NormFloat64()
	}
	cot := make([]float64, len(rois)*roiOH*roiOW*roiC)
	for i := range cot {
		cot[i] = rng.NormFloat64()
	}
	return [3]*tensors.Tensor{tensorOf(rc.dt, feat, roiB, roiH, roiW, roiC), tensorOf(rc.dt, rv, len(rois), 5),
		tensorOf(rc.dt, cot, len(rois), roiOH, roiOW, roiC)}
}

// TestRoIAlignMatchesTorchvision compares RoIAlign and its gradient with respect to the
// features (of the sum of the output times a random cotangent) with torchvision.ops.roi_align:
// adaptive (sampling_ratio 0) and fixed grids, aligned or not.
func TestRoIAlignMatchesTorchvision(t *testing.T) {
	root := reference(t)
	b := pureGo(t)
	for _, rc := range roiCases() {
		x := rc.inputs()
		outs := MustExecOnceN(b, func(f, rois, cot *Node) []*Node {
			y := det.RoIAlign(f, rois, roiOH, roiOW, roiScale, rc.sr, rc.aligned, roiMaxGrid)
			return []*Node{y, Gradient(ReduceAllSum(Mul(y, cot)), f)[0]}
		}, x[0], x[1], x[2])
		d := filepath.Join(root, "roi_align", rc.name())
		for i, out := range []string{"y", "gfeat"} {
			dd := maxRelDiff(t, outs[i], readNPY(t, filepath.Join(d, out+".npy")))
			if dd > rc.tol {
				t.Errorf("%s: %s differs by %.3g", rc.name(), out, dd)
			}
			t.Logf("%s: %s differs by %.3g", rc.name(), out, dd)
		}
	}
}
