package datasets

import (
	"errors"
	"math"
	"math/rand/v2"
	"sync"

	"github.com/goselfsup/goselfsup/registry"
)

// PhotoMetricDistortionConfig is mmseg's PhotoMetricDistortion: random brightness, then
// (at random) contrast before or after random saturation and hue, each with probability 0.5.
type PhotoMetricDistortionConfig struct {
	BrightnessDelta int       `toml:"brightness_delta" doc:"the brightness shift is drawn from [-delta, delta]"`
	ContrastRange   []float64 `toml:"contrast_range" doc:"[lower, upper] of the contrast factor"`
	SaturationRange []float64 `toml:"saturation_range" doc:"[lower, upper] of the saturation factor"`
	HueDelta        int       `toml:"hue_delta" doc:"the hue shift (OpenCV's degrees / 2, of 180) is drawn from [-delta, delta)"`
}

func init() {
	registry.Add(registry.Transforms, "PhotoMetricDistortion", "random brightness, contrast, saturation and hue (mmseg)",
		func() *PhotoMetricDistortionConfig {
			return &PhotoMetricDistortionConfig{BrightnessDelta: 32, ContrastRange: []float64{0.5, 1.5},
				SaturationRange: []float64{0.5, 1.5}, HueDelta: 18}
		})
}

func (c *PhotoMetricDistortionConfig) Validate() error {
	var errs []error
	for _, r := range []struct {
		key string
		v   []float64
	}{{"contrast_range", c.ContrastRange}, {"saturation_range", c.SaturationRange}} {
		if len(r.v) != 2 || r.v[0] > r.v[1] || r.v[0] < 0 {
			errs = append(errs, registry.FieldErrorf(r.key, "must be [lower, upper] with 0 <= lower <= upper, got %v", r.v))
		}
	}
	if c.BrightnessDelta < 0 || c.HueDelta < 1 || c.HueDelta > 180 {
		errs = append(errs, registry.FieldErrorf("hue_delta", "must be in [1, 180] and brightness_delta non-negative"))
	}
	return errors.Join(errs...)
}

type photoMetricDistortion struct {
	brightness                 float64
	contrastLo, contrastHi     float64
	saturationLo, saturationHi float64
	hue                        int
}

func (c *PhotoMetricDistortionConfig) Build(*registry.Env) (any, error) {
	return &photoMetricDistortion{brightness: float64(c.BrightnessDelta),
		contrastLo: c.ContrastRange[0], contrastHi: c.ContrastRange[1],
		saturationLo: c.SaturationRange[0], saturationHi: c.SaturationRange[1], hue: c.HueDelta}, nil
}

// Apply draws as mmseg 1.x's transform does, in its order (numpy.random there; the sample's
// own stream here): randint(2) for brightness and, if 1, uniform(-delta, delta); the mode
// randint(2); contrast first when the mode is 1 (randint(2), uniform(lower, upper));
// saturation (randint(2), uniform); hue (randint(2), randint(-delta, delta), whose upper
// end NumPy excludes); contrast last when the mode is 0.
func (t *photoMetricDistortion) Apply(s *Sample, rng *rand.Rand) error {
	pix := s.Image.Pix
	if rng.IntN(2) == 1 {
		convertPix(pix, 1, uniform(rng, -t.brightness, t.brightness))
	}
	mode := rng.IntN(2)
	if mode == 1 {
		t.contrast(pix, rng)
	}
	if rng.IntN(2) == 1 {
		alpha := float32(uniform(rng, t.saturationLo, t.saturationHi))
		var lut [256]uint8
		for v := range lut {
			lut[v] = convertValue(uint8(v), alpha, 0)
		}
		forEachHSV(pix, func(h, s, v uint8) (uint8, uint8, uint8) { return h, lut[s], v })
	}
	if rng.IntN(2) == 1 {
		delta := rng.IntN(2*t.hue) - t.hue
		forEachHSV(pix, func(h, s, v uint8) (uint8, uint8, uint8) {
			return uint8(((int(h)+delta)%180 + 180) % 180), s, v // Python's %: never negative
		})
	}
	if mode == 0 {
		t.contrast(pix, rng)
	}
	return nil
}

func (t *photoMetricDistortion) contrast(pix []uint8, rng *rand.Rand) {
	if rng.IntN(2) == 1 {
		convertPix(pix, uniform(rng, t.contrastLo, t.contrastHi), 0)
	}
}

// convertValue is mmseg's convert of one value: float32(v) * alpha + beta in float32,
// clipped to [0, 255], truncated to uint8.
func convertValue(v uint8, alpha, beta float32) uint8 {
	x := float32(float32(v)*alpha) + beta // two roundings, as NumPy: never fused
	switch {
	case x <= 0:
		return 0
	case x >= 255:
		return 255
	}
	return uint8(x)
}

