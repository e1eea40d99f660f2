package datasets

import (
	"math/rand/v2"

	"github.com/goselfsup/goselfsup/registry"
)

// LightingConfig is AlexNet-style PCA lighting noise: eigval and eigvec of the pixel
// covariance (BGR order, 0-255 units), scaled by noise ~ N(0, alphastd).
type LightingConfig struct {
	Eigval   [3]float64    `toml:"eigval" doc:"the eigenvalues of the pixel covariance (BGR order, 0-255 units)"`
	Eigvec   [3][3]float64 `toml:"eigvec" doc:"the eigenvectors of the pixel covariance, one per column (BGR order)"`
	Alphastd float64       `toml:"alphastd" doc:"the standard deviation of the noise that scales each eigenvector"`
	ToRGB    bool          `toml:"to_rgb" doc:"the eigenvectors are in RGB order rather than mmcv's BGR"`
}

func init() {
	registry.Add(registry.Transforms, "Lighting", "PCA lighting noise",
		func() *LightingConfig { return &LightingConfig{Alphastd: 0.1} })
}

func (c *LightingConfig) Validate() error {
	if c.Alphastd < 0 {
		return registry.FieldErrorf("alphastd", "must not be negative, got %g", c.Alphastd)
	}
	return nil
}

// lighting is AlexNet's PCA lighting noise (mmcls's Lighting), rounded back to 8 bits.
type lighting struct {
	shift func(rng *rand.Rand) [3]float64 // per R, G, B
}

func (c *LightingConfig) Build(*registry.Env) (any, error) {
	eigval, eigvec, std := c.Eigval, c.Eigvec, c.Alphastd
	bgr := !c.ToRGB // the eigenvectors are in the order of mmcv's BGR images
	return &lighting{shift: func(rng *rand.Rand) [3]float64 {
		var alpha [3]float64
		for i := range alpha {
			alpha[i] = rng.NormFloat64() * std
		}
		var alter [3]float64
		for ch := range 3 {
			for j := range 3 {
				alter[ch] += eigvec[ch][j] * alpha[j] * eigval[j]
			}
		}
		if bgr {
			alter[0], alter[2] = alter[2], alter[0]
		}
		return alter
	}}, nil
}

func (t *lighting) Apply(s *Sample, rng *rand.Rand) error {
	d := t.shift(rng)
	p := s.Image.Pix
	for i := range p {
		p[i] = clampByte(float64(p[i]) + d[i%3])
	}
	return nil
}
