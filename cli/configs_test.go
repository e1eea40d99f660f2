package cli

import (
	"reflect"
	"testing"

	"github.com/goselfsup/goselfsup/datasets"
	"github.com/goselfsup/goselfsup/engine"
	"github.com/goselfsup/goselfsup/heads"
	"github.com/goselfsup/goselfsup/models"
	"github.com/goselfsup/goselfsup/registry"
)

// Every shipped config loads and checks, wherever the binary runs.
func TestShippedConfigsCheck(t *testing.T) {
	names, err := Loader().ListShipped()
	if err != nil {
		t.Fatal(err)
	}
	if len(names) < 17 {
		t.Fatalf("only %d shipped configs: %v", len(names), names)
	}
	for _, name := range names {
		if _, _, err := LoadConfig(name, nil); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// The NPID config holds the values of mmselfsup's npid_resnet50_8xb32-steplr-200e_in1k.py
// and the bases it inherits (configs/selfsup/npid and configs/selfsup/_base_ in mmselfsup).
func TestNPIDConfigMatchesMMSelfSup(t *testing.T) {
	tree, cfg, err := LoadConfig("configs/npid/resnet50_8xb32-steplr-200e.toml", nil)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"model.type":                                          "NPID",
		"model.neg_num":                                       int64(65536),
		"model.backbone.type":                                 "ResNet",
		"model.backbone.depth":                                int64(50),
		"model.backbone.in_channels":                          int64(3),
		"model.backbone.out_indices":                          []any{int64(4)},
		"model.backbone.norm_cfg.type":                        "SyncBN",
		"model.neck.type":                                     "LinearNeck",
		"model.neck.in_channels":                              int64(2048),
		"model.neck.out_channels":                             int64(128),
		"model.neck.with_avg_pool":                            true,
		"model.head.type":                                     "ContrastiveHead",
		"model.head.temperature":                              0.07,
		"model.head.loss.type":                                "CrossEntropyLoss",
		"model.memory_bank.type":                              "SimpleMemory",
		"model.memory_bank.length":                            int64(1281167),
		"model.memory_bank.feat_dim":                          int64(128),
		"model.memory_bank.momentum":                          0.5,
		"model.data_preprocessor.mean":                        []any{123.675, 116.28, 103.53},
		"model.data_preprocessor.std":                         []any{58.395, 57.12, 57.375},
		"optim_wrapper.optimizer.type":                        "SGD",
		"optim_wrapper.optimizer.lr":                          0.03,
		"optim_wrapper.optimizer.momentum":                    0.9,
		"optim_wrapper.optimizer.weight_decay":                0.0001,
		"param_scheduler.0.type":                              "MultiStepLR",
		"param_scheduler.0.milestones":                        []any{int64(120), int64(160)},
		"param_scheduler.0.gamma":                             0.1,
		"train_cfg.max_epochs":                                int64(200),
		"train_dataloader.batch_size":                         int64(32),
		"train_dataloader.num_workers":                        int64(8),
		"train_dataloader.drop_last":                          true,
		"env_cfg.num_devices":                                 int64(8),
		"default_hooks.checkpoint.interval":                   int64(10),
		"default_hooks.checkpoint.max_keep_ckpts":             int64(3),
		"default_hooks.logger.interval":                       int64(50),
		"train_dataloader.dataset.ann_file":                   "meta/train.txt",
		"train_dataloader.dataset.pipeline.1.type":            "RandomResizedCrop",
		"train_dataloader.dataset.pipeline.1.size":            int64(224),
		"train_dataloader.dataset.pipeline.1.scale":           []any{0.2, 1.0},
		"train_dataloader.dataset.pipeline.2.type":            "RandomGrayscale",
		"train_dataloader.dataset.pipeline.2.prob":            0.2,
		"train_dataloader.dataset.pipeline.2.keep_channels":   true,
		"train_dataloader.dataset.pipeline.2.channel_weights": []any{0.114, 0.587, 0.2989},
		"train_dataloader.dataset.pipeline.3.type":            "ColorJitter",
		"train_dataloader.dataset.pipeline.3.brightness":      0.4,
		"train_dataloader.dataset.pipeline.3.contrast":        0.4,
		"train_dataloader.dataset.pipeline.3.saturation":      0.4,
		"train_dataloader.dataset.pipeline.3.hue":             0.4,
		"train_dataloader.dataset.pipeline.4.type":            "RandomFlip",
		"train_dataloader.dataset.pipeline.4.prob":            0.5,
	}
	for path, w := range want {
		got, ok := tree.Lookup(path)
		if !ok || !reflect.DeepEqual(got, w) {
			t.Errorf("%s = %#v, want %#v", path, got, w)
		}
	}

	// The typed configs carry the same values, and the defaults mmselfsup leaves implicit.
	model, err := registry.Default.Decode(cfg.Model)
	if err != nil {
		t.Fatal(err)
	}
	npid := model.(*models.NPIDConfig)
	if npid.NegNum != 65536 || npid.EnsureNeg {
		t.Errorf("NPID: %+v", npid)
	}
	backbone, _ := registry.Default.Decode(npid.Backbone)
	r50 := backbone.(*models.ResNetConfig)
	if r50.Depth != 50 || !reflect.DeepEqual(r50.OutIndices, []int{4}) || r50.FrozenStages != -1 ||
		r50.ZeroInitResidual || r50.NormEval || r50.Style != "pytorch" || r50.NormCfg.Type != "SyncBN" || !r50.NormCfg.RequiresGrad {
		t.Errorf("ResNet: %+v", r50)
	}
	head, _ := registry.Default.Decode(npid.Head)
	if h := head.(*heads.ContrastiveHeadConfig); h.Temperature != 0.07 {
		t.Errorf("ContrastiveHead: %+v", h)
	}
	opt, _ := registry.Default.Decode(cfg.OptimWrapper)
	sgd, _ := registry.Default.Decode(opt.(*engine.OptimWrapperConfig).Optimizer)
	if s := sgd.(*engine.SGDConfig); s.LR != 0.03 || s.Momentum != 0.9 || s.WeightDecay != 1e-4 || s.Nesterov || s.Dampening != 0 {
		t.Errorf("SGD: %+v", s)
	}
	ds, _ := registry.Default.Decode(cfg.TrainDataloader.Dataset)
	if d := ds.(*datasets.ImageNetConfig); d.DataPrefix.ImgPath != "train/" || len(d.Pipeline) != 6 {
		t.Errorf("ImageNet: %+v", d)
	}
	crop, _ := registry.Default.Decode(ds.(*datasets.ImageNetConfig).Pipeline[1])
	if c := crop.(*datasets.RandomResizedCropConfig); c.Size != (datasets.Pair{224, 224}) || c.Scale != [2]float64{0.2, 1} ||
		c.Ratio != [2]float64{3.0 / 4, 4.0 / 3} || c.MaxAttempts != 10 || c.Interpolation != "bilinear" || c.Backend != "pillow" {
		t.Errorf("RandomResizedCrop: %+v", c)
	}
	jitter, _ := registry.Default.Decode(ds.(*datasets.ImageNetConfig).Pipeline[3])
	if lo, hi := jitter.(*datasets.ColorJitterConfig).Hue.Range(0); lo != -0.4 || hi != 0.4 {
		t.Errorf("hue range [%g, %g], want [-0.4, 0.4]", lo, hi)
	}
	if lo, hi := jitter.(*datasets.ColorJitterConfig).Brightness.Range(1); lo != 0.6 || hi != 1.4 {
		t.Errorf("brightness range [%g, %g], want [0.6, 1.4]", lo, hi)
	}
}

func TestEnsureNegVariant(t *testing.T) {
	tree, _, err := LoadConfig("configs/npid/ensure-neg_resnet50_8xb32-steplr-200e.toml", nil)
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]any{"model.ensure_neg": true, "model.neg_num": int64(65536), "train_cfg.max_epochs": int64(200)} {
		if got, _ := tree.Lookup(path); !reflect.DeepEqual(got, want) {
			t.Errorf("%s = %v, want %v", path, got, want)
		}
	}
}

