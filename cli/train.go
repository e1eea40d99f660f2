package cli

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/goselfsup/goselfsup/engine"
)

// DemoConfig is the config that tools/train runs without one.
const DemoConfig = "goselfsup::demo/npid_shapes.toml"

const trainUsage = `usage: goselfsup train [CONFIG] [flags]

Trains the model of CONFIG (without one: the demo, NPID on generated shapes on the CPU).
Each run writes a folder in the work_dir, work_dir/YYYYMMDD_HHMMSS, with the merged config
(config.toml), the log (YYYYMMDD_HHMMSS.log, log.jsonl, vis_data/scalars.json) and the
final metrics (metrics.json); checkpoints (epoch_N.ckpt or iter_N.ckpt) and
last_checkpoint stay in the work_dir, where --resume finds them.

flags:
`

// trainFlags are the flags of the tools that run training (train, linear).
type trainFlags struct {
	fs      *flag.FlagSet
	sets    stringList
	workDir *string
	seed    *int64
	resume  *string
	scaleLR *bool
	plugins *stringList // --plugin-dir
}

func newTrainFlags(name, usage, setDoc, workDirDoc string, stderr io.Writer) *trainFlags {
	f := &trainFlags{fs: flag.NewFlagSet(name, flag.ContinueOnError)}
	f.fs.SetOutput(stderr)
	setFlags(f.fs, &f.sets, setDoc+": `key.path=value` in TOML syntax; repeatable")
	f.workDir = f.fs.String("work-dir", "", workDirDoc)
	f.seed = f.fs.Int64("seed", 0, "the random seed (overrides randomness.seed)")
	f.resume = f.fs.String("resume", "", "resume from a checkpoint: `PATH`, or \"auto\" for the newest in the work_dir (--resume alone)")
	f.scaleLR = f.fs.Bool("auto-scale-lr", false, "scale the learning rate by the global batch (devices x batch_size) over auto_scale_lr.base_batch_size, as mmengine's linear scaling rule")
	f.plugins = addPluginFlags(f.fs)
	f.fs.Usage = func() {
		fmt.Fprint(f.fs.Output(), usage)
		f.fs.PrintDefaults()
	}
	return f
}

// parse parses the command line (--resume may come without a value) and returns the
// positional arguments; -h prints the usage to stdout.
func (f *trainFlags) parse(args []string, stdout io.Writer) ([]string, error) {
	return parseArgs(f.fs, optionalValue(args, "resume", "auto"), stdout)
}

// overrides are the --set overrides, with those that other flags imply.
func (f *trainFlags) overrides() []string {
	if !*f.scaleLR {
		return f.sets
	}
	return append(slices.Clip(f.sets), "auto_scale_lr.enable=true")
}

// options are the run's options that the flags set.
func (f *trainFlags) options(console io.Writer) engine.Options {
	opts := engine.Options{WorkDir: *f.workDir, Resume: *f.resume, Console: console}
	f.fs.Visit(func(fl *flag.Flag) {
		if fl.Name == "seed" {
			opts.Seed = f.seed
		}
	})
	return opts
}

// Train is the entry point of tools/train.
func Train(args []string, stdout, stderr io.Writer) int {
	f := newTrainFlags("train", trainUsage, "override a key",
		"the work_dir (default: work_dir of the config, else work_dirs/<config name>)", stderr)
	pretrained := f.fs.String("pretrained", "", "initialise the backbone from a checkpoint's backbone.* weights (`PATH`; a self-supervised run's for a downstream benchmark): every backbone variable must be there, the heads start from scratch")
	pos, err := f.parse(args, stdout)
	if err != nil {
		return usageExit(err)
	}
	if len(pos) > 1 {
		f.fs.Usage()
		return exitUsage
	}
	config := DemoConfig
	if len(pos) == 1 {
		config = pos[0]
	}
	opts := f.options(stderr)
	opts.Pretrained = *pretrained
	return runTraining(config, f.overrides(), *f.plugins, opts, "work_dirs", stdout, stderr)
}

// runTraining trains the model of a config; without opts.WorkDir, the run goes to the
// config's work_dir, else to workDirs/<config name>.
func runTraining(config string, sets, pluginDirs []string, opts engine.Options, workDirs string, stdout, stderr io.Writer) int {
	tree, cfg, _, err := loadConfig(config, sets, pluginDirs, nil)
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
	printMetrics(stdout, runner.Metrics, runner.RunDir)
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

// printMetrics prints a run's final metrics as one table: a row per metric in natural order
// (k10 before k100), the trained value and, where the run measured it, the random-init one
// beside it. Per-class metrics (named metric.class, such as IoU.person) stay in the run's
// metrics.json and log.
func printMetrics(w io.Writer, m map[string]float64, runDir string) {
	const random = "random_init_"
	var names []string
	for k := range m {
		if strings.Contains(k, ".") {
			continue
		}
		names = append(names, strings.TrimPrefix(k, random))
	}
	slices.SortFunc(names, naturalCompare)
	names = slices.Compact(names)
	fmt.Fprintf(w, "run: %s\n", runDir)
	if len(names) == 0 {
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "metric\ttrained\trandom init\t")
	for _, n := range names {
		trained, rnd := "-", "-"
		if v, ok := m[n]; ok {
			trained = fmt.Sprintf("%.2f", v)
		}
		if v, ok := m[random+n]; ok {
			rnd = fmt.Sprintf("%.2f", v)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t\n", n, trained, rnd)
	}
	tw.Flush()
}

// naturalCompare orders strings with their digit runs compared as numbers: knn_top1_k20
// before knn_top1_k100.
func naturalCompare(a, b string) int {
	for a != "" && b != "" {
		da, db := digitPrefix(a), digitPrefix(b)
		if da != "" && db != "" {
			na, _ := strconv.Atoi(da)
			nb, _ := strconv.Atoi(db)
			if na != nb {
				return cmp.Compare(na, nb)
			}
			a, b = a[len(da):], b[len(db):]
			continue
		}
		if a[0] != b[0] {
			return cmp.Compare(a[0], b[0])
		}
		a, b = a[1:], b[1:]
	}
	return cmp.Compare(len(a), len(b))
}

func digitPrefix(s string) string {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	return s[:i]
}
