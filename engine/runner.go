package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gomlx/gomlx/backends"
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
	WorkDir string
	// Resume continues from a checkpoint: "auto" for the newest in WorkDir, or a path.
	Resume string
	// Seed overrides randomness.seed when not nil.
	Seed *int64
	// Console receives the human log and the progress bar (os.Stderr if nil).
	Console io.Writer
	// Hooks are extra hooks, after those of the config.
	Hooks []Hook
	// Pretrained is a checkpoint whose backbone.* weights initialise the model's backbone
	// (a self-supervised checkpoint for linear evaluation).
	Pretrained string
}

// Runner trains a model as its config describes.
type Runner struct {
	Cfg     *Config
	Tree    *registry.Tree
	WorkDir string
	Log     *zap.Logger
	Backend backends.Backend
	Ctx     *gctx.Context
	Scope   *nn.Scope
	Model   Algorithm
	Opt     *SGD
	Sched   *Schedule
	Loader  *datasets.Loader
	Seed    int64
	// Epoch and Iter count the epochs and iterations completed.
	Epoch, Iter int
	MaxEpochs   int
	// Metrics collects results, written to metrics.json at the end.
	Metrics map[string]float64

	hooks    []Hook
	val      *validation
	step     *gctx.Exec
	features *gctx.Exec
	progress *progress
	closeLog func()
	lastCkpt string
	resumed  bool
	env      *registry.Env
	skipped  atomic.Int64            // unreadable images replaced (skip_corrupt)
	norm     *datasets.Normalization // the train pipeline's Normalize, if any
}

// Hook is anything with some of the methods BeforeTrain, AfterTrainIter, AfterTrainEpoch
// and AfterTrain (see the interfaces below); the runner calls those it has.
type Hook any

type (
	beforeTrain    interface{ BeforeTrain(r *Runner) error }
	afterTrainIter interface {
		AfterTrainIter(r *Runner, it IterInfo) error
	}
	afterTrainEpoch interface{ AfterTrainEpoch(r *Runner) error }
	afterTrain      interface{ AfterTrain(r *Runner) error }
)

// IterInfo describes the iteration that just ended.
type IterInfo struct {
	Epoch, Iter   int // Iter within the epoch, 0-based
	ItersPerEpoch int
	Loss, LR      float64
	Time, Data    time.Duration // the whole iteration, and the wait for its batch
}

