package datasets

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/goselfsup/goselfsup/registry"
)

// ColorJitterConfig is mmselfsup's ColorJitter: brightness, contrast, saturation and hue
// factors, applied in a random order, always (wrap it in RandomApply for a probability).
type ColorJitterConfig struct {
	Brightness Jitter `toml:"brightness" doc:"s: factors drawn from [1-s, 1+s], s at most 1; [min, max]: from that range; 0: none"`
	Contrast   Jitter `toml:"contrast" doc:"s: factors drawn from [1-s, 1+s], s at most 1; [min, max]: from that range; 0: none"`
	Saturation Jitter `toml:"saturation" doc:"s: factors drawn from [1-s, 1+s], s at most 1; [min, max]: from that range; 0: none"`
	Hue        Jitter `toml:"hue" doc:"s: hue shifts drawn from [-s, s], in turns, s at most 0.5; [min, max]: from that range; 0: none"`
	Backend    string `toml:"backend" doc:"pillow or cv2; either way the adjustments are Pillow's"`
}

func init() {
	registry.Add(registry.Transforms, "ColorJitter", "jitter brightness, contrast, saturation and hue in random order",
		func() *ColorJitterConfig { return &ColorJitterConfig{Backend: "pillow"} })
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

// TOMLType says what a Jitter takes, for print_config --describe.
func (Jitter) TOMLType() string { return "float or array of 2 float" }

// MarshalTOML writes the strength, or the [min, max] range, as a config would.
func (j Jitter) MarshalTOML() ([]byte, error) {
	if j.Bounds != nil {
		return fmt.Appendf(nil, "[%v, %v]", j.Bounds[0], j.Bounds[1]), nil
	}
	return fmt.Appendf(nil, "%v", j.Strength), nil
}

// Range returns the range the factor is drawn from: center ± strength, or the bounds.
func (j Jitter) Range(center float64) (lo, hi float64) {
	if j.Bounds != nil {
		return j.Bounds[0], j.Bounds[1]
	}
	return center - j.Strength, center + j.Strength
}

// colorJitter is torchvision's ColorJitter on Pillow, as mmselfsup's: the four adjustments
// in a random order, each with a factor drawn from its range.
type colorJitter struct {
	brightness, contrast, saturation, hue [2]float64
	use                                   [4]bool
}

func (c *ColorJitterConfig) Build(*registry.Env) (any, error) {
	t := &colorJitter{}
	set := func(j Jitter, center float64, i int, dst *[2]float64) {
		lo, hi := j.Range(center)
		if j.Bounds == nil {
			lo = math.Max(lo, 0)
			if center == 0 {
				lo = -hi
			}
		}
		*dst = [2]float64{lo, hi}
		t.use[i] = j.Bounds != nil || j.Strength != 0
	}
	set(c.Brightness, 1, 0, &t.brightness)
	set(c.Contrast, 1, 1, &t.contrast)
	set(c.Saturation, 1, 2, &t.saturation)
	set(c.Hue, 0, 3, &t.hue)
	return t, nil
}

func (t *colorJitter) Apply(s *Sample, rng *rand.Rand) error {
	order := rng.Perm(4)
	// torchvision draws every factor before applying them, in the fixed order b, c, s, h.
	var f [4]float64
	for i, r := range [][2]float64{t.brightness, t.contrast, t.saturation, t.hue} {
		if t.use[i] {
			f[i] = uniform(rng, r[0], r[1])
		}
	}
	for _, op := range order {
		if !t.use[op] {
			continue
		}
		switch op {
		case 0:
			adjustBrightness(s.Image, f[0])
		case 1:
			adjustContrast(s.Image, f[1])
		case 2:
			adjustSaturation(s.Image, f[2])
		case 3:
			adjustHue(s.Image.Pix, f[3])
		}
	}
	return nil
}
