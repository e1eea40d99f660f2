package cli

import (
	"io"
	"path/filepath"
	"strings"
)

const linearUsage = `usage: goselfsup linear CONFIG [CHECKPOINT] [flags]

Linear evaluation of self-supervised features: trains the classifier of CONFIG (an
ImageClassifier whose backbone is frozen, as configs/benchmarks/classification/imagenet/*)
with its backbone initialised from CHECKPOINT's backbone.* weights, reports the top-k
accuracy on val_dataloader after every val_interval epochs and writes the run to the
work_dir (checkpoints, and a folder for the run with config.toml, the logs and
metrics.json). Without CHECKPOINT (--random-init), the backbone keeps its random
initialisation: the baseline.

arguments:
  CONFIG      the linear-evaluation config
  CHECKPOINT  the self-supervised model (an epoch_N.ckpt of tools/train)

flags:
`

// Linear is the entry point of tools/linear.
func Linear(args []string, stdout, stderr io.Writer) int {
	f := newTrainFlags("linear", linearUsage, "override a key of CONFIG",
		"the output `folder` (default: work_dirs/linear/<config>/<checkpoint>)", stderr)
	backend := f.fs.String("backend", "", "the GoMLX backend (default: the config's): go, xla:cuda, xla:<PJRT plugin>")
	randomInit := f.fs.Bool("random-init", false, "train on a randomly initialised backbone (no CHECKPOINT): the baseline")
	pos, err := f.parse(args, stdout)
	if err != nil {
		return usageExit(err)
	}
	if len(pos) != 2 && !(len(pos) == 1 && *randomInit) || len(pos) == 2 && *randomInit {
		f.fs.Usage()
		return exitUsage
	}
	config := pos[0]
	opts := f.options(stderr)
	ck := "random-init"
	if len(pos) == 2 {
		opts.Pretrained = pos[1]
		ck = filepath.Base(filepath.Dir(pos[1])) + "_" + strings.TrimSuffix(filepath.Base(pos[1]), ".ckpt")
	}
	if opts.WorkDir == "" {
		opts.WorkDir = filepath.Join("work_dirs", "linear", configName(config), ck)
	}
	sets := f.overrides()
	if *backend != "" {
		sets = append(sets, "backend="+*backend)
	}
	return runTraining(config, sets, *f.plugins, opts, "", stdout, stderr)
}
