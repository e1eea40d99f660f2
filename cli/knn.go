package cli

import (
	"fmt"
	"io"
	"slices"
	"text/tabwriter"

	"github.com/gomlx/gomlx/backends"

	"github.com/goselfsup/goselfsup/engine"
	"github.com/goselfsup/goselfsup/engine/backend"
	"github.com/goselfsup/goselfsup/evaluators"
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
	if !slices.Contains([]string{"auto", "cpu", "device"}, search) {
		return fmt.Errorf("--search %q: use cpu, device or auto", search)
	}
	ec, err := c.reg.Decode(c.bench.ValEvaluator)
	if err != nil {
		return err
	}
	kc, ok := ec.(*evaluators.WeightedKNNConfig)
	if !ok {
		return fmt.Errorf("%s: val_evaluator is %s, not WeightedKNN", c.benchPath, c.bench.ValEvaluator.Type)
	}
	names := c.featureNames()
	if memoryBank {
		names = []string{engine.FeatNeck}
	}
	if len(names) != 1 {
		return fmt.Errorf("--features: kNN compares one feature, got %v", names)
	}
	var e *engine.Evaluation // the model, unless the features are read from files
	if memoryBank || *c.featuresDir == "" {
		if e, err = c.open(stderr); err != nil {
			return err
		}
		defer e.Close()
	}
	ctx, stop := interruptible()
	defer stop()
	var train, test evaluators.Features
	var trainLabels, testLabels []int
	classes := 0
	if memoryBank {
		if train, err = e.MemoryBank(); err != nil {
			return err
		}
		if trainLabels, err = modelTrainLabels(e); err != nil {
			return err
		}
		if len(trainLabels) != train.N {
			return fmt.Errorf("the memory bank has %d rows for the %d images of the model's training set", train.N, len(trainLabels))
		}
		splits, loaders, err := c.splits()
		if err != nil {
			return err
		}
		l, err := e.Loader(loaders[slices.Index(splits, "val")])
		if err != nil {
			return fmt.Errorf("val_dataloader: %w", err)
		}
		set, err := e.Extract(ctx, l, names, nil, "extracting val")
		if err != nil {
			return err
		}
		test, testLabels, classes = set.Features[names[0]], set.Labels, set.Classes
	} else {
		sets, err := c.featureSets(ctx, e, names)
		if err != nil {
			return err
		}
		train, trainLabels = sets["train"].Features[names[0]], sets["train"].Labels
		test, testLabels = sets["val"].Features[names[0]], sets["val"].Labels
		classes = max(sets["train"].Classes, sets["val"].Classes)
	}
	for _, l := range [][]int{trainLabels, testLabels} {
		for _, y := range l {
			classes = max(classes, y+1)
		}
	}
	var bk backends.Backend
	switch {
	case e != nil:
		bk = e.Backend
	case search == "device" || *c.backend != "":
		if bk, err = backend.New(*c.backend); err != nil {
			return err
		}
		defer bk.Finalize()
	}
	searcher, where := evaluators.CPUSearch, "cpu"
	if search == "device" || search == "auto" && bk != nil && !backend.IsPureGo(bk) {
		searcher = func(q, db evaluators.Features, k int) ([][]evaluators.Neighbour, error) {
			return evaluators.TopKOnDevice(bk, q, db, k)
		}
		where = bk.Name()
	}
	fmt.Fprintf(stderr, "kNN: %d training and %d test features of %d dimensions, %d classes, search on %s\n",
		train.N, test.N, train.Dim, classes, where)
	res, err := evaluators.KNN(train, trainLabels, test, testLabels, classes, kc.NumKNN, kc.Temperature, searcher)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "k\ttop-1\ttop-5\t")
	metrics := map[string]any{"feature": names[0], "memory_bank": memoryBank, "temperature": kc.Temperature,
		"train": train.N, "test": test.N, "checkpoint": c.checkpoint}
	for _, r := range res {
		fmt.Fprintf(tw, "%d\t%.2f\t%.2f\t\n", r.K, r.Top1, r.Top5)
		metrics[fmt.Sprintf("knn_top1_k%d", r.K)] = r.Top1
		metrics[fmt.Sprintf("knn_top5_k%d", r.K)] = r.Top5
	}
	tw.Flush()
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
