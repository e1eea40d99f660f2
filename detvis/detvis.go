// Package detvis draws detections: instance masks blended and boxes outlined in their
// classes' colours on an image, written as PNG (mmdet's show_result, without the text).
package detvis

import (
	"fmt"
	"image/png"
	"io"
	"math"

	"github.com/goselfsup/goselfsup/internal/atomicfile"
	"github.com/goselfsup/goselfsup/segvis"
)

// Thickness is the width of the boxes' outlines, in pixels.
const Thickness = 2

// MaskAlpha is the weight of a class colour blended over a mask's pixels (mmdet 2.x's
// show_result: img[mask] = img[mask] * 0.5 + color * 0.5).
const MaskAlpha = 0.5

// DrawBoxes returns a copy of rgb (height x width x 3, RGB) with each box (x1, y1, x2, y2 in
// pixels, x2 and y2 exclusive) outlined Thickness pixels wide, inside the box, in the colour
// of its label in p (label l takes p[l+1], past the palette's background colour; p wraps
// around). Boxes are clipped to the image.
func DrawBoxes(rgb []uint8, height, width int, boxes [][4]float32, labels []int32, p segvis.Palette) ([]uint8, error) {
	return DrawInstances(rgb, height, width, boxes, labels, nil, p)
}

// DrawInstances is DrawBoxes with each box's instance mask first blended in its colour
// (MaskAlpha): masks[i] is box i's mask, height x width, non-zero inside; masks may be nil,
// and so may any masks[i].
func DrawInstances(rgb []uint8, height, width int, boxes [][4]float32, labels []int32, masks [][]uint8, p segvis.Palette) ([]uint8, error) {
	if len(rgb) != height*width*3 {
		return nil, fmt.Errorf("detvis: %d bytes for a %dx%d RGB image", len(rgb), width, height)
	}
	if len(boxes) != len(labels) {
		return nil, fmt.Errorf("detvis: %d boxes and %d labels", len(boxes), len(labels))
	}
	if masks != nil && len(masks) != len(boxes) {
		return nil, fmt.Errorf("detvis: %d masks for %d boxes", len(masks), len(boxes))
	}
	if len(p) < 2 {
		return nil, fmt.Errorf("detvis: a palette of %d colours", len(p))
	}
	out := append([]uint8(nil), rgb...)
	for i, m := range masks {
		if m == nil {
			continue
		}
		if len(m) != height*width {
			return nil, fmt.Errorf("detvis: mask %d has %d pixels for a %dx%d image", i, len(m), width, height)
		}
		c := p[(int(labels[i])+1)%len(p)]
		for j, v := range m {
			if v == 0 {
				continue
			}
			for k := range 3 {
				px := &out[3*j+k]
				*px = uint8(math.Round(float64(*px)*(1-MaskAlpha) + float64(c[k])*MaskAlpha))
			}
		}
	}
	clip := func(v float32, hi int) int { return min(max(int(math.Round(float64(v))), 0), hi) }
	for i, b := range boxes {
		x1, y1, x2, y2 := clip(b[0], width), clip(b[1], height), clip(b[2], width), clip(b[3], height)
		if x2 <= x1 || y2 <= y1 {
			continue
		}
		c := p[(int(labels[i])+1)%len(p)]
		for y := y1; y < y2; y++ {
			for x := x1; x < x2; x++ {
				if x-x1 < Thickness || x2-1-x < Thickness || y-y1 < Thickness || y2-1-y < Thickness {
					copy(out[(y*width+x)*3:], c[:])
				}
			}
		}
	}
	return out, nil
}

// EncodeBoxes writes DrawBoxes's image as PNG to w.
func EncodeBoxes(w io.Writer, rgb []uint8, height, width int, boxes [][4]float32, labels []int32, p segvis.Palette) error {
	return EncodeInstances(w, rgb, height, width, boxes, labels, nil, p)
}

// EncodeInstances writes DrawInstances's image as PNG to w.
func EncodeInstances(w io.Writer, rgb []uint8, height, width int, boxes [][4]float32, labels []int32, masks [][]uint8, p segvis.Palette) error {
	drawn, err := DrawInstances(rgb, height, width, boxes, labels, masks, p)
	if err != nil {
		return err
	}
	img, err := segvis.RGBImage(drawn, height, width)
	if err != nil {
		return err
	}
	return png.Encode(w, img)
}

// WriteBoxes writes EncodeBoxes's PNG to path, whole or not at all.
func WriteBoxes(path string, rgb []uint8, height, width int, boxes [][4]float32, labels []int32, p segvis.Palette) error {
	return atomicfile.Write(path, func(w io.Writer) error { return EncodeBoxes(w, rgb, height, width, boxes, labels, p) })
}

// WriteInstances writes EncodeInstances's PNG to path, whole or not at all.
func WriteInstances(path string, rgb []uint8, height, width int, boxes [][4]float32, labels []int32, masks [][]uint8, p segvis.Palette) error {
	return atomicfile.Write(path, func(w io.Writer) error {
		return EncodeInstances(w, rgb, height, width, boxes, labels, masks, p)
	})
}
