package engine_test

import (
	"context"
	"encoding/json"
	"image"
	"image/color"
	"image/jpeg"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/goselfsup/goselfsup/engine"
	"github.com/goselfsup/goselfsup/internal/vocfixture"
	"github.com/goselfsup/goselfsup/registry"

	_ "github.com/goselfsup/goselfsup/models/det" // FasterRCNN and its parts
)

// detFixture writes a VOC2007 folder of n photos-to-be of 128x96: bright rectangles
// ("bright") and red ones ("red") on a dark background, with their XML annotations, the
// first n-2 listed in trainval.txt and the last 2 in test.txt.
func detFixture(t *testing.T, n int) string {
	t.Helper()
	root := t.TempDir()
	voc := filepath.Join(root, "VOC2007")
	for _, d := range []string{"JPEGImages", "Annotations", "ImageSets/Main"} {
		if err := os.MkdirAll(filepath.Join(voc, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	var train, test []string
	for i := range n {
		const w, h = 128, 96
		img := image.NewRGBA(image.Rect(0, 0, w, h))
		for y := range h {
			for x := range w {
				img.Set(x, y, color.RGBA{25, 25, 35, 255})
			}
		}
		id := string(rune('a'+i)) + "001"
		ann := vocfixture.Annotation{Filename: id + ".jpg", Width: w, Height: h}
		objs := []struct {
			name           string
			x1, y1, x2, y2 int
			c              color.RGBA
		}{
			{"bright", 4 + 3*i, 6 + 2*i, 54 + 3*i, 50 + i, color.RGBA{230, 230, 220, 255}},
			{"red", 70 - 2*i, 40, 120 - i, 90 - i, color.RGBA{220, 30, 30, 255}},
		}
		for _, o := range objs {
			for y := o.y1; y < o.y2; y++ {
				for x := o.x1; x < o.x2; x++ {
					img.Set(x, y, o.c)
				}
			}
			ann.Objects = append(ann.Objects, vocfixture.Object{Name: o.name, XMin: o.x1 + 1, YMin: o.y1 + 1, XMax: o.x2, YMax: o.y2})
		}
		f, err := os.Create(filepath.Join(voc, "JPEGImages", id+".jpg"))
		if err != nil {
			t.Fatal(err)
		}
		if err := jpeg.Encode(f, img, &jpeg.Options{Quality: 95}); err != nil {
			t.Fatal(err)
		}
		f.Close()
		if err := vocfixture.WriteXML(filepath.Join(voc, "Annotations", id+".xml"), ann); err != nil {
			t.Fatal(err)
		}
		if i < n-2 {
			train = append(train, id)
		} else {
			test = append(test, id)
		}
	}
	for name, ids := range map[string][]string{"trainval": train, "test": test} {
		if err := os.WriteFile(filepath.Join(voc, "ImageSets", "Main", name+".txt"), []byte(strings.Join(ids, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// detConfig is a C4-shaped Faster R-CNN small enough for the CPU (ResNet-18 eight channels
// wide to res4, its res5 as the shared head with the extra BN), trained on the fixture with
// mmdet 2.x's pipelines.
func detConfig(t *testing.T, root string, sets ...string) (*registry.Tree, *engine.Config) {
	t.Helper()
	bn := map[string]any{"type": "BN", "requires_grad": true}
	nms := func(thr float64) map[string]any { return map[string]any{"type": "nms", "iou_threshold": thr} }
	norm := map[string]any{"type": "Normalize", "mean": []float64{123.675, 116.28, 103.53}, "std": []float64{58.395, 57.12, 57.375}, "to_rgb": true}
	dataset := func(list string, pipeline []any) map[string]any {
		return map[string]any{"type": "VOCDataset", "data_root": root, "ann_file": "VOC2007/ImageSets/Main/" + list + ".txt", "img_prefix": "VOC2007/",
			"classes": []string{"bright", "red"}, "pipeline": pipeline}
	}
	return testConfig(t, map[string]any{
		"backend":    "go",
		"randomness": map[string]any{"seed": 1},
		"model": map[string]any{
			"type": "FasterRCNN",
			"backbone": map[string]any{"type": "ResNet", "depth": 18, "num_stages": 3, "stage_blocks": []int{1, 1, 1}, "stem_channels": 8, "base_channels": 8,
				"strides": []int{1, 2, 2}, "dilations": []int{1, 1, 1}, "out_indices": []int{3}, "norm_cfg": bn},
			"rpn_head": map[string]any{"type": "RPNHead", "in_channels": 32, "feat_channels": 32,
				"anchor_generator": map[string]any{"type": "AnchorGenerator", "scales": []float64{2, 4, 8}, "ratios": []float64{0.5, 1, 2}, "strides": []int{16}},
				"bbox_coder":       map[string]any{"type": "DeltaXYWHBBoxCoder"}},
			"roi_head": map[string]any{"type": "StandardRoIHead",
				"bbox_roi_extractor": map[string]any{"type": "SingleRoIExtractor", "out_channels": 32, "featmap_strides": []int{16},
					"roi_layer": map[string]any{"type": "RoIAlign", "output_size": 6, "sampling_ratio": 0, "max_grid": 2}},
				"shared_head": map[string]any{"type": "ResLayerExtraNorm", "depth": 18, "stage": 3, "stride": 2, "base_channels": 8, "num_blocks": 1, "norm_cfg": bn},
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
		},
		"train_dataloader": map[string]any{
			"batch_size": 2, "num_workers": 2,
			"sampler": map[string]any{"type": "InfiniteSampler", "shuffle": true},
			"dataset": dataset("trainval", []any{tr("LoadImageFromFile"), tr("LoadAnnotations", "with_bbox", true),
				tr("Resize", "img_scale", []int{1333, 96}, "keep_ratio", true), tr("RandomFlip", "flip_ratio", 0.5), norm,
				tr("Pad", "size_divisor", 32), tr("DefaultFormatBundle"), tr("Collect", "keys", []string{"img", "gt_bboxes", "gt_labels"}, "max_gt", 4)}),
		},
		"val_dataloader": map[string]any{
			"batch_size": 1, "num_workers": 2,
			"dataset": dataset("test", []any{tr("LoadImageFromFile"), tr("MultiScaleFlipAug", "img_scale", []int{1333, 96}, "flip", false, "transforms", []any{
				tr("Resize", "keep_ratio", true), tr("RandomFlip"), norm, tr("Pad", "size_divisor", 32),
				tr("ImageToTensor", "keys", []string{"img"}), tr("Collect", "keys", []string{"img"})})}),
		},
		"val_evaluator":   map[string]any{"type": "VOCMetric", "iou_thrs": []float64{0.5}, "eval_mode": "11points"},
		"optim_wrapper":   map[string]any{"optimizer": map[string]any{"type": "SGD", "lr": 0.02, "momentum": 0.9, "weight_decay": 1e-4}},
		"param_scheduler": []any{},
		"train_cfg":       map[string]any{"type": "IterBasedTrainLoop", "max_iters": 40, "val_interval": 40},
		"default_hooks":   map[string]any{"logger": map[string]any{"type": "LoggerHook", "interval": 10}},
	}, "det", sets...)
}

// A Faster R-CNN trains through the runner on VOC batches (the boxes padded to max_gt,
// the images to /32) and validates as mmdet does: detections rescaled to the images as
// decoded, VOC07 11-point AP50 in the log and metrics.json, the loss falling.
func TestDetectionTrainsAndValidates(t *testing.T) {
	root := detFixture(t, 8)
	tree, cfg := detConfig(t, root)
	console := &strings.Builder{}
	var losses []float64
	r, err := engine.NewRunner(tree, cfg, engine.Options{WorkDir: t.TempDir(), Console: console, Hooks: []*engine.Hook{recordLosses(&losses)}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	if err := r.Train(context.Background()); err != nil {
		t.Fatalf("%v\n%s", err, console)
	}
	if len(losses) != 40 {
		t.Fatalf("%d iterations", len(losses))
	}
	mean := func(l []float64) float64 {
		s := 0.0
		for _, v := range l {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				t.Fatalf("losses %v", losses)
			}
			s += v
		}
		return s / float64(len(l))
	}
	first, last := mean(losses[:8]), mean(losses[32:])
	if !(last < first) {
		t.Errorf("the loss did not fall: %v", losses)
	}
	data, err := os.ReadFile(filepath.Join(r.RunDir, "metrics.json"))
	if err != nil {
		t.Fatal(err)
	}
	var metrics map[string]float64
	if err := json.Unmarshal(data, &metrics); err != nil {
		t.Fatal(err)
	}
	if v, ok := metrics["mAP"]; !ok || v < 0 || v > 1 {
		t.Errorf("metrics.json: mAP %v (%v): %v", v, ok, metrics)
	}
	if !strings.Contains(console.String(), "Iter(val) [40]") {
		t.Errorf("no validation logged:\n%s", console)
	}
	// The detections as JSON lines, one per val image, in the images' pixels; the val images
	// drawn with their detections.
	lines, err := os.ReadFile(filepath.Join(r.RunDir, "detections", "iter_40.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	type detection struct {
		Box   [4]float32 `json:"box"`
		Score float32    `json:"score"`
		Label string     `json:"label"`
	}
	type imageLine struct {
		Index      int         `json:"index"`
		Image      string      `json:"image"`
		Detections []detection `json:"detections"`
	}
	var images []imageLine
	for _, l := range strings.Split(strings.TrimSpace(string(lines)), "\n") {
		var img imageLine
		if err := json.Unmarshal([]byte(l), &img); err != nil {
			t.Fatalf("%q: %v", l, err)
		}
		images = append(images, img)
	}
	if len(images) != 2 || !strings.HasSuffix(images[0].Image, ".jpg") {
		t.Fatalf("detections file: %+v", images)
	}
	for _, img := range images {
		for _, d := range img.Detections {
			if d.Box[0] < 0 || d.Box[2] > 128 || d.Box[3] > 96 || d.Score <= 0.05 || (d.Label != "bright" && d.Label != "red") {
				t.Errorf("image %d: detection %+v", img.Index, d)
			}
		}
	}
	if pngs, _ := filepath.Glob(filepath.Join(r.RunDir, "vis_data", "det", "iter_40", "*.png")); len(pngs) != 2 {
		t.Errorf("%d pictures of detections, want 2", len(pngs))
	}
	t.Logf("loss %.3f -> %.3f; metrics %v", first, last, metrics)
}

// An NPID checkpoint initialises the C4 detector as mmselfsup's benchmark does: the
// backbone (stem to res4) from backbone.*, the shared head's res5 from the checkpoint's
// backbone.layer4.*; the extra norm and the heads start afresh.
func TestNPIDCheckpointInitialisesTheC4Detector(t *testing.T) {
	ckpt := npidCheckpoint(t) // a ResNet-18 of one block per stage, four channels wide
	c, err := engine.LoadCheckpoint(ckpt)
	if err != nil {
		t.Fatal(err)
	}
	root := detFixture(t, 4)
	tree, cfg := detConfig(t, root, "model.backbone.stem_channels=4", "model.backbone.base_channels=4", "model.rpn_head.in_channels=16",
		"model.rpn_head.feat_channels=16", "model.roi_head.bbox_roi_extractor.out_channels=16", "model.roi_head.shared_head.base_channels=4",
		"model.roi_head.bbox_head.in_channels=32")
	r, err := engine.NewRunner(tree, cfg, engine.Options{WorkDir: t.TempDir(), Console: &strings.Builder{}, Pretrained: ckpt})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	got, err := r.Checkpoint()
	if err != nil {
		t.Fatal(err)
	}
	same := func(model, ckptName string) bool {
		a, b := got.Tensors[model], c.Tensors[ckptName]
		return a != nil && b != nil && a.Shape().Equal(b.Shape()) && reflect.DeepEqual(a.Value(), b.Value())
	}
	for model, from := range map[string]string{
		"backbone.conv1.weight": "backbone.conv1.weight", "backbone.layer3.0.conv2.weight": "backbone.layer3.0.conv2.weight",
		"roi_head.shared_head.layer4.0.conv1.weight": "backbone.layer4.0.conv1.weight", "roi_head.shared_head.layer4.0.bn2.running_var": "backbone.layer4.0.bn2.running_var",
		"roi_head.shared_head.layer4.0.downsample.0.weight": "backbone.layer4.0.downsample.0.weight",
	} {
		if !same(model, from) {
			t.Errorf("%s was not initialised from %s", model, from)
		}
	}
	if _, ok := c.Tensors["backbone.layer4.0.conv1.weight"]; !ok {
		t.Fatal("the checkpoint has no layer4")
	}
	if _, ok := got.Tensors["backbone.layer4.0.conv1.weight"]; ok {
		t.Error("the detector's backbone has a layer4 (num_stages = 3)")
	}
	if v := got.Tensors["roi_head.shared_head.norm.weight"]; v == nil || v.Value().([]float32)[0] != 1 {
		t.Errorf("the extra norm is not fresh: %v", v)
	}
}
