package det_test

import (
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/goselfsup/goselfsup/models"
	"github.com/goselfsup/goselfsup/models/det"
	"github.com/goselfsup/goselfsup/models/nn"
	"github.com/goselfsup/goselfsup/registry"
)

// tinyFasterRCNNFPN is the R50-FPN detector's structure (mmdet's mask_rcnn_r50_fpn.py box
// branch with the benchmark's Shared4Conv1FCBBoxHead and BN everywhere) small enough for a
// test: a ResNet-18 with one block per stage, 8 to 64 channels, the FPN to 16 channels and 5
// levels, the RPN on all of them, RoIAlign 7x7 on P2-P5, the 4conv1fc head for 2 classes. The
// train_cfg and test_cfg have the FPN recipe's keys (nms_pre per level, allowed_border -1).
func tinyFasterRCNNFPN() map[string]any {
	bn := map[string]any{"type": "BN", "requires_grad": true}
	nms := func(thr float64) map[string]any { return map[string]any{"type": "nms", "iou_threshold": thr} }
	return map[string]any{
		"data_preprocessor": map[string]any{"mean": []float64{123.675, 116.28, 103.53}, "std": []float64{58.395, 57.12, 57.375}, "bgr_to_rgb": true},
		"backbone": map[string]any{"type": "ResNet", "depth": 18, "num_stages": 4, "stage_blocks": []int{1, 1, 1, 1}, "stem_channels": 8, "base_channels": 8,
			"strides": []int{1, 2, 2, 2}, "dilations": []int{1, 1, 1, 1}, "out_indices": []int{1, 2, 3, 4}, "norm_cfg": bn},
		"neck": map[string]any{"type": "FPN", "in_channels": []int{8, 16, 32, 64}, "out_channels": 16, "num_outs": 5, "norm_cfg": bn},
		"rpn_head": map[string]any{"type": "RPNHead", "in_channels": 16, "feat_channels": 16,
			"anchor_generator": map[string]any{"type": "AnchorGenerator", "scales": []float64{8}, "ratios": []float64{0.5, 1, 2}, "strides": []int{4, 8, 16, 32, 64}},
			"bbox_coder":       map[string]any{"type": "DeltaXYWHBBoxCoder"}},
		"roi_head": map[string]any{"type": "StandardRoIHead",
			"bbox_roi_extractor": map[string]any{"type": "SingleRoIExtractor", "out_channels": 16, "featmap_strides": []int{4, 8, 16, 32},
				"roi_layer": map[string]any{"type": "RoIAlign", "output_size": 7, "sampling_ratio": 0, "max_grid": 2}},
			"bbox_head": map[string]any{"type": "Shared4Conv1FCBBoxHead", "in_channels": 16, "conv_out_channels": 16, "fc_out_channels": 32,
				"num_classes": 2, "roi_feat_size": 7, "norm_cfg": bn,
				"bbox_coder": map[string]any{"type": "DeltaXYWHBBoxCoder", "target_stds": []float64{0.1, 0.1, 0.2, 0.2}}}},
		"train_cfg": map[string]any{
			"rpn": map[string]any{"assigner": map[string]any{"type": "MaxIoUAssigner", "pos_iou_thr": 0.7, "neg_iou_thr": 0.3, "min_pos_iou": 0.3, "match_low_quality": true},
				"sampler": map[string]any{"type": "RandomSampler", "num": 64, "pos_fraction": 0.5, "add_gt_as_proposals": false}, "allowed_border": -1, "pos_weight": -1},
			"rpn_proposal": map[string]any{"nms_pre": 100, "max_per_img": 50, "nms": nms(0.7), "min_bbox_size": 0},
			"rcnn": map[string]any{"assigner": map[string]any{"type": "MaxIoUAssigner", "pos_iou_thr": 0.5, "neg_iou_thr": 0.5, "min_pos_iou": 0.5, "match_low_quality": true},
				"sampler": map[string]any{"type": "RandomSampler", "num": 32, "pos_fraction": 0.25, "add_gt_as_proposals": true}, "pos_weight": -1}},
		"test_cfg": map[string]any{
			"rpn":  map[string]any{"nms_pre": 100, "max_per_img": 50, "nms": nms(0.7), "min_bbox_size": 0},
			"rcnn": map[string]any{"score_thr": 0.05, "nms": nms(0.5), "max_per_img": 20}},
	}
}

