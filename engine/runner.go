package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"maps"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/distributed"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	gctx "github.com/gomlx/gomlx/pkg/ml/context"
	"go.uber.org/zap"

	"github.com/goselfsup/goselfsup/datasets"
	"github.com/goselfsup/goselfsup/engine/backend"
	"github.com/goselfsup/goselfsup/models"
	"github.com/goselfsup/goselfsup/models/nn"
	"github.com/goselfsup/goselfsup/registry"
)

// Algorithm is a self-supervised method as the runner drives it.
type Algorithm interface {
	// Loss builds a training step's loss; it may update state variables (batch-norm
	// statistics, a memory bank) with SetValueGraph.
	Loss(ctx *gctx.Context, b models.Batch) *Node
	// Features returns the features that evaluation uses, for uint8 images.
	Features(images *Node) *Node
}

// Options are a run's settings that do not belong in its config.
type Options struct {
	// WorkDir holds the run's checkpoints, and each run's log, config copy and metrics in a
	// folder named by its start time, as mmengine's.
	WorkDir string
	// Resume continues from a checkpoint: "auto" for the newest in WorkDir, or a path.
	Resume string
	// Seed overrides randomness.seed when not nil.
	Seed *int64
	// Console receives the human log and the progress bar (os.Stderr if nil).
	Console io.Writer
	// Hooks are extra hooks, added after those of the config.
	Hooks []*Hook
	// Pretrained is a checkpoint whose backbone.* weights initialise the model's backbone
	// (a self-supervised checkpoint for linear evaluation).
	Pretrained string
}

// Runner trains a model as its config describes.
type Runner struct {
	Cfg  *Config
	Tree *registry.Tree
	// WorkDir holds the checkpoints; RunDir, inside it, this run's log (log.jsonl and the
	// console's lines), config.toml, vis_data/scalars.json and metrics.json.
	WorkDir, RunDir string
	Log             *zap.Logger
	Backend         backends.Backend
	Ctx             *gctx.Context
	Scope           *nn.Scope
	Model           Algorithm
	Optim           OptimWrapper
	// Autocast is the dtype of the train step's autocast region (nn.SetAutocast), from an
	// optim_wrapper that is an Autocaster (AmpOptimWrapper); dtypes.InvalidDType for none.
	Autocast dtypes.DType
	Sched    *Schedule
	// Loader is device 0's train loader; Shards holds every device's (Loader first).
	Loader *datasets.Loader
	Shards []*datasets.Loader
	// Devices is the number of devices a train step runs on, each with a batch of
	// train_dataloader.batch_size.
	Devices int
	Loop    TrainLoop
	Seed    int64
	// Epoch and Iter count the epochs and iterations completed.
	Epoch, Iter int
	// MaxEpochs and MaxIters are the run's length, as its train loop gives it.
	MaxEpochs, MaxIters int
	// Metrics collects results, written to metrics.json at the end.
	Metrics map[string]float64

	hooks    hooks
	val      EvalLoop
	step     *gctx.Exec
	segStep  *gctx.Exec // the train step of a MaskModel, with the segmentation maps
	detStep  *gctx.Exec // the train step of a BoxModel, with the boxes
	features *gctx.Exec
	progress *progress
	logs     *runLogs
	eta      eta
	lastCkpt string
	resumed  bool
	env      *registry.Env
	skipped  atomic.Int64            // unreadable images replaced (skip_corrupt)
	norm     *datasets.Normalization // the train pipeline's Normalize, if any
}

// IterInfo describes the iteration that just ended.
type IterInfo struct {
	Epoch, Iter   int // Iter within the epoch, 0-based
	ItersPerEpoch int
	Loss, LR      float64
	Time, Data    time.Duration // the whole iteration, and the wait for its batch
}

// NewRunner builds everything a run needs: the backend, the data, the model, the optimizer,
// the schedule, the loops and the hooks. Every check that can fail runs before anything is
// written; then the run's folder is made under the work_dir and receives the config and
// the log.
func NewRunner(tree *registry.Tree, cfg *Config, opts Options) (_ *Runner, err error) {
	if opts.WorkDir == "" {
		return nil, errors.New("no work_dir")
	}
	console := opts.Console
	if console == nil {
		console = os.Stderr
	}
	r := &Runner{Cfg: cfg, Tree: tree, WorkDir: opts.WorkDir, Metrics: map[string]float64{}}
	r.progress = newProgress(console)
	if r.logs, err = newRunLogs(r.progress, cfg.LogLevel); err != nil {
		return nil, err
	}
	r.Log = r.logs.log
	defer func() {
		if err != nil {
			r.Close()
		}
	}()
	if err := r.setup(cfg, opts); err != nil {
		return nil, err
	}
	if r.RunDir, err = newRunDir(opts.WorkDir, time.Now()); err != nil {
		return nil, err
	}
	if err := tree.WriteFile(filepath.Join(r.RunDir, "config.toml")); err != nil {
		return nil, err
	}
	if err := r.logs.open(r.RunDir); err != nil {
		return nil, err
	}
	r.Log.Info("run folder", zap.String("path", r.RunDir))
	return r, nil
}

// newRunDir makes the folder of a run started at t: work_dir/YYYYMMDD_HHMMSS, with a suffix
// if a run started in the same second.
func newRunDir(workDir string, t time.Time) (string, error) {
	if err := os.MkdirAll(workDir, 0o755); err != nil {
		return "", err
	}
	base := filepath.Join(workDir, t.Format("20060102_150405"))
	for i := 0; ; i++ {
		dir := base
		if i > 0 {
			dir = fmt.Sprintf("%s_%d", base, i)
		}
		err := os.Mkdir(dir, 0o755)
		if err == nil {
			return dir, nil
		}
		if !errors.Is(err, os.ErrExist) {
			return "", err
		}
	}
}

