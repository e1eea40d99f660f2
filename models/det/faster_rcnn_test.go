package det_test

import (
	"testing"

	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/goselfsup/goselfsup/models"
	"github.com/goselfsup/goselfsup/models/det"
	"github.com/goselfsup/goselfsup/models/nn"
	"github.com/goselfsup/goselfsup/registry"
)

// tinyFasterRCNN is a C4-shaped Faster R-CNN small enough for a test: a ResNet-10 to res4
// eight channels wide, the RPN, RoIAlign, a strided convolution as the shared head, the box
// head for 2 classes.
func tinyFasterRCNN() map[string]any {
	bn := map[string]any{"type": "BN", "requires_grad": true}
	nms := func(thr float64) map[string]any { return map[string]any{"type": "nms", "iou_threshold": thr} }
	return map[string]any{
		"data_preprocessor": map[string]any{"mean": []float64{123.675, 116.28, 103.53}, "std": []float64{58.395, 57.12, 57.375}, "bgr_to_rgb": true},
		"backbone": map[string]any{"type": "ResNet", "depth": 18, "num_stages": 3, "stage_blocks": []int{1, 1, 1}, "stem_channels": 8, "base_channels": 8,
			"strides": []int{1, 2, 2}, "dilations": []int{1, 1, 1}, "out_indices": []int{3}, "norm_cfg": bn},
		"rpn_head": map[string]any{"type": "RPNHead", "in_channels": 32, "feat_channels": 32,
			"anchor_generator": map[string]any{"type": "AnchorGenerator", "scales": []float64{2, 4, 8}, "ratios": []float64{0.5, 1, 2}, "strides": []int{16}},
			"bbox_coder":       map[string]any{"type": "DeltaXYWHBBoxCoder"}},
		"roi_head": map[string]any{"type": "StandardRoIHead",
			"bbox_roi_extractor": map[string]any{"type": "SingleRoIExtractor", "out_channels": 32, "featmap_strides": []int{16},
				"roi_layer": map[string]any{"type": "RoIAlign", "output_size": 6, "sampling_ratio": 0, "max_grid": 2}},
			"shared_head": map[string]any{"type": "TinySharedHeadForTests", "in_channels": 32},
			"bbox_head": map[string]any{"type": "BBoxHead", "in_channels": 64, "num_classes": 2, "roi_feat_size": 3,
				"bbox_coder": map[string]any{"type": "DeltaXYWHBBoxCoder", "target_stds": []float64{0.1, 0.1, 0.2, 0.2}}}},
		"train_cfg": map[string]any{
			"rpn": map[string]any{"assigner": map[string]any{"type": "MaxIoUAssigner", "pos_iou_thr": 0.7, "neg_iou_thr": 0.3, "min_pos_iou": 0.3, "match_low_quality": true},
				"sampler": map[string]any{"type": "RandomSampler", "num": 64, "pos_fraction": 0.5, "add_gt_as_proposals": false}, "allowed_border": 0, "pos_weight": -1},
			"rpn_proposal": map[string]any{"nms_pre": 200, "max_per_img": 50, "nms": nms(0.7), "min_bbox_size": 0},
			"rcnn": map[string]any{"assigner": map[string]any{"type": "MaxIoUAssigner", "pos_iou_thr": 0.5, "neg_iou_thr": 0.5, "min_pos_iou": 0.5, "match_low_quality": false},
				"sampler": map[string]any{"type": "RandomSampler", "num": 32, "pos_fraction": 0.25, "add_gt_as_proposals": true}, "pos_weight": -1}},
		"test_cfg": map[string]any{
			"rpn":  map[string]any{"nms_pre": 200, "max_per_img": 50, "nms": nms(0.7), "min_bbox_size": 0},
			"rcnn": map[string]any{"score_thr": 0.05, "nms": nms(0.5), "max_per_img": 20}},
	}
}

// boxImages draws two images with bright rectangles (the boxes of class 0) and red ones
// (class 1) on a dark background, 128x128.
func boxImages() (images []uint8, boxes []float32, labels []int32, valid []bool) {
	const s = 128
	images = make([]uint8, 2*s*s*3)
	for i := range images {
		images[i] = 20
	}
	objs := [][]int{{0, 10, 12, 70, 60, 0}, {0, 80, 70, 120, 122, 1}, {1, 30, 40, 100, 110, 1}}
	for _, o := range objs {
		img, x1, y1, x2, y2, cls := o[0], o[1], o[2], o[3], o[4], o[5]
		for y := y1; y < y2; y++ {
			for x := x1; x < x2; x++ {
				p := ((img*s+y)*s + x) * 3
				if cls == 0 {
					images[p], images[p+1], images[p+2] = 230, 230, 220
				} else {
					images[p], images[p+1], images[p+2] = 220, 30, 30
				}
			}
		}
	}
	// Padded to 3 boxes per image.
	boxes = []float32{10, 12, 70, 60, 80, 70, 120, 122, 0, 0, 0, 0, 30, 40, 100, 110, 0, 0, 0, 0, 0, 0, 0, 0}
	labels = []int32{0, 1, 0, 1, 0, 0}
	valid = []bool{true, true, false, true, false, false}
	return images, boxes, labels, valid
}

