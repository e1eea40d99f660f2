package engine

import (
	"errors"
	"math"

	"github.com/goselfsup/goselfsup/registry"
)

// The configs of the engine's components, with mmengine's keys and defaults.

// SGDConfig is PyTorch's SGD: momentum, dampening, Nesterov and L2 weight decay.
type SGDConfig struct {
	LR          float64 `toml:"lr"`
	Momentum    float64 `toml:"momentum"`
	Dampening   float64 `toml:"dampening"`
	WeightDecay float64 `toml:"weight_decay"`
	Nesterov    bool    `toml:"nesterov"`
}

func (c *SGDConfig) Validate() error {
	var errs []error
	if c.LR <= 0 {
		errs = append(errs, registry.FieldErrorf("lr", "must be positive, got %g", c.LR))
	}
	if c.Momentum < 0 {
		errs = append(errs, registry.FieldErrorf("momentum", "must not be negative, got %g", c.Momentum))
	}
	if c.WeightDecay < 0 {
		errs = append(errs, registry.FieldErrorf("weight_decay", "must not be negative, got %g", c.WeightDecay))
	}
	if c.Nesterov && (c.Momentum <= 0 || c.Dampening != 0) {
		errs = append(errs, registry.FieldErrorf("nesterov", "needs momentum > 0 and dampening = 0, as in PyTorch"))
	}
	return errors.Join(errs...)
}

// OptimWrapperConfig is mmengine's OptimWrapper: an optimizer plus per-parameter multipliers.
type OptimWrapperConfig struct {
	Optimizer          registry.Spec `toml:"optimizer" registry:"optimizers"`
	ParamwiseCfg       ParamwiseCfg  `toml:"paramwise_cfg"`
	ClipGrad           *ClipGrad     `toml:"clip_grad"`
	AccumulativeCounts int           `toml:"accumulative_counts"`
}

func (c *OptimWrapperConfig) Validate() error {
	var errs []error
	if c.Optimizer.IsZero() {
		errs = append(errs, registry.FieldErrorf("optimizer", "is required"))
	}
	if c.AccumulativeCounts < 1 {
		errs = append(errs, registry.FieldErrorf("accumulative_counts", "must be at least 1, got %d", c.AccumulativeCounts))
	}
	return errors.Join(errs...)
}

// ParamwiseCfg scales the weight decay of some parameters, as mmengine's
// DefaultOptimWrapperConstructor. Absent multipliers are 1.
type ParamwiseCfg struct {
	NormDecayMult *float64 `toml:"norm_decay_mult"`
	BiasDecayMult *float64 `toml:"bias_decay_mult"`
}

// ClipGrad clips the global gradient norm.
type ClipGrad struct {
	MaxNorm  float64 `toml:"max_norm"`
	NormType float64 `toml:"norm_type"`
}

func (c *ClipGrad) Validate() error {
	if c.MaxNorm <= 0 {
		return registry.FieldErrorf("max_norm", "must be positive, got %g", c.MaxNorm)
	}
	return nil
}

// schedulerWindow holds the keys every mmengine parameter scheduler shares.
type schedulerWindow struct {
	ByEpoch            bool `toml:"by_epoch"`
	Begin              int  `toml:"begin"`
	End                int  `toml:"end"` // exclusive; the default runs to the end of training
	ConvertToIterBased bool `toml:"convert_to_iter_based"`
}

func defaultWindow() schedulerWindow { return schedulerWindow{ByEpoch: true, End: math.MaxInt32} }

func (w schedulerWindow) validate() error {
	if w.Begin < 0 || w.End <= w.Begin {
		return registry.FieldErrorf("end", "the window [begin, end) = [%d, %d) is empty", w.Begin, w.End)
	}
	if w.ConvertToIterBased && !w.ByEpoch {
		return registry.FieldErrorf("convert_to_iter_based", "needs by_epoch = true")
	}
	return nil
}

// MultiStepLRConfig multiplies the learning rate by gamma at each milestone.
type MultiStepLRConfig struct {
	schedulerWindow
	Milestones []int   `toml:"milestones"`
	Gamma      float64 `toml:"gamma"`
}

func (c *MultiStepLRConfig) Validate() error {
	var errs []error
	if len(c.Milestones) == 0 {
		errs = append(errs, registry.FieldErrorf("milestones", "must list at least one milestone"))
	}
	for i := 1; i < len(c.Milestones); i++ {
		if c.Milestones[i] <= c.Milestones[i-1] {
			errs = append(errs, registry.FieldErrorf("milestones", "must increase, got %v", c.Milestones))
			break
		}
	}
	if c.Gamma <= 0 {
		errs = append(errs, registry.FieldErrorf("gamma", "must be positive, got %g", c.Gamma))
	}
	return errors.Join(append(errs, c.validate())...)
}

