package engine

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"

	"github.com/goselfsup/goselfsup/registry"
)

func init() {
	registry.Add(registry.Hooks, "CheckpointHook", "save checkpoints atomically and keep the newest",
		func() *CheckpointHookConfig {
			return &CheckpointHookConfig{Interval: 1, ByEpoch: true, SaveOptimizer: true, SaveLast: true, MaxKeepCkpts: -1}
		})
}

// CheckpointHookConfig is mmengine's CheckpointHook: a checkpoint every interval epochs (or
// iterations), keeping the newest max_keep_ckpts (all if -1).
type CheckpointHookConfig struct {
	Interval      int    `toml:"interval" doc:"save every interval epochs (or iterations with by_epoch = false)"`
	ByEpoch       bool   `toml:"by_epoch" doc:"count interval in epochs (else iterations)"`
	SaveOptimizer bool   `toml:"save_optimizer" doc:"save the optimizer's state, needed to resume"`
	SaveLast      bool   `toml:"save_last" doc:"save at the end of training whatever the interval"`
	MaxKeepCkpts  int    `toml:"max_keep_ckpts" doc:"keep the newest N checkpoints (-1: all)"`
	OutDir        string `toml:"out_dir" doc:"the folder of the checkpoints (default: the work_dir)"`
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

func (c *CheckpointHookConfig) Build(*registry.Env) (any, error) {
	h := &checkpointHook{CheckpointHookConfig: *c}
	hook := &Hook{Name: "CheckpointHook", Priority: PriorityVeryLow}
	if c.ByEpoch {
		hook.AfterTrainEpoch = h.afterTrainEpoch
	} else {
		hook.AfterTrainIter = h.afterTrainIter
	}
	return hook, nil
}

type checkpointHook struct{ CheckpointHookConfig }

// CheckRun refuses an interval that no checkpoint of the run would reach.
func (h *CheckpointHookConfig) CheckRun(l RunLength) error {
	limit, unit := l.Epochs, "epochs"
	if !h.ByEpoch {
		limit, unit = l.Iters, "iterations"
	}
	if limit > 0 && h.Interval > limit && !h.SaveLast {
		return fmt.Errorf("interval %d is longer than the run's %d %s and save_last is false: no checkpoint would be saved", h.Interval, limit, unit)
	}
	return nil
}

func (h *checkpointHook) afterTrainEpoch(r *Runner) error {
	if r.Epoch%h.Interval != 0 && !(h.SaveLast && r.Epoch == r.MaxEpochs) {
		return nil
	}
	return h.save(r, fmt.Sprintf("epoch_%d.ckpt", r.Epoch))
}

func (h *checkpointHook) afterTrainIter(r *Runner, _ IterInfo) error {
	if r.Iter%h.Interval != 0 && !(h.SaveLast && r.Iter == r.MaxIters) {
		return nil
	}
	return h.save(r, fmt.Sprintf("iter_%d.ckpt", r.Iter))
}

func (h *checkpointHook) save(r *Runner, name string) error {
	dir := h.OutDir
	if dir == "" {
		dir = r.WorkDir
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := r.SaveCheckpoint(filepath.Join(dir, name), h.SaveOptimizer); err != nil {
		return err
	}
	return h.prune(dir)
}

var ckptName = regexp.MustCompile(`^(epoch|iter)_(\d+)\.ckpt$`)

// prune removes the oldest checkpoints of the hook's kind beyond max_keep_ckpts.
func (h *checkpointHook) prune(dir string) error {
	if h.MaxKeepCkpts < 1 {
		return nil
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	kind := "epoch"
	if !h.ByEpoch {
		kind = "iter"
	}
	var ns []int
	for _, e := range entries {
		if m := ckptName.FindStringSubmatch(e.Name()); m != nil && m[1] == kind {
			n, _ := strconv.Atoi(m[2])
			ns = append(ns, n)
		}
	}
	sort.Ints(ns)
	for len(ns) > h.MaxKeepCkpts {
		if err := os.Remove(filepath.Join(dir, fmt.Sprintf("%s_%d.ckpt", kind, ns[0]))); err != nil {
			return err
		}
		ns = ns[1:]
	}
	return nil
}
