package datasets

import "fmt"

// InstanceMasks are a detection sample's instance masks, mmdet 2.x's BitmapMasks (the
// results' gt_masks): one 0/1 bitmap of Width x Height for each ground truth box, in the
// order of the boxes (DetAnnotation.Boxes; ignored boxes have none), one uint8 a pixel,
// row-major, the bitmaps one after another. LoadAnnotations (with_mask) decodes them at
// the size of the image as decoded, and Resize, RandomResize, RandomFlip and Pad move them
// with the image.
type InstanceMasks struct {
	N, Width, Height int
	// Pix holds the N bitmaps, [N, Height, Width].
	Pix []uint8
}

// NewInstanceMasks returns n empty (all 0) bitmaps of w x h.
func NewInstanceMasks(n, w, h int) *InstanceMasks {
	return &InstanceMasks{N: n, Width: w, Height: h, Pix: make([]uint8, n*w*h)}
}

// At returns bitmap i, Height x Width row-major; it shares the masks' memory.
func (m *InstanceMasks) At(i int) []uint8 {
	n := m.Width * m.Height
	return m.Pix[i*n : (i+1)*n]
}

// Clone returns a deep copy.
func (m *InstanceMasks) Clone() *InstanceMasks {
	if m == nil {
		return nil
	}
	c := *m
	c.Pix = append([]uint8(nil), m.Pix...)
	return &c
}

// ResizeNearest returns the bitmaps resized to w x h as mmdet 2.x's BitmapMasks.rescale and
// resize do: mmcv's imresize with interpolation "nearest" on its default cv2 backend, that
// is OpenCV's INTER_NEAREST, with the rule of Mask.ResizeNearest (destination pixel x takes
// source pixel min(floor(x * (1 / (w / srcW))), srcW - 1)).
func (m *InstanceMasks) ResizeNearest(w, h int) *InstanceMasks {
	out := NewInstanceMasks(m.N, w, h)
	xs, ys := nearestIndices(m.Width, w), nearestIndices(m.Height, h)
	for i := range m.N {
		src, dst := m.At(i), out.At(i)
		for y, sy := range ys {
			row, drow := src[sy*m.Width:(sy+1)*m.Width], dst[y*w:(y+1)*w]
			for x, sx := range xs {
				drow[x] = row[sx]
			}
		}
	}
	return out
}

// Flip mirrors the bitmaps in place as mmdet 2.x's BitmapMasks.flip (mmcv's imflip):
// horizontal left and right, vertical top and bottom, both for its diagonal flip.
func (m *InstanceMasks) Flip(horizontal, vertical bool) {
	for i := range m.N {
		b := &Mask{Width: m.Width, Height: m.Height, Pix: m.At(i)}
		if horizontal {
			b.FlipH()
		}
		if vertical {
			b.FlipV()
		}
	}
}

// Pad returns the bitmaps padded at the bottom and right to w x h with v, as mmdet 2.x's
// BitmapMasks.pad (mmcv's impad; Pad's pad_val for masks is 0 unless set).
func (m *InstanceMasks) Pad(w, h int, v uint8) *InstanceMasks {
	out := NewInstanceMasks(m.N, w, h)
	if v != 0 {
		for i := range out.Pix {
			out.Pix[i] = v
		}
	}
	for i := range m.N {
		src, dst := m.At(i), out.At(i)
		for y := range m.Height {
			copy(dst[y*w:], src[y*m.Width:(y+1)*m.Width])
		}
	}
	return out
}

// MaskDecoder gives the instance masks of a detection annotation (DetAnnotation.Masks):
// mmdet 2.x's ann_info masks, the raw polygons or RLE of each ground truth box, which
// LoadAnnotations (with_mask, poly2mask) decodes when it loads the sample, not before.
type MaskDecoder interface {
	// DecodeMasks returns one bitmap for each of the annotation's Boxes, in their order, at
	// the image's size as the annotation states it.
	DecodeMasks() (*InstanceMasks, error)
}

// checkMasks checks that a sample's masks go with its boxes and image.
func checkMasks(s *Sample, transform string) error {
	m := s.GTMasks
	if m == nil {
		return nil
	}
	if m.Width != s.Image.Width || m.Height != s.Image.Height {
		return fmt.Errorf("%s: the instance masks are %dx%d but the image is %dx%d", transform, m.Width, m.Height, s.Image.Width, s.Image.Height)
	}
	if s.GT == nil || m.N != len(s.GT.Boxes) {
		n := 0
		if s.GT != nil {
			n = len(s.GT.Boxes)
		}
		return fmt.Errorf("%s: %d instance masks for %d ground truth boxes", transform, m.N, n)
	}
	return nil
}