// StepLRConfig multiplies the learning rate by gamma every step_size epochs (or iterations).
type StepLRConfig struct {
	schedulerWindow
	StepSize int     `toml:"step_size"`
	Gamma    float64 `toml:"gamma"`
}

func (c *StepLRConfig) Validate() error {
	var errs []error
	if c.StepSize < 1 {
		errs = append(errs, registry.FieldErrorf("step_size", "must be at least 1, got %d", c.StepSize))
	}
	if c.Gamma <= 0 {
		errs = append(errs, registry.FieldErrorf("gamma", "must be positive, got %g", c.Gamma))
	}
	return errors.Join(append(errs, c.validate())...)
}

// CosineAnnealingLRConfig anneals the learning rate to eta_min over T_max epochs.
type CosineAnnealingLRConfig struct {
	schedulerWindow
	TMax        int      `toml:"T_max"`
	EtaMin      float64  `toml:"eta_min"`
	EtaMinRatio *float64 `toml:"eta_min_ratio"`
}

func (c *CosineAnnealingLRConfig) Validate() error {
	var errs []error
	if c.TMax < 1 && c.End == math.MaxInt32 {
		errs = append(errs, registry.FieldErrorf("T_max", "must be at least 1 (or set end), got %d", c.TMax))
	}
	if c.EtaMinRatio != nil && c.EtaMin != 0 {
		errs = append(errs, registry.FieldErrorf("eta_min_ratio", "set eta_min or eta_min_ratio, not both"))
	}
	return errors.Join(append(errs, c.validate())...)
}

// LinearLRConfig scales the learning rate linearly from start_factor to end_factor (warm-up).
type LinearLRConfig struct {
	schedulerWindow
	StartFactor float64 `toml:"start_factor"`
	EndFactor   float64 `toml:"end_factor"`
}

func (c *LinearLRConfig) Validate() error {
	var errs []error
	if c.StartFactor <= 0 || c.StartFactor > 1 {
		errs = append(errs, registry.FieldErrorf("start_factor", "must be in (0, 1], got %g", c.StartFactor))
	}
	if c.EndFactor < 0 || c.EndFactor > 1 {
		errs = append(errs, registry.FieldErrorf("end_factor", "must be in [0, 1], got %g", c.EndFactor))
	}
	if c.End == math.MaxInt32 {
		errs = append(errs, registry.FieldErrorf("end", "is required: the warm-up lasts from begin to end"))
	}
	return errors.Join(append(errs, c.validate())...)
}

// EpochBasedTrainLoopConfig trains for max_epochs epochs, validating every val_interval.
type EpochBasedTrainLoopConfig struct {
	MaxEpochs   int `toml:"max_epochs"`
	ValBegin    int `toml:"val_begin"`
	ValInterval int `toml:"val_interval"`
}

func (c *EpochBasedTrainLoopConfig) Validate() error {
	if c.MaxEpochs < 1 {
		return registry.FieldErrorf("max_epochs", "must be at least 1, got %d", c.MaxEpochs)
	}
	if c.ValInterval < 1 {
		return registry.FieldErrorf("val_interval", "must be at least 1, got %d", c.ValInterval)
	}
	return nil
}

// EvalLoopConfig is mmengine's ValLoop and TestLoop, which take no keys.
type EvalLoopConfig struct{}

// LoggerHookConfig logs every interval iterations.
type LoggerHookConfig struct {
	Interval   int  `toml:"interval"`
	IgnoreLast bool `toml:"ignore_last"`
}

func (c *LoggerHookConfig) Validate() error {
	if c.Interval < 1 {
		return registry.FieldErrorf("interval", "must be at least 1, got %d", c.Interval)
	}
	return nil
}

// CheckpointHookConfig saves a checkpoint every interval epochs (or iterations) and keeps
// the newest max_keep_ckpts (all if -1).
type CheckpointHookConfig struct {
	Interval      int    `toml:"interval"`
	ByEpoch       bool   `toml:"by_epoch"`
	SaveOptimizer bool   `toml:"save_optimizer"`
	SaveLast      bool   `toml:"save_last"`
	MaxKeepCkpts  int    `toml:"max_keep_ckpts"`
	OutDir        string `toml:"out_dir"`
}

