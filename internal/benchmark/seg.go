package benchmark

import (
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"text/tabwriter"

	"github.com/goselfsup/goselfsup/datasets"
	"github.com/goselfsup/goselfsup/internal/cmdline"
)

// segStepModels are the networks of benchmark seg-step: the FCN of
// configs/_base_/models/fcn_r50-d8.toml (mmseg's FCN R50-D8) and the R18-D8 of
// configs/benchmarks/segmentation/coco128/fcn_r18-d8_128x128_coco128.toml, with their
// default shapes. seg_step_reference.py's MODELS says the same in PyTorch.
var segStepModels = map[string]struct {
	describe                         string
	depth, size, batch               int
	decodeIn, decodeCh, auxIn, auxCh int
}{
	"resnet18": {"FCN R18-D8 (basic blocks; decode head 512->128, aux head 256->64)", 18, 128, 4, 512, 128, 256, 64},
	"resnet50": {"FCN R50-D8 (bottlenecks; decode head 2048->512, aux head 1024->256)", 50, 512, 4, 2048, 512, 1024, 256},
}

// segStepSpec is the train step that benchmark seg-step times.
type segStepSpec struct {
	backend, model       string
	batch, size, classes int
	ignore               float64 // the share of ignored (255) pixels of the label maps
	steps, warmup        int
	cpuProfile           string
}

func benchSegStep(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("seg-step", stderr)
	model := fs.String("model", "resnet18", "the network: resnet18 (FCN R18-D8, at 128, batch 4) or resnet50 (mmseg's FCN R50-D8, at 512, batch 4)")
	batch := fs.Int("batch", 0, "images per step (default: the model's, 4)")
	size := fs.Int("size", 0, "image side (default: the model's, 128 or 512)")
	classes := fs.Int("classes", 21, "classes of the heads (21: Pascal VOC's)")
	bk := fs.String("backend", "go", "goselfsup's backend (go:kernels=off: the pure-Go backend without native kernels; xla:cuda or xla:/path/to/pjrt_plugin.so)")
	sf := addStepFlags(fs)
	if _, err := parseArgs(fs, args, stdout); err != nil {
		return cmdline.ExitCode(err)
	}
	m, ok := segStepModels[*model]
	if !ok {
		fmt.Fprintf(stderr, "error: -model %q: want resnet18 or resnet50\n", *model)
		return exitUsage
	}
	if !sf.check(stderr) {
		return exitUsage
	}
	if *batch == 0 {
		*batch = m.batch
	}
	if *size == 0 {
		*size = m.size
	}
	if *batch < 1 || *size < 8 || *classes < 1 || *classes > 255 {
		fmt.Fprintf(stderr, "error: want -batch >= 1, -size >= 8 and 1 <= -classes <= 255\n")
		return exitUsage
	}
	var python, script string
	if !*sf.noRef {
		var err error
		if python, script, err = reference("benchmarks/seg_step_reference.py", "torch", "numpy"); err != nil {
			report(stderr, err)
			return exitFailed
		}
	}

	const ignore = 0.05
	spec := segStepSpec{backend: *bk, model: *model, batch: *batch, size: *size, classes: *classes, ignore: ignore,
		steps: *sf.steps, warmup: *sf.warmup, cpuProfile: *sf.cpuProfile}
	ours, err := timeOurSegStep(spec, stderr)
	if err != nil {
		report(stderr, err)
		return exitFailed
	}
	fmt.Fprintf(stdout, "FCN train step: %s, %d images of %dx%d, %d classes, %.0f%% of the pixels ignored (255), float32, SGD; %d timed steps each\n\n",
		m.describe, *batch, *size, *size, *classes, 100*ignore, *sf.steps)
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "implementation\ts/step\timages/s\tpeak RSS")
	fmt.Fprintf(tw, "goselfsup (%s backend)\t%.3f\t%.2f\t%s\n", *bk, ours.seconds, float64(*batch)/ours.seconds, gib(ours.peakRSS))
	var ref refStep
	if !*sf.noRef {
		fmt.Fprintf(stderr, "running the PyTorch reference...\n")
		refArgs := []string{script, "--model", *model, "--size", fmt.Sprint(*size), "--batch", fmt.Sprint(*batch),
			"--classes", fmt.Sprint(*classes), "--ignore", fmt.Sprint(ignore), "--steps", fmt.Sprint(*sf.steps),
			"--warmup", fmt.Sprint(*sf.warmup), "--threads", fmt.Sprint(*sf.threads), "--device", *sf.refDevice}
		if ref, err = runStepReference(python, refArgs); err != nil {
			report(stderr, err)
			return exitFailed
		}
		where := sf.where(ref)
		fmt.Fprintf(tw, "PyTorch %s eager (%s)\t%.3f\t%.2f\t%s\n", ref.Torch, where, ref.Seconds, float64(*batch)/ref.Seconds, gib(ref.PeakRSS))
	}
	tw.Flush()
	printProfile(stdout, ours)
	details := map[string]string{"backend": ours.backend, "model": *model, "batch": fmt.Sprint(*batch), "size": fmt.Sprint(*size),
		"classes": fmt.Sprint(*classes), "images_per_second": fmt.Sprintf("%.2f", float64(*batch)/ours.seconds),
		"peak_rss_ours": fmt.Sprint(ours.peakRSS)}
	res := benchResult{Benchmark: "seg-step", Ours: ours.seconds, Unit: "s/step", Details: details}
	if !*sf.noRef {
		ratio := ours.seconds / ref.Seconds
		fmt.Fprintf(stdout, "\nratio (our time per step / PyTorch's): %.2f\n", ratio)
		res.Reference, res.Ratio = ref.Seconds, ratio
		details["reference"] = "PyTorch " + ref.Torch + " eager on " + *sf.refDevice
		details["threads"] = fmt.Sprint(ref.Threads)
		details["peak_rss_reference"] = fmt.Sprint(ref.PeakRSS)
	}
	line, _ := json.Marshal(res)
	fmt.Fprintln(stdout, string(line))
	return exitOK
}