func (r *Runner) setup(cfg *Config, opts Options) (err error) {
	// GoMLX reports graph-building errors as panics.
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("building the model: %v", p)
		}
	}()
	r.Seed = rand.Int64N(1 << 31)
	if cfg.Randomness.Seed != nil {
		r.Seed = *cfg.Randomness.Seed
	}
	if opts.Seed != nil {
		r.Seed = *opts.Seed
	}
	if cfg.TrainDataloader == nil {
		return errors.New("the config has no train_dataloader")
	}
	r.Ctx = gctx.New()
	r.Scope = nn.NewScope(r.Ctx, uint64(r.Seed))
	if cfg.EnvCfg.DType == "float64" {
		r.Scope = r.Scope.WithDType(dtypes.Float64)
	}
	r.env = registry.With(&registry.Env{Registry: registry.Default}, r.Scope)
	// The data first: a missing dataset is the most common first error, and says where the
	// data must be.
	if r.Loader, err = r.buildLoader(cfg.TrainDataloader, true); err != nil {
		return err
	}
	if r.Backend, err = backend.New(cfg.Backend); err != nil {
		return err
	}
	if err := r.useDevices(cfg); err != nil {
		return err
	}
	r.norm = r.Loader.Dataset.Normalization()
	model, err := withPipelineNormalization(cfg.Model, r.norm, cfg.TrainDataloader.Dataset.Path)
	if err != nil {
		return err
	}
	if err := r.useAutocast(cfg.OptimWrapper); err != nil {
		return err
	}
	if r.Model, err = registry.Build[Algorithm](r.env, model); err != nil {
		return err
	}
	if err := r.Ctx.SetRNGStateFromSeed(r.Seed); err != nil {
		return err
	}
	if r.Optim, err = registry.Build[OptimWrapper](r.env, cfg.OptimWrapper); err != nil {
		return err
	}
	if r.Sched, err = NewSchedule(r.env, cfg.ParamScheduler, r.baseLR(cfg), r.Loader.Len()); err != nil {
		return err
	}
	if r.Loop, err = registry.Build[TrainLoop](r.env, cfg.TrainCfg); err != nil {
		return err
	}
	r.MaxEpochs, r.MaxIters = r.Loop.Length(r.Loader.Len())
	if err := r.checkRun(cfg); err != nil {
		return err
	}
	if err := r.buildHooks(cfg, opts.Hooks); err != nil {
		return err
	}
	r.compile()
	if !cfg.ValEvaluator.IsZero() {
		valCfg := cfg.ValCfg
		if valCfg.IsZero() {
			valCfg = registry.NewSpec(registry.Loops, "ValLoop", nil)
		}
		if r.val, err = registry.Build[EvalLoop](r.env, valCfg); err != nil {
			return err
		}
		if err := r.val.Prepare(r, cfg.ValDataloader, cfg.ValEvaluator); err != nil {
			return err
		}
	}
	r.logIgnoredKeys(cfg)
	if opts.Pretrained != "" {
		if err := r.loadPretrained(opts.Pretrained); err != nil {
			return err
		}
	}
	if cfg.LoadFrom != "" {
		if err := r.loadWeights(cfg.LoadFrom); err != nil {
			return err
		}
	}
	resume := opts.Resume
	if resume == "" && cfg.Resume {
		resume = "auto"
	}
	if resume != "" {
		if err := r.resume(resume); err != nil {
			return err
		}
	}
	r.Log.Info("run", zap.String("config", r.Tree.File()), zap.String("work_dir", r.WorkDir),
		zap.Int64("seed", r.Seed), zap.String("backend", r.Backend.Description()))
	return nil
}

// useDevices decides how many devices a train step runs on: env_cfg.num_devices, or all
// the backend has when it is not set, at most the backend's; each device gets a shard of
// the data (as PyTorch's DistributedSampler deals it) and a batch of
// train_dataloader.batch_size. A recipe written for more devices than the backend has runs
// on fewer, with a warning that says what that changes.
func (r *Runner) useDevices(cfg *Config) error {
	have := max(r.Backend.NumDevices(), 1)
	want := cfg.EnvCfg.NumDevices
	r.Devices = have
	if want > 0 {
		r.Devices = min(want, have)
	}
	per := cfg.TrainDataloader.BatchSize
	if want > r.Devices {
		r.Log.Warn(fmt.Sprintf("env_cfg.num_devices = %d, but the backend has %d device(s): the run trains on %d, %d images a step "+
			"instead of %d; the learning rate is not rescaled (pass --auto-scale-lr, or scale it by %d/%d for the same recipe, or raise train_dataloader.batch_size)",
			want, have, r.Devices, per*r.Devices, per*want, r.Devices, want))
	}
	shards, err := shardLoaders(r.env, cfg.TrainDataloader, r.Loader, uint64(r.Seed), r.Devices)
	if err != nil {
		return err
	}
	r.Loader, r.Shards = shards[0], shards
	if r.Loader.Len() == 0 {
		return fmt.Errorf("train_dataloader: %d samples shared among %d devices make no batch of %d", r.Loader.Dataset.Len(), r.Devices, per)
	}
	return nil
}

// baseLR is the optimizer's learning rate, scaled as auto_scale_lr says; it logs the run's
// devices, batches and learning rate.
func (r *Runner) baseLR(cfg *Config) float64 {
	lr, per := r.Optim.LR(), cfg.TrainDataloader.BatchSize
	global := per * r.Devices
	fields := []zap.Field{zap.Int("devices", r.Devices), zap.Int("batch_per_device", per), zap.Int("global_batch", global)}
	if a := cfg.AutoScaleLR; a.Enable {
		ratio := float64(global) / float64(a.BaseBatchSize)
		r.Log.Info(fmt.Sprintf("auto_scale_lr: the learning rate is set for a global batch of %d and this run's is %d: lr %g x %g = %g",
			a.BaseBatchSize, global, lr, ratio, lr*ratio))
		fields = append(fields, zap.Float64("lr", lr*ratio), zap.Float64("config_lr", lr), zap.Bool("lr_scaled", true))
		lr *= ratio
	} else {
		fields = append(fields, zap.Float64("lr", lr), zap.Bool("lr_scaled", false))
	}
	r.Log.Info("data parallel", fields...)
	return lr
}

