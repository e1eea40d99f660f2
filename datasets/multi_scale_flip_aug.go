package datasets

import (
	"errors"
	"math/rand/v2"

	"github.com/goselfsup/goselfsup/registry"
)

// MultiScaleFlipAugConfig is mmdet 2.x's MultiScaleFlipAug, the wrapper of its test
// pipelines, for one view of each image: one img_scale, no flip. It runs its transforms
// with the Resize among them (which names no scale of its own, as in mmdet) set to
// img_scale; a RandomFlip among them does nothing, as mmdet's with flip=False.
type MultiScaleFlipAugConfig struct {
	Transforms    []registry.Spec     `toml:"transforms" registry:"transforms" doc:"the transforms of each view, in order" required:"true"`
	ImgScale      Scales              `toml:"img_scale" doc:"the test scale [w, h] (with keep_ratio: long and short side); one only" required:"true"`
	ScaleFactor   []float64           `toml:"scale_factor" doc:"mmdet's scale factors instead of img_scale; not supported"`
	Flip          bool                `toml:"flip" doc:"also test the flipped image; not supported: one view of each image"`
	FlipDirection registry.StringList `toml:"flip_direction" doc:"the flips of flip; no effect without flip"`
}

func init() {
	registry.Add(registry.Transforms, "MultiScaleFlipAug", "mmdet 2.x's test-time wrapper, for one scale and no flip: its transforms at img_scale",
		func() *MultiScaleFlipAugConfig {
			return &MultiScaleFlipAugConfig{FlipDirection: registry.StringList{"horizontal"}}
		})
}

func (c *MultiScaleFlipAugConfig) Validate() error {
	var errs []error
	if len(c.Transforms) == 0 {
		errs = append(errs, registry.FieldErrorf("transforms", "is required"))
	}
	if len(c.ImgScale) != 1 {
		errs = append(errs, registry.FieldErrorf("img_scale", "must be one scale (goselfsup tests one view of each image), got %d", len(c.ImgScale)))
	}
	if len(c.ScaleFactor) > 0 {
		errs = append(errs, registry.FieldErrorf("scale_factor", "is not supported: give img_scale"))
	}
	if c.Flip {
		errs = append(errs, registry.FieldErrorf("flip", "is not supported: goselfsup tests one view of each image"))
	}
	return errors.Join(errs...)
}

// Build builds the transforms, a Resize without scale set to img_scale, without RandomFlip.
func (c *MultiScaleFlipAugConfig) Build(env *registry.Env) (any, error) {
	specs := make([]registry.Spec, 0, len(c.Transforms))
	for _, s := range c.Transforms {
		switch s.Type {
		case "RandomFlip":
			continue
		case "Resize":
			_, scale := s.Get("scale")
			_, imgScale := s.Get("img_scale")
			if !scale && !imgScale {
				s = s.With("img_scale", []int{c.ImgScale[0][0], c.ImgScale[0][1]})
			}
		}
		specs = append(specs, s)
	}
	pipeline, err := BuildPipeline(env, specs)
	if err != nil {
		return nil, err
	}
	return &multiScaleFlipAug{pipeline}, nil
}

// multiScaleFlipAug runs its transforms.
type multiScaleFlipAug struct{ pipeline []Transform }

func (t *multiScaleFlipAug) Apply(s *Sample, rng *rand.Rand) error {
	for _, tr := range t.pipeline {
		if err := tr.Apply(s, rng); err != nil {
			return err
		}
	}
	return nil
}

// normalization is the Normalize among the transforms, or nil.
func (t *multiScaleFlipAug) normalization() *Normalization {
	for _, tr := range t.pipeline {
		if n, ok := tr.(*Normalization); ok {
			return n
		}
	}
	return nil
}
