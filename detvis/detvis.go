// Package detvis draws detections: boxes outlined in their classes' colours on an image,
// written as PNG (mmdet's show_result, without the text).
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

// DrawBoxes returns a copy of rgb (height x width x 3, RGB) with each box (x1, y1, x2, y2 in
// pixels, x2 and y2 exclusive) outlined Thickness pixels wide, inside the box, in the colour
// of its label in p (label l takes p[l+1], past the palette's background colour; p wraps
// around). Boxes are clipped to the image.
func DrawBoxes(rgb []uint8, height, width int, boxes [][4]float32, labels []int32, p segvis.Palette) ([]uint8, error) {
	if len(rgb) != height*width*3 {
		return nil, fmt.Errorf("detvis: %d bytes for a %dx%d RGB image", len(rgb), width, height)
	}
	if len(boxes) != len(labels) {
		return nil, fmt.Errorf("detvis: %d boxes and %d labels", len(boxes), len(labels))
	}
	if len(p) < 2 {
		return nil, fmt.Errorf("detvis: a palette of %d colours", len(p))
	}
	out := append([]uint8(nil), rgb...)
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
	drawn, err := DrawBoxes(rgb, height, width, boxes, labels, p)
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
