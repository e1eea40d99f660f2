package det_test

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"

	"github.com/goselfsup/goselfsup/models/det"
	"github.com/goselfsup/goselfsup/registry"
)

// randomBoxes returns n boxes (x1, y1, x2, y2) with corners in [-20, 100) and sizes in
// [2, 60), so that some cross the 80x60 image used below.
func randomBoxes(rng *rand.Rand, n int) [][]float64 {
	out := make([][]float64, n)
	for i := range out {
		x, y := rng.Float64()*120-20, rng.Float64()*120-20
		out[i] = []float64{x, y, x + 2 + rng.Float64()*58, y + 2 + rng.Float64()*58}
	}
	return out
}

// tensorOf makes a [rows, cols] tensor of dtype from rows.
func tensorOf(rows [][]float64, dt dtypes.DType) *tensors.Tensor {
	flat := flatten2(rows)
	if dt == dtypes.Float32 {
		v := make([]float32, len(flat))
		for i, x := range flat {
			v[i] = float32(x)
		}
		return tensors.FromFlatDataAndDimensions(v, len(rows), len(rows[0]))
	}
	return tensors.FromFlatDataAndDimensions(flat, len(rows), len(rows[0]))
}

// TestCoderMatchesNumPy compares Encode and Decode with the NumPy transcription of mmdet
// 2.x's bbox2delta and delta2bbox, for the RPN and RoI-head coders and the options, with
// deltas beyond the dw/dh clamp and boxes beyond the image: float64 to 1e-9, float32 to
// 1e-5.
func TestCoderMatchesNumPy(t *testing.T) {
	python := numpyPython(t)
	b := pureGo(t)
	rng := rand.New(rand.NewPCG(5, 6))
	const n, numClasses = 40, 3
	proposals, gt, rois := randomBoxes(rng, n), randomBoxes(rng, n), randomBoxes(rng, n)
	deltas := make([][]float64, n)
	for i := range deltas {
		deltas[i] = make([]float64, 4*numClasses)
		for j := range deltas[i] {
			deltas[i][j] = rng.NormFloat64() * 1.5
			if rng.IntN(5) == 0 { // beyond ±|log(16/1000)| = ±4.135
				deltas[i][j] = math.Copysign(4+rng.Float64()*4, deltas[i][j])
			}
		}
	}
	maxShape := []int32{60, 80}
	coders := map[string]*det.DeltaXYWHBBoxCoder{
		"rpn":      {TargetStds: [4]float64{1, 1, 1, 1}, ClipBorder: true, CtrClamp: 32},
		"rcnn":     {TargetStds: [4]float64{0.1, 0.1, 0.2, 0.2}, ClipBorder: true, CtrClamp: 32},
		"means":    {TargetMeans: [4]float64{0.01, -0.02, 0.03, -0.04}, TargetStds: [4]float64{0.1, 0.1, 0.2, 0.2}, ClipBorder: true, CtrClamp: 32},
		"noclip":   {TargetStds: [4]float64{1, 1, 1, 1}, CtrClamp: 32},
		"ctrclamp": {TargetStds: [4]float64{0.5, 0.5, 1, 1}, ClipBorder: true, AddCtrClamp: true, CtrClamp: 4},
	}
	for name, c := range coders {
		for _, dt := range []dtypes.DType{dtypes.Float64, dtypes.Float32} {
			req := map[string]any{
				"dtype":        map[dtypes.DType]string{dtypes.Float32: "float32", dtypes.Float64: "float64"}[dt],
				"target_means": c.TargetMeans, "target_stds": c.TargetStds, "clip_border": c.ClipBorder,
				"add_ctr_clamp": c.AddCtrClamp, "ctr_clamp": c.CtrClamp, "wh_ratio_clip": det.DefaultWHRatioClip,
				"proposals": proposals, "gt": gt, "rois": rois, "deltas": deltas, "max_shape": maxShape,
			}
			var resp struct {
				Encoded [][]float64 `json:"encoded"`
				Decoded [][]float64 `json:"decoded"`
			}
			runAnchorReference(t, python, "coder", req, &resp)
			outs := MustExecOnceN(b, func(p, g, r, d, ms *Node) []*Node {
				return []*Node{c.Encode(p, g), c.Decode(r, d, ms)}
			}, tensorOf(proposals, dt), tensorOf(gt, dt), tensorOf(rois, dt), tensorOf(deltas, dt), maxShape)
			compareFlat(t, name+" "+dt.String()+" encoded", flat64(t, outs[0]), flatten2(resp.Encoded), tolerance(dt))
			compareFlat(t, name+" "+dt.String()+" decoded", flat64(t, outs[1]), flatten2(resp.Decoded), tolerance(dt))
		}
	}
}

