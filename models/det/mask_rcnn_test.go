package det_test

import (
	"strings"
	"testing"

	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/goselfsup/goselfsup/models"
	"github.com/goselfsup/goselfsup/models/det"
	"github.com/goselfsup/goselfsup/models/nn"
	"github.com/goselfsup/goselfsup/registry"
)

// tinyMaskRCNN is tinyFasterRCNNFPN with mmdet's mask branch: RoIAlign 14x14 on P2-P5 and
// an FCNMaskHead of 4 convolutions (16 channels, BN), 28x28 masks.
func tinyMaskRCNN() map[string]any {
	cfg := tinyFasterRCNNFPN()
	roi := cfg["roi_head"].(map[string]any)
	roi["mask_roi_extractor"] = map[string]any{"type": "SingleRoIExtractor", "out_channels": 16, "featmap_strides": []int{4, 8, 16, 32},
		"roi_layer": map[string]any{"type": "RoIAlign", "output_size": 14, "sampling_ratio": 0, "max_grid": 2}}
	roi["mask_head"] = map[string]any{"type": "FCNMaskHead", "num_convs": 4, "in_channels": 16, "conv_out_channels": 16, "num_classes": 2,
		"norm_cfg": map[string]any{"type": "BN", "requires_grad": true}}
	cfg["train_cfg"].(map[string]any)["rcnn"].(map[string]any)["mask_size"] = 28
	cfg["train_cfg"].(map[string]any)["rcnn"].(map[string]any)["mask_max_grid"] = 4
	cfg["test_cfg"].(map[string]any)["rcnn"].(map[string]any)["mask_thr_binary"] = 0.5
	return cfg
}

// boxMasks are boxImages' objects as instance masks [2, 3, 128, 128]: each object's box
// filled (the images draw them as filled rectangles), the padding slots empty.
func boxMasks(boxes []float32, valid []bool) []uint8 {
	const s = 128
	m := make([]uint8, 2*3*s*s)
	for i, ok := range valid {
		if !ok {
			continue
		}
		b := boxes[4*i : 4*i+4]
		for y := int(b[1]); y < int(b[3]); y++ {
			for x := int(b[0]); x < int(b[2]); x++ {
				m[(i*s+y)*s+x] = 1
			}
		}
	}
	return m
}

