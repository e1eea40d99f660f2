package det_test

import (
	"math"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"github.com/gomlx/gomlx/pkg/core/tensors"

	"github.com/goselfsup/goselfsup/internal/pyref"
	"github.com/goselfsup/goselfsup/models/det"
)

// pasteBoxes are random boxes on an h x w image: ordinary ones, boxes partly (or wholly)
// outside the image, tiny ones (under a pixel), and a zero-width and a zero-height box.
func pasteBoxes(rng *rand.Rand, n, h, w int) [][4]float32 {
	boxes := make([][4]float32, n)
	for i := range boxes {
		var bw, bh float64
		switch i % 5 {
		case 0, 1:
			bw, bh = 5+rng.Float64()*float64(w)/2, 5+rng.Float64()*float64(h)/2
		case 2: // large, likely partly outside
			bw, bh = float64(w)*(0.5+rng.Float64()), float64(h)*(0.5+rng.Float64())
		case 3: // tiny
			bw, bh = 0.2+rng.Float64()*2, 0.2+rng.Float64()*2
		case 4:
			bw, bh = 1+rng.Float64()*30, 1+rng.Float64()*30
		}
		x0 := -bw/2 + rng.Float64()*(float64(w)+bw/2)
		y0 := -bh/2 + rng.Float64()*(float64(h)+bh/2)
		boxes[i] = [4]float32{float32(x0), float32(y0), float32(x0 + bw), float32(y0 + bh)}
	}
	boxes[n-1][2] = boxes[n-1][0]           // zero width
	boxes[n-2][3] = boxes[n-2][1]           // zero height
	boxes[n-3] = [4]float32{-30, -20, 8, 5} // the top-left corner
	return boxes
}

// PasteMask against a transcription of mmdet 2.x's _do_paste_mask(skip_empty=False) in
// PyTorch with grid_sample's CUDA bilinear kernel written out in float32 ops
// (benchmarks/mask_head_reference.py paste), then >= 0.5: equal binary masks except pixels
// whose value is within 1e-6 of the threshold (counted). The count of pixels where F.grid_sample
// on the CPU (whose source-index formula rounds otherwise) disagrees is logged.
func TestPasteMaskMatchesTorch(t *testing.T) {
	python, err := pyref.Python("torch", "numpy")
	if err != nil {
		t.Skip(err)
	}
	const n, m, h, w, thr = 40, 28, 97, 131, 0.5
	rng := rand.New(rand.NewPCG(7, 8))
	probs := make([]float32, n*m*m)
	for i := range probs {
		// Smooth-ish probabilities: a random blob per mask plus noise, so that masks have
		// regions on both sides of the threshold.
		k, p := i/(m*m), i%(m*m)
		y, x := float64(p/m), float64(p%m)
		cx, cy := 14+5*math.Sin(float64(k)), 14+5*math.Cos(float64(3*k))
		v := math.Exp(-((x-cx)*(x-cx)+(y-cy)*(y-cy))/80) + 0.15*rng.NormFloat64()
		probs[i] = float32(math.Min(math.Max(v, 0), 1))
	}
	for k := 0; k < n; k += 7 {
		// Masks at the threshold: exactly 0.5 and its float32 neighbours, so that pasted
		// values land on both sides of it by rounding alone.
		for p := range m * m {
			probs[k*m*m+p] = []float32{0.5, math.Nextafter32(0.5, 1), math.Nextafter32(0.5, 0)}[(p+k)%3]
		}
	}
	boxes := pasteBoxes(rng, n, h, w)
	flatBoxes := make([]float32, 0, 4*n)
	for _, b := range boxes {
		flatBoxes = append(flatBoxes, b[:]...)
	}
	dir := t.TempDir()
	saveNPY(t, filepath.Join(dir, "probs.npy"), tensors.FromFlatDataAndDimensions(probs, n, m, m))
	saveNPY(t, filepath.Join(dir, "boxes.npy"), tensors.FromFlatDataAndDimensions(flatBoxes, n, 4))
	saveNPY(t, filepath.Join(dir, "hw.npy"), tensors.FromFlatDataAndDimensions([]int64{h, w}, 2))
	maskRef(t, python, "paste", dir)
	cuda := tensors.MustCopyFlatData[float32](mustLoad(t, filepath.Join(dir, "cuda.npy")))
	cpu := tensors.MustCopyFlatData[float32](mustLoad(t, filepath.Join(dir, "cpu.npy")))

	var near, nearAgree, mismatches, cpuDiff, ones int
	for k := range n {
		got, err := det.PasteMask(probs[k*m*m:(k+1)*m*m], m, boxes[k], h, w, thr)
		if err != nil {
			t.Fatal(err)
		}
		for p := range h * w {
			v := cuda[k*h*w+p]
			want := uint8(0)
			if v >= thr {
				want = 1
			}
			ones += int(want)
			if (cpu[k*h*w+p] >= thr) != (want == 1) {
				cpuDiff++
			}
			if math.Abs(float64(v)-thr) <= 1e-6 {
				near++
				if got[p] == want {
					nearAgree++
				}
				continue
			}
			if got[p] != want {
				mismatches++
				if mismatches <= 5 {
					t.Errorf("mask %d (box %v), pixel (%d, %d): %d, reference value %v", k, boxes[k], p/w, p%w, got[p], v)
				}
			}
		}
	}
	if mismatches > 0 {
		t.Errorf("%d pixels differ", mismatches)
	}
	if ones == 0 {
		t.Fatal("degenerate test: no pixel above the threshold")
	}
	t.Logf("%d masks on %dx%d: %d pixels set, %d within 1e-6 of the threshold (not required to agree; %d do), %d mismatches; "+
		"F.grid_sample on the CPU disagrees with the CUDA transcription on %d pixels", n, h, w, ones, near, nearAgree, mismatches, cpuDiff)
}

