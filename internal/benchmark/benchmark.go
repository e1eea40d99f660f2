// Package benchmark is goselfsup's benchmark harness (goselfsup benchmark, tools/benchmark):
// it times goselfsup against reference implementations (PyTorch, torchvision, FAISS,
// scikit-learn, run from the Python scripts in benchmarks/) on the same inputs, in one run.
package benchmark

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/goselfsup/goselfsup/datasets"
	"github.com/goselfsup/goselfsup/engine"
	"github.com/goselfsup/goselfsup/engine/backend"
	"github.com/goselfsup/goselfsup/engine/backend/kernels"
	"github.com/goselfsup/goselfsup/internal/cmdline"
	"github.com/goselfsup/goselfsup/internal/pyref"
	"github.com/goselfsup/goselfsup/registry"
)

const benchmarkUsage = `usage: goselfsup benchmark SUBCOMMAND [flags]

Times goselfsup against a reference implementation on this machine, in one run, and prints a
table and, as its last line, one JSON object: {"benchmark", "ours", "reference", "ratio",
"unit", ...}, where ratio = ours / reference.

subcommands:
`

// docs describe the subcommands, in the order of the usage.
var docs = []struct{ name, doc string }{
	{"train-step", `one NPID training step (small CIFAR ResNet, widths 16/32/64/128, batch 64,
32x32 images, 4096 negatives; or -model resnet18: ResNet-18 at 224, batch 32,
65,536 negatives) against PyTorch on the CPU (benchmarks/npid_reference.py,
Debian's python3-torch), with where our step's time goes`},
	{"seg-step", `one FCN training step (dilated ResNet-18 D8, decode and auxiliary FCNHead,
cross-entropy with 255 ignored, SGD; 128x128, batch 4, 21 classes; or -model
resnet50: mmseg's FCN R50-D8 at 512x512) through the runner, against the same
network in PyTorch on the CPU (benchmarks/seg_step_reference.py), with where
our step's time goes`},
	{"data", `NPID's data pipeline against torchvision's, one core each: at 224 on the
COCO128 photos and at 32 on CIFAR-10's JPEGs (the test data), decoding
alone too, and our loader with 1 and 2 workers`},
	{"knn", `exhaustive inner-product search, the core of the weighted kNN (10,000 queries,
1,000,000 database vectors of 128 dimensions, k = 200), against FAISS's
IndexFlatIP (benchmarks/knn_reference.py, Debian's python3-faiss)`},
	{"svm", `the VOC07 SVM benchmark (cross-validated costs, refit, test AP per class) on
synthetic features against scikit-learn's LinearSVC (benchmarks/svm_reference.py,
Debian's python3-sklearn)`},
}

// benchmarks are the subcommands.
var benchmarks = map[string]func(args []string, stdout, stderr io.Writer) int{
	"train-step": benchTrainStep,
	"seg-step":   benchSegStep,
	"data":       benchData,
	"svm":        benchSVM,
	"knn":        benchKNN,
}

// Main is the entry point of goselfsup benchmark (and tools/benchmark): args begin with the
// subcommand.
func Main(args []string, stdout, stderr io.Writer) int {
	switch {
	case len(args) > 0 && cmdline.IsHelp(args[0]):
		printUsage(stdout)
		return exitOK
	case len(args) == 0:
		printUsage(stderr)
		return exitUsage
	case benchmarks[args[0]] == nil:
		fmt.Fprintf(stderr, "error: no benchmark %q\n", args[0])
		printUsage(stderr)
		return exitUsage
	}
	return benchmarks[args[0]](args[1:], stdout, stderr)
}

func printUsage(w io.Writer) {
	fmt.Fprint(w, benchmarkUsage)
	for _, d := range docs {
		fmt.Fprintf(w, "  %-12s %s\n", d.name, strings.ReplaceAll(d.doc, "\n", "\n"+strings.Repeat(" ", 15)))
	}
}

// newFlags returns the flags of a subcommand, with its usage.
func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("benchmark "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: goselfsup benchmark %s [flags]\n\n", name)
		for _, d := range docs {
			if d.name == name {
				fmt.Fprintf(fs.Output(), "Times %s.\n\n", d.doc)
			}
		}
		fmt.Fprint(fs.Output(), "flags:\n")
		fs.PrintDefaults()
	}
	return fs
}

// parseArgs parses the flags; -h prints the usage to stdout.
func parseArgs(fs *flag.FlagSet, args []string, stdout io.Writer) ([]string, error) {
	return cmdline.Parse(fs, args, stdout)
}

