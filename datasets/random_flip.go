package datasets

import (
	"errors"
	"math/rand/v2"

	"github.com/goselfsup/goselfsup/registry"
)

// RandomFlipConfig flips the image with probability prob, and its segmentation map, its
// boxes and its instance masks with it. Boxes flip as mmdet 2.x's bbox_flip in the image's w x h: horizontal
// x1' = w - x2, x2' = w - x1 (no -1), vertical likewise with y and h. mmdet 2.x names the
// probability flip_ratio.
type RandomFlipConfig struct {
	Prob      float64  `toml:"prob" doc:"the probability of flipping an image"`
	FlipRatio *float64 `toml:"flip_ratio" doc:"mmdet 2.x's name of prob; when set, it is the probability"`
	Direction string   `toml:"direction" doc:"horizontal, vertical or diagonal (both)"`
}

func init() {
	registry.Add(registry.Transforms, "RandomFlip", "flip with probability prob",
		func() *RandomFlipConfig { return &RandomFlipConfig{Prob: 0.5, Direction: "horizontal"} })
}

func (c *RandomFlipConfig) Validate() error {
	if c.FlipRatio != nil {
		if err := probability("flip_ratio", *c.FlipRatio); err != nil {
			return err
		}
	}
	return errors.Join(probability("prob", c.Prob),
		oneOf("direction", c.Direction, "horizontal", "vertical", "diagonal"))
}

// randomFlip flips with probability prob.
type randomFlip struct {
	prob      float64
	direction string
}

func (c *RandomFlipConfig) Build(*registry.Env) (any, error) {
	p := c.Prob
	if c.FlipRatio != nil {
		p = *c.FlipRatio
	}
	return &randomFlip{prob: p, direction: c.Direction}, nil
}

func (t *randomFlip) Apply(s *Sample, rng *rand.Rand) error {
	if s.GT != nil && s.PadWidth != 0 {
		return errors.New("RandomFlip after Pad: boxes flip in the image without its padding, so flip before Pad")
	}
	if err := checkMasks(s, "RandomFlip"); err != nil {
		return err
	}
	if rng.Float64() >= t.prob {
		return nil
	}
	h := t.direction != "vertical"
	v := t.direction != "horizontal"
	if s.GT != nil {
		s.GT.flipBoxes(s.Image.Width, s.Image.Height, h, v)
	}
	if h {
		s.Image.flipHInPlace()
	}
	if v {
		s.Image.flipVInPlace()
	}
	if s.GTMasks != nil { // mmdet 2.x's RandomFlip flips the mask_fields: BitmapMasks.flip
		s.GTMasks.Flip(h, v)
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
