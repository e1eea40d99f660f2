package det_test

import (
	"fmt"
	"math"
	"math/rand/v2"
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

// The C4 box head's loss against a PyTorch transcription of mmdet 2.x's BBoxHead.loss on
// fixed RoIs: positives of several classes, negatives (background, last), empty slots; the
// losses, the accuracy and the gradients with respect to the head's outputs.
func TestBBoxHeadLossMatchesMMDet(t *testing.T) {
	python, err := pyref.Python("torch", "numpy")
	if err != nil {
		t.Skip(err)
	}
	const nc, r = 20, 40
	scope := nn.NewScope(context.New(), 1).WithDType(dtypes.Float64)
	head, err := registry.Build[*det.BBoxHead](registry.With(nil, scope), registry.NewSpec(registry.Heads, "BBoxHead", map[string]any{
		"in_channels": 16, "num_classes": nc, "roi_feat_size": 7,
		"bbox_coder": map[string]any{"type": "DeltaXYWHBBoxCoder", "target_means": []float64{0, 0, 0, 0}, "target_stds": []float64{0.1, 0.1, 0.2, 0.2}},
	}))
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(9, 10))
	flat := func(n int, f func(i int) float64) []float64 {
		v := make([]float64, n)
		for i := range v {
			v[i] = f(i)
		}
		return v
	}
	cls := tensors.FromFlatDataAndDimensions(flat(r*(nc+1), func(int) float64 { return 2 * rng.NormFloat64() }), r, nc+1)
	reg := tensors.FromFlatDataAndDimensions(flat(r*4*nc, func(int) float64 { return 0.5 * rng.NormFloat64() }), r, 4*nc)
	box := func() []float64 {
		x, y := rng.Float64()*300, rng.Float64()*200
		return []float64{x, y, x + 20 + rng.Float64()*150, y + 20 + rng.Float64()*120}
	}
	var rois, gt []float64
	labels := make([]int32, r)
	valid := make([]bool, r)
	for i := range r {
		b := box()
		rois = append(rois, b...)
		gt = append(gt, b[0]+rng.NormFloat64()*8, b[1]+rng.NormFloat64()*8, b[2]+rng.NormFloat64()*8, b[3]+rng.NormFloat64()*8)
		switch {
		case i < 12: // positives
			labels[i], valid[i] = int32(rng.IntN(nc)), true
		case i < 34: // negatives
			labels[i], valid[i] = nc, true
		default: // empty slots, whatever they hold
			labels[i] = int32(rng.IntN(nc))
		}
	}
	roisT, gtT := tensors.FromFlatDataAndDimensions(rois, r, 4), tensors.FromFlatDataAndDimensions(gt, r, 4)
	labelsT, validT := tensors.FromFlatDataAndDimensions(labels, r), tensors.FromFlatDataAndDimensions(valid, r)

	outs := MustExecOnceN(pureGo(t), func(in []*Node) []*Node {
		lc, lb, acc := head.Loss(in[0], in[1], det.RoITargets{RoIs: in[2], GTBoxes: in[3], Labels: in[4], Valid: in[5]})
		grads := Gradient(Add(lc, lb), in[0], in[1])
		return []*Node{lc, lb, acc, grads[0], grads[1]}
	}, cls, reg, roisT, gtT, labelsT, validT)

	dir := t.TempDir()
	for name, tt := range map[string]*tensors.Tensor{"cls": cls, "reg": reg, "rois": roisT, "gt": gtT, "labels": labelsT, "valid": validT} {
		if err := engine.SaveNPY(filepath.Join(dir, name+".npy"), tt); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := exec.Command(python, filepath.Join("..", "..", "benchmarks", "bbox_head_reference.py"), dir).CombinedOutput(); err != nil {
		t.Fatalf("bbox_head_reference.py: %v\n%s", err, out)
	}
	want := tensors.MustCopyFlatData[float64](mustLoad(t, filepath.Join(dir, "losses.npy")))
	for i, name := range []string{"loss_cls", "loss_bbox", "acc"} {
		got := outs[i].Value().(float64)
		if math.Abs(got-want[i]) > 1e-9*math.Max(math.Abs(want[i]), 1e-9) {
			t.Errorf("%s = %.12g, want %.12g", name, got, want[i])
		}
	}
	for i, name := range []string{"gcls", "greg"} {
		if d := relDiff64(outs[3+i], mustLoad(t, filepath.Join(dir, name+".npy"))); d > 1e-9 {
			t.Errorf("%s differs by %.2g", name, d)
		}
	}
	t.Logf("loss_cls %.6f, loss_bbox %.6f, acc %.2f", outs[0].Value(), outs[1].Value(), outs[2].Value())
}

// The test-time boxes (softmax, class-specific decoding clipped to the image, score_thr,
// per-class NMS, max_per_img) against mmdet 2.x's get_bboxes and multiclass_nms transcribed
// with torchvision's nms, in float32: the same detections in the same order.
func TestBBoxHeadGetBBoxesMatchesMMDet(t *testing.T) {
	python, err := pyref.Python("torch", "torchvision", "numpy")
	if err != nil {
		t.Skip(err)
	}
	const nc, b, p = 20, 2, 150
	head, err := registry.Build[*det.BBoxHead](registry.With(nil, nn.NewScope(context.New(), 1)), registry.NewSpec(registry.Heads, "BBoxHead", map[string]any{
		"in_channels": 16, "num_classes": nc,
		"bbox_coder": map[string]any{"type": "DeltaXYWHBBoxCoder", "target_means": []float64{0, 0, 0, 0}, "target_stds": []float64{0.1, 0.1, 0.2, 0.2}},
	}))
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(13, 14))
	f32 := func(n int, f func() float64) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(f())
		}
		return v
	}
	cls := tensors.FromFlatDataAndDimensions(f32(b*p*(nc+1), func() float64 { return 2 * rng.NormFloat64() }), b*p, nc+1)
	reg := tensors.FromFlatDataAndDimensions(f32(b*p*4*nc, func() float64 { return rng.NormFloat64() }), b*p, 4*nc)
	var rois []float32
	for range b * p {
		x, y := rng.Float64()*250, rng.Float64()*180
		rois = append(rois, float32(x), float32(y), float32(x+10+rng.Float64()*120), float32(y+10+rng.Float64()*100))
	}
	roisT := tensors.FromFlatDataAndDimensions(rois, b, p, 4)
	valid := make([]bool, b*p)
	for i := range valid {
		valid[i] = i%p < p-10 // the last 10 proposals of each image are empty slots
	}
	imgShape := tensors.FromFlatDataAndDimensions([]float32{240, 300, 220, 310}, b, 2)
	cfg := &det.TestConfig{ScoreThr: 0.05, Nms: det.NMSConfig{Type: "nms", IoUThreshold: 0.5}, MaxPerImg: 100}
	outs := MustExecOnceN(pureGo(t), func(cls, reg, rois, valid, imgShape *Node) []*Node {
		d := head.GetBBoxes(cls, reg, rois, valid, imgShape, cfg)
		return []*Node{d.Boxes, d.Scores, d.Labels, d.Valid}
	}, cls, reg, roisT, tensors.FromFlatDataAndDimensions(valid, b, p), imgShape)

	dir := t.TempDir()
	clsV, regV := cls.Value().([][]float32), reg.Value().([][]float32)
	for i := range b {
		// The reference gets each image's valid proposals only, as mmdet has no empty slots.
		n := p - 10
		var c, r []float32
		for j := range n {
			c = append(c, clsV[i*p+j]...)
			r = append(r, regV[i*p+j]...)
		}
		for name, tt := range map[string]*tensors.Tensor{
			fmt.Sprintf("cls_%d", i):  tensors.FromFlatDataAndDimensions(c, n, nc+1),
			fmt.Sprintf("reg_%d", i):  tensors.FromFlatDataAndDimensions(r, n, 4*nc),
			fmt.Sprintf("rois_%d", i): tensors.FromFlatDataAndDimensions(rois[i*p*4:(i*p+n)*4], n, 4),
		} {
			if err := engine.SaveNPY(filepath.Join(dir, name+".npy"), tt); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := engine.SaveNPY(filepath.Join(dir, "img_shape.npy"), imgShape); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(python, filepath.Join("..", "..", "benchmarks", "bbox_postprocess_reference.py"), dir, "0.05", "0.5", "100").CombinedOutput(); err != nil {
		t.Fatalf("bbox_postprocess_reference.py: %v\n%s", err, out)
	}
	boxes, scores, labels, ok := outs[0].Value().([][][]float32), outs[1].Value().([][]float32), outs[2].Value().([][]int32), outs[3].Value().([][]bool)
	for i := range b {
		want := tensors.MustCopyFlatData[float32](mustLoad(t, filepath.Join(dir, fmt.Sprintf("dets_%d.npy", i))))
		k := len(want) / 6
		for j := range cfg.MaxPerImg {
			if ok[i][j] != (j < k) {
				t.Fatalf("image %d: slot %d valid %v, the reference has %d detections", i, j, ok[i][j], k)
			}
			if j >= k {
				continue
			}
			w := want[6*j : 6*j+6]
			if labels[i][j] != int32(w[5]) || math.Abs(float64(scores[i][j]-w[4])) > 1e-6 {
				t.Fatalf("image %d, detection %d: label %d score %v, want %v", i, j, labels[i][j], scores[i][j], w)
			}
			for c := range 4 {
				if math.Abs(float64(boxes[i][j][c]-w[c])) > 1e-3 {
					t.Fatalf("image %d, detection %d: box %v, want %v", i, j, boxes[i][j], w[:4])
				}
			}
		}
		t.Logf("image %d: %d detections", i, k)
	}
}
