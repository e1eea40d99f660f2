// Package finetune runs a downstream benchmark that is a whole training run of goselfsup's
// engine, for the first-party benchmark plugins (segbench's MMSegBenchmark, detbench's
// MMDetBenchmark): Run trains the merged config it is given from the checkpoint's
// backbone (and whatever else the model takes from a pretrained checkpoint), validates
// with the config's val_evaluator, and streams its log lines, progress, metrics and files
// to goselfsup; `evaluate --resume` continues an interrupted run from its last checkpoint
// in the work_dir.
package finetune

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"

	"go.uber.org/zap"

	"github.com/goselfsup/goselfsup/engine"
	"github.com/goselfsup/goselfsup/plugins/protocol"
	"github.com/goselfsup/goselfsup/plugins/sdk"
	"github.com/goselfsup/goselfsup/registry"

	// The components that the benchmarks' configs name.
	_ "github.com/goselfsup/goselfsup/datasets"
	_ "github.com/goselfsup/goselfsup/evaluators"
	_ "github.com/goselfsup/goselfsup/heads"
	_ "github.com/goselfsup/goselfsup/losses"
	_ "github.com/goselfsup/goselfsup/models"
	_ "github.com/goselfsup/goselfsup/models/det"
)

// Plugin describes a first-party benchmark plugin: one component of the benchmarks
// namespace, of type typ, that Run runs.
func Plugin(name, version, typ, doc string) sdk.Plugin {
	return sdk.Plugin{Name: name, Version: version, Components: []sdk.Component{{
		Type: typ, Namespace: protocol.NamespaceBenchmarks, Doc: doc, Run: Run,
	}}}
}

// Run runs the benchmark of r.Inputs["config"] from r.Checkpoint in r.WorkDir.
func Run(ctx context.Context, r *sdk.Run) error {
	path := r.Inputs[protocol.InputConfig]
	if path == "" {
		return fmt.Errorf("%s needs the input %q, the benchmark's merged config", r.Component, protocol.InputConfig)
	}
	if r.WorkDir == "" {
		return fmt.Errorf("%s needs a work_dir", r.Component)
	}
	// The config's data_root paths are relative to the host's working directory. The
	// plugin process runs one benchmark, so it may move there.
	if base := r.Inputs[protocol.InputBaseDir]; base != "" {
		if err := os.Chdir(base); err != nil {
			return fmt.Errorf("%s: base_dir: %w", r.Component, err)
		}
	}
	tree, err := (&registry.Loader{}).Load(path)
	if err != nil {
		return err
	}
	cfg := new(engine.Config)
	if err := registry.Default.DecodeTree(tree, cfg); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if cfg.ValEvaluator.IsZero() || cfg.ValDataloader == nil {
		return fmt.Errorf("%s: a benchmark needs a val_dataloader and a val_evaluator", path)
	}
	progress := &engine.Hook{Name: "PluginProgress", Priority: engine.PriorityVeryLow,
		AfterTrainIter: func(run *engine.Runner, it engine.IterInfo) error {
			return r.Progress("train", run.Iter, run.MaxIters)
		},
		AfterVal: func(run *engine.Runner, metrics map[string]float64) error {
			var summary []string
			for _, k := range slices.Sorted(maps.Keys(metrics)) {
				if !strings.Contains(k, ".") { // the per-class values are in the run's table
					summary = append(summary, fmt.Sprintf("%s %.4g", k, metrics[k]))
				}
			}
			r.Log.Info(fmt.Sprintf("validation at iteration %d of %d: %s", run.Iter, run.MaxIters, strings.Join(summary, ", ")))
			return nil
		}}
	console := &lineLogger{log: r.Log}
	defer console.flush()
	runner, err := engine.NewRunner(tree, cfg, engine.Options{WorkDir: r.WorkDir, Resume: r.Inputs[protocol.InputResume],
		Pretrained: r.Checkpoint, Console: console, Hooks: []*engine.Hook{progress}})
	if err != nil {
		return err
	}
	defer runner.Close()
	if err := runner.Train(ctx); err != nil {
		return err
	}
	for _, k := range slices.Sorted(maps.Keys(runner.Metrics)) {
		if err := r.Metric(k, runner.Metrics[k]); err != nil {
			return err
		}
	}
	return reportArtifacts(r, runner)
}

