// Package losses holds the losses: softmax cross-entropy (NPID's InfoNCE over the
// positive and the sampled negatives, and classification) and the NCE loss of the NPID paper.
package losses

import (
	"errors"

	"github.com/goselfsup/goselfsup/registry"
)

// CrossEntropyLossConfig is mmcls's CrossEntropyLoss (softmax cross-entropy).
type CrossEntropyLossConfig struct {
	UseSigmoid  bool      `toml:"use_sigmoid"`
	UseSoft     bool      `toml:"use_soft"`
	Reduction   string    `toml:"reduction"`
	LossWeight  float64   `toml:"loss_weight"`
	ClassWeight []float64 `toml:"class_weight"`
}

func (c *CrossEntropyLossConfig) Validate() error {
	var errs []error
	if c.UseSigmoid {
		errs = append(errs, registry.FieldErrorf("use_sigmoid", "only softmax cross-entropy is supported"))
	}
	if c.UseSoft {
		errs = append(errs, registry.FieldErrorf("use_soft", "only hard labels are supported"))
	}
	switch c.Reduction {
	case "mean", "sum", "none":
	default:
		errs = append(errs, registry.FieldErrorf("reduction", `must be "mean", "sum" or "none", got %q`, c.Reduction))
	}
	if c.LossWeight <= 0 {
		errs = append(errs, registry.FieldErrorf("loss_weight", "must be positive, got %g", c.LossWeight))
	}
	return errors.Join(errs...)
}

func init() {
	registry.Register(registry.Component{Namespace: registry.Losses, Type: "CrossEntropyLoss",
		Doc: "softmax cross-entropy",
		New: func() any { return &CrossEntropyLossConfig{Reduction: "mean", LossWeight: 1} }})
	registry.Register(registry.Component{Namespace: registry.Losses, Type: "NCELoss",
		Doc: "the NPID paper's noise-contrastive estimation, Z estimated on the first batch",
		New: func() any { return &NCELossConfig{Eps: 1e-7} }})
}
