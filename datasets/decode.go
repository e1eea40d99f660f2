package datasets

import (
	"image"
	_ "image/jpeg" // JPEG decoding
	_ "image/png"  // PNG decoding
	"io"
)

func decode(r io.Reader) (Image, error) {
	img, _, err := image.Decode(r)
	if err != nil {
		return Image{}, err
	}
	return FromStd(img), nil
}
