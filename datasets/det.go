package datasets

import (
	"fmt"
	"math"
)

// DetAnnotation is the box annotation of one image, mmdet 2.x's ann_info: the boxes that
// train and score (gt_bboxes, gt_labels) and the ignored ones (gt_bboxes_ignore,
// gt_labels_ignore: VOC's difficult objects, and boxes under the dataset's min_size). Boxes
// are x1, y1, x2, y2 in pixels of the image they belong to, float32 as mmdet keeps them;
// labels are class indices in the dataset's class order (mmdet 2.x: 0 to num_classes - 1,
// background num_classes).
type DetAnnotation struct {
	Boxes         [][4]float32
	Labels        []int32
	IgnoredBoxes  [][4]float32
	IgnoredLabels []int32
	// Masks are the instance masks of Boxes (mmdet 2.x's ann_info masks), undecoded:
	// LoadAnnotations with with_mask decodes them into Sample.GTMasks. nil when the dataset
	// has none (VOCDataset). It is read-only, and Clone shares it.
	Masks MaskDecoder
}

// Clone returns a deep copy of the boxes and labels; the copy shares Masks.
func (a *DetAnnotation) Clone() *DetAnnotation {
	if a == nil {
		return nil
	}
	return &DetAnnotation{Boxes: append([][4]float32(nil), a.Boxes...), Labels: append([]int32(nil), a.Labels...),
		IgnoredBoxes: append([][4]float32(nil), a.IgnoredBoxes...), IgnoredLabels: append([]int32(nil), a.IgnoredLabels...), Masks: a.Masks}
}

// DetSource is a source of detection samples (VOCDataset, and a ConcatDataset of them): the
// annotation of each image in the coordinates of the image as decoded, which the evaluation
// scores detections against (mmdet 2.x's dataset.get_ann_info), and the image's size as the
// annotation gives it (mmdet's img_info width and height, which its GroupSampler groups by).
type DetSource interface {
	Source
	// DetAnnotation returns sample i's annotation; shared: callers must not change it.
	DetAnnotation(i int) (*DetAnnotation, error)
	// ImageSize returns sample i's width and height as the annotation states them.
	ImageSize(i int) (w, h int, err error)
}

// AsDetSource returns src as a DetSource when it is one: a detection dataset's source, or a
// ConcatDataset's of detection datasets.
func AsDetSource(src Source) (DetSource, bool) {
	if c, ok := src.(*concatSource); ok {
		if _, ok := AsDetSource(c.parts[0].Source); !ok {
			return nil, false
		}
		return c, true
	}
	s, ok := src.(DetSource)
	return s, ok
}

// scaleBoxes is mmdet 2.x's Resize._resize_bboxes on each box list of a: the coordinates
// times scale_factor ([w_scale, h_scale] as float32), then, with clip, clipped to the new
// image's [0, w] x [0, h].
func (a *DetAnnotation) scaleBoxes(sw, sh float32, w, h int, clip bool) {
	for _, boxes := range [][][4]float32{a.Boxes, a.IgnoredBoxes} {
		for i := range boxes {
			b := &boxes[i]
			b[0], b[1], b[2], b[3] = b[0]*sw, b[1]*sh, b[2]*sw, b[3]*sh
			if clip {
				b[0], b[2] = clampF32(b[0], 0, float32(w)), clampF32(b[2], 0, float32(w))
				b[1], b[3] = clampF32(b[1], 0, float32(h)), clampF32(b[3], 0, float32(h))
			}
		}
	}
}

func clampF32(v, lo, hi float32) float32 {
	return float32(math.Min(math.Max(float64(v), float64(lo)), float64(hi)))
}

// flipBoxes is mmdet 2.x's RandomFlip.bbox_flip in an image of w x h: horizontal x1' = w -
// x2, x2' = w - x1 (no -1), vertical the same with y and h, diagonal both.
func (a *DetAnnotation) flipBoxes(w, h int, horizontal, vertical bool) {
	for _, boxes := range [][][4]float32{a.Boxes, a.IgnoredBoxes} {
		for i := range boxes {
			b := &boxes[i]
			if horizontal {
				b[0], b[2] = float32(w)-b[2], float32(w)-b[0]
			}
			if vertical {
				b[1], b[3] = float32(h)-b[3], float32(h)-b[1]
			}
		}
	}
}

// noBoxes refuses a geometric transform that would leave a sample's boxes behind.
func noBoxes(s *Sample, transform string) error {
	if s.GT != nil {
		return fmt.Errorf("%s does not move ground truth boxes: detection pipelines take Resize, RandomFlip and Pad", transform)
	}
	return nil
}

// DefaultMaxGT is the number of box slots per image of a detection batch when the pipeline
// does not say (PackDetInputs' max_gt).
const DefaultMaxGT = 64

