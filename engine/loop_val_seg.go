package engine

import (
	"context"
	"fmt"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	gctx "github.com/gomlx/gomlx/pkg/ml/context"
	"go.uber.org/zap"

	"github.com/goselfsup/goselfsup/datasets"
	"github.com/goselfsup/goselfsup/evaluators"
	"github.com/goselfsup/goselfsup/segvis"
)

// Segmentor is a model that labels each pixel: whole-image inference in eval mode, the
// logits [B, H, W, classes] of uint8 images [B, H, W, 3] at the images' size
// (models.EncoderDecoder).
type Segmentor interface {
	Logits(images *Node) *Node
}

// segOverlays is the number of validation images whose prediction each validation saves,
// overlaid in the palette, under the run folder's vis_data/seg/iter_<N> (or epoch_<N>): with
// mmseg 0.x's opacity (the mmseg of mmselfsup's benchmarks), half image, half colour.
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
	seg     Segmentor
	exec    *shapedExec // the logits at the input size
}

// maxValShapes is the number of input shapes one validation executable compiles before it is
// replaced: the test pipelines keep each image's ratio, so a dataset has many sizes, and
// each compiled graph holds its memory (GoMLX refuses a 33rd by default).
const maxValShapes = 8

// shapedExec is a validation's executable, built anew once it has compiled maxValShapes
// input shapes.
type shapedExec struct {
	build  func() *gctx.Exec
	exec   *gctx.Exec
	shapes map[[3]int]bool // the shapes exec has compiled
}

func newShapedExec(build func() *gctx.Exec) *shapedExec {
	return &shapedExec{build: build, exec: build(), shapes: map[[3]int]bool{}}
}

// forShape returns the executable to run inputs of the given shape on.
func (e *shapedExec) forShape(shape [3]int) *gctx.Exec {
	if !e.shapes[shape] {
		if len(e.shapes) >= maxValShapes {
			e.exec.Finalize()
			e.exec, e.shapes = e.build(), map[[3]int]bool{}
		}
		e.shapes[shape] = true
	}
	return e.exec
}

func (e *shapedExec) close() {
	if e != nil {
		e.exec.Finalize()
	}
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
	v.seg = seg
	// The logits at the input size; they are resized to the original size on the CPU
	// (segArgmax): at the original size the logits of one image can take hundreds of MB
	// (COCO's 640x480 x 200 classes).
	v.exec = newShapedExec(func() *gctx.Exec {
		return gctx.MustNewExec(r.Backend, r.Ctx, func(ctx *gctx.Context, images *Node) *Node { return seg.Logits(images) })
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
	stage, what := valStage(r)
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
		outs, err := v.exec.forShape([3]int{b.Len(), b.Height, b.Width}).Exec(images)
		if err != nil {
			return nil, fmt.Errorf("validation: %w", err)
		}
		logits, err := float32s(outs[0])
		outs[0].FinalizeAll()
		if err != nil {
			return nil, err
		}
		classes := len(logits) / (b.Len() * b.Height * b.Width)
		area, px := b.MaskHeight*b.MaskWidth, b.Height*b.Width
		orig := make([]int32, b.Len()*area)
		small := make([]int32, b.Len()*px)
		for i := range b.Len() {
			l := logits[i*px*classes : (i+1)*px*classes]
			segArgmax(l, b.Height, b.Width, classes, b.MaskHeight, b.MaskWidth, orig[i*area:(i+1)*area])
			segArgmax(l, b.Height, b.Width, classes, b.Height, b.Width, small[i*px:(i+1)*px])
		}
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
				if err := segvis.WriteOverlay(path, b.Images[i*px*3:(i+1)*px*3], b.Height, b.Width, small[i*px:(i+1)*px], v.palette, segvis.AlphaMMSeg0); err != nil {
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
	logValResult(r, what, metrics, table)
	if saved > 0 {
		r.Log.Info("validation overlays", zap.String("dir", visDir), zap.Int("images", saved))
	}
	r.LogScalars(metrics)
	return metrics, nil
}

// valStage names a validation: its folder (iter_N, or epoch_N) and its log line's head.
func valStage(r *Runner) (stage, what string) {
	if r.Loop.IterBased() {
		return fmt.Sprintf("iter_%d", r.Iter), fmt.Sprintf("Iter(val) [%d]", r.Iter)
	}
	return fmt.Sprintf("epoch_%d", r.Epoch), fmt.Sprintf("Epoch(val) [%d]", r.Epoch)
}

// logValResult logs a validation's per-class table and its summary metrics (those without
// a ".": the per-class values, IoU.person, are in the table).
func logValResult(r *Runner, what string, metrics map[string]float64, table string) {
	r.Log.Info("per class results:\n" + table)
	fields := []zap.Field{}
	for _, k := range slices.Sorted(maps.Keys(metrics)) {
		if !strings.Contains(k, ".") {
			fields = append(fields, zap.Float64(k, metrics[k]))
		}
	}
	r.Log.Info(what, fields...)
}

func (v *segVal) close() { v.exec.close() }

// segArgmax writes to out (height x width) the argmax over the classes of logits (h x w x
// classes) resized bilinearly to height x width with PyTorch's align_corners=False (as
// nn.Resize): the source of output pixel d is (d + 0.5) * in/out - 0.5, clamped at 0,
// between floor and floor + 1 (clamped at in - 1). The first of equal scores wins, as
// torch.argmax.
func segArgmax(logits []float32, h, w, classes, height, width int, out []int32) {
	type tap struct {
		i0, i1 int
		w0, w1 float32
	}
	taps := func(in, n int) []tap {
		t := make([]tap, n)
		scale := float64(in) / float64(n)
		for d := range t {
			src := max((float64(d)+0.5)*scale-0.5, 0)
			i0 := min(int(src), in-1)
			i1 := min(i0+1, in-1)
			f := src - float64(i0)
			t[d] = tap{i0, i1, float32(1 - f), float32(f)}
		}
		return t
	}
	ys, xs := taps(h, height), taps(w, width)
	row := make([]float32, w*classes) // the row's interpolation along y
	for y, ty := range ys {
		r0, r1 := logits[ty.i0*w*classes:(ty.i0+1)*w*classes], logits[ty.i1*w*classes:(ty.i1+1)*w*classes]
		for k := range row {
			row[k] = ty.w0*r0[k] + ty.w1*r1[k]
		}
		for x, tx := range xs {
			c0, c1 := row[tx.i0*classes:(tx.i0+1)*classes], row[tx.i1*classes:(tx.i1+1)*classes]
			best, arg := float32(math.Inf(-1)), int32(0)
			for c := range classes {
				if s := tx.w0*c0[c] + tx.w1*c1[c]; s > best {
					best, arg = s, int32(c)
				}
			}
			out[y*width+x] = arg
		}
	}
}