// Exit codes.
const (
	exitOK     = cmdline.OK
	exitFailed = cmdline.Failed
	exitUsage  = cmdline.Usage
)

// report writes an error for the user: one line per config problem.
func report(w io.Writer, err error) {
	var list registry.Errors
	if errors.As(err, &list) {
		fmt.Fprintf(w, "error: the config has %d problem(s):\n", len(list))
		for _, e := range list {
			fmt.Fprintf(w, "  %s\n", e)
		}
		return
	}
	fmt.Fprintf(w, "error: %s\n", err)
}

// benchResult is the last line of every benchmark.
type benchResult struct {
	Benchmark string            `json:"benchmark"`
	Ours      float64           `json:"ours"`
	Reference float64           `json:"reference"`
	Ratio     float64           `json:"ratio"`
	Unit      string            `json:"unit"`
	Details   map[string]string `json:"details"`
}

// trainStepModels are the networks of benchmark train-step, with their default shapes.
var trainStepModels = map[string]struct {
	describe                string
	size, batch, negs, bank int
}{
	"cifar":    {"small CIFAR ResNet (widths 16/32/64/128, 2 blocks per stage)", 32, 64, 4096, 50000},
	"resnet18": {"ResNet-18 (7x7 stem, max-pool, widths 64..512)", 224, 32, 65536, 1281167},
	"resnet50": {"ResNet-50 (bottlenecks, widths 256..2048)", 224, 32, 65536, 1281167},
}

// stepSpec is the train step that benchmark train-step times.
type stepSpec struct {
	backend, model          string
	batch, size, negs, bank int // batch: images per device
	devices                 int // 0: all the backend has
	amp                     bool
	norm                    string // the backbone's norm_cfg.type
	steps, warmup           int
	cpuProfile              string
}