// NewRunner builds everything a run needs: the work_dir and its log, the backend, the model,
// the optimizer, the schedule, the data and the hooks.
func NewRunner(tree *registry.Tree, cfg *Config, opts Options) (_ *Runner, err error) {
	if opts.WorkDir == "" {
		return nil, errors.New("no work_dir")
	}
	if err := os.MkdirAll(opts.WorkDir, 0o755); err != nil {
		return nil, err
	}
	console := opts.Console
	if console == nil {
		console = os.Stderr
	}
	r := &Runner{Cfg: cfg, Tree: tree, WorkDir: opts.WorkDir, Metrics: map[string]float64{}}
	r.progress = newProgress(console)
	r.Log, r.closeLog, err = newLogger(r.progress, filepath.Join(opts.WorkDir, "log.jsonl"), cfg.LogLevel)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			r.Close()
		}
	}()
	if err := tree.WriteFile(filepath.Join(opts.WorkDir, "config.toml")); err != nil {
		return nil, err
	}
	if err := r.setup(cfg, opts); err != nil {
		return nil, err
	}
	return r, nil
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
	if r.Backend, err = backend.New(cfg.Backend); err != nil {
		return err
	}
	devices := max(cfg.EnvCfg.NumDevices, 1)
	if devices > 1 {
		return fmt.Errorf("env_cfg.num_devices = %d: training on several devices is not supported yet; "+
			"set env_cfg.num_devices = 1 (and raise train_dataloader.batch_size to keep the global batch)", devices)
	}
	r.Log.Info("run", zap.String("config", r.Tree.File()), zap.String("work_dir", r.WorkDir),
		zap.Int64("seed", r.Seed), zap.String("backend", r.Backend.Description()))

	if cfg.TrainDataloader == nil {
		return errors.New("the config has no train_dataloader")
	}
	r.Ctx = gctx.New()
	r.Scope = nn.NewScope(r.Ctx, uint64(r.Seed))
	if cfg.EnvCfg.DType == "float64" {
		r.Scope = r.Scope.WithDType(dtypes.Float64)
	}
	r.env = registry.With(&registry.Env{Registry: registry.Default}, r.Scope)
	if r.Loader, err = r.buildLoader(cfg.TrainDataloader, true); err != nil {
		return err
	}
	r.norm = r.Loader.Dataset.Normalization()
	model, err := withPipelineNormalization(cfg.Model, r.norm, cfg.TrainDataloader.Dataset.Path)
	if err != nil {
		return err
	}
	if r.Model, err = registry.Build[Algorithm](r.env, model); err != nil {
		return err
	}
	if err := r.Ctx.SetRNGStateFromSeed(r.Seed); err != nil {
		return err
	}
	if r.Loader.Len() == 0 {
		return fmt.Errorf("train_dataloader: %d samples make no batch of %d", r.Loader.Dataset.Len(), r.Loader.BatchSize)
	}
	if err := r.buildOptimizer(cfg); err != nil {
		return err
	}
	loop, err := registry.Default.Decode(cfg.TrainCfg)
	if err != nil {
		return err
	}
	ebl, ok := loop.(*EpochBasedTrainLoopConfig)
	if !ok {
		return fmt.Errorf("train_cfg: %s is not supported; use EpochBasedTrainLoop", cfg.TrainCfg.Type)
	}
	r.MaxEpochs = ebl.MaxEpochs
	if err := r.buildHooks(cfg, opts.Hooks); err != nil {
		return err
	}
	r.compile()
	if r.val, err = r.buildValidation(cfg, ebl); err != nil {
		return err
	}
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
	return nil
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

// buildLoader builds a dataloader's dataset and sampler.
func (r *Runner) buildLoader(d *Dataloader, train bool) (*datasets.Loader, error) {
	return newLoader(r.env, d, train, uint64(r.Seed), func(path string, err error) {
		r.skipped.Add(1)
		r.Log.Warn("replaced an unreadable image (skip_corrupt)", zap.String("path", path), zap.Error(err))
	})
}

// newLoader builds a dataloader's dataset and sampler; a training loader shuffles unless
// its sampler says otherwise.
func newLoader(env *registry.Env, d *Dataloader, train bool, seed uint64, onSkip func(path string, err error)) (*datasets.Loader, error) {
	ds, err := registry.Build[*datasets.Dataset](env, d.Dataset)
	if err != nil {
		return nil, err
	}
	shuffle := train
	if !d.Sampler.IsZero() {
		sc, err := registry.Default.Decode(d.Sampler)
		if err != nil {
			return nil, err
		}
		s, ok := sc.(*DefaultSamplerConfig)
		if !ok {
			return nil, fmt.Errorf("%s: %s is not supported; use DefaultSampler", d.Sampler.Path, d.Sampler.Type)
		}
		shuffle = s.Shuffle
		if s.Seed != nil {
			seed = uint64(*s.Seed)
		}
	}
	return &datasets.Loader{Dataset: ds, BatchSize: d.BatchSize, Workers: d.NumWorkers, DropLast: d.DropLast && train,
		Shuffle: shuffle, Seed: seed, Prefetch: 2, OnSkip: onSkip}, nil
}

func (r *Runner) buildOptimizer(cfg *Config) error {
	wc, err := registry.Default.Decode(cfg.OptimWrapper)
	if err != nil {
		return err
	}
	w, ok := wc.(*OptimWrapperConfig)
	if !ok {
		return fmt.Errorf("optim_wrapper: %s is not supported; use OptimWrapper", cfg.OptimWrapper.Type)
	}
	oc, err := registry.Default.Decode(w.Optimizer)
	if err != nil {
		return err
	}
	sgd, ok := oc.(*SGDConfig)
	if !ok {
		return fmt.Errorf("optim_wrapper.optimizer: %s is not supported; use SGD", w.Optimizer.Type)
	}
	if r.Opt, err = NewSGD(sgd, w, r.Scope); err != nil {
		return err
	}
	r.Sched, err = NewSchedule(registry.Default, cfg.ParamScheduler, sgd.LR, r.Loader.Len())
	return err
}

