// Command goselfsup-plugin-logreg is an example goselfsup plugin: an evaluator that fits a
// multinomial logistic-regression probe on features extracted by goselfsup (tools/extract's
// .npy files) and reports its accuracy on the test split. It imports goselfsup's SDK and the
// standard library only.
//
//	go build -o ~/.config/goselfsup/plugins/goselfsup-plugin-logreg .
//
// A benchmark config then names it:
//
//	[val_evaluator]
//	type = "LogisticRegressionProbe"
//	feature = "backbone"
//	epochs = 100
package main

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/goselfsup/goselfsup/plugins/sdk"
)

func main() {
	sdk.Serve(sdk.Plugin{
		Name:    "logreg",
		Version: "1.0.0",
		Components: []sdk.Component{{
			Type: "LogisticRegressionProbe",
			Doc:  "a multinomial logistic-regression probe on extracted features; reports top-1 accuracy",
			Config: func() any {
				return &config{Feature: "backbone", Epochs: 100, LR: 0.5, WeightDecay: 1e-4, BatchSize: 256}
			},
			Run: probe,
		}},
	})
}

// config is the component's config table: its keys, their docs and (in main) their defaults
// are what the plugin's manifest documents, and what the host checks a config against.
type config struct {
	Feature     string  `toml:"feature" doc:"the feature to probe: backbone, neck, feat1..feat5"`
	Epochs      int     `toml:"epochs" doc:"passes of mini-batch gradient descent"`
	LR          float64 `toml:"lr" doc:"the learning rate"`
	WeightDecay float64 `toml:"weight_decay" doc:"L2 penalty on the weights"`
	BatchSize   int     `toml:"batch_size" doc:"samples per step"`
	Seed        uint64  `toml:"seed" doc:"the order of the samples"`
}

func probe(ctx context.Context, r *sdk.Run) error {
	var c config // the defaults, then the config's keys
	if err := r.Decode(&c); err != nil {
		return err
	}
	dir := r.Inputs["features_dir"]
	if dir == "" {
		return fmt.Errorf("no features_dir among the inputs %v", r.Inputs)
	}
	train, err := sdk.ReadFeatures(dir, "train", c.Feature)
	if err != nil {
		return err
	}
	test, err := sdk.ReadFeatures(dir, "val", c.Feature)
	if err != nil {
		return err
	}
	classes := 0
	for _, l := range append(append([]int{}, train.Labels...), test.Labels...) {
		classes = max(classes, l+1)
	}
	log := r.Log.Sugar()
	log.Infow("fitting", "feature", c.Feature, "train", train.N, "test", test.N, "dims", train.Dim, "classes", classes)
	mean, std := standardisation(train)
	m := &model{dim: train.Dim, classes: classes, w: make([]float64, classes*train.Dim), b: make([]float64, classes)}
	rng := rand.New(rand.NewPCG(c.Seed, 1))
	order := make([]int, train.N)
	for i := range order {
		order[i] = i
	}
	x := make([]float64, train.Dim)
	for epoch := range c.Epochs {
		if err := ctx.Err(); err != nil {
			return err
		}
		rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		loss := 0.0
		for start := 0; start < len(order); start += c.BatchSize {
			batch := order[start:min(start+c.BatchSize, len(order))]
			gw := make([]float64, len(m.w))
			gb := make([]float64, classes)
			for _, i := range batch {
				scale(train.Row(i), mean, std, x)
				p := m.probabilities(x)
				loss -= math.Log(max(p[train.Labels[i]], 1e-12))
				for k := range classes {
					g := p[k]
					if k == train.Labels[i] {
						g--
					}
					gb[k] += g
					row := gw[k*m.dim : (k+1)*m.dim]
					for d, v := range x {
						row[d] += g * v
					}
				}
			}
			n := float64(len(batch))
			for j := range m.w {
				m.w[j] -= c.LR * (gw[j]/n + c.WeightDecay*m.w[j])
			}
			for k := range gb {
				m.b[k] -= c.LR * gb[k] / n
			}
		}
		if err := r.Progress("epoch", epoch+1, c.Epochs); err != nil {
			return err
		}
		if (epoch+1)%10 == 0 || epoch+1 == c.Epochs {
			log.Infow("epoch", "epoch", epoch+1, "loss", loss/float64(train.N))
		}
	}
	right := 0
	for i := range test.N {
		scale(test.Row(i), mean, std, x)
		p := m.probabilities(x)
		best := 0
		for k := range p {
			if p[k] > p[best] {
				best = k
			}
		}
		if best == test.Labels[i] {
			right++
		}
	}
	acc := 100 * float64(right) / float64(test.N)
	log.Infow("done", "accuracy", acc)
	return r.Metric("logreg_top1", acc)
}

type model struct {
	dim, classes int
	w, b         []float64 // w is [classes, dim]
}

// probabilities returns the softmax of the class scores of x.
func (m *model) probabilities(x []float64) []float64 {
	p := make([]float64, m.classes)
	top := math.Inf(-1)
	for k := range p {
		s := m.b[k]
		for d, v := range m.w[k*m.dim : (k+1)*m.dim] {
			s += v * x[d]
		}
		p[k] = s
		top = max(top, s)
	}
	sum := 0.0
	for k := range p {
		p[k] = math.Exp(p[k] - top)
		sum += p[k]
	}
	for k := range p {
		p[k] /= sum
	}
	return p
}

// standardisation returns each dimension's mean and standard deviation on train.
func standardisation(f *sdk.Features) (mean, std []float64) {
	mean, std = make([]float64, f.Dim), make([]float64, f.Dim)
	for i := range f.N {
		for d, v := range f.Row(i) {
			mean[d] += float64(v) / float64(f.N)
		}
	}
	for i := range f.N {
		for d, v := range f.Row(i) {
			std[d] += (float64(v) - mean[d]) * (float64(v) - mean[d]) / float64(f.N)
		}
	}
	for d := range std {
		std[d] = math.Sqrt(std[d]) + 1e-6
	}
	return mean, std
}

func scale(row []float32, mean, std, out []float64) {
	for d, v := range row {
		out[d] = (float64(v) - mean[d]) / std[d]
	}
}
