package cli

import (
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/goselfsup/goselfsup/engine"
)

const linearUsage = `usage: linear CONFIG CHECKPOINT [flags]

Linear evaluation of self-supervised features: trains the classifier of CONFIG (an
ImageClassifier whose backbone is frozen, as configs/benchmarks/classification/imagenet/*)
with its backbone initialised from CHECKPOINT's backbone.* weights, reports the top-k
accuracy on val_dataloader after every val_interval epochs and writes the run to the
work_dir (config.toml, log.jsonl, checkpoints, metrics.json). Without CHECKPOINT
(--random-init), the backbone keeps its random initialisation: the baseline.

arguments:
  CONFIG      the linear-evaluation config
  CHECKPOINT  the self-supervised model (an epoch_N.ckpt of tools/train)

flags:
`

// Linear is the entry point of tools/linear.
func Linear(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("linear", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var sets stringList
	fs.Var(&sets, "set", "override a key of CONFIG: `key.path=value` in TOML syntax; repeatable")
	workDir := fs.String("work-dir", "", "the output `folder` (default: work_dirs/linear/<config>/<checkpoint>)")
	backend := fs.String("backend", "", "the GoMLX backend (default: the config's): go, xla:cuda, xla:<PJRT plugin>")
	seed := fs.Int64("seed", 0, "the random seed (overrides randomness.seed)")
	resume := fs.String("resume", "", "resume from a checkpoint: `PATH`, or \"auto\" for the newest in the work_dir (--resume alone)")
	randomInit := fs.Bool("random-init", false, "train on a randomly initialised backbone (no CHECKPOINT): the baseline")
	fs.Usage = func() {
		fmt.Fprint(stderr, linearUsage)
		fs.PrintDefaults()
	}
	pos, err := parseArgs(fs, optionalValue(args, "resume", "auto"))
	if err != nil {
		return exitUsage
	}
	if len(pos) != 2 && !(len(pos) == 1 && *randomInit) || len(pos) == 2 && *randomInit {
		fs.Usage()
		return exitUsage
	}
	config := pos[0]
	opts := engine.Options{WorkDir: *workDir, Resume: *resume, Console: stderr}
	ck := "random-init"
	if len(pos) == 2 {
		opts.Pretrained = pos[1]
		ck = filepath.Base(filepath.Dir(pos[1])) + "_" + strings.TrimSuffix(filepath.Base(pos[1]), ".ckpt")
	}
	if opts.WorkDir == "" {
		opts.WorkDir = filepath.Join("work_dirs", "linear", configName(config), ck)
	}
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "seed" {
			opts.Seed = seed
		}
	})
	if *backend != "" {
		sets = append(sets, "backend="+*backend)
	}
	return runTraining(config, sets, opts, "", stdout, stderr)
}