// shardLoaders returns the loaders of the n devices of a run: l's dataset and settings,
// with rank r of n taking every n-th sample of each epoch's order from r on.
func shardLoaders(env *registry.Env, d *Dataloader, l *datasets.Loader, seed uint64, n int) ([]*datasets.Loader, error) {
	if n == 1 {
		return []*datasets.Loader{l}, nil
	}
	out := make([]*datasets.Loader, n)
	for rank := range n {
		c := *l
		c.Rank, c.WorldSize = rank, n
		if !d.Sampler.IsZero() {
			senv := registry.With(registry.With(env, datasets.SamplerSeed(seed)), datasets.Shard{Rank: rank, WorldSize: n})
			var err error
			if c.Sampler, err = registry.Build[datasets.Sampler](senv, d.Sampler); err != nil {
				return nil, err
			}
		}
		out[rank] = &c
	}
	return out, nil
}

// checkRun checks the keys that depend on each other against the run's length.
func (r *Runner) checkRun(cfg *Config) error {
	errs := []error{CheckRun(r.env.Registry, cfg, RunLength{Epochs: r.MaxEpochs, Iters: r.MaxIters})}
	if m, ok := r.Model.(interface{ MemorySize() int }); ok {
		if n := r.Loader.Dataset.Len(); m.MemorySize() < n {
			errs = append(errs, fmt.Errorf("model.memory_bank.length = %d is below the %d images of train_dataloader: every image needs its row", m.MemorySize(), n))
		}
	}
	return errors.Join(errs...)
}

// logIgnoredKeys names, once at the start, the keys that a config may carry for mmengine
// but that change nothing in a training run.
func (r *Runner) logIgnoredKeys(cfg *Config) {
	var ignored []string
	for _, d := range []struct {
		name string
		dl   *Dataloader
	}{{"train_dataloader", cfg.TrainDataloader}, {"val_dataloader", cfg.ValDataloader}, {"test_dataloader", cfg.TestDataloader}} {
		if d.dl != nil && d.dl.PinMemory {
			ignored = append(ignored, d.name+".pin_memory (batches go to the device from ordinary memory)")
		}
	}
	if cfg.TestDataloader != nil || !cfg.TestEvaluator.IsZero() {
		ignored = append(ignored, "test_dataloader and test_evaluator (training runs no test; evaluate a checkpoint with tools/evaluate)")
	}
	if cfg.Randomness.Deterministic {
		ignored = append(ignored, "randomness.deterministic (runs on the CPU backend are deterministic whatever it says)")
	}
	if cfg.Randomness.DiffRankSeed {
		ignored = append(ignored, "randomness.diff_rank_seed (a run has one device)")
	}
	for i, c := range cfg.LogProcessor.CustomCfg {
		if _, ok := loggedValue[c.DataSrc]; !ok {
			ignored = append(ignored, fmt.Sprintf("log_processor.custom_cfg.%d: data_src %q is none of the logged values (loss, lr, time, data_time)", i, c.DataSrc))
		}
	}
	for _, k := range ignored {
		r.Log.Warn("ignored: " + k)
	}
}

// withPipelineNormalization makes a train pipeline's Normalize (mmselfsup 0.x, mmcv) the
// model's data_preprocessor, which normalises the uint8 batches on the device; the model's
// config must then leave the normalisation keys of its data_preprocessor unset.
func withPipelineNormalization(model registry.Spec, n *datasets.Normalization, pipeline string) (registry.Spec, error) {
	if n == nil {
		return model, nil
	}
	dp, _ := model.Get("data_preprocessor")
	table, _ := dp.(map[string]any)
	if table == nil {
		table = map[string]any{}
	}
	for _, k := range []string{"mean", "std", "bgr_to_rgb", "to_rgb"} {
		if _, ok := table[k]; ok {
			return model, fmt.Errorf("%s has a Normalize and model.data_preprocessor.%s is set (in %s): both normalise the images; keep one (mmselfsup 1.x normalises in model.data_preprocessor)",
				pipeline, k, model.Source("data_preprocessor."+k))
		}
	}
	table["mean"], table["std"], table["to_rgb"] = n.Mean[:], n.Std[:], n.ToRGB
	return model.With("data_preprocessor", table), nil
}

// sameNormalization checks that a loader's pipeline normalises as the model does: the
// model applies one normalisation to every batch.
func (r *Runner) sameNormalization(l *datasets.Loader, what string) error {
	n := l.Dataset.Normalization()
	if n == nil || (r.norm != nil && *n == *r.norm) {
		return nil
	}
	if r.norm == nil {
		return fmt.Errorf("%s: its pipeline has a Normalize and the train pipeline has none; the model normalises every batch with model.data_preprocessor", what)
	}
	return fmt.Errorf("%s: its pipeline's Normalize %+v differs from the train pipeline's %+v; the model applies one normalisation to every batch", what, *n, *r.norm)
}

// buildLoader builds a dataloader's dataset and sampler, and logs what the dataset skipped or
// changed in its annotations (CocoDataset's Warnings).
func (r *Runner) buildLoader(d *Dataloader, train bool) (*datasets.Loader, error) {
	l, err := newLoader(r.env, d, train, uint64(r.Seed), func(path string, err error) {
		r.skipped.Add(1)
		r.Log.Warn("replaced an unreadable image (skip_corrupt)", zap.String("path", path), zap.Error(err))
	})
	if err != nil {
		return nil, err
	}
	if w, ok := l.Dataset.Source.(interface{ Warnings() []string }); ok {
		for _, msg := range w.Warnings() {
			r.Log.Warn("dataset: " + msg)
		}
	}
	return l, nil
}