// A tiny Faster R-CNN FPN trains: its losses are finite and their sum falls over 50 SGD
// steps on a fixed batch; Predict gives at most max_per_img detections inside the images;
// the variables carry mmdet's names (neck.lateral_convs.0.conv.weight,
// roi_head.bbox_head.shared_convs.0.bn.weight, ...).
func TestFasterRCNNFPNTrainsAndPredicts(t *testing.T) {
	if testing.Short() {
		t.Skip("50 train steps")
	}
	ctx := context.New()
	if err := ctx.SetRNGStateFromSeed(7); err != nil {
		t.Fatal(err)
	}
	scope := nn.NewScope(ctx, 7)
	m, err := registry.Build[*det.FasterRCNN](registry.With(nil, scope), registry.NewSpec(registry.Algorithms, "FasterRCNN", tinyFasterRCNNFPN()))
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for v := range ctx.IterVariables() {
		names[nn.TorchName(v)] = true
	}
	for _, n := range []string{"neck.lateral_convs.3.conv.weight", "neck.fpn_convs.0.bn.weight", "rpn_head.rpn_conv.weight",
		"roi_head.bbox_head.shared_convs.3.conv.weight", "roi_head.bbox_head.shared_convs.0.bn.bias", "roi_head.bbox_head.shared_fcs.0.weight",
		"roi_head.bbox_head.fc_cls.weight", "roi_head.bbox_head.fc_reg.bias"} {
		if !names[n] {
			t.Errorf("no variable %s", n)
		}
	}
	images, boxes, labels, valid := boxImages()
	args := []any{tensors.FromFlatDataAndDimensions(images, 2, 128, 128, 3), tensors.FromFlatDataAndDimensions([]int32{128, 128, 120, 128}, 2, 2),
		tensors.FromFlatDataAndDimensions(boxes, 2, 3, 4), tensors.FromFlatDataAndDimensions(labels, 2, 3), tensors.FromFlatDataAndDimensions(valid, 2, 3)}
	const steps = 50
	rows := sgdSteps(t, ctx, steps, args, func(ctx *context.Context, in []*Node) []*Node {
		l := m.Losses(ctx, models.Batch{Images: in[0], ImgShapes: in[1], GTBoxes: in[2], GTLabels: in[3], GTValid: in[4]})
		return []*Node{l.Total(), l.RPNCls, l.RPNBBox, l.Cls, l.BBox}
	})
	for _, i := range []int{0, steps - 1} {
		t.Logf("step %d: rpn_cls %.4f rpn_bbox %.4f cls %.4f bbox %.4f", i, rows[i][1], rows[i][2], rows[i][3], rows[i][4])
	}
	losses := column(rows, 0)
	first, last := meanOf(losses[:5]), meanOf(losses[steps-5:])
	t.Logf("mean loss over the first 5 steps %.4f, over the last 5 %.4f", first, last)
	if !(last < 0.7*first) {
		t.Errorf("the loss did not fall: %v", losses)
	}

	out := context.MustExecOnceN(pureGo(t), ctx, func(ctx *context.Context, images, shapes *Node) []*Node {
		d := m.Predict(images, shapes)
		return []*Node{d.Boxes, d.Scores, d.Labels, d.Valid}
	}, args[0], args[1])
	dBoxes, dValid := out[0].Value().([][][]float32), out[3].Value().([][]bool)
	if len(dValid[0]) != 20 {
		t.Errorf("%d detection slots, want max_per_img 20", len(dValid[0]))
	}
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
}

// maskRCNNFPNBoxTOML is the box branch of mmselfsup's Mask R-CNN R50-FPN benchmark model
// (reference section 2.1) with mmdet 2.x's train_cfg and test_cfg (section 2.2), written as
// goselfsup's TOML.
const maskRCNNFPNBoxTOML = `
type = "FasterRCNN"
[data_preprocessor]
mean = [123.675, 116.28, 103.53]
std = [58.395, 57.12, 57.375]
bgr_to_rgb = true
[backbone]
type = "ResNet"
depth = 50
num_stages = 4
out_indices = [1, 2, 3, 4]
frozen_stages = -1
norm_cfg = { type = "SyncBN", requires_grad = true }
norm_eval = false
[neck]
type = "FPN"
in_channels = [256, 512, 1024, 2048]
out_channels = 256
num_outs = 5
norm_cfg = { type = "SyncBN", requires_grad = true }
[rpn_head]
type = "RPNHead"
in_channels = 256
feat_channels = 256
anchor_generator = { type = "AnchorGenerator", scales = [8], ratios = [0.5, 1.0, 2.0], strides = [4, 8, 16, 32, 64] }
bbox_coder = { type = "DeltaXYWHBBoxCoder", target_means = [0.0, 0.0, 0.0, 0.0], target_stds = [1.0, 1.0, 1.0, 1.0] }
loss_cls = { type = "CrossEntropyLoss", use_sigmoid = true, loss_weight = 1.0 }
loss_bbox = { type = "L1Loss", loss_weight = 1.0 }
[roi_head]
type = "StandardRoIHead"
[roi_head.bbox_roi_extractor]
type = "SingleRoIExtractor"
roi_layer = { type = "RoIAlign", output_size = 7, sampling_ratio = 0, max_grid = 4 }
out_channels = 256
featmap_strides = [4, 8, 16, 32]
[roi_head.bbox_head]
type = "Shared4Conv1FCBBoxHead"
in_channels = 256
conv_out_channels = 256
fc_out_channels = 1024
roi_feat_size = 7
num_classes = 80
norm_cfg = { type = "SyncBN", requires_grad = true }
bbox_coder = { type = "DeltaXYWHBBoxCoder", target_means = [0.0, 0.0, 0.0, 0.0], target_stds = [0.1, 0.1, 0.2, 0.2] }
reg_class_agnostic = false
loss_cls = { type = "CrossEntropyLoss", use_sigmoid = false, loss_weight = 1.0 }
loss_bbox = { type = "L1Loss", loss_weight = 1.0 }
[train_cfg.rpn]
assigner = { type = "MaxIoUAssigner", pos_iou_thr = 0.7, neg_iou_thr = 0.3, min_pos_iou = 0.3, match_low_quality = true, ignore_iof_thr = -1 }
sampler = { type = "RandomSampler", num = 256, pos_fraction = 0.5, neg_pos_ub = -1, add_gt_as_proposals = false }
allowed_border = -1
pos_weight = -1
debug = false
[train_cfg.rpn_proposal]
nms_pre = 2000
max_per_img = 1000
nms = { type = "nms", iou_threshold = 0.7 }
min_bbox_size = 0
[train_cfg.rcnn]
assigner = { type = "MaxIoUAssigner", pos_iou_thr = 0.5, neg_iou_thr = 0.5, min_pos_iou = 0.5, match_low_quality = true, ignore_iof_thr = -1 }
sampler = { type = "RandomSampler", num = 512, pos_fraction = 0.25, neg_pos_ub = -1, add_gt_as_proposals = true }
mask_size = 28
pos_weight = -1
debug = false
[test_cfg.rpn]
nms_pre = 1000
max_per_img = 1000
nms = { type = "nms", iou_threshold = 0.7 }
min_bbox_size = 0
[test_cfg.rcnn]
score_thr = 0.05
nms = { type = "nms", iou_threshold = 0.5 }
max_per_img = 100
mask_thr_binary = 0.5
`

