package models

import (
	"errors"
	"fmt"

	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/goselfsup/goselfsup/models/nn"
	"github.com/goselfsup/goselfsup/registry"
)

// ImageClassifierConfig is mmcls's ImageClassifier: backbone, neck and classification head,
// for linear evaluation.
type ImageClassifierConfig struct {
	Backbone         registry.Spec    `toml:"backbone" registry:"backbones" doc:"the backbone, such as a ResNet" required:"true"`
	Neck             registry.Spec    `toml:"neck" registry:"necks" doc:"the neck between backbone and head; none: the head takes the backbone outputs"`
	Head             registry.Spec    `toml:"head" registry:"heads" doc:"the classification head, such as LinearClsHead or MultiClsHead" required:"true"`
	DataPreprocessor DataPreprocessor `toml:"data_preprocessor" doc:"how the uint8 images are normalised on the device"`
	Pretrained       string           `toml:"pretrained" doc:"not supported: give the self-supervised checkpoint to tools/linear"`
}

func init() {
	registry.Add(registry.Algorithms, "ImageClassifier", "backbone, neck and classification head (linear evaluation)",
		func() *ImageClassifierConfig { return &ImageClassifierConfig{} })
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

// ImageClassifier is mmcls's ImageClassifier: backbone, optional neck and a classification
// head, trained on labelled images (the linear evaluation of self-supervised features,
// with a frozen backbone).
type ImageClassifier struct {
	Backbone     Backbone
	Neck         Neck // nil: the head takes the backbone outputs
	Head         ClsHead
	Preprocessor Preprocessor
}

// Build builds the backbone, neck and head under the PyTorch names "backbone", "neck" and
// "head", so that a self-supervised checkpoint's "backbone.*" weights fit.
func (c *ImageClassifierConfig) Build(env *registry.Env) (any, error) {
	s, err := registry.Need[*nn.Scope](env)
	if err != nil {
		return nil, err
	}
	if c.Pretrained != "" {
		return nil, fmt.Errorf("pretrained: give the self-supervised checkpoint to tools/linear (its backbone.* weights are loaded)")
	}
	m := &ImageClassifier{Preprocessor: NewPreprocessor(c.DataPreprocessor)}
	m.Preprocessor.DType = s.DType()
	sub := func(name string) *registry.Env { return registry.With(env, s.In(name)) }
	if m.Backbone, err = registry.Build[Backbone](sub("backbone"), c.Backbone); err != nil {
		return nil, err
	}
	if !c.Neck.IsZero() {
		if m.Neck, err = registry.Build[Neck](sub("neck"), c.Neck); err != nil {
			return nil, err
		}
	}
	headEnv := registry.With(sub("head"), nn.BackboneChannels(m.Backbone.OutChannels()))
	if m.Head, err = registry.Build[ClsHead](headEnv, c.Head); err != nil {
		return nil, err
	}
	return m, nil
}

func (m *ImageClassifier) forward(images *Node, train bool) []*Node {
	outs := m.Backbone.Forward(m.Preprocessor.Apply(images), train)
	if m.Neck != nil {
		outs = []*Node{m.Neck.Forward(outs)}
	}
	return m.Head.Logits(outs, train)
}

// Loss is the classification loss of a labelled batch.
func (m *ImageClassifier) Loss(ctx *context.Context, b Batch) *Node {
	if b.Labels == nil {
		panic("ImageClassifier needs labelled batches")
	}
	return m.Head.Loss(ctx, m.forward(b.Images, true), b.Labels)
}

// Logits returns each classifier's class scores for uint8 images, in eval mode.
func (m *ImageClassifier) Logits(images *Node) []*Node { return m.forward(images, false) }

// Features returns the backbone's last output, globally pooled.
func (m *ImageClassifier) Features(images *Node) *Node {
	outs := m.Backbone.Forward(m.Preprocessor.Apply(images), false)
	return nn.GlobalAvgPool(outs[len(outs)-1])
}
