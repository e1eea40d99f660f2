package datasets

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/goselfsup/goselfsup/registry"
)

// ResizeConfig is mmcv's Resize: to scale ([w, h]; one number for a square), or, with
// keep_ratio, as large as fits in it. A segmentation map is resized with it, nearest. On
// samples of segmentation and detection datasets, backend "cv2" (mmcv's default) resamples
// as OpenCV, as mmseg's and mmdet's pipelines do; elsewhere the resampling is Pillow's,
// whatever the backend, as the classification pipelines' parity with mmselfsup's Pillow
// backend wants.
//
// It also takes mmdet 2.x's keys: img_scale (one scale or a list) with multiscale_mode or
// ratio_range draw the scale of each image, as mmdet 2.x's Resize._random_scale. A
// detection sample's boxes (after LoadAnnotations) are scaled with the image and, with
// bbox_clip_border, clipped to it; Sample.ScaleW and ScaleH record mmdet's scale_factor.
// keep_ratio defaults to false, as in mmcv and mmseg; mmdet 2.x's Resize defaults it to
// true, so a detection config sets it.
type ResizeConfig struct {
	Scale          Pair      `toml:"scale" doc:"the output size [w, h]; one number for a square; this or img_scale is required (inside MultiScaleFlipAug: neither, the wrapper gives it)"`
	ImgScale       Scales    `toml:"img_scale" doc:"mmdet 2.x: the scale [w, h], or a list of them, each image drawing one by multiscale_mode or ratio_range (with keep_ratio: long and short side, in either order)"`
	MultiscaleMode string    `toml:"multiscale_mode" doc:"mmdet 2.x: value (one of img_scale's scales, uniformly) or range (img_scale's two scales bound the long and the short side, each drawn uniformly as an integer)"`
	RatioRange     []float64 `toml:"ratio_range" doc:"mmdet 2.x: [min, max]: img_scale's one scale times a ratio drawn uniformly from it, each side truncated to an integer"`
	KeepRatio      bool      `toml:"keep_ratio" doc:"keep the aspect ratio: the largest size that fits in scale (mmdet 2.x's default is true: set it)"`
	BBoxClipBorder bool      `toml:"bbox_clip_border" doc:"clip the resized boxes to the image (mmdet 2.x)"`
	Backend        string    `toml:"backend" doc:"cv2 or pillow: Pillow's resampling, except on segmentation and detection samples, where cv2 resamples bilinear and nearest as OpenCV (mmseg's, mmdet's)"`
	Interpolation  string    `toml:"interpolation" doc:"the resampling filter: nearest, bilinear, bicubic, area or lanczos"`
	Override       bool      `toml:"override" doc:"mmdet 2.x: resize again when a scale is already set; no effect: each Resize resizes"`
}

// Scales are mmdet 2.x's img_scale: one scale [w, h] (or one number for a square) or a list
// of them.
type Scales []Pair

// TOMLType says what Scales take, for print_config --describe.
func (Scales) TOMLType() string { return "[w, h] or array of [w, h]" }

func (p *Scales) UnmarshalTOML(v any) error {
	x, ok := v.([]any)
	if !ok || len(x) == 0 {
		var one Pair
		if err := one.UnmarshalTOML(v); err != nil {
			return err
		}
		*p = Scales{one}
		return nil
	}
	if _, nested := x[0].([]any); !nested {
		var one Pair
		if err := one.UnmarshalTOML(v); err != nil {
			return err
		}
		*p = Scales{one}
		return nil
	}
	*p = nil
	for i, e := range x {
		var one Pair
		if err := one.UnmarshalTOML(e); err != nil {
			return fmt.Errorf("scale %d: %w", i, err)
		}
		*p = append(*p, one)
	}
	return nil
}

func init() {
	registry.Add(registry.Transforms, "Resize", "resize to scale; mmdet 2.x's img_scale draws it per image; boxes and maps move with the image",
		func() *ResizeConfig {
			return &ResizeConfig{Backend: "cv2", Interpolation: "bilinear", MultiscaleMode: "range", BBoxClipBorder: true}
		})
}

func (c *ResizeConfig) Validate() error {
	var errs []error
	// Neither scale nor img_scale: Build refuses it, unless a MultiScaleFlipAug (mmdet 2.x's
	// test wrapper) gives it its img_scale first.
	if c.Scale[0] != 0 && len(c.ImgScale) > 0 {
		errs = append(errs, registry.FieldErrorf("scale", "and img_scale both give the size: give one"))
	}
	if c.RatioRange != nil {
		switch {
		case len(c.RatioRange) != 2 || c.RatioRange[0] <= 0 || c.RatioRange[0] > c.RatioRange[1]:
			errs = append(errs, registry.FieldErrorf("ratio_range", "must be [min, max] with 0 < min <= max, got %v", c.RatioRange))
		case len(c.ImgScale) != 1:
			errs = append(errs, registry.FieldErrorf("ratio_range", "takes one img_scale, got %d", len(c.ImgScale)))
		}
	} else if len(c.ImgScale) > 1 {
		if c.MultiscaleMode == "range" && len(c.ImgScale) != 2 {
			errs = append(errs, registry.FieldErrorf("img_scale", "in multiscale_mode range takes two scales, got %d", len(c.ImgScale)))
		}
	}
	return errors.Join(append(errs, oneOf("backend", c.Backend, "cv2", "pillow"),
		oneOf("interpolation", c.Interpolation, interpolations...),
		oneOf("multiscale_mode", c.MultiscaleMode, "range", "value"))...)
}

