package cli

import (
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/goselfsup/goselfsup/engine"
	"github.com/goselfsup/goselfsup/models/nn"
	"github.com/goselfsup/goselfsup/registry"
)

const vocDetConfig = "configs/benchmarks/detection/voc0712/faster_rcnn_r50_c4_mstrain_24k_voc0712.toml"

// The VOC07+12 Faster R-CNN C4 config holds the reference's values (mmselfsup's
// faster_rcnn_r50_c4_mstrain_24k_voc0712.py and its bases, mmdet 2.x).
func TestVOC0712DetConfigValues(t *testing.T) {
	tree, _, err := LoadConfig(vocDetConfig, nil)
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]any{
		"benchmark.type": "MMDetBenchmark", "model.type": "FasterRCNN",
		"model.backbone.depth": int64(50), "model.backbone.num_stages": int64(3), "model.backbone.out_indices": []any{int64(3)},
		"model.backbone.frozen_stages": int64(-1), "model.backbone.norm_cfg.type": "SyncBN", "model.backbone.norm_eval": false,
		"model.rpn_head.feat_channels": int64(1024), "model.rpn_head.anchor_generator.scales": []any{int64(2), int64(4), int64(8), int64(16), int64(32)},
		"model.rpn_head.anchor_generator.strides": []any{int64(16)}, "model.rpn_head.loss_bbox.type": "L1Loss",
		"model.roi_head.shared_head.type": "ResLayerExtraNorm", "model.roi_head.shared_head.norm_cfg.type": "SyncBN",
		"model.roi_head.bbox_roi_extractor.roi_layer.output_size": int64(14), "model.roi_head.bbox_roi_extractor.roi_layer.sampling_ratio": int64(0),
		"model.roi_head.bbox_head.num_classes": int64(20), "model.roi_head.bbox_head.bbox_coder.target_stds": []any{0.1, 0.1, 0.2, 0.2},
		"model.train_cfg.rpn.allowed_border": int64(0), "model.train_cfg.rpn.sampler.num": int64(256),
		"model.train_cfg.rpn_proposal.nms_pre": int64(12000), "model.train_cfg.rpn_proposal.max_per_img": int64(2000),
		"model.train_cfg.rcnn.sampler.num": int64(512), "model.train_cfg.rcnn.sampler.pos_fraction": 0.25,
		"model.train_cfg.rcnn.assigner.match_low_quality": false,
		"model.test_cfg.rpn.nms_pre":                      int64(6000), "model.test_cfg.rpn.max_per_img": int64(1000),
		"model.test_cfg.rcnn.score_thr": 0.05, "model.test_cfg.rcnn.nms.iou_threshold": 0.5, "model.test_cfg.rcnn.max_per_img": int64(100),
		"optim_wrapper.optimizer.lr": 0.02, "optim_wrapper.optimizer.weight_decay": 0.0001,
		"train_cfg.max_iters": int64(24000), "train_cfg.val_interval": int64(2000), "env_cfg.num_devices": int64(8),
		"train_dataloader.batch_size":                      int64(2),
		"train_dataloader.dataset.ann_file":                []any{"VOC2007/ImageSets/Main/trainval.txt", "VOC2012/ImageSets/Main/trainval.txt"},
		"train_dataloader.dataset.pipeline.2.img_scale.0":  []any{int64(1333), int64(480)},
		"train_dataloader.dataset.pipeline.2.img_scale.10": []any{int64(1333), int64(800)},
		"val_dataloader.dataset.ann_file":                  "VOC2007/ImageSets/Main/test.txt",
		"val_evaluator.type":                               "VOCMetric", "val_evaluator.eval_mode": "11points",
	} {
		if got, _ := tree.Lookup(path); !reflect.DeepEqual(got, want) {
			t.Errorf("%s = %#v, want %#v", path, got, want)
		}
	}
}