func benchTrainStep(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("train-step", stderr)
	model := fs.String("model", "cifar", "the network: cifar (the small CIFAR ResNet), resnet18 or resnet50 (at 224, batch 32, 65,536 negatives, ImageNet's 1,281,167-row bank)")
	batch := fs.Int("batch", 0, "images per step and device (default: the model's, 64 or 32)")
	size := fs.Int("size", 0, "image side (default: the model's, 32 or 224)")
	negs := fs.Int("negs", 0, "negatives per image (default: the model's, 4096 or 65536)")
	bankRows := fs.Int("bank", 0, "rows of the memory bank (default: the model's, 50000 or 1281167)")
	bk := fs.String("backend", "go", "goselfsup's backend (go:kernels=off: the pure-Go backend without native kernels; go:devices=N: N virtual devices; xla:cuda or xla:/path/to/pjrt_plugin.so)")
	devices := fs.Int("devices", 0, "devices the step runs on, each with -batch images (default: all the backend has)")
	norm := fs.String("norm", "BN", "the backbone's batch norm: BN or SyncBN (statistics over all devices)")
	amp := fs.Bool("amp", false, "bf16 mixed precision on both sides (goselfsup's AmpOptimWrapper, torch.autocast)")
	sf := addStepFlags(fs)
	if _, err := parseArgs(fs, args, stdout); err != nil {
		return cmdline.ExitCode(err)
	}
	m, ok := trainStepModels[*model]
	if !ok {
		fmt.Fprintf(stderr, "error: -model %q: want cifar, resnet18 or resnet50\n", *model)
		return exitUsage
	}
	if !sf.check(stderr) {
		return exitUsage
	}
	for _, f := range []struct {
		v   *int
		def int
	}{{batch, m.batch}, {size, m.size}, {negs, m.negs}, {bankRows, m.bank}} {
		if *f.v == 0 {
			*f.v = f.def
		}
	}
	const base = 16
	var python, script string
	if !*sf.noRef {
		var err error
		if python, script, err = reference("benchmarks/npid_reference.py", "torch", "numpy"); err != nil {
			report(stderr, err)
			return exitFailed
		}
	}

	spec := stepSpec{backend: *bk, model: *model, batch: *batch, size: *size, negs: *negs, bank: *bankRows,
		devices: *devices, amp: *amp, norm: *norm, steps: *sf.steps, warmup: *sf.warmup, cpuProfile: *sf.cpuProfile}
	ours, err := timeOurStep(spec, base, stderr)
	if err != nil {
		report(stderr, err)
		return exitFailed
	}
	global := *batch * ours.devices
	precision := "float32"
	if *amp {
		precision = "bf16 autocast"
	}
	fmt.Fprintf(stdout, "NPID train step: %s, %d device(s) x %d images, %dx%d, %d negatives, bank %d, %s; %d timed steps each\n\n",
		m.describe, ours.devices, *batch, *size, *size, *negs, *bankRows, precision, *sf.steps)
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "implementation\ts/step\timages/s\tpeak RSS")
	fmt.Fprintf(tw, "goselfsup (%s backend)\t%.3f\t%.1f\t%s\n", *bk, ours.seconds, float64(global)/ours.seconds, gib(ours.peakRSS))

	var ref refStep
	if !*sf.noRef {
		fmt.Fprintf(stderr, "running the PyTorch reference...\n")
		refArgs := []string{script, "bench", "--model", *model, "--size", fmt.Sprint(*size), "--batch", fmt.Sprint(*batch),
			"--negs", fmt.Sprint(*negs), "--bank", fmt.Sprint(*bankRows), "--base", fmt.Sprint(base), "--blocks", "2",
			"--steps", fmt.Sprint(*sf.steps), "--warmup", fmt.Sprint(*sf.warmup), "--threads", fmt.Sprint(*sf.threads), "--device", *sf.refDevice}
		if *amp {
			refArgs = append(refArgs, "--amp")
		}
		var err error
		if ref, err = runStepReference(python, refArgs); err != nil {
			report(stderr, err)
			return exitFailed
		}
		where := sf.where(ref)
		fmt.Fprintf(tw, "PyTorch %s eager (%s, 1 device x %d)\t%.3f\t%.1f\t%s\n", ref.Torch, where, *batch, ref.Seconds, float64(*batch)/ref.Seconds, gib(ref.PeakRSS))
	}
	tw.Flush()
	printProfile(stdout, ours)
	details := map[string]string{"backend": ours.backend, "model": *model, "norm": *norm, "batch": fmt.Sprint(*batch),
		"devices": fmt.Sprint(ours.devices), "precision": precision, "negatives": fmt.Sprint(*negs),
		"images_per_second": fmt.Sprintf("%.1f", float64(global)/ours.seconds), "peak_rss_ours": fmt.Sprint(ours.peakRSS)}
	res := benchResult{Benchmark: "train-step", Ours: ours.seconds, Unit: "s/step", Details: details}
	if !*sf.noRef {
		// Images per second against images per second: our step may run on several devices.
		ratio := (ours.seconds / float64(global)) / (ref.Seconds / float64(*batch))
		fmt.Fprintf(stdout, "\nratio (our time per image / PyTorch's): %.2f\n", ratio)
		res.Reference, res.Ratio = ref.Seconds, ratio
		details["reference"] = "PyTorch " + ref.Torch + " eager on " + *sf.refDevice
		details["threads"] = fmt.Sprint(ref.Threads)
		details["peak_rss_reference"] = fmt.Sprint(ref.PeakRSS)
	}
	line, _ := json.Marshal(res)
	fmt.Fprintln(stdout, string(line))
	return exitOK
}

// gib formats bytes as GiB; "?" when unknown.
func gib(b int64) string {
	if b <= 0 {
		return "?"
	}
	return fmt.Sprintf("%.2f GiB", float64(b)/(1<<30))
}

type stepTiming struct {
	seconds float64
	devices int
	backend string
	isa     string
	peakRSS int64
	profile []profileEntry // per step
}

type profileEntry struct {
	kind    string
	seconds float64
	calls   int
}