// The R50-FPN benchmark's model, train_cfg and test_cfg (reference sections 2.1 and 2.2)
// decode and validate from TOML, with nms_pre per level, allowed_border -1 and the RCNN
// sampler's values where the detector reads them. (Decoding only: the R50 is not built.)
func TestFasterRCNNFPNConfigDecodes(t *testing.T) {
	var table map[string]any
	if _, err := toml.Decode(maskRCNNFPNBoxTOML, &table); err != nil {
		t.Fatal(err)
	}
	typ := table["type"].(string)
	delete(table, "type")
	cfg, err := registry.Default.Decode(registry.NewSpec(registry.Algorithms, typ, table))
	if err != nil {
		t.Fatal(err)
	}
	c := cfg.(*det.FasterRCNNConfig)
	if c.TrainCfg.RPNProposal.NmsPre != 2000 || c.TrainCfg.RPNProposal.MaxPerImg != 1000 || c.TestCfg.RPN.NmsPre != 1000 ||
		c.TrainCfg.RPN.AllowedBorder != -1 || c.TestCfg.RCNN.MaxPerImg != 100 || c.TrainCfg.RCNN.MaskSize != 28 || c.Neck.Type != "FPN" {
		t.Errorf("decoded %+v", c)
	}
	// The nested components are validated: add_extra_convs = true (RetinaNet's extra
	// convolutions) is refused, as is a misspelt key.
	for _, bad := range []struct{ from, to string }{
		{"num_outs = 5\n", "num_outs = 5\nadd_extra_convs = true\n"},
		{"mask_size = 28", "mask_sizes = 28"},
	} {
		var table map[string]any
		if _, err := toml.Decode(strings.Replace(maskRCNNFPNBoxTOML, bad.from, bad.to, 1), &table); err != nil {
			t.Fatal(err)
		}
		delete(table, "type")
		if _, err := registry.Default.Decode(registry.NewSpec(registry.Algorithms, "FasterRCNN", table)); err == nil {
			t.Errorf("%q: no error", bad.to)
		} else {
			t.Logf("%q: %v", bad.to, err)
		}
	}
}

// Mismatched parts are build errors, not panics: the neck's in_channels against the
// backbone's outputs (a stem output included), the anchor strides against the neck's
// outputs, the extractor's channels against the neck's.
func TestFasterRCNNFPNBuildErrors(t *testing.T) {
	for name, edit := range map[string]func(cfg map[string]any){
		"backbone with the stem": func(cfg map[string]any) { cfg["backbone"].(map[string]any)["out_indices"] = []int{0, 1, 2, 3, 4} },
		"four anchor strides": func(cfg map[string]any) {
			cfg["rpn_head"].(map[string]any)["anchor_generator"].(map[string]any)["strides"] = []int{4, 8, 16, 32}
		},
		"extractor channels": func(cfg map[string]any) {
			cfg["roi_head"].(map[string]any)["bbox_roi_extractor"].(map[string]any)["out_channels"] = 8
			cfg["roi_head"].(map[string]any)["bbox_head"].(map[string]any)["in_channels"] = 8
		},
	} {
		cfg := tinyFasterRCNNFPN()
		edit(cfg)
		_, err := registry.Build[*det.FasterRCNN](registry.With(nil, nn.NewScope(context.New(), 1)), registry.NewSpec(registry.Algorithms, "FasterRCNN", cfg))
		if err == nil {
			t.Errorf("%s: no error", name)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
}
