package datasets

import (
	"errors"
	"fmt"

	"github.com/goselfsup/goselfsup/registry"
)

// The configs of the transforms, with mmselfsup's (and mmcv's) names, keys and defaults.

// Pair is a size written as one number (both sides) or as two; each transform says which
// order its two numbers take, as mmcv does.
type Pair [2]int

func (p *Pair) UnmarshalTOML(v any) error {
	switch x := v.(type) {
	case int64:
		p[0], p[1] = int(x), int(x)
	case []any:
		if len(x) != 2 {
			return fmt.Errorf("expected a number or two numbers, got %d numbers", len(x))
		}
		for i, e := range x {
			n, ok := e.(int64)
			if !ok {
				return fmt.Errorf("expected integers, got %v", e)
			}
			p[i] = int(n)
		}
	default:
		return fmt.Errorf("expected a number or an array of two numbers, got %v", v)
	}
	if p[0] < 1 || p[1] < 1 {
		return fmt.Errorf("sizes must be positive, got %v", *p)
	}
	return nil
}

// Jitter is a ColorJitter strength: a number s means factors drawn from [1-s, 1+s] (for hue,
// shifts from [-s, s]); two numbers give the range itself, as in torchvision.
type Jitter struct {
	Strength float64
	Bounds   *[2]float64 // the explicit [min, max], if given
}

func (j *Jitter) UnmarshalTOML(v any) error {
	num := func(e any) (float64, bool) {
		switch n := e.(type) {
		case float64:
			return n, true
		case int64:
			return float64(n), true
		}
		return 0, false
	}
	if x, ok := v.([]any); ok {
		if len(x) != 2 {
			return fmt.Errorf("expected a strength or a [min, max] range, got %d numbers", len(x))
		}
		lo, ok1 := num(x[0])
		hi, ok2 := num(x[1])
		if !ok1 || !ok2 || lo > hi {
			return fmt.Errorf("expected a [min, max] range, got %v", v)
		}
		*j = Jitter{Bounds: &[2]float64{lo, hi}}
		return nil
	}
	s, ok := num(v)
	if !ok || s < 0 {
		return fmt.Errorf("expected a non-negative strength or a [min, max] range, got %v", v)
	}
	*j = Jitter{Strength: s}
	return nil
}

// Range returns the range the factor is drawn from: center ± strength, or the bounds.
func (j Jitter) Range(center float64) (lo, hi float64) {
	if j.Bounds != nil {
		return j.Bounds[0], j.Bounds[1]
	}
	return center - j.Strength, center + j.Strength
}

func probability(key string, p float64) error {
	if p < 0 || p > 1 {
		return registry.FieldErrorf(key, "must be a probability in [0, 1], got %g", p)
	}
	return nil
}

func oneOf(key, v string, allowed ...string) error {
	for _, a := range allowed {
		if v == a {
			return nil
		}
	}
	return registry.FieldErrorf(key, "must be one of %q, got %q", allowed, v)
}

var interpolations = []string{"nearest", "bilinear", "bicubic", "area", "lanczos"}

// LoadImageFromFileConfig decodes the image file of a sample. imdecode_backend "cv2",
// "pillow" and "turbojpeg" all mean libjpeg-turbo when the machine has it (their decoders use
// it; the pixels are the same), else Go's decoder; "go" (goselfsup's own) forces Go's.
type LoadImageFromFileConfig struct {
	ToFloat32       bool   `toml:"to_float32"`
	ColorType       string `toml:"color_type"`
	ImdecodeBackend string `toml:"imdecode_backend"`
	IgnoreEmpty     bool   `toml:"ignore_empty"`
}

func (c *LoadImageFromFileConfig) Validate() error {
	return errors.Join(oneOf("color_type", c.ColorType, "color", "grayscale", "unchanged"),
		oneOf("imdecode_backend", c.ImdecodeBackend, "cv2", "pillow", "turbojpeg", "go"))
}