// convertPix applies convertValue to every value, through a table.
func convertPix(pix []uint8, alpha, beta float64) {
	var lut [256]uint8
	for v := range lut {
		lut[v] = convertValue(uint8(v), float32(alpha), float32(beta))
	}
	for i, v := range pix {
		pix[i] = lut[v]
	}
}

// forEachHSV converts each RGB pixel to OpenCV's 8-bit HSV (mmcv.bgr2hsv), changes it with
// f and converts it back (mmcv.hsv2bgr).
func forEachHSV(pix []uint8, f func(h, s, v uint8) (uint8, uint8, uint8)) {
	for i := 0; i+2 < len(pix); i += 3 {
		p := pix[i : i+3 : i+3]
		h, s, v := cvRGBToHSV(p[0], p[1], p[2])
		p[0], p[1], p[2] = cvHSVToRGB(f(h, s, v))
	}
}

const cvHSVShift = 12

// cvHSVTables are OpenCV's sdiv_table and hdiv_table180 of RGB2HSV_b.
var cvHSVTables = sync.OnceValue(func() *struct{ sdiv, hdiv [256]int32 } {
	t := new(struct{ sdiv, hdiv [256]int32 })
	for i := 1; i < 256; i++ {
		t.sdiv[i] = int32(math.RoundToEven(float64(255<<cvHSVShift) / float64(i)))
		t.hdiv[i] = int32(math.RoundToEven(float64(180<<cvHSVShift) / (6 * float64(i))))
	}
	return t
})

// cvRGBToHSV is OpenCV's 8-bit RGB to HSV (COLOR_RGB2HSV, H in [0, 180)), in its integer
// arithmetic.
func cvRGBToHSV(r8, g8, b8 uint8) (uint8, uint8, uint8) {
	t := cvHSVTables()
	r, g, b := int32(r8), int32(g8), int32(b8)
	v := max(r, g, b)
	diff := v - min(r, g, b)
	s := (diff*t.sdiv[v] + 1<<(cvHSVShift-1)) >> cvHSVShift
	var h int32
	switch {
	case v == r:
		h = g - b
	case v == g:
		h = b - r + 2*diff
	default:
		h = r - g + 4*diff
	}
	h = (h*t.hdiv[diff] + 1<<(cvHSVShift-1)) >> cvHSVShift
	if h < 0 {
		h += 180
	}
	return uint8(min(h, 255)), uint8(s), uint8(v)
}

// cvHSVToRGB is OpenCV's 8-bit HSV (H in [0, 180)) to RGB: HSV2RGB_b's float32 arithmetic
// (s and v scaled by 1/255, the sector table, the result times 255, truncated), as OpenCV
// 4.6's x86 build computes it in its vectorised kernel, with FMA: equal to
// cv2.cvtColor(COLOR_HSV2RGB) on all 180 x 256 x 256 8-bit HSV values converted there.
// Deviation: OpenCV converts the last (pixels mod 32) pixels of an image with a scalar
// kernel, which rounds instead of truncating and can give one level more; goselfsup
// converts every pixel as the vectorised kernel does.
func cvHSVToRGB(h8, s8, v8 uint8) (uint8, uint8, uint8) {
	h := float32(h8)
	s := float32(s8) * (1 / float32(255))
	v := float32(v8) * (1 / float32(255))
	var r, g, b float32
	if s == 0 {
		r, g, b = v, v, v
	} else {
		h = float32(h * (float32(6) / 180))
		for h >= 6 {
			h -= 6
		}
		sector := int(math.Floor(float64(h)))
		h -= float32(sector)
		if sector < 0 || sector >= 6 {
			sector, h = 0, 0
		}
		// OpenCV's SIMD kernel (built with FMA) computes 1 - s*h with one rounding.
		fms := func(a, b float32) float32 { return float32(1 - float64(a)*float64(b)) }
		tab := [4]float32{v, float32(v * float32(1-s)), float32(v * fms(s, h)), float32(v * fms(s, float32(1-h)))}
		sec := [6][3]int{{1, 3, 0}, {1, 0, 2}, {3, 0, 1}, {0, 2, 1}, {0, 1, 3}, {2, 1, 0}}[sector]
		b, g, r = tab[sec[0]], tab[sec[1]], tab[sec[2]]
	}
	return cvRound8(r), cvRound8(g), cvRound8(b)
}

// cvRound8 is HSV2RGB_b's conversion of a value in [0, 1] to uint8: times 255 in float32,
// truncated (OpenCV 4.6's results, checked against all of its 180 x 256 x 256 HSV values).
func cvRound8(x float32) uint8 {
	return clip8(int(float32(x * 255)))
}