// MaskRCNN is FasterRCNN with a mask branch: FasterRCNN refuses a mask head and MaskRCNN
// needs one; a tiny Mask R-CNN trains on a fixed batch (the sum of its five losses and the
// mask loss alone fall over 40 SGD steps), and DetectMasks gives for every detection slot a
// 28x28 grid of probabilities, which PasteMask pastes into the image inside the box's reach.
func TestMaskRCNNTrainsAndPredictsMasks(t *testing.T) {
	if testing.Short() {
		t.Skip("40 train steps")
	}
	if _, err := registry.Build[*det.FasterRCNN](registry.With(nil, nn.NewScope(context.New(), 1)),
		registry.NewSpec(registry.Algorithms, "FasterRCNN", tinyMaskRCNN())); err == nil || !strings.Contains(err.Error(), "MaskRCNN") {
		t.Errorf("FasterRCNN with a mask head: %v", err)
	}
	if _, err := registry.Build[*det.MaskRCNN](registry.With(nil, nn.NewScope(context.New(), 1)),
		registry.NewSpec(registry.Algorithms, "MaskRCNN", tinyFasterRCNNFPN())); err == nil || !strings.Contains(err.Error(), "mask_head") {
		t.Errorf("MaskRCNN without a mask head: %v", err)
	}
	ctx := context.New()
	if err := ctx.SetRNGStateFromSeed(7); err != nil {
		t.Fatal(err)
	}
	scope := nn.NewScope(ctx, 7)
	m, err := registry.Build[*det.MaskRCNN](registry.With(nil, scope), registry.NewSpec(registry.Algorithms, "MaskRCNN", tinyMaskRCNN()))
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for v := range ctx.IterVariables() {
		names[nn.TorchName(v)] = true
	}
	for _, n := range []string{"roi_head.mask_head.convs.0.conv.weight", "roi_head.mask_head.convs.3.bn.weight", "roi_head.mask_head.upsample.weight",
		"roi_head.mask_head.conv_logits.weight", "roi_head.mask_head.conv_logits.bias"} {
		if !names[n] {
			t.Errorf("no variable %s", n)
		}
	}
	images, boxes, labels, valid := boxImages()
	args := []any{tensors.FromFlatDataAndDimensions(images, 2, 128, 128, 3), tensors.FromFlatDataAndDimensions([]int32{128, 128, 120, 128}, 2, 2),
		tensors.FromFlatDataAndDimensions(boxes, 2, 3, 4), tensors.FromFlatDataAndDimensions(labels, 2, 3), tensors.FromFlatDataAndDimensions(valid, 2, 3),
		tensors.FromFlatDataAndDimensions(boxMasks(boxes, valid), 2, 3, 128, 128)}
	const steps = 40
	rows := sgdSteps(t, ctx, steps, args, func(ctx *context.Context, in []*Node) []*Node {
		l := m.Losses(ctx, models.Batch{Images: in[0], ImgShapes: in[1], GTBoxes: in[2], GTLabels: in[3], GTValid: in[4], GTMasks: in[5]})
		return []*Node{l.Total(), l.Mask}
	})
	total, mask := column(rows, 0), column(rows, 1)
	t.Logf("loss: %.4f -> %.4f, loss_mask: %.4f -> %.4f (means of the first and last 5 steps)",
		meanOf(total[:5]), meanOf(total[steps-5:]), meanOf(mask[:5]), meanOf(mask[steps-5:]))
	if !(meanOf(total[steps-5:]) < 0.7*meanOf(total[:5])) || !(meanOf(mask[steps-5:]) < 0.8*meanOf(mask[:5])) {
		t.Errorf("the losses did not fall: total %v, mask %v", total, mask)
	}

	out := context.MustExecOnceN(pureGo(t), ctx, func(ctx *context.Context, images, shapes *Node) []*Node {
		b, s, l, ok, masks := m.DetectMasks(images, shapes)
		return []*Node{b, s, l, ok, masks}
	}, args[0], args[1])
	if got := out[4].Shape().Dimensions; len(got) != 4 || got[0] != 2 || got[1] != 20 || got[2] != 28 || got[3] != 28 {
		t.Fatalf("masks %v, want [2 20 28 28]", got)
	}
	dBoxes, dValid := tensors.MustCopyFlatData[float32](out[0]), tensors.MustCopyFlatData[bool](out[3])
	probs := tensors.MustCopyFlatData[float32](out[4])
	for _, p := range probs {
		if !(p >= 0 && p <= 1) {
			t.Fatalf("a mask probability %v", p)
		}
	}
	pasted := 0
	for j, ok := range dValid {
		if !ok {
			continue
		}
		box := [4]float32(dBoxes[4*j : 4*j+4])
		bitmap, err := m.PasteMask(probs[j*784:(j+1)*784], box, 128, 128)
		if err != nil {
			t.Fatal(err)
		}
		for y := range 128 {
			for x := range 128 {
				// A pasted pixel lies within half a mask cell (box / 28 / 2) of its box.
				if bitmap[y*128+x] != 0 && (float32(x)+0.5 < box[0]-(box[2]-box[0])/56-1 || float32(x)+0.5 > box[2]+(box[2]-box[0])/56+1 ||
					float32(y)+0.5 < box[1]-(box[3]-box[1])/56-1 || float32(y)+0.5 > box[3]+(box[3]-box[1])/56+1) {
					t.Fatalf("detection %d: pixel %d,%d pasted outside its box %v", j, x, y, box)
				}
				pasted += int(bitmap[y*128+x])
			}
		}
	}
	t.Logf("%d pixels pasted", pasted)
}
