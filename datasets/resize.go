package datasets

import (
	"errors"
	"math"
	"math/rand/v2"

	"github.com/goselfsup/goselfsup/registry"
)

// ResizeConfig is mmcv's Resize: to scale ([w, h]; one number for a square), or, with
// keep_ratio, as large as fits in it.
type ResizeConfig struct {
	Scale         Pair   `toml:"scale" doc:"the output size [w, h]; one number for a square" required:"true"`
	KeepRatio     bool   `toml:"keep_ratio" doc:"keep the aspect ratio: the largest size that fits in scale"`
	Backend       string `toml:"backend" doc:"cv2 or pillow; either way the resampling is Pillow's"`
	Interpolation string `toml:"interpolation" doc:"the resampling filter: nearest, bilinear, bicubic, area or lanczos"`
}

func init() {
	registry.Add(registry.Transforms, "Resize", "resize to scale",
		func() *ResizeConfig { return &ResizeConfig{Backend: "cv2", Interpolation: "bilinear"} })
}

func (c *ResizeConfig) Validate() error {
	var errs []error
	if c.Scale[0] == 0 {
		errs = append(errs, registry.FieldErrorf("scale", "is required"))
	}
	return errors.Join(append(errs, oneOf("backend", c.Backend, "cv2", "pillow"),
		oneOf("interpolation", c.Interpolation, interpolations...))...)
}

// resize is mmcv's Resize to scale ([w, h]); with keep_ratio, as large as fits.
type resize struct {
	w, h      int
	keepRatio bool
	interp    Interpolation
}

func (c *ResizeConfig) Build(*registry.Env) (any, error) {
	return &resize{w: c.Scale[0], h: c.Scale[1], keepRatio: c.KeepRatio, interp: Interpolation(c.Interpolation)}, nil
}

func (t *resize) Apply(s *Sample, _ *rand.Rand) error {
	w, h := t.w, t.h
	if t.keepRatio {
		long, short := float64(max(t.w, t.h)), float64(min(t.w, t.h))
		iw, ih := float64(s.Image.Width), float64(s.Image.Height)
		f := math.Min(long/math.Max(iw, ih), short/math.Min(iw, ih))
		w, h = int(iw*f+0.5), int(ih*f+0.5)
	}
	img, err := s.Image.Resize(w, h, t.interp)
	s.setImage(img)
	return err
}
