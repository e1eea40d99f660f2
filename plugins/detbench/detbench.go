// Package detbench is the detection benchmark that goselfsup runs as a plugin process
// (goselfsup-plugin-det, cmd/goselfsup-plugin-det): MMDetBenchmark fine-tunes a detector
// (FasterRCNN, such as mmselfsup's Faster R-CNN R50-C4 on VOC07+12) whose backbone (and, for
// C4, res5 in the RoI head) starts from a self-supervised checkpoint, and reports mmdet's
// VOC AP (VOCMetric), per class too.
//
// A benchmark config is an ordinary training config with one key more, which tools/evaluate
// reads:
//
//	benchmark = { type = "MMDetBenchmark" }
//
// It runs as the segmentation plugin does (package finetune): paths in, its log lines,
// progress and metrics out, checkpoints in the work_dir, `evaluate --resume` to continue.
package detbench

import (
	"github.com/goselfsup/goselfsup/plugins/finetune"
	"github.com/goselfsup/goselfsup/plugins/sdk"
)

// Name is the plugin's name: its binary is goselfsup-plugin-det.
const Name = "det"

// Version is the plugin's version.
const Version = "1.0.0"

// Type is the benchmark's config type.
const Type = "MMDetBenchmark"

// Plugin is the plugin that cmd/goselfsup-plugin-det serves.
func Plugin() sdk.Plugin {
	return finetune.Plugin(Name, Version, Type, "mmdet's detection benchmark: fine-tunes the config's detector from the checkpoint's backbone "+
		"(and C4's res5) weights (random init without one) and reports the VOC AP50, mAP and per-class AP")
}
