package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"sort"
	"strings"

	"github.com/goselfsup/goselfsup/engine"
)

// DemoConfig is the config that tools/train runs without one.
const DemoConfig = "goselfsup::demo/npid_shapes.toml"

const trainUsage = `usage: train [CONFIG] [flags]

Trains the model of CONFIG (without one: the demo, NPID on generated shapes on the CPU).
The work_dir receives the merged config (config.toml), the log (log.jsonl), checkpoints
(epoch_N.ckpt) and the final metrics (metrics.json).

flags:
`

// Train is the entry point of tools/train.
func Train(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("train", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var sets stringList
	fs.Var(&sets, "set", "override a key: `key.path=value` in TOML syntax; repeatable")
	workDir := fs.String("work-dir", "", "the run's folder (default: work_dir of the config, else work_dirs/<config name>)")
	seed := fs.Int64("seed", 0, "the random seed (overrides randomness.seed)")
	resume := fs.String("resume", "", "resume from a checkpoint: `PATH`, or \"auto\" for the newest in the work_dir (--resume alone)")
	fs.Usage = func() {
		fmt.Fprint(stderr, trainUsage)
		fs.PrintDefaults()
	}
	pos, err := parseArgs(fs, optionalValue(args, "resume", "auto"))
	if err != nil {
		return exitUsage
	}
	if len(pos) > 1 {
		fs.Usage()
		return exitUsage
	}
	config := DemoConfig
	if len(pos) == 1 {
		config = pos[0]
	}
	opts := engine.Options{WorkDir: *workDir, Resume: *resume, Console: stderr}
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "seed" {
			opts.Seed = seed
		}
	})
	return runTraining(config, sets, opts, "work_dirs", stdout, stderr)
}

// runTraining trains the model of a config; without opts.WorkDir, the run goes to the
// config's work_dir, else to workDirs/<config name>.
func runTraining(config string, sets []string, opts engine.Options, workDirs string, stdout, stderr io.Writer) int {
	tree, cfg, err := LoadConfig(config, sets)
	if err != nil {
		report(stderr, err)
		return exitFailed
	}
	if opts.WorkDir == "" {
		opts.WorkDir = cfg.WorkDir
	}
	if opts.WorkDir == "" {
		opts.WorkDir = filepath.Join(workDirs, configName(config))
	}
	ctx, stop := interruptible()
	defer stop()
	runner, err := engine.NewRunner(tree, cfg, opts)
	if err != nil {
		report(stderr, err)
		return exitFailed
	}
	defer runner.Close()
	if err := runner.Train(ctx); err != nil {
		if errors.Is(err, context.Canceled) {
			fmt.Fprintln(stderr, "interrupted; resume with --resume")
			return exitFailed
		}
		report(stderr, err)
		return exitFailed
	}
	printMetrics(stdout, runner.Metrics, opts.WorkDir)
	return exitOK
}

// optionalValue lets a flag be given without a value ("--resume" means "--resume=auto"),
// as Python's nargs="?" does, unless the next argument is the flag's value (a path that
// does not name a config).
func optionalValue(args []string, name, implied string) []string {
	out := make([]string, 0, len(args)+1)
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "-"+name || a == "--"+name {
			if i+1 < len(args) && !strings.HasPrefix(args[i+1], "-") && !strings.HasSuffix(args[i+1], ".toml") {
				out = append(out, a+"="+args[i+1])
				i++
				continue
			}
			out = append(out, a+"="+implied)
			continue
		}
		out = append(out, a)
	}
	return out
}

func printMetrics(w io.Writer, m map[string]float64, workDir string) {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	fmt.Fprintf(w, "work_dir: %s\n", workDir)
	for _, k := range keys {
		fmt.Fprintf(w, "%-32s %8.2f\n", k, m[k])
	}
}
