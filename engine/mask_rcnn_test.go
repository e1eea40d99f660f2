package engine_test

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/goselfsup/goselfsup/coco"
	"github.com/goselfsup/goselfsup/engine"
	"github.com/goselfsup/goselfsup/registry"
)

// cocoFixture is detFixture's images (two filled rectangles each, "bright" and "red") with
// a COCO instances file for each split, annotations/{trainval,test}.json: each rectangle an
// annotation with its box, its area and its outline as a polygon, categories 3 (bright) and
// 7 (red).
func cocoFixture(t *testing.T, n int) string {
	t.Helper()
	root := detFixture(t, n)
	voc := filepath.Join(root, "VOC2007")
	if err := os.MkdirAll(filepath.Join(root, "annotations"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, split := range []string{"trainval", "test"} {
		list, err := os.ReadFile(filepath.Join(voc, "ImageSets", "Main", split+".txt"))
		if err != nil {
			t.Fatal(err)
		}
		ds := &coco.Dataset{Categories: []coco.Category{{ID: 3, Name: "bright"}, {ID: 7, Name: "red"}}}
		for _, id := range strings.Fields(string(list)) {
			i := int(id[0] - 'a')
			img := coco.Image{ID: int64(100 + i), FileName: id + ".jpg", Width: 128, Height: 96}
			ds.Images = append(ds.Images, img)
			// detFixture's rectangles, x2 and y2 exclusive.
			for k, r := range [][5]int{{3, 4 + 3*i, 6 + 2*i, 54 + 3*i, 50 + i}, {7, 70 - 2*i, 40, 120 - i, 90 - i}} {
				x1, y1, x2, y2 := float64(r[1]), float64(r[2]), float64(r[3]), float64(r[4])
				ds.Annotations = append(ds.Annotations, coco.Annotation{ID: img.ID*10 + int64(k), ImageID: img.ID, CategoryID: int64(r[0]),
					BBox: [4]float64{x1, y1, x2 - x1, y2 - y1}, Area: (x2 - x1) * (y2 - y1),
					Segmentation: coco.Segmentation{Polygons: [][]float64{{x1, y1, x2, y1, x2, y2, x1, y2}}}})
			}
		}
		if err := ds.Write(filepath.Join(root, "annotations", split+".json")); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// maskConfig is a tiny Mask R-CNN (the ResNet-18 of detConfig to res4, an FPN of 3 levels,
// RoIAlign by size, the 4conv1fc box head and the mask head) on cocoFixture, scored by
// CocoMetric for boxes and masks.
func maskConfig(t *testing.T, root string) (*registry.Tree, *engine.Config) {
	t.Helper()
	bn := map[string]any{"type": "BN", "requires_grad": true}
	nms := func(thr float64) map[string]any { return map[string]any{"type": "nms", "iou_threshold": thr} }
	norm := map[string]any{"type": "Normalize", "mean": []float64{123.675, 116.28, 103.53}, "std": []float64{58.395, 57.12, 57.375}, "to_rgb": true}
	dataset := func(split string, pipeline []any) map[string]any {
		return map[string]any{"type": "CocoDataset", "data_root": root, "ann_file": "annotations/" + split + ".json", "img_prefix": "VOC2007/JPEGImages/",
			"pipeline": pipeline}
	}
	extractor := func(out int) map[string]any {
		return map[string]any{"type": "SingleRoIExtractor", "out_channels": 16, "featmap_strides": []int{4, 8, 16}, "finest_scale": 28,
			"roi_layer": map[string]any{"type": "RoIAlign", "output_size": out, "sampling_ratio": 0, "max_grid": 2}}
	}
	return testConfig(t, map[string]any{
		"backend":    "go",
		"randomness": map[string]any{"seed": 1},
		"model": map[string]any{
			"type": "MaskRCNN",
			"backbone": map[string]any{"type": "ResNet", "depth": 18, "num_stages": 3, "stage_blocks": []int{1, 1, 1}, "stem_channels": 8, "base_channels": 8,
				"strides": []int{1, 2, 2}, "dilations": []int{1, 1, 1}, "out_indices": []int{1, 2, 3}, "norm_cfg": bn},
			"neck": map[string]any{"type": "FPN", "in_channels": []int{8, 16, 32}, "out_channels": 16, "num_outs": 4, "norm_cfg": bn},
			"rpn_head": map[string]any{"type": "RPNHead", "in_channels": 16, "feat_channels": 16,
				"anchor_generator": map[string]any{"type": "AnchorGenerator", "scales": []float64{8}, "ratios": []float64{0.5, 1, 2}, "strides": []int{4, 8, 16, 32}},
				"bbox_coder":       map[string]any{"type": "DeltaXYWHBBoxCoder"}},
			"roi_head": map[string]any{"type": "StandardRoIHead",
				"bbox_roi_extractor": extractor(7),
				"bbox_head": map[string]any{"type": "Shared4Conv1FCBBoxHead", "in_channels": 16, "conv_out_channels": 16, "fc_out_channels": 32,
					"num_classes": 2, "roi_feat_size": 7, "norm_cfg": bn,
					"bbox_coder": map[string]any{"type": "DeltaXYWHBBoxCoder", "target_stds": []float64{0.1, 0.1, 0.2, 0.2}}},
				"mask_roi_extractor": extractor(14),
				"mask_head":          map[string]any{"type": "FCNMaskHead", "num_convs": 2, "in_channels": 16, "conv_out_channels": 16, "num_classes": 2, "norm_cfg": bn}},
			"train_cfg": map[string]any{
				"rpn": map[string]any{"assigner": map[string]any{"type": "MaxIoUAssigner", "pos_iou_thr": 0.7, "neg_iou_thr": 0.3, "min_pos_iou": 0.3, "match_low_quality": true},
					"sampler": map[string]any{"type": "RandomSampler", "num": 64, "pos_fraction": 0.5, "add_gt_as_proposals": false}, "allowed_border": -1, "pos_weight": -1},
				"rpn_proposal": map[string]any{"nms_pre": 100, "max_per_img": 50, "nms": nms(0.7), "min_bbox_size": 0},
				"rcnn": map[string]any{"assigner": map[string]any{"type": "MaxIoUAssigner", "pos_iou_thr": 0.5, "neg_iou_thr": 0.5, "min_pos_iou": 0.5, "match_low_quality": true},
					"sampler": map[string]any{"type": "RandomSampler", "num": 32, "pos_fraction": 0.25, "add_gt_as_proposals": true}, "pos_weight": -1,
					"mask_size": 28, "mask_max_grid": 2}},
			"test_cfg": map[string]any{
				"rpn":  map[string]any{"nms_pre": 100, "max_per_img": 50, "nms": nms(0.7), "min_bbox_size": 0},
				"rcnn": map[string]any{"score_thr": 0.05, "nms": nms(0.5), "max_per_img": 20, "mask_thr_binary": 0.5}},
		},
		"train_dataloader": map[string]any{
			"batch_size": 2, "num_workers": 2,
			"sampler": map[string]any{"type": "InfiniteSampler", "shuffle": true},
			"dataset": dataset("trainval", []any{tr("LoadImageFromFile"), tr("LoadAnnotations", "with_bbox", true, "with_mask", true),
				tr("Resize", "img_scale", []int{1333, 96}, "keep_ratio", true), tr("RandomFlip", "flip_ratio", 0.5), norm,
				tr("Pad", "size_divisor", 32), tr("DefaultFormatBundle"), tr("Collect", "keys", []string{"img", "gt_bboxes", "gt_labels", "gt_masks"}, "max_gt", 4)}),
		},
		"val_dataloader": map[string]any{
			"batch_size": 1, "num_workers": 2,
			"dataset": dataset("test", []any{tr("LoadImageFromFile"), tr("MultiScaleFlipAug", "img_scale", []int{1333, 96}, "flip", false, "transforms", []any{
				tr("Resize", "keep_ratio", true), tr("RandomFlip"), norm, tr("Pad", "size_divisor", 32),
				tr("ImageToTensor", "keys", []string{"img"}), tr("Collect", "keys", []string{"img"})})}),
		},
		"val_evaluator":   map[string]any{"type": "CocoMetric", "metric": []string{"bbox", "segm"}},
		"optim_wrapper":   map[string]any{"optimizer": map[string]any{"type": "SGD", "lr": 0.02, "momentum": 0.9, "weight_decay": 1e-4}},
		"param_scheduler": []any{},
		"train_cfg":       map[string]any{"type": "IterBasedTrainLoop", "max_iters": 40, "val_interval": 40},
		"default_hooks":   map[string]any{"logger": map[string]any{"type": "LoggerHook", "interval": 10}},
	}, "mask")
}

// A tiny Mask R-CNN trains on boxes and instance masks and validates with CocoMetric: the
// loss falls; metrics.json has box and mask AP, well above 0; the detections go to COCO
// results files
// (boxes and RLE masks of the val images' ids and the categories' ids) that read back;
// the val images are drawn.
func TestMaskRCNNTrainsAndValidates(t *testing.T) {
	root := cocoFixture(t, 8)
	tree, cfg := maskConfig(t, root)
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
	if len(losses) != 40 || !(mean(losses[32:]) < mean(losses[:8])) {
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
	for _, k := range []string{"bbox_mAP", "bbox_mAP_75", "segm_mAP", "segm_mAP_75"} {
		if v, ok := metrics[k]; !ok || v < 0 || v > 1 {
			t.Errorf("metrics.json: %s %v (%v): %v", k, v, ok, metrics)
		}
	}
	// Two rectangles an image are easy: 40 steps find most of them, boxes and masks (0.88
	// for both when this was written).
	for _, k := range []string{"bbox_mAP_50", "segm_mAP_50"} {
		if v := metrics[k]; !(v > 0.2) {
			t.Errorf("metrics.json: %s %v, want above 0.2", k, v)
		}
	}
	for _, typ := range []string{"bbox", "segm"} {
		rs, err := coco.ReadResults(filepath.Join(r.RunDir, "detections", "iter_40."+typ+".json"))
		if err != nil {
			t.Fatal(err)
		}
		for _, res := range rs {
			if res.ImageID < 106 || res.ImageID > 107 || (res.CategoryID != 3 && res.CategoryID != 7) || !(res.Score > 0.05) {
				t.Fatalf("%s result %+v", typ, res)
			}
			if typ == "segm" && (res.Segmentation == nil || res.Segmentation.W != 128 || res.Segmentation.H != 96) {
				t.Fatalf("segm result without a 128x96 mask: %+v", res)
			}
		}
		t.Logf("%d %s results", len(rs), typ)
	}
	if pngs, _ := filepath.Glob(filepath.Join(r.RunDir, "vis_data", "det", "iter_40", "*.png")); len(pngs) != 2 {
		t.Errorf("%d pictures of detections, want 2", len(pngs))
	}
	t.Logf("loss %.3f -> %.3f; metrics %v", mean(losses[:8]), mean(losses[32:]), metrics)
}
