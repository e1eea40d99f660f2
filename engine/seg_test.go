package engine_test

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/goselfsup/goselfsup/engine"
	"github.com/goselfsup/goselfsup/internal/segfixture"
	"github.com/goselfsup/goselfsup/registry"
)

// segFixture is the shared segmentation fixture: classes dark, bright and red.
func segFixture(t *testing.T, n, w, h int) string { return segfixture.Write(t, n, w, h) }

// tr is a config table of type typ with the keys and values kv (key, value, ...): a pipeline
// transform.
func tr(typ string, kv ...any) map[string]any {
	m := map[string]any{"type": typ}
	for i := 0; i < len(kv); i += 2 {
		m[kv[i].(string)] = kv[i+1]
	}
	return m
}

// segConfig is an FCN on a tiny dilated ResNet, trained on 16x16 crops padded to 20x20.
func segConfig(t *testing.T, root string, sets ...string) (*registry.Tree, *engine.Config) {
	t.Helper()
	bn := map[string]any{"type": "SyncBN", "requires_grad": true}
	dataset := func(pipeline []any) map[string]any {
		return map[string]any{"type": "BaseSegDataset", "data_root": root, "img_dir": "img", "ann_dir": "ann",
			"metainfo": map[string]any{"classes": []string{"dark", "bright", "red"}}, "pipeline": pipeline}
	}
	return testConfig(t, map[string]any{
		"backend":    "go",
		"randomness": map[string]any{"seed": 3},
		"model": map[string]any{
			"type":              "EncoderDecoder",
			"data_preprocessor": map[string]any{"type": "SegDataPreProcessor", "mean": []float64{123.675, 116.28, 103.53}, "std": []float64{58.395, 57.12, 57.375}, "bgr_to_rgb": true},
			"backbone": map[string]any{"type": "ResNet", "depth": 18, "stage_blocks": []int{1, 1, 1, 1}, "stem_channels": 4, "base_channels": 4,
				"strides": []int{1, 2, 1, 1}, "dilations": []int{1, 1, 2, 4}, "contract_dilation": true, "out_indices": []int{1, 2, 3, 4}, "norm_cfg": bn},
			"decode_head": map[string]any{"type": "FCNHead", "in_channels": 32, "in_index": 3, "channels": 8, "num_convs": 1, "concat_input": true,
				"dropout_ratio": 0.1, "num_classes": 3, "norm_cfg": bn, "loss_decode": map[string]any{"type": "CrossEntropyLoss", "loss_weight": 1.0}},
			"auxiliary_head": map[string]any{"type": "FCNHead", "in_channels": 16, "in_index": 2, "channels": 4, "num_convs": 1, "concat_input": false,
				"dropout_ratio": 0.1, "num_classes": 3, "norm_cfg": bn, "loss_decode": map[string]any{"type": "CrossEntropyLoss", "loss_weight": 0.4}},
		},
		"train_dataloader": map[string]any{
			"batch_size": 4, "num_workers": 2,
			"sampler": map[string]any{"type": "InfiniteSampler", "shuffle": true},
			"dataset": dataset([]any{tr("LoadImageFromFile"), tr("LoadAnnotations"),
				tr("RandomResize", "scale", []int{24, 24}, "ratio_range", []float64{0.8, 1.2}, "keep_ratio", true),
				tr("RandomCrop", "crop_size", []int{16, 16}, "cat_max_ratio", 0.75),
				tr("RandomFlip", "prob", 0.5), tr("PhotoMetricDistortion"),
				tr("Pad", "size", []int{20, 20}, "pad_val", map[string]any{"img": 0, "seg": 255}), tr("PackSegInputs")}),
		},
		"val_dataloader": map[string]any{
			"batch_size": 1, "num_workers": 2,
			"dataset": dataset([]any{tr("LoadImageFromFile"), tr("Resize", "scale", []int{16, 16}, "keep_ratio", true),
				tr("LoadAnnotations"), tr("PackSegInputs")}),
		},
		"val_evaluator":   map[string]any{"type": "IoUMetric", "iou_metrics": []string{"mIoU"}},
		"optim_wrapper":   map[string]any{"optimizer": map[string]any{"type": "SGD", "lr": 0.05, "momentum": 0.9, "weight_decay": 5e-4}},
		"param_scheduler": []any{map[string]any{"type": "PolyLR", "eta_min": 1e-4, "power": 0.9, "begin": 0, "end": 8, "by_epoch": false}},
		"train_cfg":       map[string]any{"type": "IterBasedTrainLoop", "max_iters": 8, "val_interval": 4},
		"default_hooks": map[string]any{
			"logger": map[string]any{"type": "LoggerHook", "interval": 1},
		},
	}, "seg", sets...)
}