// newLoader builds a dataloader's dataset and sampler. A training loader shuffles unless its
// sampler says otherwise; an evaluation loader without a sampler keeps the dataset order.
func newLoader(env *registry.Env, d *Dataloader, train bool, seed uint64, onSkip func(path string, err error)) (*datasets.Loader, error) {
	ds, err := registry.Build[*datasets.Dataset](env, d.Dataset)
	if err != nil {
		return nil, err
	}
	if !d.CollateFn.IsZero() {
		if _, err := registry.Build[datasets.Collate](env, d.CollateFn); err != nil {
			return nil, err
		}
	}
	l := &datasets.Loader{Dataset: ds, BatchSize: d.BatchSize, Workers: d.NumWorkers, DropLast: d.DropLast && train,
		Shuffle: train, Seed: seed, Prefetch: 2, OnSkip: onSkip}
	if !d.Sampler.IsZero() {
		if l.Sampler, err = registry.Build[datasets.Sampler](registry.With(env, datasets.SamplerSeed(seed)), d.Sampler); err != nil {
			return nil, err
		}
	}
	return l, nil
}

// buildHooks builds default_hooks and custom_hooks, then adds the extra ones, each after
// those of its priority or higher. A hook's table may carry mmengine's priority key.
func (r *Runner) buildHooks(cfg *Config, extra []*Hook) error {
	specs := make([]registry.Spec, 0, len(cfg.DefaultHooks)+len(cfg.CustomHooks))
	for _, n := range slices.Sorted(maps.Keys(cfg.DefaultHooks)) {
		specs = append(specs, cfg.DefaultHooks[n])
	}
	specs = append(specs, cfg.CustomHooks...)
	for _, s := range specs {
		var prio *Priority
		if v, ok := s.Get("priority"); ok {
			p, err := ParsePriority(v)
			if err != nil {
				return &registry.Error{Path: s.Path + ".priority", Source: s.Source("priority"), Msg: err.Error()}
			}
			prio, s = &p, s.Without("priority")
		}
		h, err := registry.Build[*Hook](r.env, s)
		if err != nil {
			return err
		}
		if h.Name == "" {
			h.Name = s.Type
		}
		if prio != nil {
			h.Priority = *prio
		}
		r.hooks = r.hooks.add(h)
	}
	for _, h := range extra {
		r.hooks = r.hooks.add(h)
	}
	return nil
}

// useAutocast learns from the optim_wrapper's config, before the model is built, whether
// the train step runs under autocast (mixed precision) and in which dtype.
func (r *Runner) useAutocast(spec registry.Spec) error {
	r.Autocast = dtypes.InvalidDType
	if spec.IsZero() {
		return nil
	}
	reg := r.env.Registry
	if reg == nil {
		reg = registry.Default
	}
	cfg, err := reg.Decode(spec)
	if err != nil {
		return err
	}
	a, ok := cfg.(Autocaster)
	if !ok {
		return nil
	}
	r.Autocast = a.AutocastDType()
	if r.Autocast == dtypes.InvalidDType {
		return nil
	}
	if r.Scope.DType() != dtypes.Float32 {
		return fmt.Errorf("%s: mixed precision (%s) needs a float32 model, not env_cfg.dtype = %q", spec.Path, spec.Type, r.Scope.DType())
	}
	r.Log.Info("mixed precision: the train step's convolutions and linear layers in "+strings.ToLower(r.Autocast.String())+
		"; weights, optimizer state, batch norm, loss and memory bank in float32", zap.String("optim_wrapper", spec.Type))
	if n, ok := cfg.(interface{ LossScaleNote() string }); ok {
		r.Log.Info(n.LossScaleNote())
	}
	return nil
}

// compile prepares the train step (one graph: forward, loss, backward, optimizer and
// memory-bank update; on several devices one SPMD program) and the feature extractor (on
// device 0); GoMLX compiles them at their first call.
func (r *Runner) compile() {
	r.step = gctx.MustNewExec(r.Backend, r.Ctx, func(ctx *gctx.Context, images, idx, labels, lr, device *Node) *Node {
		nn.SetDevice(ctx, images.Graph(), device)
		if r.Autocast != dtypes.InvalidDType {
			nn.SetAutocast(ctx, images.Graph(), r.Autocast)
		}
		return Step(ctx, r.Model, r.Optim, models.Batch{Images: images, Indices: idx, Labels: labels}, lr)
	})
	if r.Devices > 1 {
		r.step.SPMD(dataMesh(r.Devices))
	}
	if m, ok := r.Model.(MaskModel); ok && m.UsesMasks() {
		r.segStep = gctx.MustNewExec(r.Backend, r.Ctx, func(ctx *gctx.Context, images, idx, masks, imgShapes, lr, device *Node) *Node {
			nn.SetDevice(ctx, images.Graph(), device)
			if r.Autocast != dtypes.InvalidDType {
				nn.SetAutocast(ctx, images.Graph(), r.Autocast)
			}
			b := models.Batch{Images: images, Indices: idx, Masks: ConvertDType(masks, dtypes.Int32), ImgShapes: imgShapes}
			return Step(ctx, r.Model, r.Optim, b, lr)
		})
		if r.Devices > 1 {
			r.segStep.SPMD(dataMesh(r.Devices))
		}
	}
	if m, ok := r.Model.(BoxModel); ok && m.UsesBoxes() {
		withMasks := usesInstanceMasks(r.Model)
		r.detStep = gctx.MustNewExec(r.Backend, r.Ctx, func(ctx *gctx.Context, in []*Node) *Node {
			images, idx, imgShapes, boxes, labels, valid := in[0], in[1], in[2], in[3], in[4], in[5]
			b := models.Batch{Images: images, Indices: idx, ImgShapes: imgShapes, GTBoxes: boxes, GTLabels: labels, GTValid: valid}
			if withMasks {
				b.GTMasks, in = in[6], append(in[:6:6], in[7:]...)
			}
			lr, device := in[6], in[7]
			nn.SetDevice(ctx, images.Graph(), device)
			if r.Autocast != dtypes.InvalidDType {
				nn.SetAutocast(ctx, images.Graph(), r.Autocast)
			}
			return Step(ctx, r.Model, r.Optim, b, lr)
		})
		if r.Devices > 1 {
			r.detStep.SPMD(dataMesh(r.Devices))
		}
	}
	r.features = gctx.MustNewExec(r.Backend, r.Ctx, func(ctx *gctx.Context, images *Node) *Node {
		return r.Model.Features(images)
	})
}

