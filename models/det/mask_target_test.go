package det_test

import (
	"math"
	"math/rand/v2"
	"path/filepath"
	"testing"

	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"

	"github.com/goselfsup/goselfsup/internal/pyref"
	"github.com/goselfsup/goselfsup/models/det"
)

// maskPolygon rasterises a random star-shaped polygon (centre, 5-9 vertices at random radii)
// into m (h x w of a W-wide canvas), by the even-odd rule at pixel centres.
func maskPolygon(rng *rand.Rand, m []uint8, h, w, stride int, cx, cy, r float64) {
	k := 5 + rng.IntN(5)
	px, py := make([]float64, k), make([]float64, k)
	for i := range k {
		a := 2 * math.Pi * (float64(i) + rng.Float64()*0.8) / float64(k)
		rr := r * (0.4 + 0.6*rng.Float64())
		px[i], py[i] = cx+rr*math.Cos(a), cy+rr*math.Sin(a)
	}
	for y := range h {
		for x := range w {
			fx, fy := float64(x)+0.5, float64(y)+0.5
			in := false
			for i, j := 0, k-1; i < k; j, i = i, i+1 {
				if (py[i] > fy) != (py[j] > fy) && fx < (px[j]-px[i])*(fy-py[i])/(py[j]-py[i])+px[i] {
					in = !in
				}
			}
			if in {
				m[y*stride+x] = 1
			}
		}
	}
}

// MaskTargets against mmdet 2.x's mask_target_single done with torchvision's roi_align on
// each image's own bitmap (benchmarks/mask_head_reference.py targets): random polygon masks,
// some reaching past the image's bottom and right edges, in two images of different sizes on
// a larger canvas; RoIs of many sizes, some partly outside the image (clipped). The binary
// targets must be equal except where the reference's value is within 1e-5 of 0.5.
func TestMaskTargetsMatchTorchvision(t *testing.T) {
	python, err := pyref.Python("torch", "torchvision", "numpy")
	if err != nil {
		t.Skip(err)
	}
	const b, ng, hh, ww, n, ms = 2, 3, 64, 80, 48, 28
	sizes := [][2]int{{64, 80}, {45, 61}} // (h, w): the first fills the canvas, the second not
	rng := rand.New(rand.NewPCG(5, 6))
	masks := make([]uint8, b*ng*hh*ww)
	for i := range b {
		h, w := sizes[i][0], sizes[i][1]
		for g := range ng {
			off := (i*ng + g) * hh * ww
			// The centre near the bottom-right corner for g == 0, to exercise the edges.
			cx, cy := rng.Float64()*float64(w), rng.Float64()*float64(h)
			if g == 0 {
				cx, cy = float64(w)-3, float64(h)-3
			}
			maskPolygon(rng, masks[off:], h, w, ww, cx, cy, 8+rng.Float64()*30)
		}
	}
	var rois []float32
	img := make([]int32, n)
	gt := make([]int32, n)
	for k := range n {
		img[k], gt[k] = int32(rng.IntN(b)), int32(rng.IntN(ng))
		h, w := float64(sizes[img[k]][0]), float64(sizes[img[k]][1])
		bw, bh := 1+rng.Float64()*w, 1+rng.Float64()*h
		if k%6 == 0 {
			bw, bh = 0.3+rng.Float64()*3, 0.3+rng.Float64()*3 // tiny
		}
		x0, y0 := -10+rng.Float64()*(w+10-bw/2), -10+rng.Float64()*(h+10-bh/2)
		if k%8 == 1 {
			x0, y0 = w-bw*0.6, h-bh*0.6 // crosses the bottom-right corner
		}
		rois = append(rois, float32(x0), float32(y0), float32(x0+bw), float32(y0+bh))
	}
	shape := []int32{int32(sizes[0][0]), int32(sizes[0][1]), int32(sizes[1][0]), int32(sizes[1][1])}
	masksT := tensors.FromFlatDataAndDimensions(masks, b, ng, hh, ww)
	roisT := tensors.FromFlatDataAndDimensions(rois, n, 4)
	imgT, gtT := tensors.FromFlatDataAndDimensions(img, n), tensors.FromFlatDataAndDimensions(gt, n)
	shapeT := tensors.FromFlatDataAndDimensions(shape, b, 2)

	dir := t.TempDir()
	for name, tt := range map[string]*tensors.Tensor{"masks": masksT, "rois": roisT, "img": imgT, "gt": gtT, "shape": shapeT} {
		saveNPY(t, filepath.Join(dir, name+".npy"), tt)
	}
	maskRef(t, python, "targets", dir)
	ref := tensors.MustCopyFlatData[float32](mustLoad(t, filepath.Join(dir, "values.npy")))

	// maxGrid 3 = ceil(80 / 28): exact for every RoI on this canvas.
	got := MustExecOnce(pureGo(t), func(rois, img, gt, masks, shape *Node) *Node {
		return det.MaskTargets(rois, img, gt, masks, shape, ms, 3)
	}, roisT, imgT, gtT, masksT, shapeT)
	gv := tensors.MustCopyFlatData[float32](got)
	var ties, ones, mismatches int
	for i, r := range ref {
		want := float32(0)
		if r >= 0.5 {
			want = 1
		}
		ones += int(want)
		if math.Abs(float64(r)-0.5) <= 1e-5 {
			ties++
			continue
		}
		if gv[i] != want {
			mismatches++
			if mismatches <= 5 {
				t.Errorf("RoI %d pixel %d: target %v, torchvision's value %v", i/(ms*ms), i%(ms*ms), gv[i], r)
			}
		}
	}
	if mismatches > 0 {
		t.Errorf("%d of %d targets differ", mismatches, len(ref))
	}
	if ones == 0 || ones == len(ref) {
		t.Fatalf("degenerate test: %d ones of %d", ones, len(ref))
	}
	t.Logf("%d RoIs: %d of %d targets are 1; %d values within 1e-5 of 0.5 (not compared); %d mismatches", n, ones, len(ref), ties, mismatches)

	// maxGrid 1: exact for the RoIs whose clipped sides are at most 1 * 28 pixels (the
	// adaptive grid is then 1 or 0); the larger ones are sampled once per bin, so only
	// counted.
	got1 := tensors.MustCopyFlatData[float32](MustExecOnce(pureGo(t), func(rois, img, gt, masks, shape *Node) *Node {
		return det.MaskTargets(rois, img, gt, masks, shape, ms, 1)
	}, roisT, imgT, gtT, masksT, shapeT))
	var small, large, largeDiff int
	for k := range n {
		h, w := float64(sizes[img[k]][0]), float64(sizes[img[k]][1])
		c := func(v float32, hi float64) float64 { return math.Min(math.Max(float64(v), 0), hi) }
		bw := c(rois[4*k+2], w) - c(rois[4*k], w)
		bh := c(rois[4*k+3], h) - c(rois[4*k+1], h)
		exact := bw <= ms && bh <= ms
		if exact {
			small++
		} else {
			large++
		}
		for p := range ms * ms {
			i := k*ms*ms + p
			want := float32(0)
			if ref[i] >= 0.5 {
				want = 1
			}
			if got1[i] == want || math.Abs(float64(ref[i])-0.5) <= 1e-5 {
				continue
			}
			if exact {
				t.Errorf("maxGrid 1, RoI %d (%.1f x %.1f, within the bound) pixel %d: %v, want %v", k, bw, bh, p, got1[i], want)
			} else {
				largeDiff++
			}
		}
	}
	t.Logf("maxGrid 1: %d RoIs within the bound (exact), %d beyond it with %d of %d targets different",
		small, large, largeDiff, large*ms*ms)
}
