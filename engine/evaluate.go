package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	gctx "github.com/gomlx/gomlx/pkg/ml/context"
	"go.uber.org/zap"

	"github.com/goselfsup/goselfsup/datasets"
	"github.com/goselfsup/goselfsup/engine/backend"
	"github.com/goselfsup/goselfsup/evaluators"
	"github.com/goselfsup/goselfsup/models"
	"github.com/goselfsup/goselfsup/models/nn"
	"github.com/goselfsup/goselfsup/registry"
)

// Feature names that Extract knows, besides the pooled feat1..feat5 of a MultiPooling.
const (
	// FeatBackbone is the last backbone output, globally average-pooled (mmselfsup's
	// AvgPool2d extractor: 2048-d for ResNet-50).
	FeatBackbone = "backbone"
	// FeatNeck is the neck's L2-normalised embedding (128-d for NPID).
	FeatNeck = "neck"
)

// FeatureModel is what feature extraction needs of a model.
type FeatureModel interface {
	// BackboneOutputs returns the backbone's outputs (a ResNet's stem and four stages) for
	// uint8 images, in eval mode.
	BackboneOutputs(images *Node) []*Node
	// Embedding returns the L2-normalised embedding of the neck, in eval mode, from the
	// outputs of BackboneOutputs.
	Embedding(outs []*Node) *Node
}

// EvalOptions configure an Evaluation.
type EvalOptions struct {
	// Checkpoint holds the weights; empty means a random initialisation (the baseline).
	Checkpoint string
	// Backend overrides the model config's backend when not empty.
	Backend string
	// Seed seeds the random initialisation and the data pipeline (default 0).
	Seed int64
	// WorkDir receives the log (eval.jsonl).
	WorkDir string
	// Console receives the human log and the progress bar (os.Stderr if nil).
	Console io.Writer
}

// Evaluation is a model loaded for evaluation: built from a model config, with the weights
// of a checkpoint or a random initialisation, on a backend.
type Evaluation struct {
	Cfg        *Config // the model's config (a training config)
	Model      Algorithm
	Checkpoint *Checkpoint // nil for a random initialisation
	Log        *zap.Logger
	Backend    backends.Backend
	Ctx        *gctx.Context
	Seed       int64

	env      *registry.Env
	progress *progress
	closeLog func()
	execs    map[string]*gctx.Exec
}

// CheckpointConfig returns the config a checkpoint was trained with (its model, its
// training data), as its run saved it.
func CheckpointConfig(path string) (*registry.Tree, *Config, *Checkpoint, error) {
	c, err := LoadCheckpoint(path)
	if err != nil {
		return nil, nil, nil, err
	}
	if c.Meta.Config == "" {
		return nil, nil, nil, fmt.Errorf("%s holds no config; give the model's config", path)
	}
	name := path + "#config.toml"
	l := &registry.Loader{ReadFile: func(n string) ([]byte, error) {
		if n != filepath.Clean(name) {
			return nil, fmt.Errorf("%s: the config saved in a checkpoint cannot include other files (%s)", path, n)
		}
		return []byte(c.Meta.Config), nil
	}}
	tree, err := l.Load(name)
	if err != nil {
		return nil, nil, nil, err
	}
	cfg := new(Config)
	if err := tree.Decode(cfg); err != nil {
		return nil, nil, nil, fmt.Errorf("the config saved in %s: %w", path, err)
	}
	return tree, cfg, c, nil
}

// NewEvaluation builds the model of cfg and loads the weights of opts.Checkpoint (every
// model variable must be there), or initialises them randomly from opts.Seed.
func NewEvaluation(cfg *Config, opts EvalOptions) (_ *Evaluation, err error) {
	console := opts.Console
	if console == nil {
		console = os.Stderr
	}
	e := &Evaluation{Cfg: cfg, Seed: opts.Seed, progress: newProgress(console), execs: map[string]*gctx.Exec{}}
	logPath := os.DevNull
	if opts.WorkDir != "" {
		if err := os.MkdirAll(opts.WorkDir, 0o755); err != nil {
			return nil, err
		}
		logPath = filepath.Join(opts.WorkDir, "eval.jsonl")
	}
	if e.Log, e.closeLog, err = newLogger(e.progress, logPath, cfg.LogLevel); err != nil {
		return nil, err
	}
	e.progress.logf = func(line string) { e.Log.Info(strings.TrimSpace(line)) }
	e.progress.lastLog = time.Now()
	defer func() {
		if err != nil {
			e.Close()
		}
		// GoMLX reports graph-building errors as panics.
		if p := recover(); p != nil {
			e.Close()
			err = fmt.Errorf("building the model: %v", p)
		}
	}()
	bk := cfg.Backend
	if opts.Backend != "" {
		bk = opts.Backend
	}
	if e.Backend, err = backend.New(bk); err != nil {
		return nil, err
	}
	e.Ctx = gctx.New()
	scope := nn.NewScope(e.Ctx, uint64(e.Seed))
	if cfg.EnvCfg.DType == "float64" {
		scope = scope.WithDType(dtypes.Float64)
	}
	e.env = registry.With(&registry.Env{Registry: registry.Default}, scope)
	model := cfg.Model
	if cfg.TrainDataloader != nil {
		// A 0.x-style Normalize in the training pipeline became the model's normalisation.
		n, err := datasets.PipelineNormalization(e.env, cfg.TrainDataloader.Dataset)
		if err != nil {
			return nil, err
		}
		if model, err = withPipelineNormalization(model, n, cfg.TrainDataloader.Dataset.Path); err != nil {
			return nil, err
		}
	}
	if e.Model, err = registry.Build[Algorithm](e.env, model); err != nil {
		return nil, err
	}
	if err := e.Ctx.SetRNGStateFromSeed(e.Seed); err != nil {
		return nil, err
	}
	if opts.Checkpoint == "" {
		e.Log.Info("evaluating a random initialisation", zap.Int64("seed", e.Seed), zap.String("backend", e.Backend.Description()))
		return e, nil
	}
	if e.Checkpoint, err = LoadCheckpoint(opts.Checkpoint); err != nil {
		return nil, err
	}
	if err := restoreVariables(e.Ctx, e.Checkpoint, true); err != nil {
		return nil, fmt.Errorf("%s: %w", opts.Checkpoint, err)
	}
	e.Log.Info("loaded", zap.String("checkpoint", opts.Checkpoint), zap.Int("epoch", e.Checkpoint.Meta.Epoch),
		zap.String("backend", e.Backend.Description()))
	return e, nil
}

