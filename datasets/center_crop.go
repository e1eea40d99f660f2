package datasets

import (
	"math/rand/v2"

	"github.com/goselfsup/goselfsup/registry"
)

// CenterCropConfig crops the centre, crop_size ([w, h]; one number for a square).
type CenterCropConfig struct {
	CropSize Pair `toml:"crop_size" doc:"the crop's size [w, h]; one number for a square" required:"true"`
}

func init() {
	registry.Add(registry.Transforms, "CenterCrop", "crop the centre",
		func() *CenterCropConfig { return &CenterCropConfig{} })
}

func (c *CenterCropConfig) Validate() error {
	if c.CropSize[0] == 0 {
		return registry.FieldErrorf("crop_size", "is required")
	}
	return nil
}

// centerCrop is mmcv's CenterCrop of crop_size ([w, h]); an image smaller than the crop is
// kept whole along that axis.
type centerCrop struct{ w, h int }

func (c *CenterCropConfig) Build(*registry.Env) (any, error) {
	return &centerCrop{w: c.CropSize[0], h: c.CropSize[1]}, nil
}

func (t *centerCrop) Apply(s *Sample, _ *rand.Rand) error {
	if err := noBoxes(s, "CenterCrop"); err != nil {
		return err
	}
	if s.Mask != nil {
		return errNoMaps("CenterCrop")
	}
	w, h := min(t.w, s.Image.Width), min(t.h, s.Image.Height)
	y := max(0, pyRound(float64(s.Image.Height-t.h)/2))
	x := max(0, pyRound(float64(s.Image.Width-t.w)/2))
	s.setImage(s.Image.Crop(x, y, w, h))
	return nil
}
