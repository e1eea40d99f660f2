package det_test

import (
	"fmt"
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

// rpnC4 is the R50-C4 RPN head's config (mmselfsup's faster_rcnn_r50_c4.py) on a narrower
// feature map.
func rpnC4(in, feat int) map[string]any {
	return map[string]any{
		"in_channels": in, "feat_channels": feat,
		"anchor_generator": map[string]any{"type": "AnchorGenerator", "scales": []float64{2, 4, 8, 16, 32}, "ratios": []float64{0.5, 1, 2}, "strides": []int{16}},
		"bbox_coder":       map[string]any{"type": "DeltaXYWHBBoxCoder", "target_means": []float64{0, 0, 0, 0}, "target_stds": []float64{1, 1, 1, 1}},
		"loss_cls":         map[string]any{"type": "CrossEntropyLoss", "use_sigmoid": true, "loss_weight": 1.0},
		"loss_bbox":        map[string]any{"type": "L1Loss", "loss_weight": 1.0},
	}
}

// The RPN loss against an independent transcription of mmdet 2.x's (PyTorch, float64) on the
// anchors that the assigner and sampler picked, which the reference checks against mmdet's
// rules (IoU thresholds 0.7/0.3, low-quality matches at 0.3, anchors inside the image):
// both losses, and their gradients with respect to the head's outputs.
func TestRPNLossMatchesMMDet(t *testing.T) {
	python, err := pyref.Python("torch", "numpy")
	if err != nil {
		t.Skip(err)
	}
	scope := nn.NewScope(context.New(), 1).WithDType(dtypes.Float64)
	head, err := registry.Build[*det.RPNHead](registry.With(nil, scope), registry.NewSpec(registry.Heads, "RPNHead", rpnC4(8, 8)))
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

	const b, fh, fw, g = 2, 24, 32, 4 // a 384x512 canvas at stride 16
	a := head.Anchors.NumBaseAnchors()
	n := fh * fw * a
	anchors, err := head.Anchors.Anchors(0, fh, fw, dtypes.Float64)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(5, 6))
	normal := func(dims ...int) *tensors.Tensor {
		v := make([]float64, prod(dims))
		for i := range v {
			v[i] = rng.NormFloat64()
		}
		return tensors.FromFlatDataAndDimensions(v, dims...)
	}
	cls, reg := normal(b, fh, fw, a), normal(b, fh, fw, 4*a)
	imgShape := tensors.FromFlatDataAndDimensions([]float64{380, 500, 384, 470}, b, 2)
	gt := make([]float64, b*g*4)
	gtValid := []bool{true, true, true, false, true, false, false, false} // 3 boxes, then 1
	for i := range b * g {
		w, h := 30+rng.Float64()*300, 30+rng.Float64()*250
		x, y := rng.Float64()*(470-w), rng.Float64()*(380-h)
		copy(gt[4*i:], []float64{x, y, x + w, y + h})
	}
	gtT := tensors.FromFlatDataAndDimensions(gt, b, g, 4)
	gtValidT := tensors.FromFlatDataAndDimensions(gtValid, b, g)
	keys := make([]int64, b*n)
	for i := range keys {
		keys[i] = rng.Int64N(1 << det.KeyBits)
	}
	keysT := tensors.FromFlatDataAndDimensions(keys, b, n)

	outs := MustExecOnceN(pureGo(t), func(in []*Node) []*Node {
		cls, reg := in[0], in[1]
		lc, lb, tg := head.Loss(cls, reg, in[2], in[3], in[4], in[5], nil, in[6], cfg)
		grads := Gradient(Add(lc, lb), cls, reg)
		return []*Node{lc, lb, grads[0], grads[1], tg.Sample.Indices, tg.Sample.Valid, tg.Sample.Positive, tg.GTInds}
	}, cls, reg, anchors, gtT, gtValidT, imgShape, keysT)

	dir := t.TempDir()
	for name, tt := range map[string]*tensors.Tensor{"cls": cls, "reg": reg, "anchors": anchors, "gt": gtT, "gt_valid": gtValidT,
		"img_shape": imgShape, "indices": outs[4], "valid": outs[5], "positive": outs[6], "gt_inds": outs[7]} {
		if err := engine.SaveNPY(filepath.Join(dir, name+".npy"), tt); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(python, filepath.Join("..", "..", "benchmarks", "rpn_loss_reference.py"), dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("rpn_loss_reference.py: %v\n%s", err, out)
	}
	if v, _ := os.ReadFile(filepath.Join(dir, "violations.txt")); len(v) > 0 {
		t.Errorf("the picks break mmdet's rules:\n%s", v)
	}
	positives, samples := 0, 0
	for i, v := range outs[5].Value().([][]bool) {
		for k, ok := range v {
			if ok {
				samples++
				if outs[6].Value().([][]bool)[i][k] {
					positives++
				}
			}
		}
	}
	if positives == 0 || samples > b*256 {
		t.Fatalf("%d samples, %d positives", samples, positives)
	}
	want := tensors.MustCopyFlatData[float64](mustLoad(t, filepath.Join(dir, "losses.npy")))
	for i, name := range []string{"loss_cls", "loss_bbox"} {
		got := outs[i].Value().(float64)
		if math.Abs(got-want[i]) > 1e-9*math.Abs(want[i]) {
			t.Errorf("%s = %.12g, want %.12g", name, got, want[i])
		}
	}
	for i, name := range []string{"gcls", "greg"} {
		if d := relDiff64(outs[2+i], mustLoad(t, filepath.Join(dir, name+".npy"))); d > 1e-9 {
			t.Errorf("%s differs by %.2g", name, d)
		}
	}
	t.Logf("loss_cls %.6f, loss_bbox %.6f; %d samples, %d positives", outs[0].Value(), outs[1].Value(), samples, positives)
}

func prod(dims []int) int {
	p := 1
	for _, d := range dims {
		p *= d
	}
	return p
}

func mustLoad(t *testing.T, path string) *tensors.Tensor {
	t.Helper()
	tt, err := engine.LoadNPY(path)
	if err != nil {
		t.Fatal(err)
	}
	return tt
}

// relDiff64 is ||a - b|| / ||b|| of two float64 tensors of the same size.
func relDiff64(a, b *tensors.Tensor) float64 {
	av, bv := tensors.MustCopyFlatData[float64](a), tensors.MustCopyFlatData[float64](b)
	if len(av) != len(bv) {
		return math.Inf(1)
	}
	var d, nn float64
	for i := range av {
		d += (av[i] - bv[i]) * (av[i] - bv[i])
		nn += bv[i] * bv[i]
	}
	return math.Sqrt(d / nn)
}

// The proposals against mmdet 2.x's get_bboxes transcribed with torchvision's nms, in
// float32: the same boxes and scores in the same order, the rest of the slots invalid.
func TestRPNProposalsMatchMMDet(t *testing.T) {
	python, err := pyref.Python("torch", "torchvision", "numpy")
	if err != nil {
		t.Skip(err)
	}
	scope := nn.NewScope(context.New(), 1)
	head, err := registry.Build[*det.RPNHead](registry.With(nil, scope), registry.NewSpec(registry.Heads, "RPNHead", rpnC4(8, 8)))
	if err != nil {
		t.Fatal(err)
	}
	const b, fh, fw = 2, 12, 16
	a := head.Anchors.NumBaseAnchors()
	anchors, err := head.Anchors.Anchors(0, fh, fw, dtypes.Float32)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(11, 12))
	normal := func(std float64, dims ...int) *tensors.Tensor {
		v := make([]float32, prod(dims))
		for i := range v {
			v[i] = float32(std * rng.NormFloat64())
		}
		return tensors.FromFlatDataAndDimensions(v, dims...)
	}
	cls, reg := normal(3, b, fh, fw, a), normal(0.3, b, fh, fw, 4*a)
	imgShape := tensors.FromFlatDataAndDimensions([]float32{180, 250, 192, 230}, b, 2)
	// The second keeps fewer proposals than max_per_img: invalid slots.
	for _, cfg := range []*det.RPNProposalConfig{
		{NmsPre: 1000, MaxPerImg: 300, Nms: det.NMSConfig{Type: "nms", IoUThreshold: 0.7}, MinBBoxSize: 0},
		{NmsPre: 400, MaxPerImg: 500, Nms: det.NMSConfig{Type: "nms", IoUThreshold: 0.7}, MinBBoxSize: 0},
	} {
		outs := MustExecOnceN(pureGo(t), func(cls, reg, anchors, imgShape *Node) []*Node {
			boxes, scores, valid := head.Proposals(cls, reg, anchors, imgShape, cfg)
			return []*Node{boxes, scores, valid}
		}, cls, reg, anchors, imgShape)

		dir := t.TempDir()
		for name, tt := range map[string]*tensors.Tensor{"cls": cls, "reg": reg, "anchors": anchors, "img_shape": imgShape} {
			if err := engine.SaveNPY(filepath.Join(dir, name+".npy"), tt); err != nil {
				t.Fatal(err)
			}
		}
		if out, err := exec.Command(python, filepath.Join("..", "..", "benchmarks", "rpn_proposals_reference.py"), dir, fmt.Sprint(cfg.NmsPre), fmt.Sprint(cfg.MaxPerImg), "0.7", "0").CombinedOutput(); err != nil {
			t.Fatalf("rpn_proposals_reference.py: %v\n%s", err, out)
		}
		boxes, scores, valid := outs[0].Value().([][][]float32), outs[1].Value().([][]float32), outs[2].Value().([][]bool)
		for i := range b {
			wantBoxes := tensors.MustCopyFlatData[float32](mustLoad(t, filepath.Join(dir, fmt.Sprintf("boxes_%d.npy", i))))
			wantScores := tensors.MustCopyFlatData[float32](mustLoad(t, filepath.Join(dir, fmt.Sprintf("scores_%d.npy", i))))
			k := len(wantScores)
			for j := range cfg.MaxPerImg {
				if valid[i][j] != (j < k) {
					t.Fatalf("image %d: slot %d valid %v, but the reference keeps %d", i, j, valid[i][j], k)
				}
				if j >= k {
					continue
				}
				if d := math.Abs(float64(scores[i][j] - wantScores[j])); d > 1e-6 {
					t.Fatalf("image %d, proposal %d: score %v, want %v", i, j, scores[i][j], wantScores[j])
				}
				for c := range 4 {
					if d := math.Abs(float64(boxes[i][j][c] - wantBoxes[4*j+c])); d > 1e-3 {
						t.Fatalf("image %d, proposal %d: box %v, want %v", i, j, boxes[i][j], wantBoxes[4*j:4*j+4])
					}
				}
			}
			t.Logf("nms_pre %d, max_per_img %d, image %d: %d proposals", cfg.NmsPre, cfg.MaxPerImg, i, k)
		}
	}
}
