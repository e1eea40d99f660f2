package engine

import (
	"context"
	"fmt"
	"maps"
	"slices"

	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	gctx "github.com/gomlx/gomlx/pkg/ml/context"
	"go.uber.org/zap"

	"github.com/goselfsup/goselfsup/datasets"
	"github.com/goselfsup/goselfsup/evaluators"
	"github.com/goselfsup/goselfsup/registry"
)

func init() {
	registry.Add(registry.Loops, "ValLoop", "score the model on val_dataloader with val_evaluator",
		func() *ValLoopConfig { return &ValLoopConfig{} })
	registry.Add(registry.Loops, "TestLoop", "score the model on test_dataloader with test_evaluator",
		func() *ValLoopConfig { return &ValLoopConfig{} })
}

// Classifier is a model that classifies images: one or several heads of class scores.
type Classifier interface {
	Logits(images *Node) []*Node
}

// ValLoopConfig is mmengine's ValLoop and TestLoop, which take no keys: the classifier's
// scores of every sample of the dataloader, in eval mode, scored by an evaluators.Metric.
type ValLoopConfig struct{}

func (*ValLoopConfig) Build(*registry.Env) (any, error) { return &valLoop{}, nil }

type valLoop struct {
	seg    *segVal // a segmentor scored by a SegMetric
	det    *detVal // a detector scored by a DetMetric
	loader *datasets.Loader
	metric evaluators.Metric
	exec   *gctx.Exec
}

func (v *valLoop) Prepare(r *Runner, d *Dataloader, evaluator registry.Spec) error {
	if d == nil {
		return fmt.Errorf("%s needs a dataloader (val_dataloader)", evaluator.Path)
	}
	built, err := registry.Build[any](r.env, evaluator)
	if err != nil {
		return err
	}
	if sm, ok := built.(evaluators.SegMetric); ok {
		seg, ok := r.Model.(Segmentor)
		if !ok {
			return fmt.Errorf("%s: %s scores segmentors and %s is not one", evaluator.Path, evaluator.Type, r.Cfg.Model.Type)
		}
		loader, err := r.buildLoader(d, false)
		if err != nil {
			return fmt.Errorf("val_dataloader: %w", err)
		}
		if err := r.sameNormalization(loader, "val_dataloader"); err != nil {
			return err
		}
		v.seg = &segVal{}
		return v.seg.prepare(r, seg, sm, loader)
	}
	if dm, ok := built.(evaluators.DetMetric); ok {
		det, ok := r.Model.(Detector)
		if !ok {
			return fmt.Errorf("%s: %s scores detectors and %s is not one", evaluator.Path, evaluator.Type, r.Cfg.Model.Type)
		}
		loader, err := r.buildLoader(d, false)
		if err != nil {
			return fmt.Errorf("val_dataloader: %w", err)
		}
		if err := r.sameNormalization(loader, "val_dataloader"); err != nil {
			return err
		}
		v.det = &detVal{}
		return v.det.prepare(r, det, dm, loader)
	}
	clf, ok := r.Model.(Classifier)
	if !ok {
		return fmt.Errorf("%s: %s scores classifiers and %s is not one (evaluate self-supervised features with tools/knn, tools/svm or tools/evaluate)",
			evaluator.Path, evaluator.Type, r.Cfg.Model.Type)
	}
	if v.metric, ok = built.(evaluators.Metric); !ok {
		return fmt.Errorf("%s: %s is not a metric of class scores", evaluator.Path, evaluator.Type)
	}
	if v.loader, err = r.buildLoader(d, false); err != nil {
		return fmt.Errorf("val_dataloader: %w", err)
	}
	if err := r.sameNormalization(v.loader, "val_dataloader"); err != nil {
		return err
	}
	v.exec = gctx.MustNewExec(r.Backend, r.Ctx, func(ctx *gctx.Context, images *Node) []*Node {
		return clf.Logits(images)
	})
	return nil
}

func (v *valLoop) Run(ctx context.Context, r *Runner) (map[string]float64, error) {
	if v.seg != nil {
		return v.seg.run(ctx, r)
	}
	if v.det != nil {
		return v.det.run(ctx, r)
	}
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
		return nil, err
	}
	metrics, err := v.metric.Compute(scores, labels)
	if err != nil {
		return nil, fmt.Errorf("validation: %w", err)
	}
	fields := []zap.Field{}
	for _, k := range slices.Sorted(maps.Keys(metrics)) {
		fields = append(fields, zap.Float64(k, metrics[k]))
	}
	what := fmt.Sprintf("Epoch(val) [%d]", r.Epoch)
	if r.Loop.IterBased() {
		what = fmt.Sprintf("Iter(val) [%d]", r.Iter)
	}
	r.Log.Info(what, fields...)
	r.LogScalars(metrics)
	return metrics, nil
}

func (v *valLoop) Close() {
	if v.seg != nil {
		v.seg.close()
	}
	if v.det != nil {
		v.det.close()
	}
	if v.exec != nil {
		v.exec.Finalize()
	}
}
