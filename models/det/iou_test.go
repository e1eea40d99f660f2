package det_test

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
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

// TestOpsMatchTorchvision compares the ops with torchvision (benchmarks/det_ops_reference.py)
// in float64 (to 1e-9) and float32 (to 1e-5): it writes every subtest's inputs, runs the
// reference once (importing torch takes seconds), then checks BoxIoU, NMS, BatchedNMS and
// RoIAlign in subtests. Inputs come from fixed seeds, so each check regenerates its own.
func TestOpsMatchTorchvision(t *testing.T) {
	python, err := pyref.Python("torch", "torchvision", "numpy")
	if err != nil {
		t.Skip(err)
	}
	root := t.TempDir()
	if err := writeOpsInputs(root); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(python, filepath.Join("..", "..", "benchmarks", "det_ops_reference.py"), "all", root)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("det_ops_reference.py: %v\n%s", err, out)
	}
	t.Run("BoxIoU", func(t *testing.T) { checkBoxIoU(t, root) })
	t.Run("NMS", func(t *testing.T) { checkNMS(t, root, "nms") })
	t.Run("BatchedNMS", func(t *testing.T) { checkNMS(t, root, "batched_nms") })
	t.Run("RoIAlign", func(t *testing.T) { checkRoIAlign(t, root) })
}

// writeOpsInputs writes the inputs of every parity test under root/<mode>/<case>/.
func writeOpsInputs(root string) error {
	for _, tc := range opsDTypes {
		for k, p := range iouProblems(tc.dt) {
			if err := opsWriteCase(filepath.Join(root, "iou", fmt.Sprintf("%s-%d", tc.dt, k)), nil, map[string]*tensors.Tensor{
				"a": opsTensor(tc.dt, p[0], len(p[0])/4, 4), "b": opsTensor(tc.dt, p[1], len(p[1])/4, 4)}); err != nil {
				return err
			}
		}
	}
	for _, mode := range []string{"nms", "batched_nms"} {
		for _, gr := range nmsGroups(mode) {
			n := len(gr.cases[0].scores)
			for i, c := range gr.cases {
				if err := opsWriteCase(filepath.Join(root, mode, gr.caseName(i)), map[string]float64{"iou_thr": gr.thr}, map[string]*tensors.Tensor{
					"boxes":   opsTensor(gr.dt, c.boxes, n, 4),
					"scores":  opsTensor(gr.dt, c.scores, n),
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
		if err := opsWriteCase(filepath.Join(root, "roi_align", rc.name()), map[string]any{"out_h": roiOH, "out_w": roiOW,
			"scale": roiScale, "sampling_ratio": rc.sr, "aligned": rc.aligned},
			map[string]*tensors.Tensor{"feat": x[0], "rois": x[1], "r": x[2]}); err != nil {
			return err
		}
	}
	return nil
}

// opsWriteCase makes dir and writes the tensors (by file stem) and spec into it.
func opsWriteCase(dir string, spec any, arrays map[string]*tensors.Tensor) error {
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

func opsBackend(t *testing.T) backends.Backend {
	t.Helper()
	b, err := backend.New("go")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func opsReadNPY(t *testing.T, path string) *tensors.Tensor {
	t.Helper()
	tt, err := engine.LoadNPY(path)
	if err != nil {
		t.Fatal(err)
	}
	return tt
}

// opsFloats returns the values of a float or integer tensor as float64.
func opsFloats(t *testing.T, tt *tensors.Tensor) []float64 {
	t.Helper()
	switch tt.DType() {
	case dtypes.Float64:
		return tensors.MustCopyFlatData[float64](tt)
	case dtypes.Float32:
		return opsConv(tensors.MustCopyFlatData[float32](tt))
	case dtypes.Int64:
		return opsConv(tensors.MustCopyFlatData[int64](tt))
	case dtypes.Int32:
		return opsConv(tensors.MustCopyFlatData[int32](tt))
	}
	t.Fatalf("unexpected dtype %s", tt.DType())
	return nil
}

func opsConv[T float32 | int64 | int32](v []T) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = float64(x)
	}
	return out
}

// opsMaxRelDiff is max |a - b| / max(1, max |b|), +Inf for different shapes.
func opsMaxRelDiff(t *testing.T, a, b *tensors.Tensor) float64 {
	t.Helper()
	if !a.Shape().Equal(b.Shape()) {
		t.Logf("shapes differ: %s vs %s", a.Shape(), b.Shape())
		return math.Inf(1)
	}
	av, bv := opsFloats(t, a), opsFloats(t, b)
	var d, m float64
	for i := range av {
		d = max(d, math.Abs(av[i]-bv[i]))
		m = max(m, math.Abs(bv[i]))
	}
	return d / max(1, m)
}

// opsTensor builds a tensor of dtype from float64 values.
func opsTensor(dt dtypes.DType, v []float64, dims ...int) *tensors.Tensor {
	if dt == dtypes.Float32 {
		f := make([]float32, len(v))
		for i, x := range v {
			f[i] = float32(x)
		}
		return tensors.FromFlatDataAndDimensions(f, dims...)
	}
	return tensors.FromFlatDataAndDimensions(v, dims...)
}

// opsRandomBoxes returns n boxes (x1, y1, x2, y2) clustered around a few centres so that many
// overlap, with some of zero width or height, some identical pairs and some far apart.
func opsRandomBoxes(rng *rand.Rand, n int) []float64 {
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

var opsDTypes = []struct {
	dt  dtypes.DType
	tol float64
}{{dtypes.Float64, 1e-9}, {dtypes.Float32, 1e-5}}

// iouProblems returns two problems of boxes (a [23, 4], b [17, 4]) for dt.
func iouProblems(dt dtypes.DType) [2][2][]float64 {
	rng := rand.New(rand.NewPCG(1, uint64(dt)))
	var p [2][2][]float64
	for k := range p {
		p[k] = [2][]float64{opsRandomBoxes(rng, 23), opsRandomBoxes(rng, 17)}
	}
	return p
}

// checkBoxIoU compares BoxIoU with torchvision.ops.box_iou (NaN as 0), on both problems at
// once (a leading batch axis).
func checkBoxIoU(t *testing.T, root string) {
	b := opsBackend(t)
	for _, tc := range opsDTypes {
		p := iouProblems(tc.dt)
		n, m := len(p[0][0])/4, len(p[0][1])/4
		got := opsFloats(t, MustExecOnce(b, det.BoxIoU, opsTensor(tc.dt, append(p[0][0], p[1][0]...), 2, n, 4),
			opsTensor(tc.dt, append(p[0][1], p[1][1]...), 2, m, 4)))
		for k := range p {
			want := opsReadNPY(t, filepath.Join(root, "iou", fmt.Sprintf("%s-%d", tc.dt, k), "iou.npy"))
			d := opsMaxRelDiff(t, opsTensor(tc.dt, got[n*m*k:n*m*(k+1)], n, m), want)
			if d > tc.tol {
				t.Errorf("%s problem %d: IoU differs by %.3g", tc.dt, k, d)
			}
			t.Logf("%s problem %d: IoU differs by %.3g", tc.dt, k, d)
		}
	}
}
