package engine

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"time"

	"go.uber.org/zap"

	"github.com/goselfsup/goselfsup/engine/backend"
	"github.com/goselfsup/goselfsup/evaluators"
	"github.com/goselfsup/goselfsup/registry"
)

// noopHook stands for the mmengine hooks whose work the runner does itself
// (RuntimeInfoHook, IterTimerHook, ParamSchedulerHook, DistSamplerSeedHook).
type noopHook struct{}

func (*NoKeys) Build(*registry.Env) (any, error) { return noopHook{}, nil }

// loggerHook logs the smoothed loss, learning rate, timings and ETA every interval
// iterations.
type loggerHook struct {
	interval   int
	ignoreLast bool
	window     []IterInfo
	size       int
}

func (c *LoggerHookConfig) Build(*registry.Env) (any, error) {
	return &loggerHook{interval: c.Interval, ignoreLast: c.IgnoreLast}, nil
}

func (h *loggerHook) AfterTrainIter(r *Runner, it IterInfo) error {
	if h.size == 0 {
		h.size = max(r.Cfg.LogProcessor.WindowSize, 1)
	}
	h.window = append(h.window, it)
	if len(h.window) > h.size {
		h.window = h.window[1:]
	}
	last := it.Iter == it.ItersPerEpoch-1
	if (it.Iter+1)%h.interval != 0 && !(last && !h.ignoreLast) {
		return nil
	}
	var loss, secs, data float64
	for _, w := range h.window {
		loss += w.Loss
		secs += w.Time.Seconds()
		data += w.Data.Seconds()
	}
	n := float64(len(h.window))
	remaining := r.MaxEpochs*it.ItersPerEpoch - r.Iter
	eta := time.Duration(secs / n * float64(remaining) * float64(time.Second))
	r.Log.Info(fmt.Sprintf("Epoch(train) [%d][%d/%d]", it.Epoch+1, it.Iter+1, it.ItersPerEpoch),
		zap.Int("epoch", it.Epoch+1), zap.Int("iter", r.Iter), zap.Float64("lr", it.LR),
		zap.Float64("loss", loss/n), zap.Float64("time", secs/n), zap.Float64("data_time", data/n),
		zap.String("eta", formatDuration(eta)))
	return nil
}

// checkpointHook saves a checkpoint every interval epochs and keeps the newest
// max_keep_ckpts.
type checkpointHook struct {
	interval      int
	saveLast      bool
	saveOptimizer bool
	maxKeep       int
	outDir        string
}

func (c *CheckpointHookConfig) Build(*registry.Env) (any, error) {
	if !c.ByEpoch {
		return nil, fmt.Errorf("by_epoch = false is not supported: checkpoints are saved at epoch ends")
	}
	return &checkpointHook{interval: c.Interval, saveLast: c.SaveLast, saveOptimizer: c.SaveOptimizer,
		maxKeep: c.MaxKeepCkpts, outDir: c.OutDir}, nil
}

