package datasets

import (
	"errors"
	"math"
	"math/rand/v2"

	"github.com/goselfsup/goselfsup/registry"
)

// RandomGrayscaleConfig is mmselfsup's RandomGrayscale: with probability prob, the weighted
// sum of the channels (weights in BGR order, as mmselfsup loads images), kept as three
// channels if keep_channels.
type RandomGrayscaleConfig struct {
	Prob           float64    `toml:"prob" doc:"the probability of converting an image"`
	KeepChannels   bool       `toml:"keep_channels" doc:"keep three channels (must be true: models take three)"`
	ChannelWeights [3]float64 `toml:"channel_weights" doc:"the weight of each channel in the gray level, in color_format's order; normalised to sum 1"`
	ColorFormat    string     `toml:"color_format" doc:"the channel order of channel_weights: bgr (mmselfsup's) or rgb"`
}

func init() {
	registry.Add(registry.Transforms, "RandomGrayscale", "convert to grayscale with probability prob",
		func() *RandomGrayscaleConfig {
			return &RandomGrayscaleConfig{Prob: 0.1, ChannelWeights: [3]float64{1, 1, 1}, ColorFormat: "bgr"}
		})
}

func (c *RandomGrayscaleConfig) Validate() error {
	return errors.Join(probability("prob", c.Prob), oneOf("color_format", c.ColorFormat, "bgr", "rgb"))
}

// randomGrayscale is mmcv's RandomGrayscale, as mmselfsup uses it: with probability prob,
// the sum of the channels weighted by channel_weights / sum(channel_weights) (given in the
// config's colour order, BGR by default), on every channel. mmcv keeps that sum as floats;
// here it is truncated to 8 bits, as the next step of a Pillow pipeline truncates it.
type randomGrayscale struct {
	prob    float64
	weights [3]float64 // normalised, in the order of the config's channels
	order   [3]int     // where each of those channels is in an RGB pixel
	keep    bool
}

func (c *RandomGrayscaleConfig) Build(*registry.Env) (any, error) {
	if !c.KeepChannels {
		return nil, errors.New("keep_channels = false (one-channel output) is not supported: models take three channels")
	}
	sum := c.ChannelWeights[0] + c.ChannelWeights[1] + c.ChannelWeights[2]
	if sum <= 0 {
		return nil, errors.New("channel_weights must have a positive sum")
	}
	t := &randomGrayscale{prob: c.Prob, keep: c.KeepChannels, order: [3]int{0, 1, 2}}
	if c.ColorFormat == "bgr" {
		t.order = [3]int{2, 1, 0}
	}
	for i, w := range c.ChannelWeights {
		t.weights[i] = w / sum
	}
	return t, nil
}

func (t *randomGrayscale) Apply(s *Sample, rng *rand.Rand) error {
	if rng.Float64() >= t.prob {
		return nil
	}
	p := s.Image.Pix
	w, o := t.weights, t.order
	for i := 0; i < len(p); i += 3 {
		// Summed in the config's channel order, as NumPy sums them.
		// Each product rounded, as NumPy computes them, never fused into an FMA.
		v := float64(w[0]*float64(p[i+o[0]])) + float64(w[1]*float64(p[i+o[1]])) + float64(w[2]*float64(p[i+o[2]]))
		g := uint8(math.Min(math.Max(v, 0), 255))
		p[i], p[i+1], p[i+2] = g, g, g
	}
	return nil
}
