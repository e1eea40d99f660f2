package evaluators

import (
	"fmt"

	"github.com/goselfsup/goselfsup/registry"
)

func init() {
	registry.Add(registry.Evaluators, "Accuracy", "top-k classification accuracy",
		func() *AccuracyConfig { return &AccuracyConfig{Topk: []int{1}} })
}

// Metric is a component of the "evaluators" namespace that scores a classifier on the
// validation set during training (mmengine's metrics): the runner's ValLoop gathers the
// scores of every head and hands them over at once.
type Metric interface {
	// Compute returns the metrics of scores, one [samples, classes] matrix per head, against
	// the samples' labels.
	Compute(scores []Features, labels []int) (map[string]float64, error)
}

// AccuracyConfig is mmcls's Accuracy: top-k accuracy for each k of topk.
type AccuracyConfig struct {
	Topk []int `toml:"topk" doc:"the k of each top-k accuracy"`
}

func (c *AccuracyConfig) Validate() error { return positiveList("topk", c.Topk) }

func (c *AccuracyConfig) Build(*registry.Env) (any, error) { return &accuracy{topk: c.Topk}, nil }

type accuracy struct{ topk []int }

// Compute gives accuracy/topK, in percent, of a single head.
func (a *accuracy) Compute(scores []Features, labels []int) (map[string]float64, error) {
	if len(scores) != 1 {
		return nil, fmt.Errorf("Accuracy scores one head and the model has %d: use MultiHeadEvaluator", len(scores))
	}
	acc, err := TopKAccuracy(scores[0], labels, a.topk)
	if err != nil {
		return nil, err
	}
	out := map[string]float64{}
	for j, k := range a.topk {
		out[fmt.Sprintf("accuracy/top%d", k)] = acc[j]
	}
	return out, nil
}