// DetBatch is the detection part of a Batch: each image's ground truth boxes in fixed-size
// padded arrays, and its scale factor. The images of a detection batch are padded (bottom
// and right) to the largest of the batch, as mmcv's collate pads them; Batch.ImgShapes
// give each image's size before any padding (mmdet's img_shape: the resized image, which
// anchors and boxes are clipped to) and Batch.OriShapes its size as decoded (ori_shape).
type DetBatch struct {
	// MaxGT is G_max, the box slots of each image (PackDetInputs' max_gt); 0 when the
	// pipeline loads no boxes (test pipelines), and then Boxes, Labels and Counts are nil.
	MaxGT int
	// Boxes are the ground truth boxes, [N, MaxGT, 4]: x1, y1, x2, y2 in pixels of the
	// resized (and flipped) image, the first Counts[i] of image i valid and the rest 0.
	// Ignored (difficult) boxes are not here: mmdet 2.x's Faster R-CNN does not use them in
	// training (ignore_iof_thr = -1).
	Boxes []float32
	// Labels are the boxes' classes, [N, MaxGT]; -1 in the unused slots.
	Labels []int32
	// Counts are the numbers of valid boxes, [N].
	Counts []int32
	// Masks are the boxes' instance masks when the pipeline loads them (LoadAnnotations
	// with_mask), nil otherwise: [N, MaxGT, Height, Width] 0/1 bitmaps on the batch's padded
	// canvas (Batch.Height x Batch.Width), slot j of image i the mask of box j (the order
	// of Boxes); 0 in the padding and in the unused slots. Its size is N x MaxGT x the
	// canvas: keep max_gt near the largest number of boxes an image has.
	Masks []uint8
	// ScaleFactors are mmdet's scale_factor per image, [N, 2]: (w_scale, h_scale), the
	// resized size over the decoded size (new_w / w, float32); predicted boxes divided by
	// them are in the coordinates of the image as decoded, where the evaluation scores them.
	ScaleFactors []float32
}

// Valid returns the validity mask of the box slots, [N, MaxGT]: slot j of image i is a box
// when j < Counts[i].
func (d *DetBatch) Valid() []bool {
	out := make([]bool, len(d.Labels))
	for i, n := range d.Counts {
		for j := range int(n) {
			out[i*d.MaxGT+j] = true
		}
	}
	return out
}

// packDet packs the detection parts of samples.
func packDet(b *Batch, samples []Sample) error {
	d := &DetBatch{}
	withGT := samples[0].GT != nil
	withMasks := samples[0].GTMasks != nil
	if withGT {
		d.MaxGT = samples[0].MaxGT
		if d.MaxGT == 0 {
			d.MaxGT = DefaultMaxGT
		}
		d.Boxes = make([]float32, len(samples)*d.MaxGT*4)
		d.Labels = make([]int32, len(samples)*d.MaxGT)
		d.Counts = make([]int32, len(samples))
		for i := range d.Labels {
			d.Labels[i] = -1
		}
		if withMasks {
			d.Masks = make([]uint8, len(samples)*d.MaxGT*b.Height*b.Width)
		}
	}
	for i, s := range samples {
		if (s.GT != nil) != withGT {
			return fmt.Errorf("sample %d has ground truth boxes but sample %d has none", samples[0].Index, s.Index)
		}
		sw, sh := s.ScaleW, s.ScaleH
		if sw == 0 {
			sw, sh = 1, 1
		}
		d.ScaleFactors = append(d.ScaleFactors, sw, sh)
		if (s.GTMasks != nil) != withMasks {
			return fmt.Errorf("sample %d has instance masks but sample %d has none", samples[0].Index, s.Index)
		}
		if !withGT {
			continue
		}
		maxGT := s.MaxGT
		if maxGT == 0 {
			maxGT = DefaultMaxGT
		}
		if maxGT != d.MaxGT {
			return fmt.Errorf("sample %d packs %d boxes an image but sample %d packs %d", s.Index, maxGT, samples[0].Index, d.MaxGT)
		}
		if n := len(s.GT.Boxes); n > d.MaxGT {
			return fmt.Errorf("%s has %d ground truth boxes, more than max_gt = %d: raise PackDetInputs' max_gt", s.Path, n, d.MaxGT)
		}
		d.Counts[i] = int32(len(s.GT.Boxes))
		for j, box := range s.GT.Boxes {
			copy(d.Boxes[(i*d.MaxGT+j)*4:], box[:])
			d.Labels[i*d.MaxGT+j] = s.GT.Labels[j]
		}
		if withMasks {
			if err := packMasks(d.Masks[i*d.MaxGT*b.Height*b.Width:], s, b.Width, b.Height); err != nil {
				return err
			}
		}
	}
	b.Det = d
	return nil
}

// packMasks copies a sample's instance masks into its MaxGT slots of a batch's w x h canvas,
// dst, which is zero.
func packMasks(dst []uint8, s Sample, w, h int) error {
	m := s.GTMasks
	if m.N != len(s.GT.Boxes) {
		return fmt.Errorf("sample %d has %d instance masks for %d ground truth boxes", s.Index, m.N, len(s.GT.Boxes))
	}
	if m.Width != s.Image.Width || m.Height != s.Image.Height {
		return fmt.Errorf("sample %d's instance masks are %dx%d but its image is %dx%d", s.Index, m.Width, m.Height, s.Image.Width, s.Image.Height)
	}
	for j := range m.N {
		src, slot := m.At(j), dst[j*w*h:(j+1)*w*h]
		for y := range m.Height {
			copy(slot[y*w:y*w+m.Width], src[y*m.Width:(y+1)*m.Width])
		}
	}
	return nil
}
