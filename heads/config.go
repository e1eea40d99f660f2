// Package heads holds the heads: NPID's contrastive head and the classification heads of
// linear evaluation.
package heads

import (
	"errors"
	"slices"

	"github.com/goselfsup/goselfsup/models"
	"github.com/goselfsup/goselfsup/registry"
)

// ContrastiveHeadConfig is mmselfsup's ContrastiveHead: the loss over the logits
// [positive | negatives] / temperature, with the positive as class 0.
type ContrastiveHeadConfig struct {
	Loss        registry.Spec `toml:"loss" registry:"losses"`
	Temperature float64       `toml:"temperature"`
}

func (c *ContrastiveHeadConfig) Validate() error {
	var errs []error
	if c.Loss.IsZero() {
		errs = append(errs, registry.FieldErrorf("loss", "is required, such as { type = \"CrossEntropyLoss\" }"))
	}
	if c.Temperature <= 0 {
		errs = append(errs, registry.FieldErrorf("temperature", "must be positive, got %g", c.Temperature))
	}
	return errors.Join(errs...)
}

// LinearClsHeadConfig is mmcls's LinearClsHead: one linear layer over pooled features.
type LinearClsHeadConfig struct {
	NumClasses int           `toml:"num_classes"`
	InChannels int           `toml:"in_channels"`
	Loss       registry.Spec `toml:"loss" registry:"losses"`
	Topk       []int         `toml:"topk"`
}

func (c *LinearClsHeadConfig) Validate() error {
	var errs []error
	if c.NumClasses < 2 {
		errs = append(errs, registry.FieldErrorf("num_classes", "must be at least 2, got %d", c.NumClasses))
	}
	if c.InChannels < 1 {
		errs = append(errs, registry.FieldErrorf("in_channels", "must be at least 1, got %d", c.InChannels))
	}
	return errors.Join(append(errs, validTopk(c.Topk, c.NumClasses))...)
}

// MultiClsHeadConfig is mmselfsup's MultiClsHead: for each backbone output of in_indices,
// pooling to about 9,000 dimensions ("specified": the MultiPooling table for the backbone),
// batch norm and one linear layer. mmselfsup logs the heads as feature1..feature5.
type MultiClsHeadConfig struct {
	PoolType            string            `toml:"pool_type"`
	InIndices           []int             `toml:"in_indices"`
	WithLastLayerUnpool bool              `toml:"with_last_layer_unpool"`
	Backbone            string            `toml:"backbone"`
	NormCfg             models.NormConfig `toml:"norm_cfg"`
	NumClasses          int               `toml:"num_classes"`
	Loss                registry.Spec     `toml:"loss" registry:"losses"`
}

// MultiPoolingBackbones are the backbones with a pooling table.
var MultiPoolingBackbones = []string{"resnet18", "resnet50"}

func (c *MultiClsHeadConfig) Validate() error {
	var errs []error
	if c.PoolType != "specified" && c.PoolType != "adaptive" {
		errs = append(errs, registry.FieldErrorf("pool_type", `must be "specified" or "adaptive", got %q`, c.PoolType))
	}
	if len(c.InIndices) == 0 {
		errs = append(errs, registry.FieldErrorf("in_indices", "must name at least one backbone output"))
	}
	for _, i := range c.InIndices {
		if i < 0 || i > 4 {
			errs = append(errs, registry.FieldErrorf("in_indices", "%d is not a ResNet output (0 = stem, 1..4 = stages)", i))
		}
	}
	if !slices.Contains(MultiPoolingBackbones, c.Backbone) {
		errs = append(errs, registry.FieldErrorf("backbone", "must be one of %v, got %q", MultiPoolingBackbones, c.Backbone))
	}
	if c.NumClasses < 2 {
		errs = append(errs, registry.FieldErrorf("num_classes", "must be at least 2, got %d", c.NumClasses))
	}
	return errors.Join(errs...)
}

func validTopk(topk []int, numClasses int) error {
	for _, k := range topk {
		if k < 1 || numClasses > 0 && k > numClasses {
			return registry.FieldErrorf("topk", "each k must be in 1..num_classes, got %v", topk)
		}
	}
	return nil
}

func crossEntropy() registry.Spec { return registry.NewSpec(registry.Losses, "CrossEntropyLoss", nil) }

func init() {
	reg := func(typ, doc string, newCfg func() any) {
		registry.Register(registry.Component{Namespace: registry.Heads, Type: typ, Doc: doc, New: newCfg})
	}
	reg("ContrastiveHead", "loss over [positive | negatives] / temperature (NPID, MoCo)",
		func() any { return &ContrastiveHeadConfig{Temperature: 0.1} })
	reg("LinearClsHead", "a linear classifier over pooled features",
		func() any { return &LinearClsHeadConfig{Loss: crossEntropy(), Topk: []int{1}} })
	reg("MultiClsHead", "a BN + linear classifier on each of several backbone outputs",
		func() any {
			norm := models.NormConfig{Type: "BN", RequiresGrad: true, Momentum: 0.1, Eps: 1e-5, Affine: true}
			return &MultiClsHeadConfig{PoolType: "adaptive", InIndices: []int{0}, Backbone: "resnet50",
				NormCfg: norm, NumClasses: 1000, Loss: crossEntropy()}
		})
}