func (h *checkpointHook) AfterTrainEpoch(r *Runner) error {
	if r.Epoch%h.interval != 0 && !(h.saveLast && r.Epoch == r.MaxEpochs) {
		return nil
	}
	dir := h.outDir
	if dir == "" {
		dir = r.WorkDir
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	c, err := r.Checkpoint()
	if err != nil {
		return err
	}
	if !h.saveOptimizer {
		for name := range c.Tensors {
			if !isModelVariable(name) {
				delete(c.Tensors, name)
			}
		}
	}
	path := filepath.Join(dir, fmt.Sprintf("epoch_%d.ckpt", r.Epoch))
	if err := SaveCheckpoint(path, c); err != nil {
		return err
	}
	r.lastCkpt = path
	if err := os.WriteFile(filepath.Join(r.WorkDir, latestName), []byte(path+"\n"), 0o644); err != nil {
		return err
	}
	r.Log.Info("saved checkpoint", zap.String("path", path), zap.Int("epoch", r.Epoch))
	return h.prune(dir)
}

var ckptName = regexp.MustCompile(`^epoch_(\d+)\.ckpt$`)

// prune removes the oldest epoch checkpoints beyond max_keep_ckpts.
func (h *checkpointHook) prune(dir string) error {
	if h.maxKeep < 1 {
		return nil
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	var epochs []int
	for _, e := range entries {
		if m := ckptName.FindStringSubmatch(e.Name()); m != nil {
			n, _ := strconv.Atoi(m[1])
			epochs = append(epochs, n)
		}
	}
	sort.Ints(epochs)
	for len(epochs) > h.maxKeep {
		if err := os.Remove(filepath.Join(dir, fmt.Sprintf("epoch_%d.ckpt", epochs[0]))); err != nil {
			return err
		}
		epochs = epochs[1:]
	}
	return nil
}

// KNNHookConfig configures the weighted-kNN monitor: before training (the random-init
// baseline) and after it, mmselfsup's weighted kNN of the evaluation features (the
// backbone's pooled last stage) of val_dataloader's samples against those of the training
// set, read with val_dataloader's pipeline. goselfsup's own hook.
type KNNHookConfig struct {
	NumKNN      []int   `toml:"num_knn"`
	Temperature float64 `toml:"temperature"`
}

func (c *KNNHookConfig) Validate() error {
	if len(c.NumKNN) == 0 {
		return registry.FieldErrorf("num_knn", "must list at least one k")
	}
	for _, k := range c.NumKNN {
		if k < 1 {
			return registry.FieldErrorf("num_knn", "must be positive, got %v", c.NumKNN)
		}
	}
	if c.Temperature <= 0 {
		return registry.FieldErrorf("temperature", "must be positive, got %g", c.Temperature)
	}
	return nil
}

type knnHook struct{ cfg KNNHookConfig }

func (c *KNNHookConfig) Build(*registry.Env) (any, error) { return &knnHook{cfg: *c}, nil }

func (h *knnHook) BeforeTrain(r *Runner) error {
	if _, done := r.Metrics["random_init_knn_top1_k"+strconv.Itoa(h.cfg.NumKNN[0])]; done || r.Resumed() {
		return nil
	}
	return h.run(r, "random_init_")
}

func (h *knnHook) AfterTrain(r *Runner) error { return h.run(r, "") }

func (h *knnHook) run(r *Runner, prefix string) error {
	val := r.Cfg.ValDataloader
	if val == nil {
		return fmt.Errorf("KNNHook needs a val_dataloader (the queries)")
	}
	pipeline, ok := val.Dataset.Get("pipeline")
	if !ok {
		pipeline = []any{}
	}
	trainSet := *r.Cfg.TrainDataloader
	trainSet.Dataset = r.Cfg.TrainDataloader.Dataset.With("pipeline", pipeline)
	trainSet.BatchSize = val.BatchSize
	trainSet.Sampler = val.Sampler
	trainLoader, err := r.buildLoader(&trainSet, false)
	if err != nil {
		return fmt.Errorf("KNNHook: the training set with the val pipeline: %w", err)
	}
	testLoader, err := r.buildLoader(val, false)
	if err != nil {
		return fmt.Errorf("KNNHook: %w", err)
	}
	if err := r.sameNormalization(testLoader, "KNNHook: val_dataloader"); err != nil {
		return err
	}
	ctx := context.Background()
	what := "kNN features"
	if prefix != "" {
		what = "kNN features (random init)"
	}
	trainF, trainY, err := r.Extract(ctx, trainLoader, what+" train")
	if err != nil {
		return err
	}
	testF, testY, err := r.Extract(ctx, testLoader, what+" test")
	if err != nil {
		return err
	}
	classes := len(trainLoader.Dataset.Source.Classes())
	// The search runs on the device under XLA; the CPU's blocked search beats the pure-Go
	// backend's.
	search := evaluators.CPUSearch
	if !backend.IsPureGo(r.Backend) {
		search = func(q, db evaluators.Features, k int) ([][]evaluators.Neighbour, error) {
			return evaluators.TopKOnDevice(r.Backend, q, db, k)
		}
	}
	res, err := evaluators.KNN(evaluators.FromRows(trainF), trainY, evaluators.FromRows(testF), testY, classes,
		h.cfg.NumKNN, h.cfg.Temperature, search)
	if err != nil {
		return err
	}
	fields := []zap.Field{}
	for _, k := range res {
		r.Metrics[fmt.Sprintf("%sknn_top1_k%d", prefix, k.K)] = k.Top1
		r.Metrics[fmt.Sprintf("%sknn_top5_k%d", prefix, k.K)] = k.Top5
		fields = append(fields, zap.Float64(fmt.Sprintf("top1_k%d", k.K), k.Top1))
	}
	name := "kNN"
	if prefix != "" {
		name = "kNN at random init"
	}
	r.Log.Info(name, fields...)
	return nil
}
