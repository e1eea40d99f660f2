package evaluators

import (
	"context"
	"errors"
	"fmt"
	"text/tabwriter"

	"github.com/goselfsup/goselfsup/registry"
)

func init() {
	registry.Add(registry.Evaluators, "WeightedKNN", "weighted kNN on L2-normalised features (mmselfsup, DINO)",
		func() *WeightedKNNConfig {
			return &WeightedKNNConfig{NumKNN: []int{10, 20, 100, 200}, Temperature: 0.07, ChunkSize: 500, Feature: "backbone"}
		})
}

// WeightedKNNConfig is mmselfsup's weighted kNN (from DINO): L2-normalised features, each of
// the k nearest training samples votes for its class with weight exp(similarity /
// temperature). All k of num_knn come from one top-max(k) search.
type WeightedKNNConfig struct {
	NumKNN      []int   `toml:"num_knn" doc:"the k of each kNN, all from one search"`
	Temperature float64 `toml:"temperature" doc:"the temperature T of the votes exp(similarity / T)"`
	// ChunkSize is mmselfsup's bound on the queries searched at once; the searches here
	// bound their memory by their own blocks (docs/configs.md), so it changes nothing.
	ChunkSize int `toml:"chunk_size" doc:"mmselfsup's bound on the queries searched at once; the searches here bound their own memory"`
	// Feature is the feature compared: backbone, neck or feat1..feat5. goselfsup's own key.
	Feature string `toml:"feature" doc:"the feature compared: backbone, neck or feat1..feat5"`
}

func (c *WeightedKNNConfig) Validate() error {
	var errs []error
	if c.Temperature <= 0 {
		errs = append(errs, registry.FieldErrorf("temperature", "must be positive, got %g", c.Temperature))
	}
	if c.ChunkSize < 1 {
		errs = append(errs, registry.FieldErrorf("chunk_size", "must be at least 1, got %d", c.ChunkSize))
	}
	return errors.Join(append(errs, positiveList("num_knn", c.NumKNN))...)
}

func (c *WeightedKNNConfig) Build(*registry.Env) (any, error) { return &weightedKNN{*c}, nil }

type weightedKNN struct{ WeightedKNNConfig }

func (k *weightedKNN) Features() []string { return []string{k.Feature} }

// Evaluate prints and returns the top-1 and top-5 accuracy for each k of num_knn.
func (k *weightedKNN) Evaluate(ctx context.Context, in *FeatureInput) (map[string]any, error) {
	train, ok1 := in.Train.Features[k.Feature]
	test, ok2 := in.Val.Features[k.Feature]
	if !ok1 || !ok2 {
		return nil, fmt.Errorf("WeightedKNN: no %q features", k.Feature)
	}
	if in.Train.Labels == nil || in.Val.Labels == nil {
		return nil, errors.New("WeightedKNN needs labelled training and test sets")
	}
	classes := max(in.Train.Classes, in.Val.Classes)
	for _, l := range [][]int{in.Train.Labels, in.Val.Labels} {
		for _, y := range l {
			classes = max(classes, y+1)
		}
	}
	search := in.Search
	if search == nil {
		search = CPUSearch
	}
	if in.Log != nil {
		in.Log.Sugar().Infof("kNN: %d training and %d test features of %d dimensions, %d classes", train.N, test.N, train.Dim, classes)
	}
	res, err := KNN(train, in.Train.Labels, test, in.Val.Labels, classes, k.NumKNN, k.Temperature, search)
	if err != nil {
		return nil, err
	}
	tw := tabwriter.NewWriter(in.Out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "k\ttop-1\ttop-5\t")
	metrics := map[string]any{"feature": k.Feature, "temperature": k.Temperature, "train": train.N, "test": test.N}
	for _, r := range res {
		fmt.Fprintf(tw, "%d\t%.2f\t%.2f\t\n", r.K, r.Top1, r.Top5)
		metrics[fmt.Sprintf("knn_top1_k%d", r.K)] = r.Top1
		metrics[fmt.Sprintf("knn_top5_k%d", r.K)] = r.Top5
	}
	return metrics, tw.Flush()
}
