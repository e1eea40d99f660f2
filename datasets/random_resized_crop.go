package datasets

import (
	"errors"
	"math"
	"math/rand/v2"

	"github.com/goselfsup/goselfsup/registry"
)

// RandomResizedCropConfig is mmselfsup's RandomResizedCrop: a crop of random area (scale,
// a fraction of the image) and aspect ratio, resized to size ([h, w]); after max_attempts
// failed draws, a central crop.
type RandomResizedCropConfig struct {
	Size          Pair       `toml:"size" doc:"the output size [h, w]; one number for a square" required:"true"`
	Scale         [2]float64 `toml:"scale" doc:"the range of the crop's area, as a fraction of the image's"`
	Ratio         [2]float64 `toml:"ratio" doc:"the range of the crop's aspect ratio (width / height), drawn log-uniformly"`
	MaxAttempts   int        `toml:"max_attempts" doc:"the draws before falling back to a central crop"`
	Interpolation string     `toml:"interpolation" doc:"the resampling filter: nearest, bilinear, bicubic, area or lanczos"`
	Backend       string     `toml:"backend" doc:"cv2 or pillow; either way the resampling is Pillow's"`
}

func init() {
	registry.Add(registry.Transforms, "RandomResizedCrop", "crop a random area and aspect ratio, resize to size",
		func() *RandomResizedCropConfig {
			return &RandomResizedCropConfig{Scale: [2]float64{0.08, 1}, Ratio: [2]float64{3.0 / 4, 4.0 / 3},
				MaxAttempts: 10, Interpolation: "bilinear", Backend: "cv2"}
		})
}

func (c *RandomResizedCropConfig) Validate() error {
	var errs []error
	if c.Size[0] == 0 {
		errs = append(errs, registry.FieldErrorf("size", "is required"))
	}
	if c.Scale[0] <= 0 || c.Scale[0] > c.Scale[1] || c.Scale[1] > 1 {
		errs = append(errs, registry.FieldErrorf("scale", "must be an area range within (0, 1], got %v", c.Scale))
	}
	if c.Ratio[0] <= 0 || c.Ratio[0] > c.Ratio[1] {
		errs = append(errs, registry.FieldErrorf("ratio", "must be an aspect-ratio range, got %v", c.Ratio))
	}
	if c.MaxAttempts < 1 {
		errs = append(errs, registry.FieldErrorf("max_attempts", "must be at least 1, got %d", c.MaxAttempts))
	}
	errs = append(errs, oneOf("interpolation", c.Interpolation, interpolations...),
		oneOf("backend", c.Backend, "cv2", "pillow"))
	return errors.Join(errs...)
}

// randomResizedCrop is mmselfsup's RandomResizedCrop (torchvision's get_params).
type randomResizedCrop struct {
	h, w         int
	scale, ratio [2]float64
	attempts     int
	interp       Interpolation
}

func (c *RandomResizedCropConfig) Build(*registry.Env) (any, error) {
	return &randomResizedCrop{h: c.Size[0], w: c.Size[1], scale: c.Scale, ratio: c.Ratio,
		attempts: c.MaxAttempts, interp: Interpolation(c.Interpolation)}, nil
}

// cropParams returns the crop (y, x, h, w) for an image of the given size.
func (t *randomResizedCrop) cropParams(height, width int, rng *rand.Rand) (int, int, int, int) {
	area := float64(height * width)
	logLo, logHi := math.Log(t.ratio[0]), math.Log(t.ratio[1])
	for range t.attempts {
		target := uniform(rng, t.scale[0], t.scale[1]) * area
		aspect := math.Exp(uniform(rng, logLo, logHi))
		w := pyRound(math.Sqrt(target * aspect))
		h := pyRound(math.Sqrt(target / aspect))
		if w > 0 && w <= width && h > 0 && h <= height {
			return rng.IntN(height - h + 1), rng.IntN(width - w + 1), h, w
		}
	}
	// Fall back to a central crop with the nearest allowed aspect ratio.
	inRatio := float64(width) / float64(height)
	w, h := width, height
	switch {
	case inRatio < t.ratio[0]:
		h = pyRound(float64(w) / t.ratio[0])
	case inRatio > t.ratio[1]:
		w = pyRound(float64(h) * t.ratio[1])
	}
	return (height - h) / 2, (width - w) / 2, h, w
}

func (t *randomResizedCrop) Apply(s *Sample, rng *rand.Rand) error {
	if err := noBoxes(s, "RandomResizedCrop"); err != nil {
		return err
	}
	if s.Mask != nil {
		return errNoMaps("RandomResizedCrop")
	}
	y, x, h, w := t.cropParams(s.Image.Height, s.Image.Width, rng)
	img, err := s.Image.ResizeRegion(x, y, w, h, t.w, t.h, t.interp)
	s.setImage(img)
	return err
}
