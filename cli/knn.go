package cli

import (
	"fmt"
	"io"
	"slices"

	"github.com/goselfsup/goselfsup/engine"
	"github.com/goselfsup/goselfsup/evaluators"
	"github.com/goselfsup/goselfsup/registry"
)

const knnUsage = `usage: goselfsup knn BENCHMARK_CONFIG [CHECKPOINT] [flags]

Weighted kNN (mmselfsup's, from DINO): L2-normalised features of the test set
(val_dataloader) vote with their k most similar training features (train_dataloader),
each with weight exp(similarity / T), for each k of val_evaluator.num_knn from one search;
prints top-1 and top-5 accuracy and writes metrics.json. With --memory-bank, lemniscate's
variant: the training features are the checkpoint's memory bank (one embedding per
training image, in the order of the model's training set) and the test features the
neck's embeddings.

`

// KNN is the entry point of tools/knn.
func KNN(args []string, stdout, stderr io.Writer) int {
	c := newEvalCommand("knn", knnUsage, stderr)
	c.withFeatureFlags(engine.FeatBackbone, "to compare")
	memoryBank := c.fs.Bool("memory-bank", false, "lemniscate.pytorch's kNN: the memory bank as the training features, the neck's embedding as the test features")
	search := c.fs.String("search", "auto", "where to search: cpu, device (the backend's), or auto (the device under XLA, else the CPU)")
	if rc, ok := c.parse(args, stdout, stderr); !ok {
		return rc
	}
	if err := runKNN(c, *memoryBank, *search, stdout, stderr); err != nil {
		report(stderr, err)
		return exitFailed
	}
	return exitOK
}

func runKNN(c *evalCommand, memoryBank bool, search string, stdout, stderr io.Writer) error {
	spec := c.bench.ValEvaluator
	if spec.Type != "WeightedKNN" {
		return fmt.Errorf("%s: val_evaluator is %s, not WeightedKNN", c.benchPath, spec.Type)
	}
	names := c.featureNames()
	if memoryBank {
		names = []string{engine.FeatNeck}
	}
	if len(names) > 1 {
		return fmt.Errorf("--features: kNN compares one feature, got %v", names)
	}
	if len(names) == 1 {
		spec = spec.With("feature", names[0])
	}
	ev, err := registry.Build[evaluators.FeatureEvaluator](&registry.Env{Registry: c.reg}, spec)
	if err != nil {
		return err
	}
	if !memoryBank {
		return runFeatureEvaluator(c, ev, search, stdout, stderr)
	}
	// lemniscate's variant: the memory bank's rows are the training features.
	e, err := c.open(stderr)
	if err != nil {
		return err
	}
	defer e.Close()
	searcher, _, err := c.searcher(e, search) // the model's backend: nothing to release
	if err != nil {
		return err
	}
	ctx, stop := interruptible()
	defer stop()
	bank, err := e.MemoryBank()
	if err != nil {
		return err
	}
	trainLabels, err := modelTrainLabels(e)
	if err != nil {
		return err
	}
	if len(trainLabels) != bank.N {
		return fmt.Errorf("the memory bank has %d rows for the %d images of the model's training set", bank.N, len(trainLabels))
	}
	splits, loaders, err := c.splits()
	if err != nil {
		return err
	}
	l, err := e.Loader(loaders[slices.Index(splits, "val")])
	if err != nil {
		return fmt.Errorf("val_dataloader: %w", err)
	}
	val, err := e.Extract(ctx, l, names, nil, "extracting val")
	if err != nil {
		return err
	}
	train := &engine.FeatureSet{Features: map[string]evaluators.Features{engine.FeatNeck: bank}, Labels: trainLabels, Classes: val.Classes}
	metrics, err := ev.Evaluate(ctx, &evaluators.FeatureInput{Train: train, Val: val, WorkDir: *c.workDir,
		Search: searcher, Seed: uint64(*c.seed), Out: stdout, Log: c.log})
	if err != nil {
		return err
	}
	metrics["memory_bank"] = true
	metrics["checkpoint"] = c.checkpoint
	return c.writeMetrics(stdout, metrics)
}

// modelTrainLabels returns the labels of the model's training set, in its order: the rows of
// its memory bank.
func modelTrainLabels(e *engine.Evaluation) ([]int, error) {
	if e.Cfg.TrainDataloader == nil {
		return nil, fmt.Errorf("the model's config has no train_dataloader")
	}
	l, err := e.Loader(e.Cfg.TrainDataloader)
	if err != nil {
		return nil, fmt.Errorf("the model's training set: %w", err)
	}
	labels := make([]int, l.Dataset.Len())
	for i := range labels {
		s, err := l.Dataset.Source.Sample(i)
		if err != nil {
			return nil, err
		}
		if s.Label < 0 {
			return nil, fmt.Errorf("the model's training set has no labels (sample %d)", i)
		}
		labels[i] = s.Label
	}
	return labels, nil
}
