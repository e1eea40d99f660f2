package det_test

import (
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph"

	"github.com/goselfsup/goselfsup/models/det"
)

// TestMapRoILevelsHandMade checks mmdet's level mapping, lvl = clamp(floor(log2(sqrt(w h) /
// 56 + 1e-6)), 0, 3), on hand-derived cases (float64):
//
//   - square sides 10 and 111.9: scale / 56 < 2, level 0 (10 / 56 gives log2 < 0, clamped);
//   - an empty box: log2(1e-6) = -19.9, clamped to 0;
//   - side 112 (2), 224 (4), 448 (8): levels 1, 2, 3; 1000 (17.9): 3 (clamped);
//   - side 56 (2 - 5e-7) = 111.999972: 1.9999995 + 1e-6 = 2.0000005, so level 1 (the eps
//     moves it up); 56 (2 - 2e-6) = 111.999888: 1.999998 + 1e-6 < 2, level 0;
//   - a 448 x 112 box: scale sqrt(50176) = 224, level 2.
func TestMapRoILevelsHandMade(t *testing.T) {
	sides := [][2]float64{{10, 10}, {111.9, 111.9}, {0, 0}, {112, 112}, {224, 224}, {448, 448}, {1000, 1000},
		{111.999972, 111.999972}, {111.999888, 111.999888}, {448, 112}}
	want := []int32{0, 0, 0, 1, 2, 3, 3, 1, 0, 2}
	boxes := make([]float64, 0, 4*len(sides))
	for i, s := range sides {
		x, y := float64(3*i), float64(5*i)
		boxes = append(boxes, x, y, x+s[0], y+s[1])
	}
	got := MustExecOnce(pureGo(t), func(b *Node) *Node { return det.MapRoILevels(b, 4, 56) },
		tensorFlat(dtypes.Float64, boxes, len(sides), 4)).Value().([]int32)
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("box %v: level %d, want %d", sides[i], got[i], want[i])
		}
	}
}

// extractorCase draws B images' feature maps at strides 4, 8, 16, 32 of a 128 x 160 canvas
// and K RoIs per image whose scales cover every level.
func extractorCase(rng *rand.Rand, dt dtypes.DType, b, k, c int) (feats [][]float64, shapes [][]int, rois []float64) {
	for _, s := range []int{4, 8, 16, 32} {
		h, w := 128/s, 160/s
		feats = append(feats, randomFlat(rng, b*h*w*c, 1, dt))
		shapes = append(shapes, []int{b, h, w, c})
	}
	for range b * k {
		side := []float64{20, 60, 100, 130, 180, 240, 300, 500}[rng.IntN(8)] * (0.8 + 0.4*rng.Float64())
		ar := 0.6 + 0.8*rng.Float64()
		w, h := side*ar, side/ar
		x1, y1 := rng.Float64()*120-20, rng.Float64()*100-20
		box := []float64{x1, y1, x1 + w, y1 + h}
		for i := range box {
			if dt == dtypes.Float32 {
				box[i] = float64(float32(box[i]))
			}
		}
		rois = append(rois, box...)
	}
	return feats, shapes, rois
}

// TestRoIExtractorMatchesTorch compares Extract (4 levels, output 7, sampling_ratio 0,
// aligned) and its gradient w.r.t. the maps with a transcription of mmdet 2.x's
// SingleRoIExtractor.forward over torchvision.ops.roi_align(aligned=True), float32 to 1e-5
// and float64 to 1e-9; the levels with map_roi_levels. max_grid 10 makes the adaptive grid
// exact for every RoI drawn (at most 64 feature pixels a side at its level: ceil(64 / 7) = 10).
func TestRoIExtractorMatchesTorch(t *testing.T) {
	python := torchPython(t)
	const b, k, c, out = 2, 12, 3, 7
	for _, dt := range []dtypes.DType{dtypes.Float32, dtypes.Float64} {
		t.Run(dt.String(), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(21, 22))
			feats, shapes, rois := extractorCase(rng, dt, b, k, c)
			cot := randomFlat(rng, b*k*out*out*c, 1, dt)
			tr := true
			e, err := det.NewRoIExtractor(det.RoIExtractorConfig{Type: "SingleRoIExtractor", OutChannels: c, FeatmapStrides: []int{4, 8, 16, 32}, FinestScale: 56,
				RoILayer: det.RoILayerConfig{Type: "RoIAlign", OutputSize: out, SamplingRatio: 0, Aligned: &tr, MaxGrid: 10}})
			if err != nil {
				t.Fatal(err)
			}
			var args []any
			for i := range feats {
				args = append(args, tensorFlat(dt, feats[i], shapes[i]...))
			}
			args = append(args, tensorFlat(dt, rois, b, k, 4), tensorFlat(dt, cot, b*k, out, out, c))
			res := MustExecOnceN(pureGo(t), func(in []*Node) []*Node {
				y := e.Extract(in[:4], in[4])
				grads := Gradient(ReduceAllSum(Mul(y, in[5])), in[:4]...)
				lv := det.MapRoILevels(Reshape(in[4], b*k, 4), 4, 56)
				return append([]*Node{y, lv}, grads...)
			}, args...)
			var want struct {
				Out    []float64   `json:"out"`
				Grads  [][]float64 `json:"grads"`
				Levels []int32     `json:"levels"`
			}
			runFPNReference(t, python, "extract", map[string]any{"dtype": strings.ToLower(dt.String()), "feats": feats, "shapes": shapes,
				"rois": rois, "b": b, "k": k, "output_size": out, "sampling_ratio": 0, "strides": []int{4, 8, 16, 32}, "finest_scale": 56, "cot": cot}, &want)
			levels := res[1].Value().([]int32)
			count := make([]int, 4)
			for i := range levels {
				if levels[i] != want.Levels[i] {
					t.Errorf("RoI %d %v: level %d, want %d", i, rois[4*i:4*i+4], levels[i], want.Levels[i])
				}
				count[levels[i]]++
			}
			for l, n := range count {
				if n == 0 {
					t.Errorf("no RoI at level %d: the case does not cover the levels", l)
				}
			}
			tol := tolerance(dt)
			compareFlat(t, "roi feats", flat64(t, res[0]), want.Out, tol)
			for i := range 4 {
				compareFlat(t, "feat grad", flat64(t, res[2+i]), want.Grads[i], tol)
			}
			t.Logf("RoIs per level %v", count)
		})
	}
}