// TestDecodeBatchedAndClamp checks, by hand, the clamp of dw at |log(16/1000)| and the
// clipping of each image of a batch to its own shape, and that Decode inverts Encode.
func TestDecodeBatchedAndClamp(t *testing.T) {
	b := pureGo(t)
	c := &det.DeltaXYWHBBoxCoder{TargetStds: [4]float64{1, 1, 1, 1}, ClipBorder: true}
	// Image 0: a 10x10 box at (10, 10), dw = 10 (clamped to 4.135...), image 50x50.
	// Image 1: the same box moved by dx = 2 (20 px right), no clipping inside 100x100.
	rois := [][][]float64{{{10, 10, 20, 20}}, {{10, 10, 20, 20}}}
	deltas := [][][]float64{{{0, 0, 10, 0}}, {{2, 0, 0, 0}}}
	maxShape := [][]float64{{50, 50}, {100, 100}}
	out := MustExecOnce(b, func(r, d, ms *Node) *Node { return c.Decode(r, d, ms) }, rois, deltas, maxShape)
	got := tensors.MustCopyFlatData[float64](out)
	w := 10 * math.Exp(math.Abs(math.Log(16.0/1000))) // 10 * 62.5 = 625 pixels
	want := []float64{math.Max(15-w/2, 0), 10, math.Min(15+w/2, 50), 20, 30, 10, 40, 20}
	for i := range want {
		if math.Abs(got[i]-want[i]) > 1e-9 {
			t.Fatalf("decoded %v, want %v", got, want)
		}
	}
	// Round trip: Decode(p, Encode(p, g)) = g without clipping.
	p := [][]float64{{0, 0, 10, 20}, {5, 5, 6, 7}, {-3, 2, 40, 9}}
	g := [][]float64{{1, 2, 15, 18}, {4, 4, 8, 8}, {0, 0, 30, 30}}
	rt := MustExecOnce(b, func(p, g *Node) *Node {
		rc := &det.DeltaXYWHBBoxCoder{TargetMeans: [4]float64{0.1, 0, -0.1, 0}, TargetStds: [4]float64{0.1, 0.1, 0.2, 0.2}}
		return rc.Decode(p, rc.Encode(p, g), nil)
	}, p, g)
	compareFlat(t, "round trip", tensors.MustCopyFlatData[float64](rt), flatten2(g), 1e-12)
}

// TestCoderRegistered decodes the RoI head's coder from a config table.
func TestCoderRegistered(t *testing.T) {
	v, err := registry.Default.Decode(registry.NewSpec(det.BBoxCoders, "DeltaXYWHBBoxCoder", map[string]any{
		"target_means": []any{0.0, 0.0, 0.0, 0.0}, "target_stds": []any{0.1, 0.1, 0.2, 0.2},
	}))
	if err != nil {
		t.Fatal(err)
	}
	c := v.(*det.DeltaXYWHBBoxCoder)
	if c.TargetStds != [4]float64{0.1, 0.1, 0.2, 0.2} || !c.ClipBorder {
		t.Errorf("decoded %+v", c)
	}
}