// Step adds one training step to a graph: the loss of the batch, its gradient, the
// optimizer's update and the state updates of the model (batch-norm statistics, the memory
// bank). It returns the loss; on several devices, the mean of the devices' losses.
func Step(ctx *gctx.Context, model Algorithm, opt OptimWrapper, b models.Batch, lr *Node) *Node {
	loss := model.Loss(ctx, b)
	opt.Step(loss, lr)
	return nn.MeanAcross(loss)
}

// dataMesh is the mesh of a data-parallel run on n devices: one axis, "data".
func dataMesh(n int) *distributed.DeviceMesh {
	mesh, err := distributed.NewDeviceMesh([]int{n}, []string{"data"})
	if err != nil {
		panic(err) // n >= 1 and one named axis: cannot fail
	}
	return mesh
}

// Close releases the backend's resources and flushes the log.
func (r *Runner) Close() {
	if r.step != nil {
		r.step.Finalize()
		r.features.Finalize()
	}
	if r.segStep != nil {
		r.segStep.Finalize()
	}
	if r.detStep != nil {
		r.detStep.Finalize()
	}
	if r.val != nil {
		r.val.Close()
	}
	if r.logs != nil {
		r.logs.close()
	}
}

// Train runs the train loop to its end. A cancelled ctx stops it between iterations, without
// saving.
func (r *Runner) Train(ctx context.Context) error {
	if err := r.point("BeforeRun", func(h *Hook) func(*Runner) error { return h.BeforeRun }); err != nil {
		return err
	}
	if err := r.point("BeforeTrain", func(h *Hook) func(*Runner) error { return h.BeforeTrain }); err != nil {
		return err
	}
	if err := r.Loop.Run(ctx, r); err != nil {
		r.progress.clear()
		return err
	}
	r.progress.clear()
	if err := r.point("AfterTrain", func(h *Hook) func(*Runner) error { return h.AfterTrain }); err != nil {
		return err
	}
	if err := r.writeMetrics(); err != nil {
		return err
	}
	return r.point("AfterRun", func(h *Hook) func(*Runner) error { return h.AfterRun })
}

// TrainEpoch runs the iterations of epoch r.Epoch that are left, stopping early once the
// run has done until iterations (a train loop's max_iters), and calls after, if not nil,
// after each iteration. When the epoch ends it counts it and calls the epoch hooks; done
// reports that it ended.
func (r *Runner) TrainEpoch(ctx context.Context, until int, after func() error) (done bool, err error) {
	ipe := r.Loader.Len()
	first := r.Iter - r.Epoch*ipe // > 0 in an epoch resumed in its middle
	if first == 0 {
		if err := r.point("BeforeTrainEpoch", func(h *Hook) func(*Runner) error { return h.BeforeTrainEpoch }); err != nil {
			return false, err
		}
	}
	i := first
	t0 := time.Now()
	for b, err := range lockstep(ctx, r.Shards, r.Epoch, first) {
		if err != nil {
			return false, err
		}
		if r.Iter >= until {
			return false, nil
		}
		if err := r.trainIter(b, i, time.Since(t0), t0); err != nil {
			return false, err
		}
		if after != nil {
			if err := after(); err != nil {
				return false, err
			}
		}
		i++
		t0 = time.Now()
	}
	if err := ctx.Err(); err != nil {
		return false, err
	}
	r.progress.clear()
	r.Epoch++ // the hooks see the epoch as completed
	err = r.point("AfterTrainEpoch", func(h *Hook) func(*Runner) error { return h.AfterTrainEpoch })
	return err == nil, err
}

// trainIter runs iteration i of the epoch on the devices' batches b, loaded in data since t0.
func (r *Runner) trainIter(b []*datasets.Batch, i int, data time.Duration, t0 time.Time) error {
	ipe := r.Loader.Len()
	info := IterInfo{Epoch: r.Epoch, Iter: i, ItersPerEpoch: ipe, LR: r.Sched.LR(r.Epoch, i), Data: data}
	if err := pointWith(r, "BeforeTrainIter", info, func(h *Hook) func(*Runner, IterInfo) error { return h.BeforeTrainIter }); err != nil {
		return err
	}
	loss, err := r.TrainStep(b, info.LR)
	if err != nil {
		return err
	}
	if math.IsNaN(loss) || math.IsInf(loss, 0) {
		last := "none was saved"
		if r.lastCkpt != "" {
			last = "the last good one is " + r.lastCkpt
		}
		return fmt.Errorf("the loss is %v at epoch %d, iteration %d: training stopped; %s", loss, r.Epoch+1, i+1, last)
	}
	r.Iter++
	info.Loss, info.Time = loss, time.Since(t0)
	r.eta.record(info.Time)
	if err := pointWith(r, "AfterTrainIter", info, func(h *Hook) func(*Runner, IterInfo) error { return h.AfterTrainIter }); err != nil {
		return err
	}
	stage := fmt.Sprintf("epoch %d/%d", r.Epoch+1, r.MaxEpochs)
	done, total := i+1, ipe
	if r.Loop.IterBased() {
		stage, done, total = "train", r.Iter, r.MaxIters
	}
	r.progress.update(stage, done, total, r.ETA(), fmt.Sprintf("loss %.4f", loss))
	return nil
}

