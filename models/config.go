// Package models holds the networks and algorithms: NPID and the image classifier used for
// linear evaluation, the ResNet backbones, the necks and the memory bank.
package models

import (
	"errors"
	"fmt"
	"slices"

	"github.com/goselfsup/goselfsup/registry"
)

// NPIDConfig is mmselfsup's NPID: the positive of a sample is the memory-bank row of the
// same image, and neg_num negatives are drawn uniformly, with replacement, from the bank.
type NPIDConfig struct {
	Backbone   registry.Spec `toml:"backbone" registry:"backbones"`
	Neck       registry.Spec `toml:"neck" registry:"necks"`
	Head       registry.Spec `toml:"head" registry:"heads"`
	MemoryBank registry.Spec `toml:"memory_bank" registry:"memories"`
	NegNum     int           `toml:"neg_num"`
	EnsureNeg  bool          `toml:"ensure_neg"`
	// NegMode is "per_sample" (mmselfsup: neg_num negatives for each image) or "shared"
	// (goselfsup's own: neg_num negatives for the whole batch, a [B, C] x [C, K] product
	// instead of a [B, K, C] gather).
	NegMode          string           `toml:"neg_mode"`
	DataPreprocessor DataPreprocessor `toml:"data_preprocessor"`
	Pretrained       string           `toml:"pretrained"`
}

func (c *NPIDConfig) Validate() error {
	var errs []error
	required := []struct {
		key  string
		spec registry.Spec
	}{{"backbone", c.Backbone}, {"head", c.Head}, {"memory_bank", c.MemoryBank}}
	for _, r := range required {
		if r.spec.IsZero() {
			errs = append(errs, registry.FieldErrorf(r.key, "is required"))
		}
	}
	if c.NegNum < 1 {
		errs = append(errs, registry.FieldErrorf("neg_num", "must be at least 1, got %d", c.NegNum))
	}
	if c.NegMode != "per_sample" && c.NegMode != "shared" {
		errs = append(errs, registry.FieldErrorf("neg_mode", `must be "per_sample" or "shared", got %q`, c.NegMode))
	}
	if c.EnsureNeg && c.NegMode == "shared" {
		errs = append(errs, registry.FieldErrorf("ensure_neg", `applies to neg_mode = "per_sample" only`))
	}
	return errors.Join(errs...)
}

// ImageClassifierConfig is mmcls's ImageClassifier: backbone, neck and classification head,
// for linear evaluation.
type ImageClassifierConfig struct {
	Backbone         registry.Spec    `toml:"backbone" registry:"backbones"`
	Neck             registry.Spec    `toml:"neck" registry:"necks"`
	Head             registry.Spec    `toml:"head" registry:"heads"`
	DataPreprocessor DataPreprocessor `toml:"data_preprocessor"`
	Pretrained       string           `toml:"pretrained"`
}

func (c *ImageClassifierConfig) Validate() error {
	var errs []error
	if c.Backbone.IsZero() {
		errs = append(errs, registry.FieldErrorf("backbone", "is required"))
	}
	if c.Head.IsZero() {
		errs = append(errs, registry.FieldErrorf("head", "is required"))
	}
	return errors.Join(errs...)
}

// DataPreprocessor normalises uint8 image batches on the device: (x - mean) / std per
// channel, in 0-255 units, after an optional BGR to RGB flip (mmselfsup's bgr_to_rgb,
// mmcls's to_rgb).
type DataPreprocessor struct {
	Type     string     `toml:"type"`
	Mean     [3]float64 `toml:"mean"`
	Std      [3]float64 `toml:"std"`
	BGRToRGB bool       `toml:"bgr_to_rgb"`
	ToRGB    bool       `toml:"to_rgb"`
}

func (p *DataPreprocessor) Validate() error {
	var errs []error
	switch p.Type {
	case "", "SelfSupDataPreprocessor", "ClsDataPreprocessor":
	default:
		errs = append(errs, registry.FieldErrorf("type", "must be SelfSupDataPreprocessor or ClsDataPreprocessor, got %q", p.Type))
	}
	for i, s := range p.Std {
		if s < 0 {
			errs = append(errs, registry.FieldErrorf(fmt.Sprintf("std.%d", i), "must be positive, got %g", s))
		}
	}
	return errors.Join(errs...)
}