// reportArtifacts reports the run's metrics.json, log, last checkpoint and last overlays.
func reportArtifacts(r *sdk.Run, run *engine.Runner) error {
	files := map[string]string{
		"metrics": filepath.Join(run.RunDir, "metrics.json"),
		"log":     filepath.Join(run.RunDir, filepath.Base(run.RunDir)+".log"),
		"config":  filepath.Join(run.RunDir, "config.toml"),
		"scalars": filepath.Join(run.RunDir, "vis_data", "scalars.json"),
	}
	if ckpt, err := engine.LatestCheckpoint(run.WorkDir); err == nil {
		files["checkpoint"] = ckpt
	}
	stages, _ := filepath.Glob(filepath.Join(run.RunDir, "vis_data", "seg", "*"))
	if last := lastStage(stages); last != "" {
		pngs, _ := filepath.Glob(filepath.Join(last, "*.png"))
		for _, p := range pngs {
			files["overlay "+filepath.Base(p)] = p
		}
	}
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(files)) {
		p := files[name]
		if _, err := os.Stat(p); err != nil {
			continue
		}
		errs = append(errs, r.Artifact(name, p))
	}
	return errors.Join(errs...)
}

// lastStage returns the folder of the last validation among vis_data/seg/iter_N (or
// epoch_N) folders: the largest N.
func lastStage(dirs []string) string {
	best, bestN := "", -1
	for _, d := range dirs {
		base := filepath.Base(d)
		_, num, _ := strings.Cut(base, "_")
		n := 0
		if _, err := fmt.Sscan(num, &n); err != nil {
			continue
		}
		if n > bestN {
			best, bestN = d, n
		}
	}
	return best
}

// lineLogger turns the runner's console lines into log lines, which the plugin SDK sends to
// goselfsup.
type lineLogger struct {
	mu      sync.Mutex
	log     *zap.Logger
	partial string
}

var _ io.Writer = (*lineLogger)(nil)

func (l *lineLogger) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	text := l.partial + string(p)
	lines := strings.FieldsFunc(text, func(r rune) bool { return r == '\n' || r == '\r' })
	l.partial = ""
	if !strings.HasSuffix(text, "\n") && !strings.HasSuffix(text, "\r") && len(lines) > 0 {
		l.partial = lines[len(lines)-1]
		lines = lines[:len(lines)-1]
	}
	for _, line := range lines {
		l.logLine(line)
	}
	return len(p), nil
}

// consoleLine is a line of the runner's console: time, logger, level, message. goselfsup's
// log adds its own time and names the plugin.
var consoleLine = regexp.MustCompile(`^\d\d/\d\d \d\d:\d\d:\d\d - \S+ - ([A-Z]+) - (.*)$`)

// logLine logs a console line with its level, without the console's prefix; other lines
// (the rows of the per-class table) as they are.
func (l *lineLogger) logLine(line string) {
	line = strings.TrimRight(line, " ")
	if strings.TrimSpace(line) == "" {
		return
	}
	m := consoleLine.FindStringSubmatch(line)
	if m == nil {
		l.log.Info(line)
		return
	}
	switch m[1] {
	case "DEBUG":
		l.log.Debug(m[2])
	case "WARNING", "WARN":
		l.log.Warn(m[2])
	case "ERROR", "DPANIC", "PANIC", "FATAL":
		l.log.Error(m[2])
	default:
		l.log.Info(m[2])
	}
}

func (l *lineLogger) flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.logLine(l.partial)
	l.partial = ""
}