// timeOurStep builds the benchmark's NPID and times TrainStep on one random batch. With a
// non-empty cpuProfile, it writes a CPU profile of the timed steps to that file.
func timeOurStep(spec stepSpec, base int, stderr io.Writer) (stepTiming, error) {
	batch, size, negs, bank := spec.batch, spec.size, spec.negs, spec.bank
	backbone := map[string]any{"type": "ResNet_CIFAR", "depth": 18, "stem_channels": base, "base_channels": base}
	channels := base * 8
	switch spec.model {
	case "resnet18":
		backbone, channels = map[string]any{"type": "ResNet", "depth": 18}, 512
	case "resnet50":
		backbone, channels = map[string]any{"type": "ResNet", "depth": 50}, 2048
	}
	backbone["norm_cfg"] = map[string]any{"type": spec.norm}
	optim := map[string]any{"optimizer": map[string]any{"type": "SGD", "lr": 0.03, "momentum": 0.9, "weight_decay": 5e-4}}
	if spec.amp {
		optim["type"], optim["dtype"] = "AmpOptimWrapper", "bfloat16"
	}
	r, done, err := newRunner(map[string]any{
		"backend":    spec.backend,
		"env_cfg":    map[string]any{"num_devices": spec.devices},
		"randomness": map[string]any{"seed": 0},
		"model": map[string]any{
			"type": "NPID", "neg_num": negs,
			"data_preprocessor": map[string]any{"mean": []float64{123.675, 116.28, 103.53}, "std": []float64{58.395, 57.12, 57.375}, "bgr_to_rgb": true},
			"backbone":          backbone,
			"neck":              map[string]any{"type": "LinearNeck", "in_channels": channels, "out_channels": 128},
			"head":              map[string]any{"type": "ContrastiveHead", "temperature": 0.07, "loss": map[string]any{"type": "CrossEntropyLoss"}},
			"memory_bank":       map[string]any{"type": "SimpleMemory", "length": bank, "feat_dim": 128},
		},
		"train_dataloader": map[string]any{"batch_size": batch,
			"dataset": map[string]any{"type": "DemoShapes", "num_samples": batch * max(spec.devices, 64), "size": size}},
		"optim_wrapper": optim,
		"train_cfg":     map[string]any{"type": "EpochBasedTrainLoop", "max_epochs": 1},
	}, "benchmark train-step")
	if err != nil {
		return stepTiming{}, err
	}
	defer done()
	rng := rand.New(rand.NewPCG(1, 2))
	perm := rng.Perm(bank)
	b := make([]*datasets.Batch, r.Devices)
	for d := range b {
		b[d] = &datasets.Batch{Images: make([]uint8, batch*size*size*3), Height: size, Width: size,
			Indices: make([]int32, batch), Labels: make([]int32, batch)}
		for i := range b[d].Images {
			b[d].Images[i] = uint8(rng.IntN(256))
		}
		for i := range b[d].Indices {
			b[d].Indices[i] = int32(perm[d*batch+i])
		}
	}
	return timeSteps(r, b, 0.03, spec.warmup, spec.steps, spec.cpuProfile, stderr)
}

// stepFlags are the flags that train-step and seg-step share.
type stepFlags struct {
	steps, warmup, threads *int
	refDevice, cpuProfile  *string
	noRef                  *bool
}

func addStepFlags(fs *flag.FlagSet) *stepFlags {
	return &stepFlags{
		steps:      fs.Int("steps", 5, "timed steps on each side"),
		warmup:     fs.Int("warmup", 1, "untimed steps first (the first compiles the graph)"),
		refDevice:  fs.String("reference-device", "cpu", "where PyTorch runs: cpu or cuda"),
		noRef:      fs.Bool("no-reference", false, "time goselfsup only"),
		threads:    fs.Int("threads", runtime.NumCPU(), "PyTorch's CPU threads"),
		cpuProfile: fs.String("cpuprofile", "", "write a CPU profile (pprof) of goselfsup's timed steps to this file"),
	}
}

// check reports a wrong value on stderr.
func (f *stepFlags) check(stderr io.Writer) bool {
	if *f.refDevice != "cpu" && *f.refDevice != "cuda" {
		fmt.Fprintf(stderr, "error: -reference-device %q: want cpu or cuda\n", *f.refDevice)
		return false
	}
	if *f.steps < 1 || *f.warmup < 0 {
		fmt.Fprintf(stderr, "error: want -steps >= 1 and -warmup >= 0\n")
		return false
	}
	return true
}

// where says where the reference ran, for the table.
func (f *stepFlags) where(ref refStep) string {
	if *f.refDevice == "cuda" {
		return ref.Device
	}
	return fmt.Sprintf("CPU, %d threads", ref.Threads)
}

// newRunner builds the runner of a config table, as goselfsup train does, with its work_dir
// in a temporary folder that done removes with the runner.
func newRunner(table map[string]any, name string) (r *engine.Runner, done func(), err error) {
	tree, err := registry.NewTree(table, name)
	if err != nil {
		return nil, nil, err
	}
	cfg := new(engine.Config)
	if err := tree.Decode(cfg); err != nil {
		return nil, nil, err
	}
	dir, err := os.MkdirTemp("", "goselfsup-bench")
	if err != nil {
		return nil, nil, err
	}
	if r, err = engine.NewRunner(tree, cfg, engine.Options{WorkDir: dir, Console: io.Discard}); err != nil {
		os.RemoveAll(dir)
		return nil, nil, err
	}
	return r, func() { r.Close(); os.RemoveAll(dir) }, nil
}