// The warm-up and steps follow mmcv's lr_config (policy step, warmup linear, warmup_iters
// 100, warmup_ratio 0.001, step [18000, 22000]): lr = 0.02 * (1 - (1 - i/100) * 0.999)
// during the warm-up, then 0.02, 0.002 from 18,000 and 0.0002 from 22,000.
func TestVOC0712DetSchedule(t *testing.T) {
	_, cfg, err := LoadConfig(vocDetConfig, nil)
	if err != nil {
		t.Fatal(err)
	}
	s, err := engine.NewSchedule(&registry.Env{Registry: registry.Default}, cfg.ParamScheduler, 0.02, 1000)
	if err != nil {
		t.Fatal(err)
	}
	mmcv := func(i int) float64 {
		if i < 100 {
			return 0.02 * (1 - (1-float64(i)/100)*(1-0.001))
		}
		switch {
		case i >= 22000:
			return 0.0002
		case i >= 18000:
			return 0.002
		}
		return 0.02
	}
	for _, i := range []int{0, 1, 50, 99, 100, 17999, 18000, 21999, 22000, 23999} {
		if got := s.LR(i/1000, i%1000); math.Abs(got-mmcv(i)) > 1e-12 {
			t.Errorf("iteration %d: lr %.10g, mmcv's %.10g", i, got, mmcv(i))
		}
	}
}

// tools/evaluate, which runs a fine-tuning benchmark in its plugin, checks the data before it
// builds or starts the plugin: without VOC it fails at once, naming the missing folder and the
// README section on data layout, and writes nothing.
func TestBenchmarkEvaluateWithoutData(t *testing.T) {
	for _, tc := range []struct{ config, missing string }{
		{"configs/benchmarks/segmentation/voc12aug/fcn_r50-d8_512x512_20k_voc12aug.toml", filepath.Join("data", "VOCdevkit", "VOC2012", "JPEGImages") + " not found"},
		{vocDetConfig, filepath.Join("data", "VOCdevkit", "VOC2007") + " not found"},
		{cocoMaskConfig, filepath.Join("data", "coco", "train2017") + " not found"},
	} {
		t.Run(filepath.Base(tc.config), func(t *testing.T) {
			cfg, err := filepath.Abs("../" + tc.config)
			if err != nil {
				t.Fatal(err)
			}
			t.Chdir(t.TempDir())
			start := time.Now()
			code, _, errOut := evaluate(cfg, "ckpt/epoch_200.ckpt", "--set", "backend=go", "--work-dir", "wd")
			if code != 1 {
				t.Fatalf("exit %d, want 1: %s", code, errOut)
			}
			for _, want := range []string{tc.missing, `"Datasets" in README.md`} {
				if !strings.Contains(errOut, want) {
					t.Errorf("stderr lacks %q:\n%s", want, errOut)
				}
			}
			if strings.Contains(errOut, "building plugin") {
				t.Errorf("the plugin was built before the data was checked:\n%s", errOut)
			}
			if d := time.Since(start); d > 30*time.Second {
				t.Errorf("failing took %s", d)
			}
			if _, err := os.Stat("wd"); err == nil {
				t.Error("a run that failed to start left its work_dir")
			}
		})
	}
}

const cocoMaskConfig = "configs/benchmarks/detection/coco/mask_rcnn_r50_fpn_mstrain_1x_coco.toml"

