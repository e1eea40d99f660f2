package models

import (
	"errors"

	"github.com/goselfsup/goselfsup/models/nn"
	"github.com/goselfsup/goselfsup/registry"
)

// NormConfig is mmcv's norm_cfg for batch normalisation, the norm_cfg table of the ResNet
// backbones and of MultiClsHead.
type NormConfig struct {
	Type         string  `toml:"type" doc:"BN, or SyncBN: statistics over the batches of all devices"`
	RequiresGrad bool    `toml:"requires_grad" doc:"train the scale and shift"`
	Momentum     float64 `toml:"momentum" doc:"the weight of each batch in the running statistics (PyTorch's convention)"`
	Eps          float64 `toml:"eps" doc:"added to the variance before the square root"`
	Affine       bool    `toml:"affine" doc:"learn a scale and a shift per channel"`
}

func defaultNorm() NormConfig {
	return NormConfig{Type: "BN", RequiresGrad: true, Momentum: 0.1, Eps: 1e-5, Affine: true}
}

func (n *NormConfig) Validate() error {
	var errs []error
	if n.Type != "BN" && n.Type != "SyncBN" {
		errs = append(errs, registry.FieldErrorf("type", `must be "BN" or "SyncBN", got %q`, n.Type))
	}
	if n.Momentum < 0 || n.Momentum > 1 {
		errs = append(errs, registry.FieldErrorf("momentum", "must be in [0, 1], got %g", n.Momentum))
	}
	if n.Eps <= 0 {
		errs = append(errs, registry.FieldErrorf("eps", "must be positive, got %g", n.Eps))
	}
	return errors.Join(errs...)
}

// Options are the layer options that the config describes.
func (c NormConfig) Options() nn.NormOptions {
	return nn.NormOptions{Momentum: c.Momentum, Eps: c.Eps, Affine: c.Affine, RequiresGrad: c.RequiresGrad, Sync: c.Type == "SyncBN"}
}