// resize is mmcv's Resize to scale ([w, h]); with keep_ratio, as large as fits. With
// mmdet 2.x's img_scale, scales holds them, and each sample draws its own.
type resize struct {
	w, h      int
	scales    []Pair
	mode      string
	ratio     []float64
	keepRatio bool
	interp    Interpolation
	cv        bool // backend cv2: OpenCV's resampling on segmentation and detection samples
	clip      bool // bbox_clip_border
}

func (c *ResizeConfig) Build(*registry.Env) (any, error) {
	if c.Scale[0] == 0 && len(c.ImgScale) == 0 {
		return nil, registry.FieldErrorf("scale", "(or mmdet 2.x's img_scale) is required; a Resize inside MultiScaleFlipAug takes the wrapper's img_scale")
	}
	return &resize{w: c.Scale[0], h: c.Scale[1], scales: c.ImgScale, mode: c.MultiscaleMode, ratio: c.RatioRange,
		keepRatio: c.KeepRatio, interp: Interpolation(c.Interpolation), cv: c.Backend == "cv2", clip: c.BBoxClipBorder}, nil
}

func (t *resize) Apply(s *Sample, rng *rand.Rand) error {
	cv := t.cv && (s.Seg != nil || s.Mask != nil || s.isDet())
	w, h := t.w, t.h
	if len(t.scales) > 0 {
		w, h = t.scale(rng)
		if w < 1 || h < 1 {
			return fmt.Errorf("Resize: the drawn scale %dx%d is empty", w, h)
		}
	}
	return resizeSample(s, w, h, t.keepRatio, t.interp, cv, t.clip)
}

// scale draws a sample's scale as mmdet 2.x's Resize._random_scale: with ratio_range, the
// one scale times np.random.random_sample() * (max - min) + min, each side truncated; one
// scale: it; mode value: one of them, uniformly (np.random.randint); mode range: the long
// side uniform among the integers from the scales' shortest long side to their longest, then
// the short side likewise. Range scales are (long, short), which keep_ratio reads as it
// reads [w, h].
func (t *resize) scale(rng *rand.Rand) (int, int) {
	switch {
	case t.ratio != nil:
		r := rng.Float64()*(t.ratio[1]-t.ratio[0]) + t.ratio[0]
		return int(float64(t.scales[0][0]) * r), int(float64(t.scales[0][1]) * r)
	case len(t.scales) == 1:
		return t.scales[0][0], t.scales[0][1]
	case t.mode == "value":
		p := t.scales[rng.IntN(len(t.scales))]
		return p[0], p[1]
	}
	longs, shorts := make([]int, len(t.scales)), make([]int, len(t.scales))
	for i, p := range t.scales {
		longs[i], shorts[i] = max(p[0], p[1]), min(p[0], p[1])
	}
	long := slices.Min(longs) + rng.IntN(slices.Max(longs)-slices.Min(longs)+1)
	short := slices.Min(shorts) + rng.IntN(slices.Max(shorts)-slices.Min(shorts)+1)
	return long, short
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
//
// A detection sample's boxes are scaled as mmdet 2.x's Resize._resize_bboxes: times
// scale_factor (new_w / w and new_h / h, as float32) and, with clip, clipped to [0, new_w] x
// [0, new_h]; the sample's ScaleW and ScaleH are multiplied by the factor (mmdet keeps the
// last resize's factor: the same for pipelines with one resize). Its instance masks are
// resized to the same size with OpenCV's nearest rule, as mmdet 2.x's BitmapMasks.rescale.
func resizeSample(s *Sample, w, h int, keepRatio bool, interp Interpolation, cv, clip bool) error {
	if err := checkMasks(s, "Resize"); err != nil {
		return err
	}
	if keepRatio {
		w, h = rescaleSize(s.Image.Width, s.Image.Height, w, h)
	}
	if s.isDet() {
		sw, sh := float32(float64(w)/float64(s.Image.Width)), float32(float64(h)/float64(s.Image.Height))
		if s.GT != nil {
			s.GT.scaleBoxes(sw, sh, w, h, clip)
		}
		if s.ScaleW == 0 {
			s.ScaleW, s.ScaleH = sw, sh
		} else {
			s.ScaleW, s.ScaleH = s.ScaleW*sw, s.ScaleH*sh
		}
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
	if s.GTMasks != nil { // mmdet 2.x: BitmapMasks.rescale / resize, nearest on cv2, whatever the image's filter
		s.GTMasks = s.GTMasks.ResizeNearest(w, h)
	}
	return nil
}
