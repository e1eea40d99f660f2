// Package engine runs training: the run config, optimizers, parameter schedules, loops and
// hooks, under mmengine's names.
package engine

import (
	"errors"
	"fmt"

	"github.com/goselfsup/goselfsup/registry"
)

// Config is a run's config: the top-level keys of a config file, named as in mmengine 1.x.
// Keys that mmengine or mmselfsup 0.x used and goselfsup does not are errors whose hint says
// what to write instead (see KeyHint).
type Config struct {
	Model registry.Spec `toml:"model" registry:"algorithms"`

	TrainDataloader *Dataloader   `toml:"train_dataloader"`
	ValDataloader   *Dataloader   `toml:"val_dataloader"`
	TestDataloader  *Dataloader   `toml:"test_dataloader"`
	ValEvaluator    registry.Spec `toml:"val_evaluator" registry:"evaluators"`
	TestEvaluator   registry.Spec `toml:"test_evaluator" registry:"evaluators"`

	TrainCfg registry.Spec `toml:"train_cfg" registry:"loops,default=EpochBasedTrainLoop"`
	ValCfg   registry.Spec `toml:"val_cfg" registry:"loops,default=ValLoop"`
	TestCfg  registry.Spec `toml:"test_cfg" registry:"loops,default=TestLoop"`

	OptimWrapper   registry.Spec   `toml:"optim_wrapper" registry:"optim_wrappers,default=OptimWrapper"`
	ParamScheduler []registry.Spec `toml:"param_scheduler" registry:"param_schedulers"`

	DefaultHooks map[string]registry.Spec `toml:"default_hooks" registry:"hooks"`
	CustomHooks  []registry.Spec          `toml:"custom_hooks" registry:"hooks"`

	// Benchmark is the downstream benchmark that tools/evaluate runs the config with, when
	// the config is a whole fine-tuning run (segmentation, detection) rather than features
	// to evaluate: an evaluators.Benchmark, such as the segmentation plugin's MMSegBenchmark,
	// which receives the config without this key. tools/train ignores it.
	// goselfsup's own key.
	Benchmark registry.Spec `toml:"benchmark" registry:"benchmarks"`

	// PoolCfg pools backbone features for extraction (kNN, SVM), as mmselfsup's Extractor.
	PoolCfg registry.Spec `toml:"pool_cfg" registry:"poolings"`

	EnvCfg       EnvConfig    `toml:"env_cfg"`
	AutoScaleLR  AutoScaleLR  `toml:"auto_scale_lr"`
	Randomness   Randomness   `toml:"randomness"`
	LogProcessor LogProcessor `toml:"log_processor"`
	LogLevel     string       `toml:"log_level"`
	LoadFrom     string       `toml:"load_from"`
	Resume       bool         `toml:"resume"`
	WorkDir      string       `toml:"work_dir"`

	// Backend picks the GoMLX backend: "go" (the CPU engine; "go:devices=N" with N virtual
	// devices), "xla" (XLA with its default plugin), "xla:cuda", "xla:<path to a PJRT
	// plugin>"; empty defers to GOMLX_BACKEND.
	// goselfsup's own key.
	Backend string `toml:"backend"`
}

// Dataloader is mmengine's dataloader table.
type Dataloader struct {
	BatchSize         int           `toml:"batch_size"`
	NumWorkers        int           `toml:"num_workers"`
	DropLast          bool          `toml:"drop_last"`
	PersistentWorkers bool          `toml:"persistent_workers"`
	PinMemory         bool          `toml:"pin_memory"`
	Sampler           registry.Spec `toml:"sampler" registry:"samplers,default=DefaultSampler"`
	CollateFn         registry.Spec `toml:"collate_fn" registry:"functions,default=default_collate"`
	Dataset           registry.Spec `toml:"dataset" registry:"datasets"`
}

func (d *Dataloader) Validate() error {
	var errs []error
	if d.BatchSize < 1 {
		errs = append(errs, registry.FieldErrorf("batch_size", "must be at least 1, got %d", d.BatchSize))
	}
	if d.NumWorkers < 0 {
		errs = append(errs, registry.FieldErrorf("num_workers", "must not be negative, got %d", d.NumWorkers))
	}
	if d.Dataset.IsZero() {
		errs = append(errs, registry.FieldErrorf("dataset", "is required"))
	}
	return errors.Join(errs...)
}

// EnvConfig describes where a run executes.
type EnvConfig struct {
	// NumDevices is the number of accelerators that a recipe shares a training step among,
	// each with its own batch of train_dataloader.batch_size: the "8x" of "8xb32".
	// goselfsup's own key (mmengine reads it from the launcher). 0 means every device the
	// backend has; a recipe that asks for more devices than the backend has runs on all it
	// has and says what that changes.
	NumDevices int `toml:"num_devices"`
	// DType is the floating-point type the model computes in: "float32", or "float64" for
	// checks that float32 rounding would blur. goselfsup's own key.
	DType string `toml:"dtype"`
}

func (e *EnvConfig) Validate() error {
	if e.NumDevices < 0 {
		return registry.FieldErrorf("num_devices", "must not be negative, got %d", e.NumDevices)
	}
	if e.DType != "" && e.DType != "float32" && e.DType != "float64" {
		return registry.FieldErrorf("dtype", `must be "float32" or "float64", got %q`, e.DType)
	}
	return nil
}