// segConfig is the run of benchmark seg-step as a config tree: the model, optimizer and
// batch norm (SyncBN, as the segmentation configs) that goselfsup train builds from the
// FCN configs, on one device.
func segConfig(spec segStepSpec) map[string]any {
	m := segStepModels[spec.model]
	bn := map[string]any{"type": "SyncBN", "requires_grad": true}
	head := func(in, ch, index, convs int, concat bool, weight float64) map[string]any {
		return map[string]any{"type": "FCNHead", "in_channels": in, "in_index": index, "channels": ch, "num_convs": convs,
			"concat_input": concat, "dropout_ratio": 0.1, "num_classes": spec.classes, "norm_cfg": bn, "align_corners": false,
			"loss_decode": map[string]any{"type": "CrossEntropyLoss", "use_sigmoid": false, "loss_weight": weight}}
	}
	return map[string]any{
		"backend":    spec.backend,
		"env_cfg":    map[string]any{"num_devices": 1},
		"randomness": map[string]any{"seed": 0},
		"model": map[string]any{
			"type":     "EncoderDecoder",
			"test_cfg": map[string]any{"mode": "whole"},
			"data_preprocessor": map[string]any{"type": "SegDataPreProcessor", "mean": []float64{123.675, 116.28, 103.53},
				"std": []float64{58.395, 57.12, 57.375}, "bgr_to_rgb": true, "pad_val": 0, "seg_pad_val": 255, "size": []int{spec.size, spec.size}},
			"backbone": map[string]any{"type": "ResNet", "depth": m.depth, "num_stages": 4, "out_indices": []int{1, 2, 3, 4},
				"strides": []int{1, 2, 1, 1}, "dilations": []int{1, 1, 2, 4}, "contract_dilation": true, "norm_cfg": bn,
				"norm_eval": false, "style": "pytorch"},
			"decode_head":    head(m.decodeIn, m.decodeCh, 3, 2, true, 1.0),
			"auxiliary_head": head(m.auxIn, m.auxCh, 2, 1, false, 0.4),
		},
		"train_dataloader": map[string]any{"batch_size": spec.batch,
			"dataset": map[string]any{"type": "DemoShapes", "num_samples": spec.batch, "size": spec.size}},
		"optim_wrapper": map[string]any{"type": "OptimWrapper",
			"optimizer": map[string]any{"type": "SGD", "lr": 0.01, "momentum": 0.9, "weight_decay": 5e-4}},
		"train_cfg": map[string]any{"type": "IterBasedTrainLoop", "max_iters": 1},
	}
}

// timeOurSegStep builds the benchmark's FCN through the runner, as goselfsup train does, and
// times its TrainStep on one batch of random images and label maps.
func timeOurSegStep(spec segStepSpec, stderr io.Writer) (stepTiming, error) {
	r, done, err := newRunner(segConfig(spec), "benchmark seg-step")
	if err != nil {
		return stepTiming{}, err
	}
	defer done()
	b := make([]*datasets.Batch, r.Devices)
	for d := range b {
		b[d] = randomSegBatch(rand.New(rand.NewPCG(1, uint64(d))), spec.batch, spec.size, spec.classes, spec.ignore)
	}
	return timeSteps(r, b, 0.01, spec.warmup, spec.steps, spec.cpuProfile, stderr)
}

// randomSegBatch is a batch of n random RGB images of size x size and label maps of classes
// classes with a share ignore of their pixels 255 (unlabelled), unpadded.
func randomSegBatch(rng *rand.Rand, n, size, classes int, ignore float64) *datasets.Batch {
	b := &datasets.Batch{Images: make([]uint8, n*size*size*3), Height: size, Width: size,
		Indices: make([]int32, n), Labels: make([]int32, n),
		Masks: make([]uint8, n*size*size), MaskHeight: size, MaskWidth: size,
		OriShapes: make([]int32, 0, 2*n), ImgShapes: make([]int32, 0, 2*n)}
	for i := range b.Images {
		b.Images[i] = uint8(rng.IntN(256))
	}
	for i := range b.Masks {
		b.Masks[i] = uint8(rng.IntN(classes))
		if rng.Float64() < ignore {
			b.Masks[i] = 255
		}
	}
	for i := range n {
		b.Indices[i] = int32(i)
		b.OriShapes = append(b.OriShapes, int32(size), int32(size))
		b.ImgShapes = append(b.ImgShapes, int32(size), int32(size))
	}
	return b
}
