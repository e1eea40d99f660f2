package datasets

import (
	"errors"
	"fmt"
	"math/rand/v2"

	"github.com/goselfsup/goselfsup/registry"
)

// RandomResizeConfig is mmcv's RandomResize with ratio_range: scale ([w, h]) times a ratio
// drawn uniformly from ratio_range, then mmcv's Resize to that scale (keep_ratio: the
// largest size that fits in it). The segmentation map is resized with it, nearest.
type RandomResizeConfig struct {
	Scale         Pair      `toml:"scale" doc:"the base scale [w, h] (with keep_ratio: long and short side, in either order)" required:"true"`
	RatioRange    []float64 `toml:"ratio_range" doc:"[min, max] of the ratio the scale is multiplied by" required:"true"`
	KeepRatio     bool      `toml:"keep_ratio" doc:"keep the aspect ratio: the largest size that fits in the scale"`
	ResizeType    string    `toml:"resize_type" doc:"the resize transform: Resize (mmcv's), the only one supported"`
	Interpolation string    `toml:"interpolation" doc:"the image's resampling filter (maps: nearest): nearest, bilinear, bicubic, area or lanczos"`
	Backend       string    `toml:"backend" doc:"cv2 (mmcv's default): bilinear and nearest resample as OpenCV's cv::resize; pillow, and the other filters: as Pillow"`
}

func init() {
	registry.Add(registry.Transforms, "RandomResize", "resize to a scale times a random ratio (mmcv), the segmentation map too",
		func() *RandomResizeConfig {
			return &RandomResizeConfig{ResizeType: "Resize", Interpolation: "bilinear", Backend: "cv2"}
		})
}

func (c *RandomResizeConfig) Validate() error {
	var errs []error
	if c.Scale[0] == 0 {
		errs = append(errs, registry.FieldErrorf("scale", "is required"))
	}
	switch {
	case len(c.RatioRange) != 2:
		errs = append(errs, registry.FieldErrorf("ratio_range", "must be [min, max] (ranges of scales without ratio_range are not supported)"))
	case c.RatioRange[0] <= 0 || c.RatioRange[0] > c.RatioRange[1]:
		errs = append(errs, registry.FieldErrorf("ratio_range", "must be [min, max] with 0 < min <= max, got %v", c.RatioRange))
	}
	if c.ResizeType != "Resize" {
		errs = append(errs, registry.FieldErrorf("resize_type", "must be Resize, got %q", c.ResizeType))
	}
	return errors.Join(append(errs, oneOf("interpolation", c.Interpolation, interpolations...),
		oneOf("backend", c.Backend, "cv2", "pillow"))...)
}

type randomResize struct {
	w, h      int
	lo, hi    float64
	keepRatio bool
	interp    Interpolation
	cv        bool
}

func (c *RandomResizeConfig) Build(*registry.Env) (any, error) {
	return &randomResize{w: c.Scale[0], h: c.Scale[1], lo: c.RatioRange[0], hi: c.RatioRange[1],
		keepRatio: c.KeepRatio, interp: Interpolation(c.Interpolation), cv: c.Backend == "cv2"}, nil
}

// Apply draws the ratio as mmcv's _random_sample_ratio (np.random.random_sample() *
// (max - min) + min; the scale's sides truncated to integers) and resizes.
func (t *randomResize) Apply(s *Sample, rng *rand.Rand) error {
	w, h := t.scale(rng)
	if w < 1 || h < 1 {
		return fmt.Errorf("RandomResize: the drawn scale %dx%d is empty", w, h)
	}
	return resizeSample(s, w, h, t.keepRatio, t.interp, t.cv, true)
}

func (t *randomResize) scale(rng *rand.Rand) (int, int) {
	r := rng.Float64()*(t.hi-t.lo) + t.lo
	return int(float64(t.w) * r), int(float64(t.h) * r)
}
