package cli

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// The VOC12aug FCN config holds the reference's values (mmselfsup's
// fcn_r50-d8_512x512_20k_voc12aug.py and its bases).
func TestVOC12AugConfigValues(t *testing.T) {
	tree, _, err := LoadConfig("configs/benchmarks/segmentation/voc12aug/fcn_r50-d8_512x512_20k_voc12aug.toml", nil)
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]any{
		"model.type": "EncoderDecoder", "model.backbone.depth": int64(50), "model.backbone.contract_dilation": true,
		"model.backbone.dilations": []any{int64(1), int64(1), int64(2), int64(4)}, "model.backbone.norm_cfg.type": "SyncBN",
		"model.decode_head.num_classes": int64(21), "model.auxiliary_head.loss_decode.loss_weight": 0.4,
		"optim_wrapper.optimizer.lr": 0.01, "optim_wrapper.optimizer.momentum": 0.9, "optim_wrapper.optimizer.weight_decay": 0.0005,
		"param_scheduler.0.type": "PolyLR", "param_scheduler.0.eta_min": 0.0001, "param_scheduler.0.power": 0.9,
		"param_scheduler.0.end": int64(20000), "param_scheduler.0.by_epoch": false,
		"train_cfg.type": "IterBasedTrainLoop", "train_cfg.max_iters": int64(20000), "train_cfg.val_interval": int64(2000),
		"train_dataloader.batch_size": int64(4), "env_cfg.num_devices": int64(4),
		"train_dataloader.dataset.type":                                "ConcatDataset",
		"train_dataloader.dataset.datasets.0.ann_file":                 "ImageSets/Segmentation/train.txt",
		"train_dataloader.dataset.datasets.1.ann_file":                 "ImageSets/Segmentation/aug.txt",
		"train_dataloader.dataset.datasets.1.data_prefix.seg_map_path": "SegmentationClassAug",
		"train_dataloader.dataset.datasets.0.pipeline.3.cat_max_ratio": 0.75,
		"val_dataloader.dataset.ann_file":                              "ImageSets/Segmentation/val.txt",
		"val_dataloader.batch_size":                                    int64(1),
		"val_evaluator.type":                                           "IoUMetric",
		"val_evaluator.iou_metrics":                                    []any{"mIoU"},
	} {
		if got, _ := tree.Lookup(path); !reflect.DeepEqual(got, want) {
			t.Errorf("%s = %#v, want %#v", path, got, want)
		}
	}
}

// Without VOC2012 the benchmark fails at once, naming the missing folder and the README
// section on data layout, and writes nothing.
func TestVOC12AugWithoutData(t *testing.T) {
	t.Chdir(t.TempDir())
	start := time.Now()
	code, _, errOut := runTrain("configs/benchmarks/segmentation/voc12aug/fcn_r50-d8_512x512_20k_voc12aug.toml", "--set", "backend=go", "--work-dir", "wd")
	if code != 1 {
		t.Fatalf("exit %d, want 1: %s", code, errOut)
	}
	for _, want := range []string{filepath.Join("data", "VOCdevkit", "VOC2012", "JPEGImages") + " not found", `"Datasets" in README.md`} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut)
		}
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("failing took %s", d)
	}
	if _, err := os.Stat("wd"); err == nil {
		t.Error("a run that failed to start left its work_dir")
	}
}
