package engine

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	gctx "github.com/gomlx/gomlx/pkg/ml/context"
	"go.uber.org/zap"

	"github.com/goselfsup/goselfsup/datasets"
	"github.com/goselfsup/goselfsup/evaluators"
)

// Detector is a model that detects boxes (mmdet's simple_test): for uint8 images and their
// sizes before padding (imgShapes, int32 [B, 2]), boxes [B, K, 4] in the resized images'
// coordinates, scores [B, K], labels [B, K] int32 (0 to classes - 1) and valid [B, K] bool.
type Detector interface {
	Detect(images, imgShapes *Node) (boxes, scores, labels, valid *Node)
}

// detVal is the val loop of a detector scored by an evaluators.DetMetric, as mmdet's
// single_gpu_test and dataset.evaluate: each image's detections, rescaled to the image as
// decoded (divided by its scale factor), scored against its annotation.
type detVal struct {
	loader  *datasets.Loader
	src     datasets.DetSource
	metric  evaluators.DetMetric
	classes []string
	det     Detector
	exec    *gctx.Exec
	shapes  map[[3]int]bool // the batch sizes exec has compiled
}

func (v *detVal) newExec(r *Runner) {
	if v.exec != nil {
		v.exec.Finalize()
	}
	det := v.det
	v.exec = gctx.MustNewExec(r.Backend, r.Ctx, func(ctx *gctx.Context, images, imgShapes *Node) []*Node {
		b, s, l, ok := det.Detect(images, imgShapes)
		return []*Node{b, s, l, ok}
	})
	v.shapes = map[[3]int]bool{}
}

func (v *detVal) prepare(r *Runner, det Detector, metric evaluators.DetMetric, loader *datasets.Loader) error {
	src, ok := datasets.AsDetSource(loader.Dataset.Source)
	if !ok {
		return fmt.Errorf("val_dataloader: a detection metric needs a detection dataset (VOCDataset), got %T", loader.Dataset.Source)
	}
	v.loader, v.src, v.metric, v.det = loader, src, metric, det
	v.classes = src.Classes()
	if _, err := metric.NewDetAccumulator(v.classes); err != nil {
		return fmt.Errorf("val_evaluator: %w", err)
	}
	v.newExec(r)
	return nil
}

func (v *detVal) run(ctx context.Context, r *Runner) (metrics map[string]float64, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("validation: %v", p)
		}
	}()
	acc, err := v.metric.NewDetAccumulator(v.classes)
	if err != nil {
		return nil, err
	}
	what := fmt.Sprintf("Epoch(val) [%d]", r.Epoch)
	if r.Loop.IterBased() {
		what = fmt.Sprintf("Iter(val) [%d]", r.Iter)
	}
	n, done := v.loader.Dataset.Len(), 0
	start := time.Now()
	for b, err := range v.loader.Epoch(ctx, 0) {
		if err != nil {
			return nil, err
		}
		if b.ImgShapes == nil || b.Det == nil || len(b.Det.ScaleFactors) != 2*b.Len() {
			return nil, fmt.Errorf("validation: val_dataloader's pipeline gives no image sizes and scale factors (Resize, Pad and PackDetInputs)")
		}
		if size := [3]int{b.Len(), b.Height, b.Width}; !v.shapes[size] {
			if len(v.shapes) >= segMaxShapes {
				v.newExec(r)
			}
			v.shapes[size] = true
		}
		images := tensors.FromFlatDataAndDimensions(b.Images, b.Len(), b.Height, b.Width, 3)
		shapes := tensors.FromFlatDataAndDimensions(b.ImgShapes, b.Len(), 2)
		outs, err := v.exec.Exec(images, shapes)
		if err != nil {
			return nil, fmt.Errorf("validation: %w", err)
		}
		boxes, scores := tensors.MustCopyFlatData[float32](outs[0]), tensors.MustCopyFlatData[float32](outs[1])
		labels, valid := tensors.MustCopyFlatData[int32](outs[2]), tensors.MustCopyFlatData[bool](outs[3])
		for _, o := range outs {
			o.FinalizeAll()
		}
		k := len(scores) / b.Len()
		for i := range b.Len() {
			ws, hs := b.Det.ScaleFactors[2*i], b.Det.ScaleFactors[2*i+1]
			var d evaluators.Detections
			for j := range k {
				s := i*k + j
				if !valid[s] {
					continue
				}
				bx := boxes[4*s : 4*s+4]
				d.Boxes = append(d.Boxes, [4]float32{bx[0] / ws, bx[1] / hs, bx[2] / ws, bx[3] / hs})
				d.Scores = append(d.Scores, scores[s])
				d.Labels = append(d.Labels, labels[s])
			}
			ann, err := v.src.DetAnnotation(int(b.Indices[i]))
			if err != nil {
				return nil, fmt.Errorf("validation: %w", err)
			}
			gt := evaluators.GroundTruth{Boxes: ann.Boxes, Labels: ann.Labels, IgnoredBoxes: ann.IgnoredBoxes, IgnoredLabels: ann.IgnoredLabels}
			if err := acc.Add(d, gt); err != nil {
				return nil, fmt.Errorf("validation, sample %d: %w", b.Indices[i], err)
			}
		}
		done += b.Len()
		eta := time.Duration(float64(time.Since(start)) / float64(done) * float64(n-done))
		r.progress.update("val", done, n, eta, "")
	}
	r.progress.clear()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	metrics, table := acc.Result()
	r.Log.Info("per class results:\n" + table)
	fields := []zap.Field{}
	for _, k := range slices.Sorted(maps.Keys(metrics)) {
		if !strings.Contains(k, ".") {
			fields = append(fields, zap.Float64(k, metrics[k]))
		}
	}
	r.Log.Info(what, fields...)
	r.LogScalars(metrics)
	return metrics, nil
}

func (v *detVal) close() {
	if v.exec != nil {
		v.exec.Finalize()
	}
}