// timeSteps times r.TrainStep with learning rate lr on the batches b: warmup untimed steps (the first compiles the
// graph), then steps timed ones, with the backend's profile of the timed steps when it has
// one (the go backend's native kernels) and, with a non-empty cpuProfile, a CPU profile
// (pprof) of them written to that file.
func timeSteps(r *engine.Runner, b []*datasets.Batch, lr float64, warmup, steps int, cpuProfile string, stderr io.Writer) (stepTiming, error) {
	fmt.Fprintf(stderr, "timing goselfsup's step (%s)...\n", r.Backend.Name())
	for range warmup {
		if _, err := r.TrainStep(b, lr); err != nil {
			return stepTiming{}, err
		}
	}
	prof := backend.ProfileOf(r.Backend)
	if prof != nil {
		prof.Reset()
	}
	if cpuProfile != "" {
		f, err := os.Create(cpuProfile)
		if err != nil {
			return stepTiming{}, err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return stepTiming{}, err
		}
		defer pprof.StopCPUProfile()
	}
	times := make([]float64, steps)
	for i := range times {
		t0 := time.Now()
		if _, err := r.TrainStep(b, lr); err != nil {
			return stepTiming{}, err
		}
		times[i] = time.Since(t0).Seconds()
	}
	res := stepTiming{seconds: mean(times), devices: r.Devices, backend: r.Backend.Description(), peakRSS: peakRSS()}
	if prof != nil {
		res.isa = "native kernels: " + kernels.ISA()
		for _, e := range prof.Entries() {
			res.profile = append(res.profile, profileEntry{e.Kind, e.Spent.Seconds() / float64(steps), e.Calls / steps})
		}
	}
	return res, nil
}

// printProfile writes where our step's time goes, when the backend profiled it.
func printProfile(w io.Writer, ours stepTiming) {
	if len(ours.profile) == 0 {
		return
	}
	fmt.Fprintf(w, "\nwhere goselfsup's step goes (%s):\n\n", ours.isa)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "part\ts/step\tshare\tcalls/step\t")
	var total float64
	for _, e := range ours.profile {
		total += e.seconds
	}
	for _, e := range ours.profile {
		fmt.Fprintf(tw, "%s\t%.3f\t%.0f%%\t%d\t\n", e.kind, e.seconds, 100*e.seconds/ours.seconds, e.calls)
	}
	fmt.Fprintf(tw, "outside the graph\t%.3f\t%.0f%%\t\t\n", ours.seconds-total, 100*(ours.seconds-total)/ours.seconds)
	tw.Flush()
}

// refStep is what a PyTorch step reference (npid_reference.py bench, seg_step_reference.py)
// prints as its last line.
type refStep struct {
	Seconds float64 `json:"seconds_per_step"`
	Torch   string  `json:"torch"`
	Threads int     `json:"threads"`
	Device  string  `json:"device"`
	PeakRSS int64   `json:"peak_rss_bytes"`
}

// runStepReference runs a PyTorch step reference and reads its last line.
func runStepReference(python string, args []string) (refStep, error) {
	var ref refStep
	out, err := exec.Command(python, args...).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) && len(ee.Stderr) > 0 {
			msg := strings.TrimSpace(string(ee.Stderr))
			if len(msg) > 2000 { // the end of a traceback
				msg = "..." + msg[len(msg)-2000:]
			}
			return ref, fmt.Errorf("the PyTorch reference: %w\n%s", err, msg)
		}
		return ref, fmt.Errorf("the PyTorch reference: %w", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &ref); err != nil {
		return ref, fmt.Errorf("the PyTorch reference printed %q", out)
	}
	return ref, nil
}

// peakRSS is this process's peak resident memory in bytes (Linux; 0 elsewhere).
func peakRSS() int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			var kb int64
			if _, err := fmt.Sscan(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), &kb); err == nil {
				return kb << 10
			}
		}
	}
	return 0
}

func mean(xs []float64) float64 {
	var s float64
	for _, x := range xs {
		s += x
	}
	return s / float64(len(xs))
}

// reference returns a Python with the given modules and the path of a reference script of
// the repository (see findScript).
func reference(script string, modules ...string) (python, path string, err error) {
	if python, err = pyref.Python(modules...); err != nil {
		return "", "", err
	}
	path, err = findScript(script)
	return python, path, err
}

// findScript finds a file of the repository from the working directory or its parents.
func findScript(rel string) (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		p := filepath.Join(dir, rel)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("%s not found: run the benchmark from the goselfsup repository", rel)
		}
		dir = parent
	}
}