// LogScalars appends values to the run's vis_data/scalars.json, with its epoch, iteration
// and step, for plotting.
func (r *Runner) LogScalars(values map[string]float64) { r.logs.scalars(r, values) }

// ETA estimates the time the run needs for its remaining iterations: the mean time of the
// iterations of this run (since the start or the resume) times those left. The progress bar
// and the log show the same estimate.
func (r *Runner) ETA() time.Duration { return r.eta.left(r.Iter, r.MaxIters) }

// Validate runs the validation loop, if the config has one, records its metrics and calls
// the validation hooks.
func (r *Runner) Validate(ctx context.Context) error {
	if r.val == nil {
		return nil
	}
	if err := r.point("BeforeVal", func(h *Hook) func(*Runner) error { return h.BeforeVal }); err != nil {
		return err
	}
	metrics, err := r.val.Run(ctx, r)
	if err != nil {
		return err
	}
	for k, v := range metrics {
		r.Metrics[k] = v
	}
	return pointWith(r, "AfterVal", metrics, func(h *Hook) func(*Runner, map[string]float64) error { return h.AfterVal })
}

// MaskModel is a model that trains on per-pixel labels (a segmentor): its train step gets
// the batches' segmentation maps (models.Batch.Masks, 255 = ignore) and the images' sizes
// before padding (models.Batch.ImgShapes).
type MaskModel interface {
	UsesMasks() bool
}

// BoxModel is a model that trains on boxes (a detector): its train step gets the batches'
// ground truth boxes, labels and validity (models.Batch.GTBoxes, GTLabels, GTValid, from
// the pipeline's PackDetInputs) and the images' sizes before padding (ImgShapes).
type BoxModel interface {
	UsesBoxes() bool
}

// InstanceMaskModel is a BoxModel that also trains on instance masks (Mask R-CNN): its
// train step gets the GT boxes' masks (models.Batch.GTMasks, from a pipeline that loads
// them: LoadAnnotations with_mask and Collect of gt_masks).
type InstanceMaskModel interface {
	UsesInstanceMasks() bool
}

func usesInstanceMasks(m Algorithm) bool {
	im, ok := m.(InstanceMaskModel)
	return ok && im.UsesInstanceMasks()
}

// TrainStep runs one training step with learning rate lr on a batch for each device (as
// many as r.Devices) and returns the loss, the mean over the devices. The arguments of a
// step on several devices are each device's in turn (device-major), as the SPMD program
// takes them.
func (r *Runner) TrainStep(batches []*datasets.Batch, lr float64) (loss float64, err error) {
	if len(batches) != r.Devices {
		return 0, fmt.Errorf("train step: %d batches for %d devices", len(batches), r.Devices)
	}
	step := r.step
	switch {
	case r.segStep != nil:
		step = r.segStep
	case r.detStep != nil:
		step = r.detStep
	}
	args := make([]any, 0, 6*len(batches))
	for d, b := range batches {
		if b.Len() != batches[0].Len() || b.Height != batches[0].Height || b.Width != batches[0].Width {
			return 0, fmt.Errorf("train step: device %d's batch is %d images of %dx%d, device 0's %d of %dx%d; the devices of a step need batches of one shape",
				d, b.Len(), b.Height, b.Width, batches[0].Len(), batches[0].Height, batches[0].Width)
		}
		images := tensors.FromFlatDataAndDimensions(b.Images, b.Len(), b.Height, b.Width, 3)
		idx := tensors.FromFlatDataAndDimensions(b.Indices, b.Len())
		if r.detStep != nil {
			if b.Det == nil || b.Det.MaxGT == 0 || b.ImgShapes == nil {
				return 0, fmt.Errorf("train step: %s trains on boxes and the train pipeline gives none (LoadAnnotations with_bbox and PackDetInputs)", r.Cfg.Model.Type)
			}
			db := b.Det
			args = append(args, images, idx, tensors.FromFlatDataAndDimensions(b.ImgShapes, b.Len(), 2),
				tensors.FromFlatDataAndDimensions(db.Boxes, b.Len(), db.MaxGT, 4), tensors.FromFlatDataAndDimensions(db.Labels, b.Len(), db.MaxGT),
				tensors.FromFlatDataAndDimensions(db.Valid(), b.Len(), db.MaxGT))
			if usesInstanceMasks(r.Model) {
				if len(db.Masks) != b.Len()*db.MaxGT*b.Height*b.Width {
					return 0, fmt.Errorf("train step: %s trains on instance masks and the train pipeline gives none (LoadAnnotations with_mask and Collect of gt_masks)", r.Cfg.Model.Type)
				}
				args = append(args, tensors.FromFlatDataAndDimensions(db.Masks, b.Len(), db.MaxGT, b.Height, b.Width))
			}
			args = append(args, lr, int32(d))
			continue
		}
		if r.segStep == nil {
			labels := tensors.FromFlatDataAndDimensions(b.Labels, b.Len())
			args = append(args, images, idx, labels, lr, int32(d))
			continue
		}
		if b.Masks == nil {
			return 0, fmt.Errorf("train step: %s trains on segmentation maps and the train pipeline gives none (LoadAnnotations and PackSegInputs)", r.Cfg.Model.Type)
		}
		if b.MaskHeight != b.Height || b.MaskWidth != b.Width {
			return 0, fmt.Errorf("train step: the segmentation maps are %dx%d and the images %dx%d; the train pipeline must give maps of the images' size",
				b.MaskWidth, b.MaskHeight, b.Width, b.Height)
		}
		masks := tensors.FromFlatDataAndDimensions(b.Masks, b.Len(), b.MaskHeight, b.MaskWidth)
		imgShapes := tensors.FromFlatDataAndDimensions(b.ImgShapes, b.Len(), 2)
		args = append(args, images, idx, masks, imgShapes, lr, int32(d))
	}
	out, err := step.Exec(args...)
	if err != nil {
		return 0, fmt.Errorf("train step: %w", err)
	}
	switch v := out[0].Value().(type) {
	case float32:
		return float64(v), nil
	case float64:
		return v, nil
	default:
		return 0, fmt.Errorf("train step: the loss is a %T", v)
	}
}

