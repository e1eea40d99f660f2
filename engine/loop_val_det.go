package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	gctx "github.com/gomlx/gomlx/pkg/ml/context"
	"go.uber.org/zap"

	"github.com/goselfsup/goselfsup/coco"
	"github.com/goselfsup/goselfsup/datasets"
	"github.com/goselfsup/goselfsup/detvis"
	"github.com/goselfsup/goselfsup/evaluators"
	"github.com/goselfsup/goselfsup/segvis"
)

// Detector is a model that detects boxes (mmdet's simple_test): for uint8 images and their
// sizes before padding (imgShapes, int32 [B, 2]), boxes [B, K, 4] in the resized images'
// coordinates, scores [B, K], labels [B, K] int32 (0 to classes - 1) and valid [B, K] bool.
type Detector interface {
	Detect(images, imgShapes *Node) (boxes, scores, labels, valid *Node)
}

// MaskDetector is a Detector with a mask branch (Mask R-CNN): DetectMasks is Detect with
// each detection's mask, masks [B, K, S, S], the probabilities of its box's S x S grid for
// its class; PasteMask pastes one of them (prob, S x S row-major) into an image of h x w
// pixels at box (x1, y1, x2, y2 in that image's pixels) and binarises it, as the model's
// test_cfg says (mmdet's get_seg_masks), returning h x w values of 0 or 1.
type MaskDetector interface {
	Detector
	DetectMasks(images, imgShapes *Node) (boxes, scores, labels, valid, masks *Node)
	PasteMask(prob []float32, box [4]float32, h, w int) ([]uint8, error)
}

// ResultsWriter is a DetAccumulator that writes its results in a standard format
// (CocoMetric: COCO results files), under a path prefix; it returns the files written.
type ResultsWriter interface {
	WriteResults(prefix string) ([]string, error)
}

// detVal is the val loop of a detector scored by an evaluators.DetMetric, as mmdet's
// single_gpu_test and dataset.evaluate: each image's detections, rescaled to the image as
// decoded (divided by its scale factor), scored against its annotation. Each validation also
// writes every image's detections as JSON lines, detections/<stage>.jsonl in the run folder
// (one object per image: its index, its file, and its detections with box, score and class,
// in the image's pixels), and the first detOverlays images with their detections scoring at
// least detShowScore drawn, vis_data/det/<stage>/<index>.png.
type detVal struct {
	loader  *datasets.Loader
	src     datasets.DetSource
	metric  evaluators.DetMetric
	classes []string
	det     Detector
	masks   MaskDetector // det, when it has a mask branch
	exec    *shapedExec  // the detections (and masks)
}

// detOverlays is the number of validation images drawn with their detections.
const detOverlays = 4

// detShowScore is the lowest score of a drawn detection (mmdet's show_result score_thr).
const detShowScore = 0.3

// detLine is one image's line of the detections file.
type detLine struct {
	Index      int         `json:"index"`
	Image      string      `json:"image"`
	Detections []detResult `json:"detections"`
}

type detResult struct {
	Box   [4]float32 `json:"box"` // x1, y1, x2, y2 in the image's pixels
	Score float32    `json:"score"`
	Label string     `json:"label"`
}

func (v *detVal) prepare(r *Runner, det Detector, metric evaluators.DetMetric, loader *datasets.Loader) error {
	src, ok := datasets.AsDetSource(loader.Dataset.Source)
	if !ok {
		return fmt.Errorf("val_dataloader: a detection metric needs a detection dataset (VOCDataset), got %T", loader.Dataset.Source)
	}
	v.loader, v.src, v.metric, v.det = loader, src, metric, det
	v.masks, _ = det.(MaskDetector)
	v.classes = src.Classes()
	if _, err := metric.NewDetAccumulator(src); err != nil {
		return fmt.Errorf("val_evaluator: %w", err)
	}
	v.exec = newShapedExec(func() *gctx.Exec {
		return gctx.MustNewExec(r.Backend, r.Ctx, func(ctx *gctx.Context, images, imgShapes *Node) []*Node {
			if v.masks != nil {
				b, s, l, ok, m := v.masks.DetectMasks(images, imgShapes)
				return []*Node{b, s, l, ok, m}
			}
			b, s, l, ok := det.Detect(images, imgShapes)
			return []*Node{b, s, l, ok}
		})
	})
	return nil
}

