package datasets

import (
	"errors"
	"fmt"
	"math/rand/v2"

	"github.com/goselfsup/goselfsup/registry"
)

// LoadAnnotationsConfig is mmseg's LoadAnnotations on segmentation samples: it reads the
// sample's segmentation map (gt_seg_map) from the file the dataset names, applies
// reduce_zero_label and then the dataset's class subset (label_map), in mmseg's order. On
// detection samples (VOCDataset, CocoDataset) it is mmdet 2.x's LoadAnnotations(with_bbox=True): the
// dataset's boxes, labels and ignored boxes become the sample's ground truth (Sample.GT),
// in the coordinates of the image as decoded, which the geometric transforms after it
// move with the image. With with_mask (CocoDataset), it also decodes the instance mask of
// each box into a bitmap of the image's size (poly2mask: COCO polygons and RLE, as
// pycocotools decodes them) into Sample.GTMasks; this happens for each sample as it
// loads, never for the whole dataset up front. It must come before the geometric
// transforms (directly after LoadImageFromFile, as in mmdet's pipelines).
type LoadAnnotationsConfig struct {
	ReduceZeroLabel *bool  `toml:"reduce_zero_label" doc:"label 0 becomes 255 (ignored) and the others shift down by one; unset: the dataset's reduce_zero_label"`
	ImdecodeBackend string `toml:"imdecode_backend" doc:"mmseg's decoder of the maps (pillow); no effect: PNGs are decoded by Go's image/png, with the same indices"`
	WithBBox        *bool  `toml:"with_bbox" doc:"mmdet: load the boxes of a detection dataset (unset: yes on detection samples); true on samples without boxes is an error"`
	WithLabel       bool   `toml:"with_label" doc:"mmdet: load the boxes' labels; must be true"`
	WithSeg         *bool  `toml:"with_seg" doc:"load the segmentation map (unset: yes on segmentation samples, no on detection samples)"`
	WithMask        bool   `toml:"with_mask" doc:"mmdet: load the instance masks of the boxes as bitmaps (CocoDataset), which the geometric transforms move with the image and the batch packs (DetBatch.Masks)"`
	Poly2Mask       bool   `toml:"poly2mask" doc:"mmdet: instance masks as bitmaps; must be true (polygon masks are not supported)"`
	DenormBBox      bool   `toml:"denorm_bbox" doc:"mmdet: boxes in [0, 1] to pixels; not supported"`
}

func init() {
	registry.Add(registry.Transforms, "LoadAnnotations", "read the sample's segmentation map (mmseg), or its boxes (mmdet, with_bbox)",
		func() *LoadAnnotationsConfig {
			return &LoadAnnotationsConfig{ImdecodeBackend: "pillow", WithLabel: true, Poly2Mask: true}
		})
}

func (c *LoadAnnotationsConfig) Validate() error {
	var errs []error
	if !c.WithLabel {
		errs = append(errs, registry.FieldErrorf("with_label", "false is not supported: boxes come with their labels"))
	}
	if c.WithMask && !c.Poly2Mask {
		errs = append(errs, registry.FieldErrorf("poly2mask", "false (mmdet's PolygonMasks) is not supported: instance masks are bitmaps"))
	}
	if c.WithMask && c.WithBBox != nil && !*c.WithBBox {
		errs = append(errs, registry.FieldErrorf("with_mask", "needs with_bbox: the masks are packed in the order of the boxes"))
	}
	if c.WithMask && c.WithSeg != nil && *c.WithSeg {
		errs = append(errs, registry.FieldErrorf("with_mask", "and with_seg: the instance masks are of detection datasets, the maps of segmentation datasets"))
	}
	if c.DenormBBox {
		errs = append(errs, registry.FieldErrorf("denorm_bbox", "is not supported"))
	}
	if c.WithBBox != nil && !*c.WithBBox && c.WithSeg != nil && !*c.WithSeg {
		errs = append(errs, registry.FieldErrorf("with_bbox", "and with_seg are both false: nothing to load"))
	}
	return errors.Join(errs...)
}

func (c *LoadAnnotationsConfig) Build(*registry.Env) (any, error) {
	return &loadAnnotations{reduceZeroLabel: c.ReduceZeroLabel, withBBox: c.WithBBox, withSeg: c.WithSeg, withMask: c.WithMask}, nil
}