func (c *CheckpointHookConfig) Validate() error {
	var errs []error
	if c.Interval < 1 {
		errs = append(errs, registry.FieldErrorf("interval", "must be at least 1, got %d", c.Interval))
	}
	if c.MaxKeepCkpts == 0 || c.MaxKeepCkpts < -1 {
		errs = append(errs, registry.FieldErrorf("max_keep_ckpts", "must be -1 (keep all) or at least 1, got %d", c.MaxKeepCkpts))
	}
	return errors.Join(errs...)
}

// NoKeys is the config of components that take no keys.
type NoKeys struct{}

// DefaultSamplerConfig visits a dataset once per epoch, shuffled with a per-epoch seed.
type DefaultSamplerConfig struct {
	Shuffle bool   `toml:"shuffle"`
	Seed    *int64 `toml:"seed"`
	RoundUp bool   `toml:"round_up"`
}

func init() {
	reg := func(ns, typ, doc string, newCfg func() any) {
		registry.Register(registry.Component{Namespace: ns, Type: typ, Doc: doc, New: newCfg})
	}
	reg(registry.Optimizers, "SGD", "stochastic gradient descent with momentum, Nesterov and weight decay (PyTorch semantics)",
		func() any { return &SGDConfig{} })
	reg(registry.OptimWrappers, "OptimWrapper", "an optimizer with per-parameter decay multipliers and gradient clipping",
		func() any { return &OptimWrapperConfig{AccumulativeCounts: 1} })
	reg(registry.ParamSchedulers, "MultiStepLR", "multiply the learning rate by gamma at each milestone",
		func() any { return &MultiStepLRConfig{schedulerWindow: defaultWindow(), Gamma: 0.1} })
	reg(registry.ParamSchedulers, "StepLR", "multiply the learning rate by gamma every step_size",
		func() any { return &StepLRConfig{schedulerWindow: defaultWindow(), Gamma: 0.1} })
	reg(registry.ParamSchedulers, "CosineAnnealingLR", "cosine annealing of the learning rate",
		func() any { return &CosineAnnealingLRConfig{schedulerWindow: defaultWindow()} })
	reg(registry.ParamSchedulers, "LinearLR", "linear scaling of the learning rate, for warm-up",
		func() any {
			return &LinearLRConfig{schedulerWindow: defaultWindow(), StartFactor: 1.0 / 3, EndFactor: 1}
		})
	reg(registry.Loops, "EpochBasedTrainLoop", "train for max_epochs epochs",
		func() any { return &EpochBasedTrainLoopConfig{ValBegin: 1, ValInterval: 1} })
	reg(registry.Loops, "ValLoop", "run the validation dataloader through the val_evaluator",
		func() any { return &EvalLoopConfig{} })
	reg(registry.Loops, "TestLoop", "run the test dataloader through the test_evaluator",
		func() any { return &EvalLoopConfig{} })
	reg(registry.Hooks, "RuntimeInfoHook", "record epoch, iteration and learning rate for the other hooks",
		func() any { return &NoKeys{} })
	reg(registry.Hooks, "IterTimerHook", "time each iteration and its data loading",
		func() any { return &NoKeys{} })
	reg(registry.Hooks, "LoggerHook", "log loss, learning rate, timings and ETA every interval iterations",
		func() any { return &LoggerHookConfig{Interval: 10, IgnoreLast: true} })
	reg(registry.Hooks, "ParamSchedulerHook", "step the parameter schedulers",
		func() any { return &NoKeys{} })
	reg(registry.Hooks, "CheckpointHook", "save checkpoints atomically and keep the newest",
		func() any {
			return &CheckpointHookConfig{Interval: 1, ByEpoch: true, SaveOptimizer: true, SaveLast: true, MaxKeepCkpts: -1}
		})
	reg(registry.Hooks, "DistSamplerSeedHook", "give the sampler each epoch's seed",
		func() any { return &NoKeys{} })
	reg(registry.Hooks, "KNNHook", "weighted kNN of the features before and after training (goselfsup's own)",
		func() any { return &KNNHookConfig{NumKNN: []int{10, 20, 100, 200}, Temperature: 0.07} })
	reg(registry.Samplers, "DefaultSampler", "each sample once per epoch, shuffled with a seed per epoch",
		func() any { return &DefaultSamplerConfig{Shuffle: true, RoundUp: true} })
	reg(registry.Functions, "default_collate", "stack samples into batches",
		func() any { return &NoKeys{} })
	reg(registry.Functions, "pseudo_collate", "keep samples as a list",
		func() any { return &NoKeys{} })
}