// A tiny Faster R-CNN trains: its four losses are finite and their sum falls over 100 SGD
// steps on a fixed batch; Predict gives at most max_per_img detections inside the images.
func TestFasterRCNNTrainsAndPredicts(t *testing.T) {
	if testing.Short() {
		t.Skip("100 train steps")
	}
	ctx := context.New()
	if err := ctx.SetRNGStateFromSeed(7); err != nil { // the samplers' draws
		t.Fatal(err)
	}
	scope := nn.NewScope(ctx, 7)
	m, err := registry.Build[*det.FasterRCNN](registry.With(nil, scope), registry.NewSpec(registry.Algorithms, "FasterRCNN", tinyFasterRCNN()))
	if err != nil {
		t.Fatal(err)
	}
	images, boxes, labels, valid := boxImages()
	args := []any{tensors.FromFlatDataAndDimensions(images, 2, 128, 128, 3), tensors.FromFlatDataAndDimensions([]int32{128, 128, 120, 128}, 2, 2),
		tensors.FromFlatDataAndDimensions(boxes, 2, 3, 4), tensors.FromFlatDataAndDimensions(labels, 2, 3), tensors.FromFlatDataAndDimensions(valid, 2, 3)}
	const steps = 100
	rows := sgdSteps(t, ctx, steps, args, func(ctx *context.Context, in []*Node) []*Node {
		l := m.Losses(ctx, models.Batch{Images: in[0], ImgShapes: in[1], GTBoxes: in[2], GTLabels: in[3], GTValid: in[4]})
		return []*Node{l.Total(), l.RPNCls, l.RPNBBox, l.Cls, l.BBox}
	})
	t.Logf("first step: rpn_cls %.4f rpn_bbox %.4f cls %.4f bbox %.4f", rows[0][1], rows[0][2], rows[0][3], rows[0][4])
	losses := column(rows, 0)
	first, last := meanOf(losses[:10]), meanOf(losses[steps-10:])
	t.Logf("mean loss over the first 10 steps %.4f, over the last 10 %.4f", first, last)
	if !(last < 0.7*first) {
		t.Errorf("the loss did not fall: %v", losses)
	}

	out := context.MustExecOnceN(pureGo(t), ctx, func(ctx *context.Context, images, shapes *Node) []*Node {
		d := m.Predict(images, shapes)
		return []*Node{d.Boxes, d.Scores, d.Labels, d.Valid}
	}, args[0], args[1])
	dBoxes, dValid := out[0].Value().([][][]float32), out[3].Value().([][]bool)
	for i := range 2 {
		n := 0
		for j, ok := range dValid[i] {
			if !ok {
				continue
			}
			n++
			b := dBoxes[i][j]
			if b[0] < 0 || b[1] < 0 || b[2] > 128 || b[3] > 128 || b[0] > b[2] || b[1] > b[3] {
				t.Errorf("image %d: detection %v outside the image", i, b)
			}
		}
		t.Logf("image %d: %d detections", i, n)
	}
	if len(dValid[0]) != 20 {
		t.Errorf("%d detection slots, want max_per_img 20", len(dValid[0]))
	}
}

// sgdSteps runs steps of plain SGD (learning rate 0.05 on every trainable float variable)
// on the fixed inputs args, minimising the first of the nodes that losses returns, and
// returns every step's values of those nodes.
func sgdSteps(t *testing.T, ctx *context.Context, steps int, args []any, losses func(ctx *context.Context, in []*Node) []*Node) [][]float32 {
	t.Helper()
	step := context.MustNewExec(pureGo(t), ctx, func(ctx *context.Context, in []*Node) []*Node {
		out := losses(ctx, in)
		total := out[0]
		var vars []*context.Variable
		var values []*Node
		for v := range ctx.IterVariables() {
			if v.Trainable && v.Shape().DType.IsFloat() {
				vars = append(vars, v)
				values = append(values, v.ValueGraph(total.Graph()))
			}
		}
		grads := Gradient(total, values...)
		for i, v := range vars {
			v.SetValueGraph(Sub(values[i], MulScalar(grads[i], 0.05)))
		}
		return out
	})
	defer step.Finalize()
	var values [][]float32
	for range steps {
		outs := step.MustExec(args...)
		row := make([]float32, len(outs))
		for i, o := range outs {
			row[i] = o.Value().(float32)
		}
		values = append(values, row)
	}
	return values
}

// column returns the i-th value of every row, and meanOf the mean of values.
func column(rows [][]float32, i int) []float32 {
	out := make([]float32, len(rows))
	for k, r := range rows {
		out[k] = r[i]
	}
	return out
}

func meanOf(values []float32) float32 {
	var s float32
	for _, v := range values {
		s += v
	}
	return s / float32(len(values))
}
