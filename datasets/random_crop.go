package datasets

import (
	"errors"
	"fmt"
	"math/rand/v2"

	"github.com/goselfsup/goselfsup/registry"
)

// RandomCropConfig crops at a random place, crop_size ([h, w]; one number for a square),
// after optional padding.
type RandomCropConfig struct {
	CropSize    Pair   `toml:"crop_size" doc:"the crop's size [h, w]; one number for a square" required:"true"`
	Padding     *Pair  `toml:"padding" doc:"the padding of each side [h, w] before cropping; one number for both; none: no padding"`
	PadIfNeeded bool   `toml:"pad_if_needed" doc:"pad images smaller than the crop up to its size"`
	PadVal      int    `toml:"pad_val" doc:"the value of the padding pixels"`
	PaddingMode string `toml:"padding_mode" doc:"constant (the only one supported), edge, reflect or symmetric"`
}

func init() {
	registry.Add(registry.Transforms, "RandomCrop", "crop at a random place",
		func() *RandomCropConfig { return &RandomCropConfig{PaddingMode: "constant"} })
}

func (c *RandomCropConfig) Validate() error {
	var errs []error
	if c.CropSize[0] == 0 {
		errs = append(errs, registry.FieldErrorf("crop_size", "is required"))
	}
	return errors.Join(append(errs, oneOf("padding_mode", c.PaddingMode, "constant", "edge", "reflect", "symmetric"))...)
}

// randomCrop is mmcls's RandomCrop of crop_size ([h, w]) after constant padding.
type randomCrop struct {
	h, w        int
	pad         [2]int // [h, w] on each side
	padIfNeeded bool
	padVal      uint8
}

func (c *RandomCropConfig) Build(*registry.Env) (any, error) {
	if c.PaddingMode != "constant" {
		return nil, fmt.Errorf("padding_mode %q is not supported: use \"constant\"", c.PaddingMode)
	}
	t := &randomCrop{h: c.CropSize[0], w: c.CropSize[1], padIfNeeded: c.PadIfNeeded, padVal: uint8(c.PadVal)}
	if c.Padding != nil {
		t.pad = [2]int{c.Padding[0], c.Padding[1]}
	}
	return t, nil
}

func (t *randomCrop) Apply(s *Sample, rng *rand.Rand) error {
	img := s.Image
	ph, pw := t.pad[0], t.pad[1]
	if t.padIfNeeded {
		ph = max(ph, (t.h-img.Height+1)/2)
		pw = max(pw, (t.w-img.Width+1)/2)
	}
	if ph > 0 || pw > 0 {
		img = img.pad(pw, ph, t.padVal)
	}
	if img.Height < t.h || img.Width < t.w {
		return fmt.Errorf("RandomCrop: a %dx%d image is smaller than the %dx%d crop", img.Width, img.Height, t.w, t.h)
	}
	y := rng.IntN(img.Height - t.h + 1)
	x := rng.IntN(img.Width - t.w + 1)
	s.setImage(img.Crop(x, y, t.w, t.h))
	return nil
}

func (m Image) pad(px, py int, v uint8) Image {
	out := NewImage(m.Width+2*px, m.Height+2*py)
	for i := range out.Pix {
		out.Pix[i] = v
	}
	for y := 0; y < m.Height; y++ {
		copy(out.Pix[((y+py)*out.Width+px)*3:], m.Pix[y*m.Width*3:(y+1)*m.Width*3])
	}
	return out
}