// Extract returns the evaluation features of every sample of a loader, in sample order,
// and their labels.
func (r *Runner) Extract(ctx context.Context, l *datasets.Loader, what string) ([][]float32, []int, error) {
	feats := make([][]float32, l.Dataset.Len())
	labels := make([]int, l.Dataset.Len())
	err := extractLoop(ctx, l, r.progress, what, func(images *tensors.Tensor) ([]*tensors.Tensor, error) {
		return r.features.Exec(images)
	}, func(b *datasets.Batch, outs [][]float32) {
		dim := len(outs[0]) / b.Len()
		for i, idx := range b.Indices {
			feats[idx] = outs[0][i*dim : (i+1)*dim]
			labels[idx] = int(b.Labels[i])
		}
	})
	if err != nil {
		return nil, nil, err
	}
	return feats, labels, nil
}

// float32s copies a float tensor's values as float32.
func float32s(t *tensors.Tensor) ([]float32, error) {
	if t.DType() == dtypes.Float64 {
		f64, err := tensors.CopyFlatData[float64](t)
		if err != nil {
			return nil, err
		}
		out := make([]float32, len(f64))
		for i, v := range f64 {
			out[i] = float32(v)
		}
		return out, nil
	}
	return tensors.CopyFlatData[float32](t)
}

// variables lists the run's variables by their PyTorch-style names.
func (r *Runner) variables() map[string]*gctx.Variable {
	out := map[string]*gctx.Variable{}
	for v := range r.Ctx.IterVariables() {
		out[nn.TorchName(v)] = v
	}
	return out
}

// Checkpoint returns the run's state.
func (r *Runner) Checkpoint() (*Checkpoint, error) {
	c := &Checkpoint{Tensors: map[string]*tensors.Tensor{}, Meta: CheckpointMeta{
		Epoch: r.Epoch, Iter: r.Iter, Seed: r.Seed, Devices: r.Devices, BatchSize: r.Loader.BatchSize,
		Config: r.Tree.TOML(), Metrics: map[string]float64{},
		Layouts: map[string]string{}}}
	for k, v := range r.Metrics {
		c.Meta.Metrics[k] = v
	}
	for name, v := range r.variables() {
		t, err := v.Value()
		if err != nil {
			return nil, fmt.Errorf("checkpoint: %s: %w", name, err)
		}
		lt, err := t.LocalClone()
		if err != nil {
			return nil, fmt.Errorf("checkpoint: %s: %w", name, err)
		}
		c.Tensors[name] = lt
		if v.Shape().Rank() == 4 && strings.HasSuffix(name, ".weight") {
			c.Meta.Layouts[name] = "HWIO"
		}
	}
	return c, nil
}

// restore sets the variables named in c; with weightsOnly, only the model's (not the
// optimizer's or the random state), as load_from does.
func (r *Runner) restore(c *Checkpoint, weightsOnly bool) error {
	return restoreVariables(r.Ctx, c, weightsOnly)
}

func isModelVariable(name string) bool {
	return !strings.HasPrefix(name, "optimizer.") && !strings.HasPrefix(name, "rng")
}

func (r *Runner) loadWeights(path string) error {
	c, err := LoadCheckpoint(path)
	if err != nil {
		return fmt.Errorf("load_from: %w", err)
	}
	if err := r.restore(c, true); err != nil {
		return fmt.Errorf("load_from %s: %w", path, err)
	}
	if err := r.afterLoad(c); err != nil {
		return err
	}
	r.Log.Info("loaded weights", zap.String("checkpoint", path))
	return nil
}

// loadPretrained initialises the backbone from a checkpoint's backbone.* weights.
func (r *Runner) loadPretrained(path string) error {
	c, err := LoadCheckpoint(path)
	if err != nil {
		return fmt.Errorf("pretrained: %w", err)
	}
	// The model's variables under each prefix come from the checkpoint's under another:
	// backbone.* from backbone.*, and those a PretrainedMapper adds.
	sources := map[string]string{"backbone.": "backbone."}
	if m, ok := r.Model.(PretrainedMapper); ok {
		maps.Copy(sources, m.PretrainedSources())
	}
	var missing []string
	loaded := 0
	for name, v := range r.variables() {
		var from string
		for prefix, src := range sources {
			if rest, ok := strings.CutPrefix(name, prefix); ok {
				from = src + rest
				break
			}
		}
		if from == "" {
			continue
		}
		t, ok := c.Tensors[from]
		if !ok {
			missing = append(missing, from)
			continue
		}
		if !t.Shape().Equal(v.Shape()) {
			return fmt.Errorf("pretrained %s: %s is %s there but %s is %s in the model", path, from, t.Shape(), name, v.Shape())
		}
		if err := v.SetValue(t); err != nil {
			return err
		}
		loaded++
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		return fmt.Errorf("pretrained %s lacks %d variables that the model takes from it: %s", path, len(missing), joinShort(missing))
	}
	r.Log.Info("loaded the pretrained backbone", zap.String("checkpoint", path), zap.Int("tensors", loaded))
	return nil
}

