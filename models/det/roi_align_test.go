package det_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"

	"github.com/goselfsup/goselfsup/models/det"
)

// roiAlignLoop is RoIAlign written as torchvision's loops, in float64, on NHWC features, with
// the adaptive grid clamped to maxGrid (the documented bound of det.RoIAlign).
func roiAlignLoop(feat []float64, b, h, w, c int, rois [][5]float64, oh, ow int, scale float64, sr int, aligned bool, maxGrid int) []float64 {
	out := make([]float64, len(rois)*oh*ow*c)
	off := 0.0
	if aligned {
		off = 0.5
	}
	bilinear := func(bi int, y, x float64, ch int) float64 {
		if y < -1 || y > float64(h) || x < -1 || x > float64(w) {
			return 0
		}
		y, x = max(y, 0), max(x, 0)
		yl, xl := int(y), int(x)
		yh, xh := yl+1, xl+1
		if yl >= h-1 {
			yl, yh, y = h-1, h-1, float64(h-1)
		}
		if xl >= w-1 {
			xl, xh, x = w-1, w-1, float64(w-1)
		}
		ly, lx := y-float64(yl), x-float64(xl)
		at := func(yy, xx int) float64 { return feat[((bi*h+yy)*w+xx)*c+ch] }
		return (1-ly)*(1-lx)*at(yl, xl) + (1-ly)*lx*at(yl, xh) + ly*(1-lx)*at(yh, xl) + ly*lx*at(yh, xh)
	}
	for r, roi := range rois {
		bi := min(max(int(roi[0]), 0), b-1)
		x0, y0 := roi[1]*scale-off, roi[2]*scale-off
		rw, rh := roi[3]*scale-off-x0, roi[4]*scale-off-y0
		if !aligned {
			rw, rh = max(rw, 1), max(rh, 1)
		}
		bh, bw := rh/float64(oh), rw/float64(ow)
		gh, gw := sr, sr
		if sr <= 0 {
			gh = min(max(int(math.Ceil(bh)), 0), maxGrid)
			gw = min(max(int(math.Ceil(bw)), 0), maxGrid)
		}
		count := float64(max(gh*gw, 1))
		for ph := range oh {
			for pw := range ow {
				for ch := range c {
					var s float64
					for iy := range gh {
						y := y0 + float64(ph)*bh + (float64(iy)+0.5)*bh/float64(gh)
						for ix := range gw {
							x := x0 + float64(pw)*bw + (float64(ix)+0.5)*bw/float64(gw)
							s += bilinear(bi, y, x, ch)
						}
					}
					out[((r*oh+ph)*ow+pw)*c+ch] = s / count
				}
			}
		}
	}
	return out
}

// TestRoIAlignClampedGrid checks RoIAlign against roiAlignLoop without Python, with a maxGrid
// small enough that large ROIs are clamped (the documented behaviour beyond the bound), and
// that the gradient is the transpose of the forward map (the forward is linear in the
// features: sum(y * r) = sum(feat * grad)).
func TestRoIAlignClampedGrid(t *testing.T) {
	be := opsBackend(t)
	rng := rand.New(rand.NewPCG(11, 12))
	const b, h, w, c, oh, ow, scale = 2, 7, 8, 2, 2, 3, 0.25
	rois := [][5]float64{{0, 1, 2, 30, 25}, {1, -8, -4, 40, 36}, {1, 3, 3, 5, 4}, {0, 20, 20, 18, 30}}
	var rv []float64
	for _, roi := range rois {
		rv = append(rv, roi[:]...)
	}
	feat := make([]float64, b*h*w*c)
	for i := range feat {
		feat[i] = rng.NormFloat64()
	}
	cot := make([]float64, len(rois)*oh*ow*c)
	for i := range cot {
		cot[i] = rng.NormFloat64()
	}
	for _, maxGrid := range []int{1, 2, 3, 8} {
		for _, aligned := range []bool{true, false} {
			want := roiAlignLoop(feat, b, h, w, c, rois, oh, ow, scale, 0, aligned, maxGrid)
			outs := MustExecOnceN(be, func(f, r, cot *Node) []*Node {
				y := det.RoIAlign(f, r, oh, ow, scale, 0, aligned, maxGrid)
				return []*Node{y, Gradient(ReduceAllSum(Mul(y, cot)), f)[0]}
			}, tensors.FromFlatDataAndDimensions(feat, b, h, w, c), tensors.FromFlatDataAndDimensions(rv, len(rois), 5),
				tensors.FromFlatDataAndDimensions(cot, len(rois), oh, ow, c))
			got := tensors.MustCopyFlatData[float64](outs[0])
			var d, lhs, rhs float64
			for i := range want {
				d = max(d, math.Abs(got[i]-want[i]))
				lhs += got[i] * cot[i]
			}
			for i, g := range tensors.MustCopyFlatData[float64](outs[1]) {
				rhs += g * feat[i]
			}
			if d > 1e-12 {
				t.Errorf("maxGrid %d aligned %v: output differs by %.3g", maxGrid, aligned, d)
			}
			if math.Abs(lhs-rhs) > 1e-12*max(1, math.Abs(lhs)) {
				t.Errorf("maxGrid %d aligned %v: <y, r> = %.15g but <feat, grad> = %.15g", maxGrid, aligned, lhs, rhs)
			}
		}
	}
}

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
	for _, tc := range opsDTypes {
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
	return [3]*tensors.Tensor{opsTensor(rc.dt, feat, roiB, roiH, roiW, roiC), opsTensor(rc.dt, rv, len(rois), 5),
		opsTensor(rc.dt, cot, len(rois), roiOH, roiOW, roiC)}
}

// checkRoIAlign compares RoIAlign and its gradient with respect to the features (of the sum
// of the output times a random cotangent) with torchvision.ops.roi_align: adaptive
// (sampling_ratio 0) and fixed grids, aligned or not.
func checkRoIAlign(t *testing.T, root string) {
	b := opsBackend(t)
	for _, rc := range roiCases() {
		x := rc.inputs()
		outs := MustExecOnceN(b, func(f, rois, cot *Node) []*Node {
			y := det.RoIAlign(f, rois, roiOH, roiOW, roiScale, rc.sr, rc.aligned, roiMaxGrid)
			return []*Node{y, Gradient(ReduceAllSum(Mul(y, cot)), f)[0]}
		}, x[0], x[1], x[2])
		d := filepath.Join(root, "roi_align", rc.name())
		for i, out := range []string{"y", "gfeat"} {
			dd := opsMaxRelDiff(t, outs[i], opsReadNPY(t, filepath.Join(d, out+".npy")))
			if dd > rc.tol {
				t.Errorf("%s: %s differs by %.3g", rc.name(), out, dd)
			}
			t.Logf("%s: %s differs by %.3g", rc.name(), out, dd)
		}
	}
}