// ResNetConfig is mmselfsup's ResNet (mmcls's, with mmselfsup's output indices): 0 is the
// stem (conv, BN, ReLU, before the max-pool) and 1..4 are the four stages.
type ResNetConfig struct {
	Depth            int        `toml:"depth"`
	InChannels       int        `toml:"in_channels"`
	StemChannels     int        `toml:"stem_channels"`
	BaseChannels     int        `toml:"base_channels"`
	NumStages        int        `toml:"num_stages"`
	Strides          []int      `toml:"strides"`
	Dilations        []int      `toml:"dilations"`
	OutIndices       []int      `toml:"out_indices"`
	Style            string     `toml:"style"`
	DeepStem         bool       `toml:"deep_stem"`
	AvgDown          bool       `toml:"avg_down"`
	FrozenStages     int        `toml:"frozen_stages"`
	NormCfg          NormConfig `toml:"norm_cfg"`
	NormEval         bool       `toml:"norm_eval"`
	WithCP           bool       `toml:"with_cp"`
	ZeroInitResidual bool       `toml:"zero_init_residual"`
	// StageBlocks overrides the number of blocks of each stage that depth implies, for small
	// networks such as the demo's ResNet-10 ([1, 1, 1, 1] with depth 18). goselfsup's own key.
	StageBlocks []int `toml:"stage_blocks"`
}

// ResNetDepths are the supported depths.
var ResNetDepths = []int{18, 34, 50, 101}

func defaultResNet() *ResNetConfig {
	return &ResNetConfig{
		InChannels: 3, StemChannels: 64, BaseChannels: 64, NumStages: 4,
		Strides: []int{1, 2, 2, 2}, Dilations: []int{1, 1, 1, 1}, OutIndices: []int{4},
		Style: "pytorch", FrozenStages: -1, NormCfg: defaultNorm(),
	}
}

func (c *ResNetConfig) Validate() error {
	var errs []error
	if !slices.Contains(ResNetDepths, c.Depth) {
		errs = append(errs, registry.FieldErrorf("depth", "must be one of %v, got %d", ResNetDepths, c.Depth))
	}
	if c.NumStages < 1 || c.NumStages > 4 {
		errs = append(errs, registry.FieldErrorf("num_stages", "must be 1 to 4, got %d", c.NumStages))
	}
	if len(c.Strides) != c.NumStages {
		errs = append(errs, registry.FieldErrorf("strides", "needs one stride per stage (%d), got %v", c.NumStages, c.Strides))
	}
	if len(c.Dilations) != c.NumStages {
		errs = append(errs, registry.FieldErrorf("dilations", "needs one dilation per stage (%d), got %v", c.NumStages, c.Dilations))
	}
	if len(c.OutIndices) == 0 {
		errs = append(errs, registry.FieldErrorf("out_indices", "must name at least one output"))
	}
	for _, i := range c.OutIndices {
		if i < 0 || i > c.NumStages {
			errs = append(errs, registry.FieldErrorf("out_indices", "%d is not an output: 0 is the stem and 1..%d the stages", i, c.NumStages))
		}
	}
	if c.Style != "pytorch" && c.Style != "caffe" {
		errs = append(errs, registry.FieldErrorf("style", `must be "pytorch" or "caffe", got %q`, c.Style))
	}
	if c.FrozenStages < -1 || c.FrozenStages > c.NumStages {
		errs = append(errs, registry.FieldErrorf("frozen_stages", "must be -1 (none) to %d, got %d", c.NumStages, c.FrozenStages))
	}
	if c.InChannels < 1 {
		errs = append(errs, registry.FieldErrorf("in_channels", "must be at least 1, got %d", c.InChannels))
	}
	if c.StemChannels < 1 || c.BaseChannels < 1 {
		errs = append(errs, registry.FieldErrorf("base_channels", "stem_channels and base_channels must be at least 1"))
	}
	if c.StageBlocks != nil {
		if len(c.StageBlocks) != c.NumStages {
			errs = append(errs, registry.FieldErrorf("stage_blocks", "needs one count per stage (%d), got %v", c.NumStages, c.StageBlocks))
		}
		for _, n := range c.StageBlocks {
			if n < 1 {
				errs = append(errs, registry.FieldErrorf("stage_blocks", "each stage needs at least one block, got %v", c.StageBlocks))
				break
			}
		}
	}
	return errors.Join(errs...)
}