// Hand-derived: a 2x2 mask [[1, 0], [0, 0]] pasted on the box (0, 0, 2, 2) of a 3x3 image.
// Pixel (x, y) samples mask coordinate ix = (x + 0.5) / 2 * 2 - 0.5 = x (likewise iy), so
// pixel (0, 0) reads mask pixel (0, 0) = 1; (1, 0) reads (1, 0) = 0; pixel (0, 2) has iy = 2,
// taps at rows 2, 3, outside: 0. With thr 0.5 only pixel (0, 0) is set; with thr 0 every
// pixel is (0 >= 0). And bad sizes are errors.
func TestPasteMaskHandDerived(t *testing.T) {
	got, err := det.PasteMask([]float32{1, 0, 0, 0}, 2, [4]float32{0, 0, 2, 2}, 3, 3, 0.5)
	if err != nil {
		t.Fatal(err)
	}
	want := []uint8{1, 0, 0, 0, 0, 0, 0, 0, 0}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("got %v, want %v", got, want)
		}
	}
	// Between pixel centres: box (0, 0, 4, 4) on a 2x2 image maps pixel x to ix = (x + 0.5) /
	// 4 * 2 - 0.5 = x / 2 - 0.25: pixel 0 at -0.25 reads 0.75 of mask pixel 0, pixel 1 at 0.25
	// reads 0.75 of pixel 0 and 0.25 of pixel 1. With mask [[1, 1], [1, 1]], pixel (0, 0) is
	// 0.75 * 0.75 = 0.5625 (set at 0.5, not at 0.6) and pixel (1, 1) is 1.
	got, err = det.PasteMask([]float32{1, 1, 1, 1}, 2, [4]float32{0, 0, 4, 4}, 2, 2, 0.6)
	if err != nil {
		t.Fatal(err)
	}
	if got[0] != 0 || got[3] != 1 {
		t.Errorf("thr 0.6: %v, want pixel 0 unset and pixel 3 set", got)
	}
	if got, _ = det.PasteMask([]float32{1, 1, 1, 1}, 2, [4]float32{0, 0, 4, 4}, 2, 2, 0.5); got[0] != 1 {
		t.Errorf("thr 0.5: %v, want pixel 0 set", got)
	}
	all, err := det.PasteMask([]float32{0, 0, 0, 0}, 2, [4]float32{0, 0, 1, 1}, 4, 4, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range all {
		if v != 1 {
			t.Fatalf("thr 0: %v, want all set", all)
		}
	}
	if _, err := det.PasteMask(make([]float32, 3), 2, [4]float32{0, 0, 1, 1}, 4, 4, 0.5); err == nil {
		t.Error("3 probabilities for a 2x2 mask: no error")
	}
	if err := det.PasteMaskInto(make([]uint8, 5), make([]float32, 4), 2, [4]float32{0, 0, 1, 1}, 4, 4, 0.5); err == nil {
		t.Error("a 5-byte buffer for 4x4: no error")
	}
}

// 100 masks of 28x28 on a 640x480 image (COCO-sized detections) in well under 50 ms.
func TestPasteMaskSpeed(t *testing.T) {
	const n, m, h, w = 100, 28, 480, 640
	rng := rand.New(rand.NewPCG(1, 2))
	probs := make([]float32, m*m)
	for i := range probs {
		probs[i] = rng.Float32()
	}
	boxes := make([][4]float32, n)
	for i := range boxes {
		bw, bh := 20+rng.Float32()*300, 20+rng.Float32()*250
		x, y := rng.Float32()*(w-bw), rng.Float32()*(h-bh)
		boxes[i] = [4]float32{x, y, x + bw, y + bh}
	}
	dst := make([]uint8, h*w)
	best := time.Duration(math.MaxInt64)
	for range 3 {
		start := time.Now()
		for _, b := range boxes {
			if err := det.PasteMaskInto(dst, probs, m, b, h, w, 0.5); err != nil {
				t.Fatal(err)
			}
		}
		best = min(best, time.Since(start))
	}
	t.Logf("100 masks on %dx%d: %v", w, h, best)
	if best > 50*time.Millisecond {
		t.Errorf("100 masks took %v, want under 50 ms", best)
	}
}