// PretrainedMapper is a model that initialises more than its backbone from a pretrained
// checkpoint (train --pretrained, a benchmark's checkpoint): PretrainedSources maps a prefix
// of its variables to the checkpoint's prefix they come from, such as the C4 detectors'
// roi_head.shared_head.layer4. from backbone.layer4. (mmselfsup's C4 launch script sets the
// shared head's init_cfg to the same checkpoint).
type PretrainedMapper interface {
	PretrainedSources() map[string]string
}

func (r *Runner) resume(which string) error {
	path := which
	if which == "auto" {
		p, err := LatestCheckpoint(r.WorkDir)
		if err != nil {
			return err
		}
		path = p
	}
	c, err := LoadCheckpoint(path)
	if err != nil {
		return fmt.Errorf("resume: %w", err)
	}
	if err := r.checkResumeBatch(path, c.Meta); err != nil {
		return err
	}
	if err := r.restore(c, false); err != nil {
		return fmt.Errorf("resume from %s: %w", path, err)
	}
	r.Epoch, r.Iter, r.lastCkpt, r.resumed = c.Meta.Epoch, c.Meta.Iter, path, true
	if err := r.afterLoad(c); err != nil {
		return err
	}
	if c.Meta.Seed != r.Seed {
		r.Log.Warn("the checkpoint's seed differs from the run's; the data order follows the run's",
			zap.Int64("checkpoint_seed", c.Meta.Seed), zap.Int64("seed", r.Seed))
	}
	for k, v := range c.Meta.Metrics {
		r.Metrics[k] = v
	}
	r.Log.Info("resumed", zap.String("checkpoint", path), zap.Int("epoch", r.Epoch), zap.Int("iter", r.Iter))
	return nil
}

// checkResumeBatch lets a run resume on another number of devices when its global batch
// is the checkpoint's: each iteration then sees the same images (the distributed sampler
// deals the epoch's order out among the devices) and the schedule keeps its iterations.
// Another global batch would change both, so it is an error.
func (r *Runner) checkResumeBatch(path string, m CheckpointMeta) error {
	if m.BatchSize == 0 {
		return nil // written before checkpoints recorded their batch
	}
	devices, per := max(m.Devices, 1), r.Loader.BatchSize
	was, now := devices*m.BatchSize, r.Devices*per
	if was != now {
		return fmt.Errorf("resume from %s: the run that wrote it trained on %d device(s) x %d images, a global batch of %d; this run has %d x %d = %d. "+
			"Resuming changes the images of each iteration and the schedule; set env_cfg.num_devices and train_dataloader.batch_size for a global batch of %d, "+
			"or start a new run from its weights with load_from",
			path, devices, m.BatchSize, was, r.Devices, per, now, was)
	}
	if devices != r.Devices {
		r.Log.Info(fmt.Sprintf("resuming a run of %d device(s) x %d images on %d x %d: the same global batch of %d", devices, m.BatchSize, r.Devices, per, now))
	}
	return nil
}

// Resumed reports whether the run continues from a checkpoint.
func (r *Runner) Resumed() bool { return r.resumed }

// afterLoad calls the hooks' AfterLoadCheckpoint.
func (r *Runner) afterLoad(c *Checkpoint) error {
	return pointWith(r, "AfterLoadCheckpoint", c, func(h *Hook) func(*Runner, *Checkpoint) error { return h.AfterLoadCheckpoint })
}

// SaveCheckpoint writes the run's state to path (atomically), after the hooks'
// BeforeSaveCheckpoint; without the optimizer, only the model's variables. It records path
// as the work_dir's newest checkpoint, where --resume finds it.
func (r *Runner) SaveCheckpoint(path string, withOptimizer bool) error {
	c, err := r.Checkpoint()
	if err != nil {
		return err
	}
	if !withOptimizer {
		for name := range c.Tensors {
			if !isModelVariable(name) {
				delete(c.Tensors, name)
			}
		}
	}
	if err := pointWith(r, "BeforeSaveCheckpoint", c, func(h *Hook) func(*Runner, *Checkpoint) error { return h.BeforeSaveCheckpoint }); err != nil {
		return err
	}
	if err := SaveCheckpoint(path, c); err != nil {
		return err
	}
	r.lastCkpt = path
	abs, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(r.WorkDir, latestName), []byte(abs+"\n"), 0o644); err != nil {
		return err
	}
	r.Log.Info("saved checkpoint", zap.String("path", path), zap.Int("epoch", r.Epoch), zap.Int("iter", r.Iter))
	return nil
}

func (r *Runner) writeMetrics() error {
	if n := r.skipped.Load(); n > 0 {
		r.Metrics["skipped_images"] = float64(n)
	}
	data, err := json.MarshalIndent(r.Metrics, "", "  ")
	if err != nil {
		return err
	}
	path := filepath.Join(r.RunDir, "metrics.json")
	if err := os.WriteFile(path, append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

// lockstep yields, for each iteration of an epoch from batch first on, the batches of every
// device's loader. Its iteration ends at the first error, or when a loader ends.
func lockstep(ctx context.Context, loaders []*datasets.Loader, epoch, first int) iter.Seq2[[]*datasets.Batch, error] {
	return func(yield func([]*datasets.Batch, error) bool) {
		if len(loaders) == 1 {
			for b, err := range loaders[0].EpochFrom(ctx, epoch, first) {
				if !yield([]*datasets.Batch{b}, err) || err != nil {
					return
				}
			}
			return
		}
		next := make([]func() (*datasets.Batch, error, bool), len(loaders))
		for i, l := range loaders {
			n, stop := iter.Pull2(l.EpochFrom(ctx, epoch, first))
			defer stop()
			next[i] = n
		}
		for {
			batches := make([]*datasets.Batch, len(loaders))
			for i, n := range next {
				b, err, ok := n()
				if !ok {
					return
				}
				if err != nil {
					yield(nil, err)
					return
				}
				batches[i] = b
			}
			if !yield(batches, nil) {
				return
			}
		}
	}
}
