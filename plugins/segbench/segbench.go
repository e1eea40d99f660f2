// Package segbench is the segmentation benchmark that goselfsup runs as a plugin process
// (goselfsup-plugin-seg, cmd/goselfsup-plugin-seg): MMSegBenchmark fine-tunes a segmentor
// (an EncoderDecoder, such as FCN R50-D8) whose backbone starts from a self-supervised
// checkpoint, and reports mmseg's mIoU, aAcc and mAcc, per class too.
//
// A benchmark config is an ordinary training config (model, data, schedule, val_evaluator =
// IoUMetric) with one key more, which tools/evaluate reads:
//
//	benchmark = { type = "MMSegBenchmark" }
//
// `goselfsup evaluate CONFIG CKPT` hands the plugin paths only: the merged config (without
// the benchmark key), the checkpoint, the work_dir and the folder that the config's data_root
// paths are relative to. The plugin builds its own graphs on the config's backend (XLA on a
// GPU, the CPU engine elsewhere), trains, validates, and streams its log lines, its progress
// and the metrics to goselfsup (package finetune); checkpoints, the log, metrics.json and the
// validation overlays go to the work_dir, and `evaluate --resume` continues an interrupted
// run from its last checkpoint there.
//
// The package is the plugin's description, so that goselfsup knows the plugin's manifest
// without starting it; the plugin runs it in its own process.
package segbench

import (
	"github.com/goselfsup/goselfsup/plugins/finetune"
	"github.com/goselfsup/goselfsup/plugins/sdk"
)

// Name is the plugin's name: its binary is goselfsup-plugin-seg.
const Name = "seg"

// Version is the plugin's version.
const Version = "1.0.0"

// Type is the benchmark's config type.
const Type = "MMSegBenchmark"

// Plugin is the plugin that cmd/goselfsup-plugin-seg serves.
func Plugin() sdk.Plugin {
	return finetune.Plugin(Name, Version, Type, "mmseg's semantic segmentation benchmark: fine-tunes the config's segmentor from the checkpoint's backbone.* "+
		"weights (random init without one) and reports mIoU, aAcc, mAcc and the per-class IoU and accuracy")
}
