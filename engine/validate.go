package engine

import (
	"context"
	"fmt"

	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	gctx "github.com/gomlx/gomlx/pkg/ml/context"
	"go.uber.org/zap"

	"github.com/goselfsup/goselfsup/datasets"
	"github.com/goselfsup/goselfsup/evaluators"
	"github.com/goselfsup/goselfsup/registry"
)

// Classifier is a model that classifies images: one or several heads of class scores.
type Classifier interface {
	Logits(images *Node) []*Node
}

// validation is mmengine's ValLoop with an Accuracy (or a MultiHeadEvaluator of Accuracy)
// val_evaluator: after each epoch from val_begin on that is a multiple of val_interval, and
// after the last, the top-k accuracy of each head on val_dataloader.
type validation struct {
	loader          *datasets.Loader
	topk            []int
	multiHead       bool
	begin, interval int
	exec            *gctx.Exec
}

// buildValidation prepares the validation of a classifier, or returns nil when the config
// has no val_evaluator.
func (r *Runner) buildValidation(cfg *Config, loop *EpochBasedTrainLoopConfig) (*validation, error) {
	if cfg.ValEvaluator.IsZero() {
		return nil, nil
	}
	clf, ok := r.Model.(Classifier)
	if !ok {
		return nil, fmt.Errorf("val_evaluator: %s is for classifiers and %s is not one (evaluate self-supervised features with tools/knn, tools/svm or tools/linear)",
			cfg.ValEvaluator.Type, cfg.Model.Type)
	}
	if cfg.ValDataloader == nil {
		return nil, fmt.Errorf("val_evaluator needs a val_dataloader")
	}
	ev, err := registry.Default.Decode(cfg.ValEvaluator)
	if err != nil {
		return nil, err
	}
	v := &validation{begin: max(loop.ValBegin, 1), interval: loop.ValInterval}
	switch c := ev.(type) {
	case *evaluators.AccuracyConfig:
		v.topk = c.Topk
	case *evaluators.MultiHeadEvaluatorConfig:
		m, err := registry.Default.Decode(c.Metrics)
		if err != nil {
			return nil, err
		}
		acc, ok := m.(*evaluators.AccuracyConfig)
		if !ok {
			return nil, fmt.Errorf("val_evaluator.metrics: %s is not supported; use Accuracy", c.Metrics.Type)
		}
		v.topk, v.multiHead = acc.Topk, true
	default:
		return nil, fmt.Errorf("val_evaluator: %s is not supported in training; use Accuracy or MultiHeadEvaluator", cfg.ValEvaluator.Type)
	}
	if v.loader, err = r.buildLoader(cfg.ValDataloader, false); err != nil {
		return nil, fmt.Errorf("val_dataloader: %w", err)
	}
	if err := r.sameNormalization(v.loader, "val_dataloader"); err != nil {
		return nil, err
	}
	v.exec = gctx.MustNewExec(r.Backend, r.Ctx, func(ctx *gctx.Context, images *Node) []*Node {
		return clf.Logits(images)
	})
	return v, nil
}

// due reports whether validation runs after epoch (1-based) of maxEpochs, as mmengine's
// EpochBasedTrainLoop decides.
func (v *validation) due(epoch, maxEpochs int) bool {
	return epoch >= v.begin && (epoch%v.interval == 0 || epoch == maxEpochs)
}

// run classifies the validation set and records the accuracies in r.Metrics: accuracy/topK
// for one head, headN_accuracy/topK for each head of several.
func (v *validation) run(ctx context.Context, r *Runner) error {
	n := v.loader.Dataset.Len()
	var scores []evaluators.Features
	labels := make([]int, n)
	err := extractLoop(ctx, v.loader, r.progress, fmt.Sprintf("val %d", r.Epoch), func(images *tensors.Tensor) ([]*tensors.Tensor, error) {
		return v.exec.Exec(images)
	}, func(b *datasets.Batch, outs [][]float32) {
		if scores == nil {
			for _, o := range outs {
				dim := len(o) / b.Len()
				scores = append(scores, evaluators.Features{N: n, Dim: dim, Data: make([]float32, n*dim)})
			}
		}
		for h, o := range outs {
			dim := scores[h].Dim
			for i, idx := range b.Indices {
				copy(scores[h].Row(int(idx)), o[i*dim:(i+1)*dim])
			}
		}
		for i, idx := range b.Indices {
			labels[idx] = int(b.Labels[i])
		}
	})
	if err != nil {
		return err
	}
	fields := []zap.Field{zap.Int("epoch", r.Epoch)}
	for h, s := range scores {
		acc, err := evaluators.TopKAccuracy(s, labels, v.topk)
		if err != nil {
			return fmt.Errorf("validation: %w", err)
		}
		prefix := ""
		if v.multiHead {
			prefix = fmt.Sprintf("head%d_", h+1)
		}
		for j, k := range v.topk {
			key := fmt.Sprintf("%saccuracy/top%d", prefix, k)
			r.Metrics[key] = acc[j]
			fields = append(fields, zap.Float64(key, acc[j]))
		}
	}
	r.Log.Info(fmt.Sprintf("Epoch(val) [%d]", r.Epoch), fields...)
	return nil
}
