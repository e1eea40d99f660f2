package datasets

import (
	"errors"
	"math/rand/v2"

	"github.com/goselfsup/goselfsup/registry"
)

// RandomFlipConfig flips the image with probability prob, and its segmentation map with it.
type RandomFlipConfig struct {
	Prob      float64 `toml:"prob" doc:"the probability of flipping an image"`
	Direction string  `toml:"direction" doc:"horizontal, vertical or diagonal (both)"`
}

func init() {
	registry.Add(registry.Transforms, "RandomFlip", "flip with probability prob",
		func() *RandomFlipConfig { return &RandomFlipConfig{Prob: 0.5, Direction: "horizontal"} })
}

func (c *RandomFlipConfig) Validate() error {
	return errors.Join(probability("prob", c.Prob),
		oneOf("direction", c.Direction, "horizontal", "vertical", "diagonal"))
}

// randomFlip flips with probability prob.
type randomFlip struct {
	prob      float64
	direction string
}

func (c *RandomFlipConfig) Build(*registry.Env) (any, error) {
	return &randomFlip{prob: c.Prob, direction: c.Direction}, nil
}

func (t *randomFlip) Apply(s *Sample, rng *rand.Rand) error {
	if rng.Float64() >= t.prob {
		return nil
	}
	h := t.direction != "vertical"
	v := t.direction != "horizontal"
	if h {
		s.Image.flipHInPlace()
	}
	if v {
		s.Image.flipVInPlace()
	}
	if m := s.Mask; m != nil { // mmcv's RandomFlip flips gt_seg_map too
		if h {
			m.FlipH()
		}
		if v {
			m.FlipV()
		}
	}
	return nil
}
