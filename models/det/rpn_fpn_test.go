package det_test

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/goselfsup/goselfsup/models/det"
	"github.com/goselfsup/goselfsup/models/nn"
	"github.com/goselfsup/goselfsup/registry"
)

// rpnFPN is the Mask R-CNN R50-FPN RPN head's config (mmdet's mask_rcnn_r50_fpn.py) on
// narrower maps.
func rpnFPN(in, feat int) map[string]any {
	return map[string]any{
		"in_channels": in, "feat_channels": feat,
		"anchor_generator": map[string]any{"type": "AnchorGenerator", "scales": []float64{8}, "ratios": []float64{0.5, 1, 2}, "strides": []int{4, 8, 16, 32, 64}},
		"bbox_coder":       map[string]any{"type": "DeltaXYWHBBoxCoder", "target_means": []float64{0, 0, 0, 0}, "target_stds": []float64{1, 1, 1, 1}},
		"loss_cls":         map[string]any{"type": "CrossEntropyLoss", "use_sigmoid": true, "loss_weight": 1.0},
		"loss_bbox":        map[string]any{"type": "L1Loss", "loss_weight": 1.0},
	}
}

// The FPN anchors have one size per level, 8 * stride: 32, 64, 128, 256, 512 pixels for the
// square anchor (ratio 1, the second base anchor), centred on the grid point (mmdet 2.x's
// center_offset 0): at location 0 it is [-4 s, -4 s, 4 s, 4 s].
func TestFPNAnchorSizes(t *testing.T) {
	scope := nn.NewScope(context.New(), 1)
	head, err := registry.Build[*det.RPNHead](registry.With(nil, scope), registry.NewSpec(registry.Heads, "RPNHead", rpnFPN(8, 8)))
	if err != nil {
		t.Fatal(err)
	}
	for l, s := range []int{4, 8, 16, 32, 64} {
		a, err := head.Anchors.Anchors(l, 2, 2, dtypes.Float64)
		if err != nil {
			t.Fatal(err)
		}
		v := a.Value().([][]float64)
		want := []float64{-4 * float64(s), -4 * float64(s), 4 * float64(s), 4 * float64(s)}
		for i := range 4 {
			if v[1][i] != want[i] {
				t.Errorf("level %d: square anchor %v, want %v", l, v[1], want)
				break
			}
		}
	}
}

// The multi-level proposals against a PyTorch transcription of mmdet 2.x's
// RPNHead._get_bboxes_single (per level nms_pre by sorted score, decode, min_bbox_size,
// mmcv's batched_nms with the level ids, max_per_img), float32: the same boxes (1e-5
// relative to max(1, |x|)) and scores (1e-6) in the same order, the rest of the slots
// invalid. Five levels of a 128 x 160 canvas (32 x 40 down to 2 x 3); nms_pre 200 cuts the
// first three levels and keeps the last two whole. The second configuration keeps fewer
// proposals than max_per_img.
func TestRPNProposalsLevelsMatchMMDet(t *testing.T) {
	python := torchPython(t)
	scope := nn.NewScope(context.New(), 1)
	head, err := registry.Build[*det.RPNHead](registry.With(nil, scope), registry.NewSpec(registry.Heads, "RPNHead", rpnFPN(8, 8)))
	if err != nil {
		t.Fatal(err)
	}
	const b = 2
	sizes := [][2]int{{32, 40}, {16, 20}, {8, 10}, {4, 5}, {2, 3}}
	a := head.Anchors.NumBaseAnchors()
	rng := rand.New(rand.NewPCG(31, 32))
	var cls, reg, anchors [][]float64
	var clsShapes [][]int
	var args []any
	for l, s := range sizes {
		c := randomFlat(rng, b*s[0]*s[1]*a, 3, dtypes.Float32)
		r := randomFlat(rng, b*s[0]*s[1]*4*a, 0.3, dtypes.Float32)
		cls, reg = append(cls, c), append(reg, r)
		clsShapes = append(clsShapes, []int{b, s[0], s[1], a})
		args = append(args, tensorFlat(dtypes.Float32, c, b, s[0], s[1], a), tensorFlat(dtypes.Float32, r, b, s[0], s[1], 4*a))
		at, err := head.Anchors.Anchors(l, s[0], s[1], dtypes.Float32)
		if err != nil {
			t.Fatal(err)
		}
		anchors = append(anchors, flat64(t, at))
	}
	imgShape := [][2]float64{{120, 150}, {128, 131}}
	args = append(args, tensorFlat(dtypes.Float32, []float64{120, 150, 128, 131}, b, 2))
	for _, cfg := range []*det.RPNProposalConfig{
		{NmsPre: 200, MaxPerImg: 300, Nms: det.NMSConfig{Type: "nms", IoUThreshold: 0.7}, MinBBoxSize: 0},
		{NmsPre: 40, MaxPerImg: 400, Nms: det.NMSConfig{Type: "nms", IoUThreshold: 0.7}, MinBBoxSize: 0},
	} {
		outs := MustExecOnceN(pureGo(t), func(in []*Node) []*Node {
			var c, r []*Node
			for l := range sizes {
				c, r = append(c, in[2*l]), append(r, in[2*l+1])
			}
			boxes, scores, valid := head.ProposalsLevels(c, r, in[2*len(sizes)], cfg)
			return []*Node{boxes, scores, valid}
		}, args...)
		var want struct {
			Images []struct {
				Boxes  []float64 `json:"boxes"`
				Scores []float64 `json:"scores"`
			} `json:"images"`
		}
		runFPNReference(t, python, "proposals", map[string]any{"b": b, "cls": cls, "reg": reg, "cls_shapes": clsShapes, "anchors": anchors,
			"img_shape": imgShape, "nms_pre": cfg.NmsPre, "max_per_img": cfg.MaxPerImg, "iou_thr": 0.7, "min_bbox_size": 0.0}, &want)
		boxes, scores, valid := outs[0].Value().([][][]float32), outs[1].Value().([][]float32), outs[2].Value().([][]bool)
		for i := range b {
			k := len(want.Images[i].Scores)
			for j := range cfg.MaxPerImg {
				if valid[i][j] != (j < k) {
					t.Fatalf("image %d: slot %d valid %v, but the reference keeps %d", i, j, valid[i][j], k)
				}
				if j >= k {
					continue
				}
				if d := math.Abs(float64(scores[i][j]) - want.Images[i].Scores[j]); d > 1e-6 {
					t.Fatalf("image %d, proposal %d: score %v, want %v", i, j, scores[i][j], want.Images[i].Scores[j])
				}
				for c := range 4 {
					if !near(float64(boxes[i][j][c]), want.Images[i].Boxes[4*j+c], 1e-5) {
						t.Fatalf("image %d, proposal %d: box %v, want %v", i, j, boxes[i][j], want.Images[i].Boxes[4*j:4*j+4])
					}
				}
			}
			t.Logf("nms_pre %d, max_per_img %d, image %d: %d proposals", cfg.NmsPre, cfg.MaxPerImg, i, k)
		}
	}
}
