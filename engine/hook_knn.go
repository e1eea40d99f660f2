package engine

import (
	"context"
	"fmt"
	"strconv"

	"go.uber.org/zap"

	"github.com/goselfsup/goselfsup/engine/backend"
	"github.com/goselfsup/goselfsup/evaluators"
	"github.com/goselfsup/goselfsup/registry"
)

func init() {
	registry.Add(registry.Hooks, "KNNHook", "weighted kNN of the features before and after training (goselfsup's own)",
		func() *KNNHookConfig { return &KNNHookConfig{NumKNN: []int{10, 20, 100, 200}, Temperature: 0.07} })
}

// KNNHookConfig configures the weighted-kNN monitor: before training (the random-init
// baseline) and after it, mmselfsup's weighted kNN of the evaluation features (the
// backbone's pooled last stage) of val_dataloader's samples against those of the training
// set, read with val_dataloader's pipeline. goselfsup's own hook.
type KNNHookConfig struct {
	NumKNN      []int   `toml:"num_knn" doc:"the k of each kNN"`
	Temperature float64 `toml:"temperature" doc:"the temperature T of the votes exp(similarity / T)"`
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

func (c *KNNHookConfig) Build(*registry.Env) (any, error) {
	h := &knnHook{cfg: *c}
	return &Hook{Name: "KNNHook", Priority: PriorityNormal, BeforeTrain: h.beforeTrain, AfterTrain: h.afterTrain}, nil
}

func (h *knnHook) beforeTrain(r *Runner) error {
	if _, done := r.Metrics["random_init_knn_top1_k"+strconv.Itoa(h.cfg.NumKNN[0])]; done || r.Resumed() {
		return nil
	}
	return h.run(r, "random_init_")
}

func (h *knnHook) afterTrain(r *Runner) error { return h.run(r, "") }

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
