package engine

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	gctx "github.com/gomlx/gomlx/pkg/ml/context"
	"go.uber.org/zap"

	"github.com/goselfsup/goselfsup/datasets"
	"github.com/goselfsup/goselfsup/evaluators"
	"github.com/goselfsup/goselfsup/models/nn"
	"github.com/goselfsup/goselfsup/segvis"
)

// Segmentor is a model that labels each pixel: whole-image inference in eval mode, the
// logits [B, H, W, classes] of uint8 images [B, H, W, 3] at the images' size
// (models.EncoderDecoder).
type Segmentor interface {
	Logits(images *Node) *Node
}

// segOverlays is the number of validation images whose prediction each validation saves,
// overlaid in the palette, under the run folder's vis_data/seg/iter_<N> (or epoch_<N>).
const segOverlays = 4

// segVal is the val loop of a segmentor scored by an evaluators.SegMetric, as mmseg's
// ValLoop with an IoUMetric: each image's logits, resized bilinearly to its original size
// (its label map's, which the test pipeline loads after Resize), then the argmax, scored
// against the label map; the metric accumulates over the dataset.
type segVal struct {
	loader  *datasets.Loader
	metric  evaluators.SegMetric
	classes []string
	palette segvis.Palette
	exec    *gctx.Exec
}

func (v *segVal) prepare(r *Runner, seg Segmentor, metric evaluators.SegMetric, loader *datasets.Loader) error {
	v.loader, v.metric = loader, metric
	v.classes = loader.Dataset.Source.Classes()
	if _, err := metric.NewSegAccumulator(v.classes); err != nil {
		return fmt.Errorf("val_evaluator: %w", err)
	}
	v.palette = segvis.VOCColormap(len(v.classes))
	if src, ok := loader.Dataset.Source.(datasets.SegSource); ok && len(src.Palette()) >= len(v.classes) {
		v.palette = src.Palette()
	}
	// labels only carries the original size: the logits are resized to it.
	v.exec = gctx.MustNewExec(r.Backend, r.Ctx, func(ctx *gctx.Context, images, labels *Node) (*Node, *Node) {
		logits := seg.Logits(images)
		dims := labels.Shape().Dimensions
		orig := nn.Resize(logits, dims[1], dims[2])
		return ArgMax(orig, -1, dtypes.Int32), ArgMax(logits, -1, dtypes.Int32)
	})
	return nil
}

func (v *segVal) run(ctx context.Context, r *Runner) (metrics map[string]float64, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("validation: %v", p)
		}
	}()
	acc, err := v.metric.NewSegAccumulator(v.classes)
	if err != nil {
		return nil, err
	}
	stage := fmt.Sprintf("epoch_%d", r.Epoch)
	what := fmt.Sprintf("Epoch(val) [%d]", r.Epoch)
	if r.Loop.IterBased() {
		stage, what = fmt.Sprintf("iter_%d", r.Iter), fmt.Sprintf("Iter(val) [%d]", r.Iter)
	}
	visDir := filepath.Join(r.RunDir, "vis_data", "seg", stage)
	n, done, saved := v.loader.Dataset.Len(), 0, 0
	start := time.Now()
	for b, err := range v.loader.Epoch(ctx, 0) {
		if err != nil {
			return nil, err
		}
		if b.Masks == nil {
			return nil, fmt.Errorf("validation: val_dataloader's pipeline gives no segmentation maps (LoadAnnotations and PackSegInputs)")
		}
		for i := range b.Len() {
			if oh, ow := int(b.OriShapes[2*i]), int(b.OriShapes[2*i+1]); oh != b.MaskHeight || ow != b.MaskWidth {
				return nil, fmt.Errorf("validation: sample %d's label map is %dx%d and its image was %dx%d: the test pipeline must load the annotations at the original size (LoadAnnotations after Resize)",
					b.Indices[i], b.MaskWidth, b.MaskHeight, ow, oh)
			}
		}
		images := tensors.FromFlatDataAndDimensions(b.Images, b.Len(), b.Height, b.Width, 3)
		labels := tensors.FromFlatDataAndDimensions(b.Masks, b.Len(), b.MaskHeight, b.MaskWidth)
		outs, err := v.exec.Exec(images, labels)
		if err != nil {
			return nil, fmt.Errorf("validation: %w", err)
		}
		orig, err := tensors.CopyFlatData[int32](outs[0])
		if err != nil {
			return nil, err
		}
		small, err := tensors.CopyFlatData[int32](outs[1])
		if err != nil {
			return nil, err
		}
		for _, o := range outs {
			o.FinalizeAll()
		}
		area, px := b.MaskHeight*b.MaskWidth, b.Height*b.Width
		label := make([]int32, area)
		for i := range b.Len() {
			for j, l := range b.Masks[i*area : (i+1)*area] {
				label[j] = int32(l)
			}
			if err := acc.Add(orig[i*area:(i+1)*area], label); err != nil {
				return nil, fmt.Errorf("validation, sample %d: %w", b.Indices[i], err)
			}
			if saved < segOverlays {
				if err := os.MkdirAll(visDir, 0o755); err != nil {
					return nil, err
				}
				path := filepath.Join(visDir, fmt.Sprintf("%06d.png", b.Indices[i]))
				if err := segvis.WriteOverlay(path, b.Images[i*px*3:(i+1)*px*3], b.Height, b.Width, small[i*px:(i+1)*px], v.palette, 0.5); err != nil {
					return nil, fmt.Errorf("validation: %w", err)
				}
				saved++
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
		if !strings.Contains(k, ".") { // the summary; the per-class values are in the table
			fields = append(fields, zap.Float64(k, metrics[k]))
		}
	}
	r.Log.Info(what, fields...)
	if saved > 0 {
		r.Log.Info("validation overlays", zap.String("dir", visDir), zap.Int("images", saved))
	}
	r.LogScalars(metrics)
	return metrics, nil
}

func (v *segVal) close() {
	if v.exec != nil {
		v.exec.Finalize()
	}
}