// loadAnnotations reads Sample.Seg into Sample.Mask. Every problem of a map (unreadable,
// a size other than the image's, a value that is neither a class nor the ignore index) is
// a LoadError naming the file: the dataset's skip_corrupt replaces the sample, as it does
// for unreadable images; otherwise the run stops with the file's path.
//
// With with_mask, the instance masks are decoded at the image's size; a mask of another
// size than the decoded image (an annotation whose width and height are not the image's) is
// a LoadError naming the image.
type loadAnnotations struct {
	reduceZeroLabel, withBBox, withSeg *bool
	withMask                           bool
}

func (t *loadAnnotations) Apply(s *Sample, _ *rand.Rand) error {
	if s.Det != nil {
		if t.withSeg != nil && *t.withSeg {
			return errors.New("LoadAnnotations: with_seg on a detection dataset, which gives no segmentation maps")
		}
		if t.withBBox == nil || *t.withBBox {
			s.GT = s.Det.Clone()
		}
		if t.withMask {
			return loadMasks(s)
		}
		return nil
	}
	if t.withMask {
		return errors.New("LoadAnnotations: with_mask, but the dataset gives no instance masks (use CocoDataset)")
	}
	if t.withBBox != nil && *t.withBBox {
		return errors.New("LoadAnnotations: with_bbox, but the dataset gives no boxes (use VOCDataset or CocoDataset)")
	}
	if t.withSeg != nil && !*t.withSeg {
		return nil
	}
	if s.Seg == nil {
		return errors.New("LoadAnnotations: the dataset gives no segmentation maps (use BaseSegDataset or PascalVOCDataset)")
	}
	info := s.Seg
	m, err := readMask(info.Path)
	if err != nil {
		return &LoadError{Path: info.Path, Err: err}
	}
	// The map belongs to the image as decoded: in mmseg's test pipeline, LoadAnnotations
	// comes after Resize, and the map stays at the original size.
	h, w := s.OriHeight, s.OriWidth
	if h == 0 {
		h, w = s.Image.Height, s.Image.Width
	}
	if s.Image.Pix != nil && (m.Width != w || m.Height != h) {
		return &LoadError{Path: info.Path, Err: fmt.Errorf("the segmentation map is %dx%d but its image %s is %dx%d", m.Width, m.Height, s.Path, w, h)}
	}
	reduce := info.ReduceZeroLabel
	if t.reduceZeroLabel != nil {
		reduce = *t.reduceZeroLabel
	}
	if reduce { // mmseg: 0 -> 255, v -> v - 1, and 255 stays 255
		for i, v := range m.Pix {
			switch v {
			case 0, 255:
				m.Pix[i] = 255
			default:
				m.Pix[i] = v - 1
			}
		}
	}
	if info.Classes > 0 {
		for i, v := range m.Pix {
			if int(v) >= info.Classes && int(v) != info.IgnoreIndex {
				return &LoadError{Path: info.Path, Err: fmt.Errorf("the segmentation map has the value %d at (x %d, y %d): classes are 0 to %d, and %d is ignored",
					v, i%m.Width, i/m.Width, info.Classes-1, info.IgnoreIndex)}
			}
		}
	}
	if lm := info.LabelMap; lm != nil { // mmseg: the class subset's label_map, after reduce_zero_label
		for i, v := range m.Pix {
			m.Pix[i] = lm[v]
		}
	}
	s.Mask = m
	return nil
}

// loadMasks decodes the instance masks of a detection sample's boxes into s.GTMasks.
func loadMasks(s *Sample) error {
	if s.Det.Masks == nil {
		return errors.New("LoadAnnotations: with_mask, but the dataset gives no instance masks (use CocoDataset)")
	}
	if s.OriWidth != 0 && (s.Image.Width != s.OriWidth || s.Image.Height != s.OriHeight) {
		return errors.New("LoadAnnotations: with_mask after a transform that resized the image: put LoadAnnotations directly after LoadImageFromFile")
	}
	m, err := s.Det.Masks.DecodeMasks()
	if err != nil {
		return &LoadError{Path: s.Path, Err: fmt.Errorf("decoding the instance masks: %w", err)}
	}
	if m.N != len(s.GT.Boxes) {
		return fmt.Errorf("LoadAnnotations: %d instance masks for %d ground truth boxes", m.N, len(s.GT.Boxes))
	}
	if s.Image.Pix != nil && (m.Width != s.Image.Width || m.Height != s.Image.Height) {
		return &LoadError{Path: s.Path, Err: fmt.Errorf("the annotation gives the image the size %dx%d (its instance masks' size), but it decodes to %dx%d",
			m.Width, m.Height, s.Image.Width, s.Image.Height)}
	}
	s.GTMasks = m
	return nil
}
