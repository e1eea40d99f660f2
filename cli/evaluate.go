package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"

	"go.uber.org/zap"

	"github.com/goselfsup/goselfsup/engine"
	"github.com/goselfsup/goselfsup/models"
	"github.com/goselfsup/goselfsup/registry"
)

// The evaluation tools (extract, knn, svm) share their command line:
//
//	TOOL BENCHMARK_CONFIG [CHECKPOINT] [flags]
//
// BENCHMARK_CONFIG gives the data (train_dataloader: the labelled training set,
// val_dataloader: the test set), the pooling (pool_cfg) and the evaluator's parameters
// (val_evaluator); the model is the one CHECKPOINT was trained with (the config saved in it),
// or --model-config's; without CHECKPOINT the model is randomly initialised (the baseline).
const evalFlagsUsage = `arguments:
  BENCHMARK_CONFIG  the benchmark: data (train_dataloader, val_dataloader), pool_cfg and
                    val_evaluator, as configs/benchmarks/classification/*
  CHECKPOINT        the trained model (an epoch_N.ckpt of tools/train); without it, the model
                    of --model-config with random weights: the random-init baseline

flags:
`

// evalCommand is the parsed command line of an evaluation tool.
type evalCommand struct {
	name        string
	fs          *flag.FlagSet
	sets        stringList
	modelConfig *string
	workDir     *string
	backend     *string
	seed        *int64
	featuresDir *string
	features    *string
	plugins     *stringList // --plugin-dir

	benchPath, checkpoint string
	bench                 *engine.Config
	benchTree             *registry.Tree
	reg                   *registry.Registry // the components, the plugins' included
	log                   *zap.Logger        // the console, for the plugins' log lines
}

func newEvalCommand(name, usage string, stderr io.Writer) *evalCommand {
	c := &evalCommand{name: name, fs: flag.NewFlagSet(name, flag.ContinueOnError)}
	c.fs.SetOutput(stderr)
	setFlags(c.fs, &c.sets, "override a key of BENCHMARK_CONFIG: `key.path=value` in TOML syntax; repeatable")
	c.modelConfig = c.fs.String("model-config", "", "the model's `config` (default: the config saved in CHECKPOINT)")
	c.workDir = c.fs.String("work-dir", "", "the output `folder` (default: work_dirs/"+name+"/<benchmark>/<checkpoint>)")
	c.backend = c.fs.String("backend", "", "the GoMLX backend (default: the model config's): go, xla:cuda, xla:<PJRT plugin>")
	c.seed = c.fs.Int64("seed", 0, "the seed of the random initialisation and of sampling")
	c.plugins = addPluginFlags(c.fs)
	c.fs.Usage = func() {
		fmt.Fprint(c.fs.Output(), usage)
		fmt.Fprint(c.fs.Output(), evalFlagsUsage)
		c.fs.PrintDefaults()
	}
	return c
}

// withFeatureFlags adds --features and --features-dir (knn and svm read saved features).
func (c *evalCommand) withFeatureFlags(def, what string) {
	c.features = c.fs.String("features", def, "the `features` "+what+": backbone, neck, feat1..feat5 (comma-separated)")
	if c.name != "extract" {
		c.featuresDir = c.fs.String("features-dir", "", "read the features from this `folder` (tools/extract's output) instead of extracting them")
	}
}

// parse parses the command line and loads the benchmark config; !ok means that the
// command is done (-h, a wrong command line, a config that fails), with exit code rc.
func (c *evalCommand) parse(args []string, stdout, stderr io.Writer) (rc int, ok bool) {
	pos, err := parseArgs(c.fs, args, stdout)
	if err != nil {
		return usageExit(err), false
	}
	if len(pos) < 1 || len(pos) > 2 {
		c.fs.Usage()
		return exitUsage, false
	}
	c.benchPath = pos[0]
	if len(pos) == 2 {
		c.checkpoint = pos[1]
	}
	c.log = consoleLogger(stderr)
	if c.benchTree, c.bench, c.reg, err = loadConfig(c.benchPath, c.sets, *c.plugins, c.log); err != nil {
		report(stderr, err)
		return exitFailed, false
	}
	if *c.workDir == "" {
		ck := "random-init"
		if c.checkpoint != "" {
			ck = strings.TrimSuffix(filepath.Base(c.checkpoint), ".ckpt")
			ck = filepath.Base(filepath.Dir(c.checkpoint)) + "_" + ck
		}
		*c.workDir = filepath.Join("work_dirs", c.name, configName(c.benchPath), ck)
	}
	return exitOK, true
}

func configName(path string) string {
	return strings.TrimSuffix(filepath.Base(strings.TrimPrefix(path, registry.ShippedPrefix)), ".toml")
}

