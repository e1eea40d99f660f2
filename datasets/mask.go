package datasets

import (
	"fmt"
	"image"
	"image/png"
	"math"
	"os"
)

// Mask is a per-pixel class map: one uint8 class index a pixel, row-major.
type Mask struct {
	Width, Height int
	Pix           []uint8 // len = Width * Height
}

// SegMapInfo is where a sample's segmentation map is and how to read it: what mmseg's
// BaseSegDataset puts in each data_info (seg_map_path, reduce_zero_label, label_map) with the
// number of the dataset's own classes, which goselfsup checks the map's values against.
type SegMapInfo struct {
	Path            string
	Classes         int // the dataset's own classes: values (after reduce_zero_label) below it
	IgnoreIndex     int // 255 in mmseg
	ReduceZeroLabel bool
	// LabelMap is mmseg's label_map of a class subset, as a table of the 256 values: a value
	// after reduce_zero_label becomes LabelMap[value]. nil: no subset.
	LabelMap []uint8
}

// Clone returns a copy.
func (m *Mask) Clone() *Mask {
	return &Mask{Width: m.Width, Height: m.Height, Pix: append([]uint8(nil), m.Pix...)}
}

// Crop returns the w x h region at (x0, y0), which must lie inside the mask.
func (m *Mask) Crop(x0, y0, w, h int) *Mask {
	out := &Mask{Width: w, Height: h, Pix: make([]uint8, w*h)}
	for y := 0; y < h; y++ {
		copy(out.Pix[y*w:(y+1)*w], m.Pix[(y0+y)*m.Width+x0:])
	}
	return out
}

// FlipH mirrors left and right in place.
func (m *Mask) FlipH() {
	for y := 0; y < m.Height; y++ {
		row := m.Pix[y*m.Width : (y+1)*m.Width]
		for l, r := 0, len(row)-1; l < r; l, r = l+1, r-1 {
			row[l], row[r] = row[r], row[l]
		}
	}
}

// FlipV mirrors top and bottom in place.
func (m *Mask) FlipV() {
	for t, b := 0, m.Height-1; t < b; t, b = t+1, b-1 {
		top, bottom := m.Pix[t*m.Width:(t+1)*m.Width], m.Pix[b*m.Width:(b+1)*m.Width]
		for i := range top {
			top[i], bottom[i] = bottom[i], top[i]
		}
	}
}

// ResizeNearest is OpenCV's INTER_NEAREST resize (mmcv's imresize of segmentation maps):
// destination pixel x takes source pixel min(floor(x * (1 / (w / srcW))), srcW - 1), in
// double precision, as cv::resize computes it.
func (m *Mask) ResizeNearest(w, h int) *Mask {
	out := &Mask{Width: w, Height: h, Pix: make([]uint8, w*h)}
	xs := nearestIndices(m.Width, w)
	ys := nearestIndices(m.Height, h)
	for y, sy := range ys {
		src, dst := m.Pix[sy*m.Width:(sy+1)*m.Width], out.Pix[y*w:(y+1)*w]
		for x, sx := range xs {
			dst[x] = src[sx]
		}
	}
	return out
}

func nearestIndices(src, dst int) []int {
	inv := 1 / (float64(dst) / float64(src))
	idx := make([]int, dst)
	for x := range idx {
		idx[x] = min(int(math.Floor(float64(x)*inv)), src-1)
	}
	return idx
}

// Pad returns the mask padded at the bottom and right to w x h with v.
func (m *Mask) Pad(w, h int, v uint8) *Mask {
	out := &Mask{Width: w, Height: h, Pix: make([]uint8, w*h)}
	for i := range out.Pix {
		out.Pix[i] = v
	}
	for y := 0; y < m.Height; y++ {
		copy(out.Pix[y*w:], m.Pix[y*m.Width:(y+1)*m.Width])
	}
	return out
}

// errNoMaps is the error of a transform that cannot change a segmentation map with its
// image, on a sample that has one.
func errNoMaps(transform string) error {
	return fmt.Errorf("%s does not transform segmentation maps: use RandomResize, Resize, RandomCrop, RandomFlip or Pad, or put it before LoadAnnotations", transform)
}

// readMask decodes a segmentation map file: a PNG of 8-bit (or 16-bit, values below 256)
// grey levels, which are the class indices, or a palette PNG, whose palette indices are
// the class indices (as Pillow reads VOC's SegmentationClass). mmseg reads the maps with
// Pillow in "unchanged" mode, which gives the same indices.
func readMask(path string) (*Mask, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		return nil, fmt.Errorf("decoding the segmentation map (a PNG is expected): %w", err)
	}
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	m := &Mask{Width: w, Height: h, Pix: make([]uint8, w*h)}
	switch p := img.(type) {
	case *image.Gray:
		for y := 0; y < h; y++ {
			copy(m.Pix[y*w:(y+1)*w], p.Pix[y*p.Stride:])
		}
	case *image.Paletted:
		for y := 0; y < h; y++ {
			copy(m.Pix[y*w:(y+1)*w], p.Pix[y*p.Stride:])
		}
	case *image.Gray16:
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				v := p.Gray16At(b.Min.X+x, b.Min.Y+y).Y
				if v > 255 {
					return nil, fmt.Errorf("the 16-bit segmentation map has the value %d at (%d, %d): class indices must be below 256", v, x, y)
				}
				m.Pix[y*w+x] = uint8(v)
			}
		}
	default:
		return nil, fmt.Errorf("the segmentation map is a %T PNG: it must hold one class index a pixel, as grey levels or palette indices", img)
	}
	return m, nil
}