// An EncoderDecoder trains through the runner on segmentation batches (maps padded with 255,
// the padding zeroed after normalisation) and validates as mmseg does: mIoU, aAcc, mAcc and
// the per-class values in the log and metrics.json, the per-class table logged, overlays in
// the run folder.
func TestSegmentationTrainsAndValidates(t *testing.T) {
	root := segFixture(t, 8, 28, 24)
	tree, cfg := segConfig(t, root)
	console := &strings.Builder{}
	var losses []float64
	record := recordLosses(&losses)
	r, err := engine.NewRunner(tree, cfg, engine.Options{WorkDir: t.TempDir(), Console: console, Hooks: []*engine.Hook{record}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	if err := r.Train(context.Background()); err != nil {
		t.Fatalf("%v\n%s", err, console)
	}
	if len(losses) != 8 {
		t.Fatalf("%d iterations: %v", len(losses), losses)
	}
	for _, l := range losses {
		if math.IsNaN(l) || math.IsInf(l, 0) || l <= 0 {
			t.Fatalf("losses %v", losses)
		}
	}
	data, err := os.ReadFile(filepath.Join(r.RunDir, "metrics.json"))
	if err != nil {
		t.Fatal(err)
	}
	var metrics map[string]float64
	if err := json.Unmarshal(data, &metrics); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"mIoU", "aAcc", "mAcc"} {
		if v, ok := metrics[k]; !ok || v < 0 || v > 100 {
			t.Errorf("metrics.json: %s = %v (%v)", k, v, ok)
		}
	}
	if _, ok := metrics["IoU.dark"]; !ok {
		t.Errorf("metrics.json has no per-class IoU: %v", metrics)
	}
	log, err := os.ReadFile(filepath.Join(r.RunDir, filepath.Base(r.RunDir)+".log"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"per class results:", "| bright", "Iter(val) [4]", "Iter(val) [8]", "mIoU"} {
		if !strings.Contains(string(log), want) {
			t.Errorf("the log lacks %q:\n%s", want, log)
		}
	}
	for _, it := range []string{"iter_4", "iter_8"} {
		pngs, _ := filepath.Glob(filepath.Join(r.RunDir, "vis_data", "seg", it, "*.png"))
		if len(pngs) != 4 {
			t.Errorf("%s: %d overlays, want 4", it, len(pngs))
		}
	}
}

// npidCheckpoint trains NPID with the seg test's backbone (a plain ResNet of the same
// widths) for two iterations and returns its checkpoint.
func npidCheckpoint(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	tree, cfg := tinyConfig(t, `model.backbone={type="ResNet", depth=18, stage_blocks=[1,1,1,1], stem_channels=4, base_channels=4}`,
		"custom_hooks=[]", "train_cfg.max_epochs=1", "param_scheduler=[]", "train_dataloader.dataset.size=16",
		`train_dataloader.dataset.pipeline=[]`, "val_dataloader.dataset.size=16")
	r, err := engine.NewRunner(tree, cfg, engine.Options{WorkDir: dir, Console: &strings.Builder{}})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := r.Train(context.Background()); err != nil {
		t.Fatal(err)
	}
	path, err := engine.LatestCheckpoint(dir)
	if err != nil {
		t.Fatal(err)
	}
	return path
}

// An NPID checkpoint initialises the segmentor's backbone (Options.Pretrained, train
// --pretrained): every backbone variable is taken, the heads are not in it and start from
// scratch; a checkpoint that lacks backbone variables is an error naming them.
func TestNPIDCheckpointInitialisesTheSegBackbone(t *testing.T) {
	ckpt := npidCheckpoint(t)
	c, err := engine.LoadCheckpoint(ckpt)
	if err != nil {
		t.Fatal(err)
	}
	root := segFixture(t, 4, 28, 24)
	tree, cfg := segConfig(t, root)
	r, err := engine.NewRunner(tree, cfg, engine.Options{WorkDir: t.TempDir(), Console: &strings.Builder{}, Pretrained: ckpt})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	got, err := r.Checkpoint()
	if err != nil {
		t.Fatal(err)
	}
	backbone := 0
	for name, v := range got.Tensors {
		if !strings.HasPrefix(name, "backbone.") {
			continue
		}
		backbone++
		if !v.Shape().Equal(c.Tensors[name].Shape()) || !reflect.DeepEqual(v.Value(), c.Tensors[name].Value()) {
			t.Errorf("%s was not loaded", name)
		}
	}
	if backbone < 20 {
		t.Fatalf("%d backbone variables", backbone)
	}
	if _, ok := got.Tensors["decode_head.conv_seg.weight"]; !ok {
		t.Fatal("no decode head")
	}

	tree, cfg = segConfig(t, root, "model.backbone.stage_blocks=[1,1,1,2]")
	_, err = engine.NewRunner(tree, cfg, engine.Options{WorkDir: t.TempDir(), Console: &strings.Builder{}, Pretrained: ckpt})
	if err == nil || !strings.Contains(err.Error(), "backbone.layer4.1.conv1.weight") {
		t.Fatalf("a checkpoint without layer4.1: %v", err)
	}
}

// On two devices the segmentation step is one SPMD program whose arguments are each
// device's batch, maps and img shapes in turn.
func TestSegmentationTrainsOnTwoDevices(t *testing.T) {
	root := segFixture(t, 8, 28, 24)
	tree, cfg := segConfig(t, root, `backend="go:devices=2"`, "train_dataloader.batch_size=2", "train_cfg.max_iters=3", "train_cfg.val_interval=3")
	console := &strings.Builder{}
	var losses []float64
	record := recordLosses(&losses)
	r, err := engine.NewRunner(tree, cfg, engine.Options{WorkDir: t.TempDir(), Console: console, Hooks: []*engine.Hook{record}})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if r.Devices != 2 {
		t.Fatalf("%d devices", r.Devices)
	}
	if err := r.Train(context.Background()); err != nil {
		t.Fatalf("%v\n%s", err, console)
	}
	if len(losses) != 3 || math.IsNaN(losses[2]) || losses[2] <= 0 {
		t.Fatalf("losses %v", losses)
	}
	if _, ok := r.Metrics["mIoU"]; !ok {
		t.Fatalf("metrics %v", r.Metrics)
	}
}
