package datasets

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	_ "image/jpeg" // JPEG decoding
	_ "image/png"  // PNG decoding
	"os"

	"github.com/goselfsup/goselfsup/datasets/jpegturbo"
)

// Decoders: JPEG goes to libjpeg-turbo when the library is on the machine (it decodes
// exactly as Pillow does, and several times faster than Go's decoder), else to Go's
// image/jpeg; PNG and the rest to Go's decoders.

// DecoderName says which decoder JPEG files get.
func DecoderName(goOnly bool) string {
	if !goOnly && jpegturbo.Available() {
		return "libjpeg-turbo"
	}
	return "Go image/jpeg"
}

func isJPEG(data []byte) bool { return len(data) > 2 && data[0] == 0xFF && data[1] == 0xD8 }

// decodeBytes decodes an image file's bytes; a JPEG at 1/denom of its size when libjpeg-turbo
// is used (denom 1, 2, 4 or 8). It returns the denominator it used (1 from Go's decoders).
func decodeBytes(data []byte, denom int, goOnly bool) (Image, int, error) {
	if isJPEG(data) && !goOnly && jpegturbo.Available() {
		pix, w, h, err := jpegturbo.Decode(data, denom)
		if err != nil {
			return Image{}, 0, err
		}
		return Image{Width: w, Height: h, Pix: pix}, denom, nil
	}
	img, _, err := image.Decode(bytes.NewReader(data))
	if err != nil {
		return Image{}, 0, err
	}
	return FromStd(img), 1, nil
}

// decodeInto decodes an image file's bytes at full size, a JPEG into a buffer from get when
// libjpeg-turbo decodes it.
func decodeInto(get func(n int) []uint8, data []byte, goOnly bool) (Image, error) {
	if isJPEG(data) && !goOnly && jpegturbo.Available() {
		pix, w, h, err := jpegturbo.DecodeInto(get, data, 1)
		if err != nil {
			return Image{}, err
		}
		return Image{Width: w, Height: h, Pix: pix}, nil
	}
	img, _, err := decodeBytes(data, 1, true)
	return img, err
}

// DecodeBytes decodes a JPEG or PNG file's bytes.
func DecodeBytes(data []byte) (Image, error) {
	img, _, err := decodeBytes(data, 1, false)
	return img, err
}

// DecodeFile decodes a JPEG or PNG file.
func DecodeFile(path string) (Image, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Image{}, err
	}
	img, _, err := decodeBytes(data, 1, false)
	if err != nil {
		return Image{}, fmt.Errorf("decoding %s: %w", path, err)
	}
	return img, nil
}

// FromStd converts a decoded image, with fast paths for what Go's JPEG and PNG decoders
// return.
func FromStd(src image.Image) Image {
	b := src.Bounds()
	w, h := b.Dx(), b.Dy()
	m := NewImage(w, h)
	switch s := src.(type) {
	case *image.YCbCr:
		for y := 0; y < h; y++ {
			row := m.Pix[y*w*3:]
			yi := s.YOffset(b.Min.X, b.Min.Y+y)
			for x := 0; x < w; x++ {
				ci := s.COffset(b.Min.X+x, b.Min.Y+y)
				r, g, bl := color.YCbCrToRGB(s.Y[yi+x], s.Cb[ci], s.Cr[ci])
				row[3*x], row[3*x+1], row[3*x+2] = r, g, bl
			}
		}
	case *image.Gray:
		for y := 0; y < h; y++ {
			src := s.Pix[(y)*s.Stride : y*s.Stride+w]
			row := m.Pix[y*w*3:]
			for x, v := range src {
				row[3*x], row[3*x+1], row[3*x+2] = v, v, v
			}
		}
	case *image.NRGBA:
		for y := 0; y < h; y++ {
			src := s.Pix[y*s.Stride:]
			row := m.Pix[y*w*3:]
			for x := 0; x < w; x++ {
				row[3*x], row[3*x+1], row[3*x+2] = src[4*x], src[4*x+1], src[4*x+2]
			}
		}
	case *image.RGBA:
		for y := 0; y < h; y++ {
			src := s.Pix[y*s.Stride:]
			row := m.Pix[y*w*3:]
			for x := 0; x < w; x++ {
				row[3*x], row[3*x+1], row[3*x+2] = src[4*x], src[4*x+1], src[4*x+2]
			}
		}
	default:
		i := 0
		for y := b.Min.Y; y < b.Max.Y; y++ {
			for x := b.Min.X; x < b.Max.X; x++ {
				r, g, bl, _ := src.At(x, y).RGBA()
				m.Pix[i], m.Pix[i+1], m.Pix[i+2] = uint8(r>>8), uint8(g>>8), uint8(bl>>8)
				i += 3
			}
		}
	}
	return m
}