func (r *Runner) buildHooks(cfg *Config, extra []Hook) error {
	names := make([]string, 0, len(cfg.DefaultHooks))
	for n := range cfg.DefaultHooks {
		names = append(names, n)
	}
	sort.Strings(names)
	specs := make([]registry.Spec, 0, len(names)+len(cfg.CustomHooks))
	for _, n := range names {
		specs = append(specs, cfg.DefaultHooks[n])
	}
	specs = append(specs, cfg.CustomHooks...)
	for _, s := range specs {
		h, err := registry.Build[Hook](r.env, s)
		if err != nil {
			return err
		}
		r.hooks = append(r.hooks, h)
	}
	r.hooks = append(r.hooks, extra...)
	return nil
}

// compile prepares the train step (one graph: forward, loss, backward, optimizer and
// memory-bank update) and the feature extractor; GoMLX compiles them at their first call.
func (r *Runner) compile() {
	r.step = gctx.MustNewExec(r.Backend, r.Ctx, func(ctx *gctx.Context, images, idx, labels, lr *Node) *Node {
		return Step(ctx, r.Model, r.Opt, models.Batch{Images: images, Indices: idx, Labels: labels}, lr)
	})
	r.features = gctx.MustNewExec(r.Backend, r.Ctx, func(ctx *gctx.Context, images *Node) *Node {
		return r.Model.Features(images)
	})
}

// Step adds one training step to a graph: the loss of the batch, its gradient, the
// optimizer's update and the state updates of the model (batch-norm statistics, the memory
// bank). It returns the loss.
func Step(ctx *gctx.Context, model Algorithm, opt *SGD, b models.Batch, lr *Node) *Node {
	loss := model.Loss(ctx, b)
	opt.Update(loss, lr)
	return loss
}

// Close releases the backend's resources and flushes the log.
func (r *Runner) Close() {
	if r.step != nil {
		r.step.Finalize()
		r.features.Finalize()
	}
	if r.val != nil {
		r.val.exec.Finalize()
	}
	if r.closeLog != nil {
		r.closeLog()
	}
}

// call runs a hook method, turning panics into errors.
func call(f func() error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%v", p)
		}
	}()
	return f()
}

// Train runs the epochs left. A cancelled ctx stops it between iterations, without saving.
func (r *Runner) Train(ctx context.Context) error {
	err := r.eachHook(func(h Hook) error {
		if h, ok := h.(beforeTrain); ok {
			return h.BeforeTrain(r)
		}
		return nil
	})
	if err != nil {
		return err
	}
	start, startIter := time.Now(), r.Iter
	total := r.MaxEpochs * r.Loader.Len()
	for r.Epoch < r.MaxEpochs {
		err := r.trainEpoch(ctx, func(done int) time.Duration {
			return time.Duration(float64(time.Since(start)) / float64(done-startIter) * float64(total-done))
		})
		r.progress.clear()
		if err != nil {
			return err
		}
		r.Epoch++ // the hooks see the epoch as completed
		err = r.eachHook(func(h Hook) error {
			if h, ok := h.(afterTrainEpoch); ok {
				return h.AfterTrainEpoch(r)
			}
			return nil
		})
		if err != nil {
			return err
		}
		if r.val != nil && r.val.due(r.Epoch, r.MaxEpochs) {
			if err := r.val.run(ctx, r); err != nil {
				return err
			}
		}
	}
	err = r.eachHook(func(h Hook) error {
		if h, ok := h.(afterTrain); ok {
			return h.AfterTrain(r)
		}
		return nil
	})
	if err != nil {
		return err
	}
	return r.writeMetrics()
}

