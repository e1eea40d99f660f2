package datasets

import (
	"errors"
	"fmt"
	"math/rand/v2"

	"github.com/goselfsup/goselfsup/registry"
)

// NormalizeConfig is mmcv's Normalize: (x - mean) / std per channel, in 0-255 units, after
// a BGR to RGB flip when to_rgb. goselfsup keeps batches uint8 and normalises on the device:
// a Normalize at the end of a pipeline becomes the model's data_preprocessor.
type NormalizeConfig struct {
	Mean  [3]float64 `toml:"mean" doc:"the mean of each channel, in 0-255 units"`
	Std   [3]float64 `toml:"std" doc:"the standard deviation of each channel, in 0-255 units" required:"true"`
	ToRGB bool       `toml:"to_rgb" doc:"the network sees RGB; otherwise BGR, as mmcv decodes images"`
}

func init() {
	registry.Add(registry.Transforms, "Normalize", "(x - mean) / std, applied on the device with the batch",
		func() *NormalizeConfig { return &NormalizeConfig{ToRGB: true} })
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

// Normalization is a pipeline's Normalize: the mean and standard deviation per channel (in
// 0-255 units, in the network's channel order) and whether the network sees RGB. The
// pixels stay uint8; the model normalises the batch on the device.
type Normalization struct {
	Mean, Std [3]float64
	ToRGB     bool
}

// Apply leaves the sample as it is: the normalisation happens on the device.
func (*Normalization) Apply(*Sample, *rand.Rand) error { return nil }

func (c *NormalizeConfig) Build(*registry.Env) (any, error) {
	return &Normalization{Mean: c.Mean, Std: c.Std, ToRGB: c.ToRGB}, nil
}