// RandomResizedCropConfig is mmselfsup's RandomResizedCrop: a crop of random area (scale,
// a fraction of the image) and aspect ratio, resized to size ([h, w]); after max_attempts
// failed draws, a central crop.
type RandomResizedCropConfig struct {
	Size          Pair       `toml:"size"`
	Scale         [2]float64 `toml:"scale"`
	Ratio         [2]float64 `toml:"ratio"`
	MaxAttempts   int        `toml:"max_attempts"`
	Interpolation string     `toml:"interpolation"`
	Backend       string     `toml:"backend"`
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

// RandomGrayscaleConfig is mmselfsup's RandomGrayscale: with probability prob, the weighted
// sum of the channels (weights in BGR order, as mmselfsup loads images), kept as three
// channels if keep_channels.
type RandomGrayscaleConfig struct {
	Prob           float64    `toml:"prob"`
	KeepChannels   bool       `toml:"keep_channels"`
	ChannelWeights [3]float64 `toml:"channel_weights"`
	ColorFormat    string     `toml:"color_format"`
}

func (c *RandomGrayscaleConfig) Validate() error {
	return errors.Join(probability("prob", c.Prob), oneOf("color_format", c.ColorFormat, "bgr", "rgb"))
}

// ColorJitterConfig is mmselfsup's ColorJitter: brightness, contrast, saturation and hue
// factors, applied in a random order, always (wrap it in RandomApply for a probability).
type ColorJitterConfig struct {
	Brightness Jitter `toml:"brightness"`
	Contrast   Jitter `toml:"contrast"`
	Saturation Jitter `toml:"saturation"`
	Hue        Jitter `toml:"hue"`
	Backend    string `toml:"backend"`
}

func (c *ColorJitterConfig) Validate() error {
	var errs []error
	if lo, hi := c.Hue.Range(0); lo < -0.5 || hi > 0.5 {
		errs = append(errs, registry.FieldErrorf("hue", "must stay within [-0.5, 0.5], got [%g, %g]", lo, hi))
	}
	for _, j := range []struct {
		key string
		v   Jitter
	}{{"brightness", c.Brightness}, {"contrast", c.Contrast}, {"saturation", c.Saturation}} {
		if lo, _ := j.v.Range(1); lo < 0 {
			errs = append(errs, registry.FieldErrorf(j.key, "its factors must not be negative, got a range from %g", lo))
		}
	}
	return errors.Join(append(errs, oneOf("backend", c.Backend, "cv2", "pillow"))...)
}

// RandomFlipConfig flips the image with probability prob.
type RandomFlipConfig struct {
	Prob      float64 `toml:"prob"`
	Direction string  `toml:"direction"`
}

func (c *RandomFlipConfig) Validate() error {
	return errors.Join(probability("prob", c.Prob),
		oneOf("direction", c.Direction, "horizontal", "vertical", "diagonal"))
}

// ResizeEdgeConfig resizes so that one edge ("short", "long", "width", "height") has
// length scale, keeping the aspect ratio.
type ResizeEdgeConfig struct {
	Scale         int    `toml:"scale"`
	Edge          string `toml:"edge"`
	Backend       string `toml:"backend"`
	Interpolation string `toml:"interpolation"`
}

func (c *ResizeEdgeConfig) Validate() error {
	var errs []error
	if c.Scale < 1 {
		errs = append(errs, registry.FieldErrorf("scale", "must be at least 1, got %d", c.Scale))
	}
	return errors.Join(append(errs, oneOf("edge", c.Edge, "short", "long", "width", "height"),
		oneOf("backend", c.Backend, "cv2", "pillow"), oneOf("interpolation", c.Interpolation, interpolations...))...)
}

// ResizeConfig is mmcv's Resize: to scale ([w, h]; one number for a square), or, with
// keep_ratio, as large as fits in it.
type ResizeConfig struct {
	Scale         Pair   `toml:"scale"`
	KeepRatio     bool   `toml:"keep_ratio"`
	Backend       string `toml:"backend"`
	Interpolation string `toml:"interpolation"`
}

func (c *ResizeConfig) Validate() error {
	var errs []error
	if c.Scale[0] == 0 {
		errs = append(errs, registry.FieldErrorf("scale", "is required"))
	}
	return errors.Join(append(errs, oneOf("backend", c.Backend, "cv2", "pillow"),
		oneOf("interpolation", c.Interpolation, interpolations...))...)
}

// CenterCropConfig crops the centre, crop_size ([w, h]; one number for a square).
type CenterCropConfig struct {
	CropSize Pair `toml:"crop_size"`
}

func (c *CenterCropConfig) Validate() error {
	if c.CropSize[0] == 0 {
		return registry.FieldErrorf("crop_size", "is required")
	}
	return nil
}

// RandomCropConfig crops at a random place, crop_size ([h, w]; one number for a square),
// after optional padding.
type RandomCropConfig struct {
	CropSize    Pair   `toml:"crop_size"`
	Padding     *Pair  `toml:"padding"`
	PadIfNeeded bool   `toml:"pad_if_needed"`
	PadVal      int    `toml:"pad_val"`
	PaddingMode string `toml:"padding_mode"`
}

func (c *RandomCropConfig) Validate() error {
	var errs []error
	if c.CropSize[0] == 0 {
		errs = append(errs, registry.FieldErrorf("crop_size", "is required"))
	}
	return errors.Join(append(errs, oneOf("padding_mode", c.PaddingMode, "constant", "edge", "reflect", "symmetric"))...)
}

// LightingConfig is AlexNet-style PCA lighting noise: eigval and eigvec of the pixel
// covariance (BGR order, 0-255 units), scaled by noise ~ N(0, alphastd).
type LightingConfig struct {
	Eigval   [3]float64    `toml:"eigval"`
	Eigvec   [3][3]float64 `toml:"eigvec"`
	Alphastd float64       `toml:"alphastd"`
	ToRGB    bool          `toml:"to_rgb"`
}

func (c *LightingConfig) Validate() error {
	if c.Alphastd < 0 {
		return registry.FieldErrorf("alphastd", "must not be negative, got %g", c.Alphastd)
	}
	return nil
}

// NormalizeConfig is mmcv's Normalize: (x - mean) / std per channel, in 0-255 units, after
// a BGR to RGB flip when to_rgb. goselfsup keeps batches uint8 and normalises on the device:
// a Normalize at the end of a pipeline becomes the model's data_preprocessor.
type NormalizeConfig struct {
	Mean  [3]float64 `toml:"mean"`
	Std   [3]float64 `toml:"std"`
	ToRGB bool       `toml:"to_rgb"`
}

func (c *NormalizeConfig) Validate() error {
	var errs []error
	for i, s := range c.Std {
		if s <= 0 {
			errs = append(errs, registry.FieldErrorf(fmt.Sprintf("std.%d", i), "must be positive, got %g", s))
		}
	}
	return errors.Join(errs...)
}

// PackSelfSupInputsConfig packs the image and the algorithm's keys (sample_idx for NPID)
// into the model's inputs.
type PackSelfSupInputsConfig struct {
	Key             string   `toml:"key"`
	AlgorithmKeys   []string `toml:"algorithm_keys"`
	PseudoLabelKeys []string `toml:"pseudo_label_keys"`
	MetaKeys        []string `toml:"meta_keys"`
}

// PackClsInputsConfig packs the image and its label.
type PackClsInputsConfig struct {
	MetaKeys []string `toml:"meta_keys"`
}

func init() {
	reg := func(typ, doc string, newCfg func() any) {
		registry.Register(registry.Component{Namespace: registry.Transforms, Type: typ, Doc: doc, New: newCfg})
	}
	reg("LoadImageFromFile", "decode the sample's image file",
		func() any { return &LoadImageFromFileConfig{ColorType: "color", ImdecodeBackend: "cv2"} })
	reg("RandomResizedCrop", "crop a random area and aspect ratio, resize to size",
		func() any {
			return &RandomResizedCropConfig{Scale: [2]float64{0.08, 1}, Ratio: [2]float64{3.0 / 4, 4.0 / 3},
				MaxAttempts: 10, Interpolation: "bilinear", Backend: "cv2"}
		})
	reg("RandomGrayscale", "convert to grayscale with probability prob",
		func() any {
			return &RandomGrayscaleConfig{Prob: 0.1, ChannelWeights: [3]float64{1, 1, 1}, ColorFormat: "bgr"}
		})
	reg("ColorJitter", "jitter brightness, contrast, saturation and hue in random order",
		func() any { return &ColorJitterConfig{Backend: "pillow"} })
	reg("RandomFlip", "flip with probability prob",
		func() any { return &RandomFlipConfig{Prob: 0.5, Direction: "horizontal"} })
	reg("ResizeEdge", "resize one edge to scale, keeping the aspect ratio",
		func() any { return &ResizeEdgeConfig{Edge: "short", Backend: "cv2", Interpolation: "bilinear"} })
	reg("Resize", "resize to scale",
		func() any { return &ResizeConfig{Backend: "cv2", Interpolation: "bilinear"} })
	reg("CenterCrop", "crop the centre",
		func() any { return &CenterCropConfig{} })
	reg("RandomCrop", "crop at a random place",
		func() any { return &RandomCropConfig{PaddingMode: "constant"} })
	reg("Lighting", "PCA lighting noise",
		func() any { return &LightingConfig{Alphastd: 0.1} })
	reg("Normalize", "(x - mean) / std, applied on the device with the batch",
		func() any { return &NormalizeConfig{ToRGB: true} })
	reg("PackSelfSupInputs", "pack the image and the algorithm's keys",
		func() any { return &PackSelfSupInputsConfig{Key: "img"} })
	reg("PackClsInputs", "pack the image and its label",
		func() any {
			return &PackClsInputsConfig{MetaKeys: []string{"sample_idx", "img_path", "ori_shape", "img_shape", "scale_factor", "flip", "flip_direction"}}
		})
}