// Close releases the compiled programs and flushes the log.
func (e *Evaluation) Close() {
	for _, x := range e.execs {
		x.Finalize()
	}
	e.execs = nil
	if e.closeLog != nil {
		e.closeLog()
		e.closeLog = nil
	}
}

// Loader builds a dataloader for evaluation: its samples in order, every sample kept.
func (e *Evaluation) Loader(d *Dataloader) (*datasets.Loader, error) {
	l, err := newLoader(e.env, d, false, uint64(e.Seed), func(path string, err error) {
		e.Log.Warn("replaced an unreadable image (skip_corrupt)", zap.String("path", path), zap.Error(err))
	})
	if err != nil {
		return nil, err
	}
	l.Sampler, l.Shuffle = nil, false // the dataset order, whatever the config's sampler says
	return l, nil
}

// FeatureSet holds the features of a dataset's samples by name, with their labels.
type FeatureSet = evaluators.FeatureSet

// ReadFeatureSet reads the features names of split from dir, as FeatureSet.WriteNPY wrote
// them.
func ReadFeatureSet(dir, split string, names []string) (*FeatureSet, error) {
	return evaluators.ReadFeatureSet(dir, split, names)
}

// Extract computes the features named in names for every sample of l: FeatBackbone,
// FeatNeck, or feat1..feat5 pooled by pool (a MultiPooling over the backbone outputs of its
// in_indices; featN is the pooling of output N-1). what labels the progress bar.
func (e *Evaluation) Extract(ctx context.Context, l *datasets.Loader, names []string, pool *models.MultiPooling,
	what string) (*FeatureSet, error) {
	fm, ok := e.Model.(FeatureModel)
	if !ok {
		return nil, fmt.Errorf("%T has no backbone outputs and embedding to extract", e.Model)
	}
	// Each feature is computed from the backbone outputs, which the program computes once.
	fns := make([]func(outs []*Node) *Node, len(names))
	for i, name := range names {
		switch {
		case name == FeatBackbone:
			fns[i] = func(outs []*Node) *Node { return nn.GlobalAvgPool(outs[len(outs)-1]) }
		case name == FeatNeck:
			fns[i] = fm.Embedding
		default:
			var n int
			if _, err := fmt.Sscanf(name, "feat%d", &n); err != nil || fmt.Sprintf("feat%d", n) != name {
				return nil, fmt.Errorf("unknown feature %q: use %s, %s or feat1..feat5", name, FeatBackbone, FeatNeck)
			}
			if pool == nil {
				return nil, fmt.Errorf("feature %s needs a MultiPooling pool_cfg", name)
			}
			if slices.Index(pool.InIndices, n-1) < 0 {
				return nil, fmt.Errorf("feature %s is backbone output %d, not among pool_cfg.in_indices %v", name, n-1, pool.InIndices)
			}
			fns[i] = func(outs []*Node) *Node {
				if n-1 >= len(outs) {
					panic(fmt.Sprintf("feature %s: the backbone has %d outputs", name, len(outs)))
				}
				return models.FlattenNCHW(pool.Pool(outs[n-1], n-1))
			}
		}
	}
	exec, err := e.exec(names, fns)
	if err != nil {
		return nil, err
	}
	set := &FeatureSet{Features: map[string]evaluators.Features{}, Labels: make([]int, l.Dataset.Len())}
	if c := l.Dataset.Source.Classes(); c != nil {
		set.Classes = len(c)
	}
	err = extractLoop(ctx, l, e.progress, what, func(images *tensors.Tensor) ([]*tensors.Tensor, error) {
		return exec.Exec(images)
	}, func(b *datasets.Batch, outs [][]float32) {
		for k, name := range names {
			f := set.Features[name]
			dim := len(outs[k]) / b.Len()
			if f.Data == nil {
				f = evaluators.Features{N: l.Dataset.Len(), Dim: dim, Data: make([]float32, l.Dataset.Len()*dim)}
			}
			for i, idx := range b.Indices {
				copy(f.Row(int(idx)), outs[k][i*dim:(i+1)*dim])
			}
			set.Features[name] = f
		}
		for i, idx := range b.Indices {
			set.Labels[idx] = int(b.Labels[i])
		}
		if len(b.Targets) > 0 {
			c := len(b.Targets) / b.Len()
			if set.Targets == nil {
				set.Targets = make([]int8, l.Dataset.Len()*c)
				set.Classes = c
			}
			for i, idx := range b.Indices {
				copy(set.Targets[int(idx)*c:(int(idx)+1)*c], b.Targets[i*c:(i+1)*c])
			}
		}
	})
	if err != nil {
		return nil, err
	}
	return set, nil
}