// KeyHint explains the env_cfg keys of mmengine that belong to PyTorch.
func (e *EnvConfig) KeyHint(key string) string {
	switch key {
	case "cudnn_benchmark":
		return "XLA chooses convolution algorithms itself; remove the key"
	case "mp_cfg":
		return "goselfsup's loader runs goroutines, not processes; set train_dataloader.num_workers"
	case "dist_cfg":
		return "XLA chooses the collectives; set env_cfg.num_devices"
	}
	return ""
}

// AutoScaleLR is mmengine's auto_scale_lr: with enable (tools/train's --auto-scale-lr), the
// optimizer's learning rate is multiplied by the run's global batch (devices times
// train_dataloader.batch_size) over base_batch_size, the global batch the recipe's learning
// rate was tuned for (mmengine's linear scaling rule, Runner.scale_lr).
type AutoScaleLR struct {
	Enable        bool `toml:"enable"`
	BaseBatchSize int  `toml:"base_batch_size"`
}

func (a *AutoScaleLR) Validate() error {
	if a.BaseBatchSize < 0 {
		return registry.FieldErrorf("base_batch_size", "must not be negative, got %d", a.BaseBatchSize)
	}
	if a.Enable && a.BaseBatchSize == 0 {
		return registry.FieldErrorf("base_batch_size", "is required with enable = true: the global batch size that the recipe's learning rate was tuned for")
	}
	return nil
}

// Randomness seeds a run, as mmengine's randomness table.
type Randomness struct {
	Seed          *int64 `toml:"seed"` // absent: a random seed, logged and saved with the run
	Deterministic bool   `toml:"deterministic"`
	DiffRankSeed  bool   `toml:"diff_rank_seed"`
}

// LogProcessor sets how logged values are smoothed, as mmengine's LogProcessor.
type LogProcessor struct {
	WindowSize int         `toml:"window_size"`
	ByEpoch    *bool       `toml:"by_epoch"`
	CustomCfg  []LogCustom `toml:"custom_cfg"`
}

// LogCustom is one entry of log_processor.custom_cfg.
type LogCustom struct {
	DataSrc    string     `toml:"data_src"`
	Method     string     `toml:"method"` // mean, min, max, current
	WindowSize WindowSize `toml:"window_size"`
	LogName    string     `toml:"log_name"`
}

func (c *LogCustom) Validate() error {
	switch c.Method {
	case "mean", "min", "max", "current":
		return nil
	}
	return registry.FieldErrorf("method", "must be mean, min, max or current, got %q", c.Method)
}

// WindowSize is a number of iterations, or "epoch" or "global".
type WindowSize struct {
	Iters int
	Named string
}

func (w *WindowSize) UnmarshalTOML(v any) error {
	switch x := v.(type) {
	case int64:
		if x < 1 {
			return fmt.Errorf("window_size must be at least 1, got %d", x)
		}
		w.Iters = int(x)
	case string:
		if x != "epoch" && x != "global" {
			return fmt.Errorf(`window_size must be a number of iterations, "epoch" or "global", got %q`, x)
		}
		w.Named = x
	default:
		return fmt.Errorf(`window_size must be a number of iterations, "epoch" or "global", got %v`, v)
	}
	return nil
}

// KeyHint points users who port an mmengine or mmselfsup 0.x config at the goselfsup key.
func (c *Config) KeyHint(key string) string {
	return portingHints[key]
}

var portingHints = map[string]string{
	"default_scope":     "goselfsup has one registry without scopes; remove the key",
	"custom_imports":    "Go registers components when their package is imported: import yours in a main that calls cli.Main (see \"New components in Go\" in README.md)",
	"visualizer":        "each run writes its scalars to log.jsonl and vis_data/scalars.json in its folder; remove the key",
	"vis_backends":      "each run writes its scalars to log.jsonl and vis_data/scalars.json in its folder; remove the key",
	"optimizer":         "put the optimizer in optim_wrapper.optimizer (a top-level optimizer is how mmselfsup's places205 config lost its settings)",
	"optimizer_config":  "0.x key: put gradient clipping in optim_wrapper.clip_grad",
	"lr_config":         "0.x key: write the schedule as param_scheduler",
	"runner":            "0.x key: set train_cfg.max_epochs",
	"total_epochs":      "0.x key: set train_cfg.max_epochs",
	"checkpoint_config": "0.x key: set default_hooks.checkpoint",
	"log_config":        "0.x key: set default_hooks.logger",
	"evaluation":        "0.x key: set val_evaluator and train_cfg.val_interval",
	"workflow":          "0.x key: remove it; train_cfg drives the loop",
	"data":              "0.x key: use train_dataloader, val_dataloader and test_dataloader",
	"cudnn_benchmark":   "XLA chooses convolution algorithms itself; remove the key",
	"dist_params":       "XLA chooses the collectives; set env_cfg.num_devices",
	"train_pipeline":    "TOML has no variables: write the pipeline in train_dataloader.dataset.pipeline",
	"test_pipeline":     "TOML has no variables: write the pipeline in the dataloader's dataset.pipeline",
	"dataset_type":      "TOML has no variables: write the type in the dataloader's dataset table",
	"data_root":         "TOML has no variables: write data_root in the dataloader's dataset table",
}
