package det_test

import (
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/goselfsup/goselfsup/engine"
	"github.com/goselfsup/goselfsup/internal/pyref"
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

// The multi-level RPN loss (LossLevels over three FPN levels) against the independent
// transcription of mmdet 2.x's (benchmarks/rpn_loss_reference.py, PyTorch, float64), given
// the levels' scores and deltas concatenated in level order with their anchors: the picks
// obey mmdet's rules on the concatenated anchors (allowed_border 0 here, so that each level's
// valid flags are checked too), both losses and their gradients w.r.t. every level's
// outputs match to 1e-9.
func TestRPNLossLevelsMatchMMDet(t *testing.T) {
	python, err := pyref.Python("torch", "numpy")
	if err != nil {
		t.Skip(err)
	}
	scope := nn.NewScope(context.New(), 1).WithDType(dtypes.Float64)
	spec := rpnFPN(8, 8)
	spec["anchor_generator"].(map[string]any)["strides"] = []int{8, 16, 32}
	head, err := registry.Build[*det.RPNHead](registry.With(nil, scope), registry.NewSpec(registry.Heads, "RPNHead", spec))
	if err != nil {
		t.Fatal(err)
	}
	assigner, err := registry.Build[*det.MaxIoUAssigner](nil, registry.NewSpec(det.BBoxAssigners, "MaxIoUAssigner",
		map[string]any{"pos_iou_thr": 0.7, "neg_iou_thr": 0.3, "min_pos_iou": 0.3, "match_low_quality": true, "ignore_iof_thr": -1}))
	if err != nil {
		t.Fatal(err)
	}
	sampler, err := registry.Build[*det.RandomSampler](nil, registry.NewSpec(det.BBoxSamplers, "RandomSampler",
		map[string]any{"num": 256, "pos_fraction": 0.5, "neg_pos_ub": -1, "add_gt_as_proposals": false}))
	if err != nil {
		t.Fatal(err)
	}
	cfg := &det.RPNTrain{Assigner: assigner, Sampler: sampler, AllowedBorder: 0}
	const b, g = 2, 4
	sizes := [][2]int{{32, 40}, {16, 20}, {8, 10}} // a 256 x 320 canvas
	a := head.Anchors.NumBaseAnchors()
	rng := rand.New(rand.NewPCG(51, 52))
	var args []any
	var clsAll, regAll, anchorsAll [][]float64 // per image for cls/reg: level-concatenated
	clsAll, regAll = make([][]float64, b), make([][]float64, b)
	n := 0
	for l, s := range sizes {
		m := s[0] * s[1] * a
		c, r := randomFlat(rng, b*m, 1, dtypes.Float64), randomFlat(rng, b*m*4, 1, dtypes.Float64)
		for i := range b {
			clsAll[i] = append(clsAll[i], c[i*m:(i+1)*m]...)
			regAll[i] = append(regAll[i], r[i*4*m:(i+1)*4*m]...)
		}
		args = append(args, tensorFlat(dtypes.Float64, c, b, s[0], s[1], a), tensorFlat(dtypes.Float64, r, b, s[0], s[1], 4*a))
		at, err := head.Anchors.Anchors(l, s[0], s[1], dtypes.Float64)
		if err != nil {
			t.Fatal(err)
		}
		anchorsAll = append(anchorsAll, flat64(t, at))
		n += m
	}
	gt := make([]float64, b*g*4)
	gtValid := []bool{true, true, true, false, true, false, false, false}
	for i := range b * g {
		w, h := 20+rng.Float64()*200, 20+rng.Float64()*180
		x, y := rng.Float64()*(300-w), rng.Float64()*(250-h)
		copy(gt[4*i:], []float64{x, y, x + w, y + h})
	}
	keys := make([]int64, b*n)
	for i := range keys {
		keys[i] = rng.Int64N(1 << det.KeyBits)
	}
	imgShape := tensors.FromFlatDataAndDimensions([]float64{250, 300, 256, 280}, b, 2)
	gtT, gtValidT := tensors.FromFlatDataAndDimensions(gt, b, g, 4), tensors.FromFlatDataAndDimensions(gtValid, b, g)
	args = append(args, gtT, gtValidT, imgShape, tensors.FromFlatDataAndDimensions(keys, b, n))
	outs := MustExecOnceN(pureGo(t), func(in []*Node) []*Node {
		var cls, reg []*Node
		for l := range sizes {
			cls, reg = append(cls, in[2*l]), append(reg, in[2*l+1])
		}
		k := 2 * len(sizes)
		lc, lb, tg := head.LossLevels(cls, reg, in[k], in[k+1], in[k+2], nil, in[k+3], cfg)
		grads := Gradient(Add(lc, lb), append(append([]*Node{}, cls...), reg...)...)
		var gc, gr []*Node
		for l := range sizes {
			gc = append(gc, Reshape(grads[l], b, -1))
			gr = append(gr, Reshape(grads[len(sizes)+l], b, -1, 4))
		}
		return []*Node{lc, lb, Concatenate(gc, 1), Concatenate(gr, 1), tg.Sample.Indices, tg.Sample.Valid, tg.Sample.Positive, tg.GTInds}
	}, args...)

	var cf, rf, af []float64
	for i := range b {
		cf, rf = append(cf, clsAll[i]...), append(rf, regAll[i]...)
	}
	for _, x := range anchorsAll {
		af = append(af, x...)
	}
	dir := t.TempDir()
	for name, tt := range map[string]*tensors.Tensor{"cls": tensors.FromFlatDataAndDimensions(cf, b, n), "reg": tensors.FromFlatDataAndDimensions(rf, b, n, 4),
		"anchors": tensors.FromFlatDataAndDimensions(af, n, 4), "gt": gtT, "gt_valid": gtValidT,
		"img_shape": imgShape, "indices": outs[4], "valid": outs[5], "positive": outs[6], "gt_inds": outs[7]} {
		if err := engine.SaveNPY(filepath.Join(dir, name+".npy"), tt); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := exec.Command(python, filepath.Join("..", "..", "benchmarks", "rpn_loss_reference.py"), dir).CombinedOutput(); err != nil {
		t.Fatalf("rpn_loss_reference.py: %v\n%s", err, out)
	}
	if v, _ := os.ReadFile(filepath.Join(dir, "violations.txt")); len(v) > 0 {
		t.Errorf("the picks break mmdet's rules:\n%s", v)
	}
	positives := 0
	for i, v := range outs[5].Value().([][]bool) {
		for k, ok := range v {
			if ok && outs[6].Value().([][]bool)[i][k] {
				positives++
			}
		}
	}
	if positives == 0 {
		t.Fatal("no positives")
	}
	want := tensors.MustCopyFlatData[float64](mustLoad(t, filepath.Join(dir, "losses.npy")))
	for i, name := range []string{"loss_cls", "loss_bbox"} {
		if got := outs[i].Value().(float64); math.Abs(got-want[i]) > 1e-9*math.Abs(want[i]) {
			t.Errorf("%s = %.12g, want %.12g", name, got, want[i])
		}
	}
	for i, name := range []string{"gcls", "greg"} {
		if d := relDiff64(outs[2+i], mustLoad(t, filepath.Join(dir, name+".npy"))); d > 1e-9 {
			t.Errorf("%s differs by %.2g", name, d)
		}
	}
	t.Logf("loss_cls %.6f, loss_bbox %.6f; %d positives over %d anchors", outs[0].Value(), outs[1].Value(), positives, n)
}