// featureNames returns --features as a list.
func (c *evalCommand) featureNames() []string {
	var out []string
	for _, f := range strings.Split(*c.features, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// open loads the model: from --model-config, else from the checkpoint's saved config.
func (c *evalCommand) open(stderr io.Writer) (*engine.Evaluation, error) {
	var model *engine.Config
	switch {
	case *c.modelConfig != "":
		_, cfg, err := LoadConfig(*c.modelConfig, nil)
		if err != nil {
			return nil, err
		}
		model = cfg
	case c.checkpoint != "":
		_, cfg, _, err := engine.CheckpointConfig(c.checkpoint)
		if err != nil {
			return nil, err
		}
		model = cfg
	default:
		return nil, errors.New("give a CHECKPOINT, or --model-config for the random-init baseline")
	}
	return engine.NewEvaluation(model, engine.EvalOptions{Checkpoint: c.checkpoint, Backend: *c.backend,
		Seed: *c.seed, WorkDir: *c.workDir, Console: stderr})
}

// pooling returns the benchmark's pool_cfg, or nil without one.
func (c *evalCommand) pooling() (models.FeaturePooling, error) {
	if c.bench.PoolCfg.IsZero() {
		return nil, nil
	}
	return registry.Build[models.FeaturePooling](&registry.Env{Registry: c.reg}, c.bench.PoolCfg)
}

// defaultFeatures are the features that the benchmark's pool_cfg implies: the backbone's
// pooled last output for AvgPool2d, feat<i+1> for each in_index of a MultiPooling.
func (c *evalCommand) defaultFeatures() ([]string, error) {
	pool, err := c.pooling()
	if err != nil || pool == nil {
		return []string{engine.FeatBackbone}, err
	}
	return pool.FeatureNames(), nil
}

// splits are the benchmark's datasets: "train" (the labelled training set) and "val".
func (c *evalCommand) splits() ([]string, []*engine.Dataloader, error) {
	if c.bench.TrainDataloader == nil || c.bench.ValDataloader == nil {
		return nil, nil, fmt.Errorf("%s needs a train_dataloader (the training set) and a val_dataloader (the test set)", c.benchPath)
	}
	return []string{"train", "val"}, []*engine.Dataloader{c.bench.TrainDataloader, c.bench.ValDataloader}, nil
}

// features returns the named features of both splits: read from --features-dir, or
// extracted with e.
func (c *evalCommand) featureSets(ctx context.Context, e *engine.Evaluation, names []string) (map[string]*engine.FeatureSet, error) {
	splits, loaders, err := c.splits()
	if err != nil {
		return nil, err
	}
	out := map[string]*engine.FeatureSet{}
	if c.featuresDir != nil && *c.featuresDir != "" {
		for _, s := range splits {
			if out[s], err = engine.ReadFeatureSet(*c.featuresDir, s, names); err != nil {
				return nil, err
			}
		}
		return out, nil
	}
	pooling, err := c.pooling()
	if err != nil {
		return nil, err
	}
	var pool *models.MultiPooling
	if pooling != nil {
		pool = pooling.Multi()
	}
	for i, s := range splits {
		l, err := e.Loader(loaders[i])
		if err != nil {
			return nil, fmt.Errorf("%s_dataloader: %w", s, err)
		}
		if out[s], err = e.Extract(ctx, l, names, pool, "extracting "+s); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// writeMetrics writes metrics.json in the work_dir and prints where.
func (c *evalCommand) writeMetrics(stdout io.Writer, metrics map[string]any) error {
	data, err := json.MarshalIndent(metrics, "", "  ")
	if err != nil {
		return err
	}
	path := filepath.Join(*c.workDir, "metrics.json")
	if err := os.MkdirAll(*c.workDir, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(path, append(data, '\n'), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "metrics: %s\n", path)
	return nil
}

// consoleLogger writes human log lines to w, as the engine's console log does.
func consoleLogger(w io.Writer) *zap.Logger { return engine.ConsoleLogger(w) }

// interruptible returns a context cancelled by Ctrl-C.
func interruptible() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt)
}

const extractUsage = `usage: goselfsup extract BENCHMARK_CONFIG [CHECKPOINT] [flags]

Extracts features of the benchmark's training and test sets (train_dataloader,
val_dataloader) and writes them as NumPy files in the work_dir's features/ folder:
train_<feature>.npy and val_<feature>.npy (float32 [samples, dimensions]),
train_labels.npy and val_labels.npy (int64), and for multi-label data (VOC)
train_targets.npy and val_targets.npy (int8 [samples, classes]: 1 present, 0 difficult
only, -1 absent). Features: backbone (the last stage, globally average-pooled: 2048-d for
ResNet-50), neck (the L2-normalised embedding: 128-d for NPID), feat1..feat5 (the stem and
the four stages pooled by pool_cfg's MultiPooling to about 9,000 values each).

`

// Extract is the entry point of tools/extract.
func Extract(args []string, stdout, stderr io.Writer) int {
	c := newEvalCommand("extract", extractUsage, stderr)
	c.withFeatureFlags("", "to extract (default: those of pool_cfg)")
	if rc, ok := c.parse(args, stdout, stderr); !ok {
		return rc
	}
	names := c.featureNames()
	if len(names) == 0 {
		var err error
		if names, err = c.defaultFeatures(); err != nil {
			report(stderr, err)
			return exitFailed
		}
	}
	e, err := c.open(stderr)
	if err != nil {
		report(stderr, err)
		return exitFailed
	}
	defer e.Close()
	ctx, stop := interruptible()
	defer stop()
	sets, err := c.featureSets(ctx, e, names)
	if err != nil {
		report(stderr, err)
		return exitFailed
	}
	dir := filepath.Join(*c.workDir, "features")
	for _, s := range []string{"train", "val"} {
		paths, err := sets[s].WriteNPY(dir, s)
		if err != nil {
			report(stderr, err)
			return exitFailed
		}
		for _, p := range paths {
			fmt.Fprintln(stdout, p)
		}
	}
	return exitOK
}