// exec compiles (once per set of names) a program returning the named features of a
// batch, each computed by fns from the model's backbone outputs.
func (e *Evaluation) exec(names []string, fns []func(outs []*Node) *Node) (x *gctx.Exec, err error) {
	key := fmt.Sprint(names)
	if x := e.execs[key]; x != nil {
		return x, nil
	}
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("building the feature extractor: %v", p)
		}
	}()
	fm := e.Model.(FeatureModel)
	x = gctx.MustNewExec(e.Backend, e.Ctx, func(ctx *gctx.Context, images *Node) []*Node {
		backbone := fm.BackboneOutputs(images)
		feats := make([]*Node, len(fns))
		for i, f := range fns {
			feats[i] = f(backbone)
		}
		return feats
	})
	e.execs[key] = x
	return x, nil
}

// extractLoop runs run on every batch of l and hands its outputs, as float32, to sink, with
// a progress bar and its ETA.
func extractLoop(ctx context.Context, l *datasets.Loader, p *progress, what string,
	run func(images *tensors.Tensor) ([]*tensors.Tensor, error), sink func(b *datasets.Batch, outs [][]float32)) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%s: %v", what, r)
		}
	}()
	n := l.Dataset.Len()
	start := time.Now()
	done := 0
	for b, err := range l.Epoch(ctx, 0) {
		if err != nil {
			return err
		}
		images := tensors.FromFlatDataAndDimensions(b.Images, b.Len(), b.Height, b.Width, 3)
		outs, err := run(images)
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		flat := make([][]float32, len(outs))
		for i, o := range outs {
			if flat[i], err = float32s(o); err != nil {
				return err
			}
			o.FinalizeAll()
		}
		sink(b, flat)
		done += b.Len()
		eta := time.Duration(float64(time.Since(start)) / float64(done) * float64(n-done))
		p.update(what, done, n, eta, "")
	}
	p.clear()
	return ctx.Err()
}

// restoreVariables sets the context's variables from a checkpoint; with weightsOnly, only
// the model's (not the optimizer's or the random state).
func restoreVariables(ctx *gctx.Context, c *Checkpoint, weightsOnly bool) error {
	var missing []string
	for v := range ctx.IterVariables() {
		name := nn.TorchName(v)
		if weightsOnly && !isModelVariable(name) {
			continue
		}
		t, ok := c.Tensors[name]
		if !ok {
			missing = append(missing, name)
			continue
		}
		if !t.Shape().Equal(v.Shape()) {
			return fmt.Errorf("%s is %s in the checkpoint but %s in the model", name, t.Shape(), v.Shape())
		}
		if err := v.SetValue(t); err != nil {
			return err
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		return fmt.Errorf("the checkpoint lacks %d variables of the model: %s", len(missing), joinShort(missing))
	}
	return nil
}

// joinShort lists names, eliding the middle of a long list.
func joinShort(names []string) string {
	if len(names) > 8 {
		return fmt.Sprintf("%s, ... (%d more), %s", joinShort(names[:4]), len(names)-6, joinShort(names[len(names)-2:]))
	}
	s := ""
	for i, n := range names {
		if i > 0 {
			s += ", "
		}
		s += n
	}
	return s
}

// MemoryBank returns the checkpoint's memory bank ([length, feat_dim]), the train features
// of lemniscate.pytorch's kNN.
func (e *Evaluation) MemoryBank() (evaluators.Features, error) {
	if e.Checkpoint == nil {
		return evaluators.Features{}, errors.New("a random initialisation has no memory bank; give a checkpoint")
	}
	t, ok := e.Checkpoint.Tensors["memory_bank.feature_bank"]
	if !ok {
		return evaluators.Features{}, errors.New("the checkpoint has no memory bank (memory_bank.feature_bank)")
	}
	d := t.Shape().Dimensions
	if len(d) != 2 {
		return evaluators.Features{}, fmt.Errorf("memory_bank.feature_bank is %s, not a matrix", t.Shape())
	}
	data, err := float32s(t)
	if err != nil {
		return evaluators.Features{}, err
	}
	return evaluators.Features{N: d[0], Dim: d[1], Data: data}, nil
}