// The COCO Mask R-CNN R50-FPN config holds the reference's values (mmselfsup's
// mask_rcnn_r50_fpn_mstrain_1x_coco.py and its bases, mmdet 2.x), and its model builds.
func TestCOCOMaskRCNNConfigValues(t *testing.T) {
	tree, cfg, err := LoadConfig(cocoMaskConfig, nil)
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]any{
		"benchmark.type": "MMDetBenchmark", "model.type": "MaskRCNN",
		"model.backbone.depth": int64(50), "model.backbone.num_stages": int64(4), "model.backbone.out_indices": []any{int64(1), int64(2), int64(3), int64(4)},
		"model.backbone.frozen_stages": int64(-1), "model.backbone.norm_cfg.type": "SyncBN", "model.backbone.norm_eval": false,
		"model.neck.type": "FPN", "model.neck.in_channels": []any{int64(256), int64(512), int64(1024), int64(2048)}, "model.neck.out_channels": int64(256),
		"model.neck.num_outs": int64(5), "model.neck.norm_cfg.type": "SyncBN",
		"model.rpn_head.anchor_generator.scales": []any{int64(8)}, "model.rpn_head.anchor_generator.ratios": []any{0.5, 1.0, 2.0},
		"model.rpn_head.anchor_generator.strides":                 []any{int64(4), int64(8), int64(16), int64(32), int64(64)},
		"model.roi_head.bbox_roi_extractor.roi_layer.output_size": int64(7), "model.roi_head.bbox_roi_extractor.featmap_strides": []any{int64(4), int64(8), int64(16), int64(32)},
		"model.roi_head.bbox_head.type": "Shared4Conv1FCBBoxHead", "model.roi_head.bbox_head.conv_out_channels": int64(256),
		"model.roi_head.bbox_head.fc_out_channels": int64(1024), "model.roi_head.bbox_head.norm_cfg.type": "SyncBN",
		"model.roi_head.bbox_head.num_classes": int64(80), "model.roi_head.bbox_head.bbox_coder.target_stds": []any{0.1, 0.1, 0.2, 0.2},
		"model.roi_head.mask_roi_extractor.roi_layer.output_size": int64(14), "model.roi_head.mask_head.type": "FCNMaskHead",
		"model.roi_head.mask_head.num_convs": int64(4), "model.roi_head.mask_head.num_classes": int64(80), "model.roi_head.mask_head.norm_cfg.type": "SyncBN",
		"model.train_cfg.rpn.allowed_border": int64(-1), "model.train_cfg.rpn.sampler.num": int64(256),
		"model.train_cfg.rpn_proposal.nms_pre": int64(2000), "model.train_cfg.rpn_proposal.max_per_img": int64(1000),
		"model.train_cfg.rcnn.sampler.num": int64(512), "model.train_cfg.rcnn.sampler.pos_fraction": 0.25,
		"model.train_cfg.rcnn.assigner.match_low_quality": true, "model.train_cfg.rcnn.mask_size": int64(28),
		"model.test_cfg.rpn.nms_pre": int64(1000), "model.test_cfg.rpn.max_per_img": int64(1000),
		"model.test_cfg.rcnn.score_thr": 0.05, "model.test_cfg.rcnn.nms.iou_threshold": 0.5, "model.test_cfg.rcnn.max_per_img": int64(100),
		"model.test_cfg.rcnn.mask_thr_binary": 0.5,
		"optim_wrapper.optimizer.lr":          0.02, "optim_wrapper.optimizer.weight_decay": 0.0001, "optim_wrapper.optimizer.momentum": 0.9,
		"param_scheduler.0.end": int64(1000), "param_scheduler.0.start_factor": 0.001, "param_scheduler.1.milestones": []any{int64(8), int64(11)},
		"train_cfg.max_epochs": int64(12), "env_cfg.num_devices": int64(8), "train_dataloader.batch_size": int64(2),
		"train_dataloader.dataset.type": "CocoDataset", "train_dataloader.dataset.ann_file": "annotations/instances_train2017.json",
		"train_dataloader.dataset.pipeline.1.with_mask":   true,
		"train_dataloader.dataset.pipeline.2.img_scale.0": []any{int64(1333), int64(640)},
		"train_dataloader.dataset.pipeline.2.img_scale.5": []any{int64(1333), int64(800)},
		"val_dataloader.dataset.ann_file":                 "annotations/instances_val2017.json",
		"val_evaluator.type":                              "CocoMetric", "val_evaluator.metric": []any{"bbox", "segm"},
	} {
		if got, _ := tree.Lookup(path); !reflect.DeepEqual(got, want) {
			t.Errorf("%s = %#v, want %#v", path, got, want)
		}
	}
	env := registry.With(&registry.Env{Registry: registry.Default}, nn.NewScope(context.New(), 1))
	model, err := registry.Build[engine.Algorithm](env, cfg.Model)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := model.(engine.MaskDetector); !ok {
		t.Errorf("%T is not a mask detector", model)
	}
	if m, ok := model.(engine.InstanceMaskModel); !ok || !m.UsesInstanceMasks() {
		t.Errorf("%T does not train on instance masks", model)
	}
}