// The benchmark configs hold the reference's values, with mmselfsup 1.x's two inheritance
// defects fixed (docs/configs.md).
func TestBenchmarkConfigs(t *testing.T) {
	const dir = "configs/benchmarks/classification/"
	tests := []struct {
		config string
		want   map[string]any
	}{{
		config: "imagenet/resnet50_linear-8xb32-steplr-100e_in1k.toml",
		want: map[string]any{
			"model.backbone.frozen_stages": int64(4), "optim_wrapper.optimizer.lr": 30.0,
			"optim_wrapper.optimizer.momentum": 0.9, "optim_wrapper.optimizer.weight_decay": 0.0,
			"param_scheduler.0.milestones": []any{int64(60), int64(80)}, "train_cfg.max_epochs": int64(100),
			"model.head.topk": []any{int64(1), int64(5)}, "val_evaluator.topk": []any{int64(1), int64(5)},
			"default_hooks.checkpoint.max_keep_ckpts":  int64(3),
			"train_dataloader.dataset.pipeline.1.size": int64(224),
			"val_dataloader.dataset.pipeline.1.scale":  int64(256),
		},
	}, {
		config: "imagenet/resnet50_mhead_linear-8xb32-steplr-90e_in1k.toml",
		want: map[string]any{
			"train_cfg.max_epochs": int64(90), "optim_wrapper.optimizer.lr": 0.01,
			"optim_wrapper.optimizer.nesterov": true, "optim_wrapper.optimizer.weight_decay": 0.0001,
			"optim_wrapper.paramwise_cfg.norm_decay_mult": 0.0,
			// Defect 1 fixed: 1.x inherits [60, 80] from the 100-epoch schedule.
			"param_scheduler.0.milestones":                      []any{int64(30), int64(60), int64(90)},
			"model.backbone.out_indices":                        []any{int64(0), int64(1), int64(2), int64(3), int64(4)},
			"model.head.in_indices":                             []any{int64(0), int64(1), int64(2), int64(3), int64(4)},
			"model.head.norm_cfg.affine":                        false,
			"train_dataloader.dataset.pipeline.1.interpolation": "bicubic",
			"train_dataloader.dataset.pipeline.3.hue":           0.0,
			"train_dataloader.dataset.pipeline.4.eigval":        []any{55.4625, 4.794, 1.1475},
		},
	}, {
		config: "places205/resnet50_mhead_8xb32-steplr-28e_places205.toml",
		want: map[string]any{
			// Defect 2 fixed: 1.x's optimizer and runner never reach optim_wrapper and
			// train_cfg, leaving lr 0.1 without Nesterov for 100 epochs.
			"optim_wrapper.optimizer.lr": 0.01, "optim_wrapper.optimizer.nesterov": true,
			"train_cfg.max_epochs":              int64(28),
			"param_scheduler.0.milestones":      []any{int64(7), int64(14), int64(21)},
			"model.head.num_classes":            int64(205),
			"default_hooks.checkpoint.interval": int64(1),
		},
	}, {
		config: "knn_imagenet.toml",
		want: map[string]any{
			"val_evaluator.num_knn": []any{int64(10), int64(20), int64(100), int64(200)}, "val_evaluator.temperature": 0.07,
			"pool_cfg.type": "AvgPool2d", "train_dataloader.batch_size": int64(256),
		},
	}, {
		config: "voc07/svm_voc07.toml",
		want: map[string]any{
			"val_evaluator.costs": []any{1.0, 10.0, 100.0}, "val_evaluator.cv_folds": int64(3),
			"val_evaluator.positive_weight": 2.0, "val_evaluator.max_iter": int64(2000),
			"val_evaluator.low_shot.shots":   []any{int64(1), int64(2), int64(4), int64(8), int64(16), int64(32), int64(64), int64(96)},
			"val_evaluator.low_shot.samples": int64(5), "pool_cfg.type": "MultiPooling",
		},
	}}
	for _, tc := range tests {
		tree, _, err := LoadConfig(dir+tc.config, nil)
		if err != nil {
			t.Errorf("%s: %v", tc.config, err)
			continue
		}
		for path, want := range tc.want {
			if got, _ := tree.Lookup(path); !reflect.DeepEqual(got, want) {
				t.Errorf("%s: %s = %#v, want %#v", tc.config, path, got, want)
			}
		}
	}
}