// NormConfig is mmcv's norm_cfg for batch normalisation.
type NormConfig struct {
	Type         string  `toml:"type"` // BN, or SyncBN: statistics over the batches of all devices
	RequiresGrad bool    `toml:"requires_grad"`
	Momentum     float64 `toml:"momentum"`
	Eps          float64 `toml:"eps"`
	Affine       bool    `toml:"affine"`
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

// LinearNeckConfig is mmselfsup's LinearNeck: global average pooling, then one linear layer.
type LinearNeckConfig struct {
	InChannels  int  `toml:"in_channels"`
	OutChannels int  `toml:"out_channels"`
	WithAvgPool bool `toml:"with_avg_pool"`
}

func (c *LinearNeckConfig) Validate() error {
	var errs []error
	if c.InChannels < 1 {
		errs = append(errs, registry.FieldErrorf("in_channels", "must be at least 1, got %d", c.InChannels))
	}
	if c.OutChannels < 1 {
		errs = append(errs, registry.FieldErrorf("out_channels", "must be at least 1, got %d", c.OutChannels))
	}
	return errors.Join(errs...)
}

// GlobalAveragePoolingConfig is mmcls's GlobalAveragePooling neck.
type GlobalAveragePoolingConfig struct {
	Dim int `toml:"dim"`
}

func (c *GlobalAveragePoolingConfig) Validate() error {
	if c.Dim != 2 {
		return registry.FieldErrorf("dim", "only 2 (images) is supported, got %d", c.Dim)
	}
	return nil
}

// SimpleMemoryConfig is mmselfsup's SimpleMemory: one L2-normalised feature per training
// image, updated as normalise((1 - momentum) * old + momentum * feature).
type SimpleMemoryConfig struct {
	Length   int     `toml:"length"`
	FeatDim  int     `toml:"feat_dim"`
	Momentum float64 `toml:"momentum"`
}

func (c *SimpleMemoryConfig) Validate() error {
	var errs []error
	if c.Length < 1 {
		errs = append(errs, registry.FieldErrorf("length", "must be at least 1 (the number of training images), got %d", c.Length))
	}
	if c.FeatDim < 1 {
		errs = append(errs, registry.FieldErrorf("feat_dim", "must be at least 1, got %d", c.FeatDim))
	}
	if c.Momentum < 0 || c.Momentum > 1 {
		errs = append(errs, registry.FieldErrorf("momentum", "must be in [0, 1], got %g", c.Momentum))
	}
	return errors.Join(errs...)
}

func init() {
	reg := func(ns, typ, doc string, newCfg func() any) {
		registry.Register(registry.Component{Namespace: ns, Type: typ, Doc: doc, New: newCfg})
	}
	reg(registry.Algorithms, "NPID", "non-parametric instance discrimination with a memory bank",
		func() any { return &NPIDConfig{NegNum: 65536, NegMode: "per_sample"} })
	reg(registry.Algorithms, "ImageClassifier", "backbone, neck and classification head (linear evaluation)",
		func() any { return &ImageClassifierConfig{} })
	reg(registry.Backbones, "ResNet", "ResNet 18/34/50/101; out_indices 0 = stem, 1..4 = stages",
		func() any { return defaultResNet() })
	reg(registry.Backbones, "ResNet_CIFAR", "ResNet with a 3x3 stride-1 stem and no max-pool, for 32x32 images",
		func() any { return &ResNetCIFARConfig{ResNetConfig: *defaultResNet()} })
	reg(registry.Necks, "LinearNeck", "global average pooling and a linear layer",
		func() any { return &LinearNeckConfig{WithAvgPool: true} })
	reg(registry.Necks, "GlobalAveragePooling", "global average pooling of the last backbone output",
		func() any { return &GlobalAveragePoolingConfig{Dim: 2} })
	reg(registry.Memories, "SimpleMemory", "one L2-normalised feature per training image, momentum-updated",
		func() any { return &SimpleMemoryConfig{Momentum: 0.5} })
}