func (v *detVal) run(ctx context.Context, r *Runner) (metrics map[string]float64, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("validation: %v", p)
		}
	}()
	acc, err := v.metric.NewDetAccumulator(v.src)
	if err != nil {
		return nil, err
	}
	stage, what := valStage(r)
	visDir := filepath.Join(r.RunDir, "vis_data", "det", stage)
	resultsPath := filepath.Join(r.RunDir, "detections", stage+".jsonl")
	if err := os.MkdirAll(filepath.Dir(resultsPath), 0o755); err != nil {
		return nil, err
	}
	results, err := os.Create(resultsPath)
	if err != nil {
		return nil, err
	}
	defer results.Close()
	enc := json.NewEncoder(results)
	palette := segvis.VOCColormap(len(v.classes) + 1)
	n, done, saved := v.loader.Dataset.Len(), 0, 0
	start := time.Now()
	for b, err := range v.loader.Epoch(ctx, 0) {
		if err != nil {
			return nil, err
		}
		if b.ImgShapes == nil || b.OriShapes == nil || b.Det == nil || len(b.Det.ScaleFactors) != 2*b.Len() {
			return nil, fmt.Errorf("validation: val_dataloader's pipeline gives no image sizes and scale factors (Resize, Pad and PackDetInputs)")
		}
		images := tensors.FromFlatDataAndDimensions(b.Images, b.Len(), b.Height, b.Width, 3)
		shapes := tensors.FromFlatDataAndDimensions(b.ImgShapes, b.Len(), 2)
		outs, err := v.exec.forShape([3]int{b.Len(), b.Height, b.Width}).Exec(images, shapes)
		if err != nil {
			return nil, fmt.Errorf("validation: %w", err)
		}
		boxes, scores := tensors.MustCopyFlatData[float32](outs[0]), tensors.MustCopyFlatData[float32](outs[1])
		labels, valid := tensors.MustCopyFlatData[int32](outs[2]), tensors.MustCopyFlatData[bool](outs[3])
		var probs []float32
		if v.masks != nil {
			if probs, err = float32s(outs[4]); err != nil {
				return nil, fmt.Errorf("validation: the masks: %w", err)
			}
		}
		for _, o := range outs {
			o.FinalizeAll()
		}
		k := len(scores) / b.Len()
		px := b.Height * b.Width * 3
		for i := range b.Len() {
			idx := int(b.Indices[i])
			ws, hs := b.Det.ScaleFactors[2*i], b.Det.ScaleFactors[2*i+1]
			var d evaluators.Detections
			var shown [][4]float32
			var shownLabels []int32
			var shownMasks [][]uint8
			oh, ow := int(b.OriShapes[2*i]), int(b.OriShapes[2*i+1])
			if v.masks != nil {
				d.Masks = []coco.RLE{}
			}
			for j := range k {
				s := i*k + j
				if !valid[s] {
					continue
				}
				bx := [4]float32(boxes[4*s : 4*s+4])
				box := [4]float32{bx[0] / ws, bx[1] / hs, bx[2] / ws, bx[3] / hs}
				d.Boxes = append(d.Boxes, box)
				d.Scores = append(d.Scores, scores[s])
				d.Labels = append(d.Labels, labels[s])
				var prob []float32
				if v.masks != nil {
					size := len(probs) / len(scores)
					prob = probs[s*size : (s+1)*size]
					m, err := v.masks.PasteMask(prob, box, oh, ow)
					if err != nil {
						return nil, fmt.Errorf("validation, sample %d: %w", idx, err)
					}
					d.Masks = append(d.Masks, coco.Encode(m, oh, ow))
				}
				if scores[s] >= detShowScore && saved < detOverlays {
					shown = append(shown, bx)
					shownLabels = append(shownLabels, labels[s])
					if v.masks != nil {
						m, err := v.masks.PasteMask(prob, bx, b.Height, b.Width)
						if err != nil {
							return nil, fmt.Errorf("validation, sample %d: %w", idx, err)
						}
						shownMasks = append(shownMasks, m)
					}
				}
			}
			ann, err := v.src.DetAnnotation(idx)
			if err != nil {
				return nil, fmt.Errorf("validation: %w", err)
			}
			line := detLine{Index: idx, Detections: []detResult{}}
			if smp, err := v.src.Sample(idx); err == nil {
				line.Image = smp.Path
			}
			for j := range d.Boxes {
				line.Detections = append(line.Detections, detResult{Box: d.Boxes[j], Score: d.Scores[j], Label: v.classes[d.Labels[j]]})
			}
			if err := enc.Encode(line); err != nil {
				return nil, fmt.Errorf("validation: %s: %w", resultsPath, err)
			}
			if saved < detOverlays {
				if err := os.MkdirAll(visDir, 0o755); err != nil {
					return nil, err
				}
				path := filepath.Join(visDir, fmt.Sprintf("%06d.png", idx))
				if err := detvis.WriteInstances(path, b.Images[i*px:(i+1)*px], b.Height, b.Width, shown, shownLabels, shownMasks, palette); err != nil {
					return nil, fmt.Errorf("validation: %w", err)
				}
				saved++
			}
			gt := evaluators.GroundTruth{Index: idx, Boxes: ann.Boxes, Labels: ann.Labels, IgnoredBoxes: ann.IgnoredBoxes, IgnoredLabels: ann.IgnoredLabels}
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
	logValResult(r, what, metrics, table)
	r.Log.Info("detections", zap.String("file", resultsPath), zap.String("drawn", visDir), zap.Int("images", saved))
	if w, ok := acc.(ResultsWriter); ok {
		files, err := w.WriteResults(filepath.Join(filepath.Dir(resultsPath), stage))
		if err != nil {
			return nil, fmt.Errorf("validation: %w", err)
		}
		r.Log.Info("results", zap.Strings("files", files))
	}
	r.LogScalars(metrics)
	return metrics, nil
}

func (v *detVal) close() { v.exec.close() }
