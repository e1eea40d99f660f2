// Package segvis draws semantic segmentation results as mmseg does: a label map coloured by
// a palette and blended over the image (SegLocalVisualizer), and label maps written as
// palette PNGs (the form of VOC's SegmentationClass annotations).
package segvis

import (
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"

	"github.com/goselfsup/goselfsup/internal/atomicfile"
)

// Palette is a colour (R, G, B) per class, in label order.
type Palette [][3]uint8

// VOCColormap is the PASCAL VOC devkit's colour map of n labels: label bits 0, 1, 2 of
// each successive triple set the R, G, B bits from the highest down. Its first 21 colours
// are mmseg's PascalVOCDataset palette (a dataset's palette belongs to its metainfo:
// datasets.VOCSegPalette); label 255 (boundaries, ignored) is (224, 224, 192).
func VOCColormap(n int) Palette {
	p := make(Palette, n)
	for i := range p {
		c := i
		var rgb [3]uint8
		for j := 0; j < 8; j++ {
			for k := range rgb {
				rgb[k] |= uint8((c>>k)&1) << (7 - j)
			}
			c >>= 3
		}
		p[i] = rgb
	}
	return p
}

// VOCFull is the devkit's 256-colour map, for palette PNGs that may hold label 255.
var VOCFull = VOCColormap(256)

// The weight of the colour mask in the blend: mmseg 0.x's show_result draws with opacity
// 0.5, mmseg 1.x's SegLocalVisualizer with alpha 0.8 by default.
const (
	AlphaMMSeg0 = 0.5
	AlphaMMSeg1 = 0.8
)

// Label is a label map's element type.
type Label interface {
	~uint8 | ~int32 | ~int64 | ~int
}

// Overlay blends the colour of each pixel's label over rgb (height x width x 3, row-major
// HWC) as mmseg's visualizer does: mask = palette[label], or black for a label outside the
// palette (mmseg draws only labels below the number of classes), and out = uint8(img *
// (1 - alpha) + mask * alpha), truncated as NumPy's astype(np.uint8).
func Overlay[T Label](rgb []uint8, height, width int, seg []T, p Palette, alpha float64) ([]uint8, error) {
	if height <= 0 || width <= 0 || len(rgb) != height*width*3 {
		return nil, fmt.Errorf("segvis: an image of %d bytes is not %dx%dx3", len(rgb), height, width)
	}
	if len(seg) != height*width {
		return nil, fmt.Errorf("segvis: a label map of %d pixels for a %dx%d image", len(seg), height, width)
	}
	if alpha < 0 || alpha > 1 {
		return nil, fmt.Errorf("segvis: alpha %g is outside [0, 1]", alpha)
	}
	out := make([]uint8, len(rgb))
	keep := 1 - alpha
	for i, l := range seg {
		var mask [3]uint8
		if int(l) >= 0 && int(l) < len(p) {
			mask = p[l]
		}
		for k := range 3 {
			// The explicit conversions keep the two products rounded apart, as NumPy does
			// (no fused multiply-add).
			v := float64(float64(rgb[3*i+k])*keep) + float64(float64(mask[k])*alpha)
			out[3*i+k] = uint8(v)
		}
	}
	return out, nil
}

// RGBImage wraps an HWC RGB buffer as an opaque image.
func RGBImage(rgb []uint8, height, width int) (*image.NRGBA, error) {
	if height <= 0 || width <= 0 || len(rgb) != height*width*3 {
		return nil, fmt.Errorf("segvis: an image of %d bytes is not %dx%dx3", len(rgb), height, width)
	}
	img := image.NewNRGBA(image.Rect(0, 0, width, height))
	for i := range height * width {
		copy(img.Pix[4*i:4*i+3], rgb[3*i:3*i+3])
		img.Pix[4*i+3] = 255
	}
	return img, nil
}

// LabelImage is a label map as a paletted image of p's colours. Every label must have a
// colour: use VOCFull for VOC maps that hold 255.
func LabelImage[T Label](seg []T, height, width int, p Palette) (*image.Paletted, error) {
	if height <= 0 || width <= 0 || len(seg) != height*width {
		return nil, fmt.Errorf("segvis: a label map of %d pixels is not %dx%d", len(seg), height, width)
	}
	if len(p) == 0 || len(p) > 256 {
		return nil, fmt.Errorf("segvis: a palette PNG holds 1 to 256 colours, not %d", len(p))
	}
	pal := make(color.Palette, len(p))
	for i, c := range p {
		pal[i] = color.RGBA{c[0], c[1], c[2], 255}
	}
	img := image.NewPaletted(image.Rect(0, 0, width, height), pal)
	for i, l := range seg {
		if int(l) < 0 || int(l) >= len(p) {
			return nil, fmt.Errorf("segvis: pixel %d has label %d and the palette %d colours", i, l, len(p))
		}
		img.Pix[i] = uint8(l)
	}
	return img, nil
}

// EncodeOverlay writes Overlay's blend as an RGB PNG.
func EncodeOverlay[T Label](w io.Writer, rgb []uint8, height, width int, seg []T, p Palette, alpha float64) error {
	blend, err := Overlay(rgb, height, width, seg, p, alpha)
	if err != nil {
		return err
	}
	img, err := RGBImage(blend, height, width)
	if err != nil {
		return err
	}
	return png.Encode(w, img)
}

// EncodeLabels writes a label map as a palette PNG: its pixels are the labels, and viewers
// show p's colours.
func EncodeLabels[T Label](w io.Writer, seg []T, height, width int, p Palette) error {
	img, err := LabelImage(seg, height, width, p)
	if err != nil {
		return err
	}
	return png.Encode(w, img)
}

// WriteOverlay writes EncodeOverlay's PNG to path, whole or not at all.
func WriteOverlay[T Label](path string, rgb []uint8, height, width int, seg []T, p Palette, alpha float64) error {
	return atomicfile.Write(path, func(w io.Writer) error { return EncodeOverlay(w, rgb, height, width, seg, p, alpha) })
}

// WriteLabels writes EncodeLabels's PNG to path, whole or not at all.
func WriteLabels[T Label](path string, seg []T, height, width int, p Palette) error {
	return atomicfile.Write(path, func(w io.Writer) error { return EncodeLabels(w, seg, height, width, p) })
}