// trainEpoch runs the iterations of epoch r.Epoch; eta estimates the time left after a
// number of iterations done.
func (r *Runner) trainEpoch(ctx context.Context, eta func(done int) time.Duration) error {
	ipe := r.Loader.Len()
	i := 0
	t0 := time.Now()
	for b, err := range r.Loader.Epoch(ctx, r.Epoch) {
		if err != nil {
			return err
		}
		data := time.Since(t0)
		lr := r.Sched.LR(r.Epoch, i)
		loss, err := r.TrainStep(b, lr)
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
		info := IterInfo{Epoch: r.Epoch, Iter: i, ItersPerEpoch: ipe, Loss: loss, LR: lr, Time: time.Since(t0), Data: data}
		err = r.eachHook(func(h Hook) error {
			if h, ok := h.(afterTrainIter); ok {
				return h.AfterTrainIter(r, info)
			}
			return nil
		})
		if err != nil {
			return err
		}
		r.progress.update(fmt.Sprintf("epoch %d/%d", r.Epoch+1, r.MaxEpochs), i+1, ipe, eta(r.Iter), fmt.Sprintf("loss %.4f", loss))
		i++
		t0 = time.Now()
	}
	return ctx.Err()
}

// eachHook calls f on every hook, turning panics into errors, and stops at the first error.
func (r *Runner) eachHook(f func(h Hook) error) error {
	for _, h := range r.hooks {
		if err := call(func() error { return f(h) }); err != nil {
			return err
		}
	}
	return nil
}

// TrainStep runs one training step on a batch with learning rate lr and returns the loss.
func (r *Runner) TrainStep(b *datasets.Batch, lr float64) (loss float64, err error) {
	images := tensors.FromFlatDataAndDimensions(b.Images, b.Len(), b.Height, b.Width, 3)
	idx := tensors.FromFlatDataAndDimensions(b.Indices, b.Len())
	labels := tensors.FromFlatDataAndDimensions(b.Labels, b.Len())
	out, err := r.step.Exec(images, idx, labels, lr)
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
		Epoch: r.Epoch, Iter: r.Iter, Seed: r.Seed, Config: r.Tree.TOML(), Metrics: map[string]float64{},
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
	r.Log.Info("loaded weights", zap.String("checkpoint", path))
	return nil
}

// loadPretrained initialises the backbone from a checkpoint's backbone.* weights.
func (r *Runner) loadPretrained(path string) error {
	c, err := LoadCheckpoint(path)
	if err != nil {
		return fmt.Errorf("pretrained: %w", err)
	}
	var missing []string
	loaded := 0
	for name, v := range r.variables() {
		if !strings.HasPrefix(name, "backbone.") {
			continue
		}
		t, ok := c.Tensors[name]
		if !ok {
			missing = append(missing, name)
			continue
		}
		if !t.Shape().Equal(v.Shape()) {
			return fmt.Errorf("pretrained %s: %s is %s there but %s in the model", path, name, t.Shape(), v.Shape())
		}
		if err := v.SetValue(t); err != nil {
			return err
		}
		loaded++
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		return fmt.Errorf("pretrained %s lacks %d backbone variables of the model: %s", path, len(missing), joinShort(missing))
	}
	r.Log.Info("loaded the pretrained backbone", zap.String("checkpoint", path), zap.Int("tensors", loaded))
	return nil
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
	if err := r.restore(c, false); err != nil {
		return fmt.Errorf("resume from %s: %w", path, err)
	}
	r.Epoch, r.Iter, r.lastCkpt, r.resumed = c.Meta.Epoch, c.Meta.Iter, path, true
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

// Resumed reports whether the run continues from a checkpoint.
func (r *Runner) Resumed() bool { return r.resumed }

func (r *Runner) writeMetrics() error {
	if n := r.skipped.Load(); n > 0 {
		r.Metrics["skipped_images"] = float64(n)
	}
	data, err := json.MarshalIndent(r.Metrics, "", "  ")
	if err != nil {
		return err
	}
	path := filepath.Join(r.WorkDir, "metrics.json")
	if err := os.WriteFile(path, append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}
