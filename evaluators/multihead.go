package evaluators

import (
	"fmt"

	"github.com/goselfsup/goselfsup/registry"
)

func init() {
	registry.Add(registry.Evaluators, "MultiHeadEvaluator", "one metric per head of a multi-head classifier",
		func() *MultiHeadEvaluatorConfig { return &MultiHeadEvaluatorConfig{} })
}

// MultiHeadEvaluatorConfig applies one metric to each head of a multi-head classifier, as
// mmselfsup's; the metrics of head i are prefixed headI_.
type MultiHeadEvaluatorConfig struct {
	Metrics registry.Spec `toml:"metrics" registry:"evaluators" doc:"the metric of every head, such as Accuracy"`
}

func (c *MultiHeadEvaluatorConfig) Validate() error {
	if c.Metrics.IsZero() {
		return registry.FieldErrorf("metrics", "is required, such as { type = \"Accuracy\", topk = [1, 5] }")
	}
	return nil
}

func (c *MultiHeadEvaluatorConfig) Build(env *registry.Env) (any, error) {
	m, err := registry.Build[Metric](env, c.Metrics)
	if err != nil {
		return nil, err
	}
	return &multiHead{metric: m}, nil
}

type multiHead struct{ metric Metric }

func (m *multiHead) Compute(scores []Features, labels []int) (map[string]float64, error) {
	out := map[string]float64{}
	for h, s := range scores {
		res, err := m.metric.Compute([]Features{s}, labels)
		if err != nil {
			return nil, fmt.Errorf("head %d: %w", h+1, err)
		}
		for k, v := range res {
			out[fmt.Sprintf("head%d_%s", h+1, k)] = v
		}
	}
	return out, nil
}
