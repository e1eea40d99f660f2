package datasets

import (
	"errors"
	"math"
	"math/rand/v2"

	"github.com/goselfsup/goselfsup/registry"
)

// ResizeConfig is mmcv's Resize: to scale ([w, h]; one number for a square), or, with
// keep_ratio, as large as fits in it. A segmentation map is resized with it, nearest. On
// samples of segmentation datasets, backend "cv2" (mmcv's default) resamples as OpenCV, as
// mmseg's pipelines do; elsewhere the resampling is Pillow's, whatever the backend, as the
// classification pipelines' parity with mmselfsup's Pillow backend wants.
type ResizeConfig struct {
	Scale         Pair   `toml:"scale" doc:"the output size [w, h]; one number for a square" required:"true"`
	KeepRatio     bool   `toml:"keep_ratio" doc:"keep the aspect ratio: the largest size that fits in scale"`
	Backend       string `toml:"backend" doc:"cv2 or pillow: Pillow's resampling, except on segmentation samples, where cv2 resamples bilinear and nearest as OpenCV (mmseg's)"`
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
	cv        bool // backend cv2: OpenCV's resampling on segmentation samples
}

func (c *ResizeConfig) Build(*registry.Env) (any, error) {
	return &resize{w: c.Scale[0], h: c.Scale[1], keepRatio: c.KeepRatio, interp: Interpolation(c.Interpolation),
		cv: c.Backend == "cv2"}, nil
}

func (t *resize) Apply(s *Sample, _ *rand.Rand) error {
	cv := t.cv && (s.Seg != nil || s.Mask != nil)
	return resizeSample(s, t.w, t.h, t.keepRatio, t.interp, cv)
}

// rescaleSize is mmcv's rescale_size: the size of a w x h image rescaled to fit in the
// scale (long and short sides, in either order), keeping its aspect ratio.
func rescaleSize(w, h, sw, sh int) (int, int) {
	long, short := float64(max(sw, sh)), float64(min(sw, sh))
	iw, ih := float64(w), float64(h)
	f := math.Min(long/math.Max(iw, ih), short/math.Min(iw, ih))
	return int(iw*f + 0.5), int(ih*f + 0.5)
}

// resizeSample is mmcv's Resize to [w, h], or with keepRatio to the largest size that fits
// in it: the image with interp, the segmentation map (if any) with nearest, to the same size.
// With cv, bilinear and nearest resample as OpenCV's cv::resize (mmcv's "cv2" backend);
// otherwise, and for the other filters, as Pillow.
func resizeSample(s *Sample, w, h int, keepRatio bool, interp Interpolation, cv bool) error {
	if keepRatio {
		w, h = rescaleSize(s.Image.Width, s.Image.Height, w, h)
	}
	var img Image
	var err error
	switch {
	case cv && interp == Bilinear:
		img = s.Image.resizeLinearCV(w, h)
	case cv && interp == Nearest:
		img = s.Image.resizeNearestCV(w, h)
	default:
		img, err = s.Image.Resize(w, h, interp)
	}
	s.setImage(img)
	if err != nil {
		return err
	}
	if s.Mask != nil {
		s.Mask = s.Mask.ResizeNearest(w, h)
	}
	return nil
}
