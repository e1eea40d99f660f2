package models

import (
	"errors"
	"fmt"

	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/goselfsup/goselfsup/models/nn"
	"github.com/goselfsup/goselfsup/registry"
)

// EncoderDecoderConfig is mmseg's EncoderDecoder segmentor: a backbone, a decode head and
// optional auxiliary heads, trained on per-pixel labels (Batch.Masks) and run on whole
// images at test time.
type EncoderDecoderConfig struct {
	Backbone         registry.Spec    `toml:"backbone" registry:"backbones" doc:"the backbone, such as a dilated ResNet" required:"true"`
	Neck             registry.Spec    `toml:"neck" registry:"necks" doc:"not supported"`
	DecodeHead       registry.Spec    `toml:"decode_head" registry:"heads" doc:"the decode head, such as FCNHead" required:"true"`
	AuxiliaryHead    []registry.Spec  `toml:"auxiliary_head" registry:"heads" doc:"auxiliary heads (one table or a list), whose losses add to the decode head's"`
	TrainCfg         map[string]any   `toml:"train_cfg" doc:"mmseg's train_cfg (empty: nothing to set)"`
	TestCfg          TestCfg          `toml:"test_cfg" doc:"mmseg's test_cfg: mode = whole only"`
	DataPreprocessor DataPreprocessor `toml:"data_preprocessor" doc:"how the uint8 images are normalised on the device"`
	Pretrained       string           `toml:"pretrained" doc:"not supported: use load_from, or the backbone's weights from a checkpoint"`
}

// TestCfg is mmseg's test_cfg of a segmentor.
type TestCfg struct {
	Mode string `toml:"mode" doc:"whole (inference on the whole image); slide is not supported"`
}

func init() {
	registry.Add(registry.Algorithms, "EncoderDecoder", "mmseg's encoder-decoder segmentor: backbone, decode head and auxiliary heads",
		func() *EncoderDecoderConfig { return &EncoderDecoderConfig{TestCfg: TestCfg{Mode: "whole"}} })
}

func (c *EncoderDecoderConfig) Validate() error {
	var errs []error
	if c.Backbone.IsZero() {
		errs = append(errs, registry.FieldErrorf("backbone", "is required"))
	}
	if c.DecodeHead.IsZero() {
		errs = append(errs, registry.FieldErrorf("decode_head", "is required"))
	}
	if !c.Neck.IsZero() {
		errs = append(errs, registry.FieldErrorf("neck", "necks are not supported in EncoderDecoder"))
	}
	if len(c.TrainCfg) > 0 {
		errs = append(errs, registry.FieldErrorf("train_cfg", "must be empty, got %v", c.TrainCfg))
	}
	if c.TestCfg.Mode != "whole" {
		errs = append(errs, registry.FieldErrorf("test_cfg.mode", `only "whole" is supported, got %q`, c.TestCfg.Mode))
	}
	if c.Pretrained != "" {
		errs = append(errs, registry.FieldErrorf("pretrained", "not supported: use load_from"))
	}
	return errors.Join(errs...)
}

// EncoderDecoder is mmseg's EncoderDecoder, with its parameter names: "backbone",
// "decode_head" and "auxiliary_head" (one head) or "auxiliary_head.{i}" (several).
type EncoderDecoder struct {
	Backbone     Backbone
	DecodeHead   DecodeHead
	AuxHeads     []DecodeHead
	Preprocessor Preprocessor
	scope        *nn.Scope
}

// Build builds the backbone and the heads.
func (c *EncoderDecoderConfig) Build(env *registry.Env) (any, error) {
	s, err := registry.Need[*nn.Scope](env)
	if err != nil {
		return nil, err
	}
	m := &EncoderDecoder{scope: s, Preprocessor: NewPreprocessor(c.DataPreprocessor)}
	m.Preprocessor.DType = s.DType()
	sub := func(s *nn.Scope) *registry.Env { return registry.With(env, s) }
	if m.Backbone, err = registry.Build[Backbone](sub(s.In("backbone")), c.Backbone); err != nil {
		return nil, err
	}
	if m.DecodeHead, err = registry.Build[DecodeHead](sub(s.In("decode_head")), c.DecodeHead); err != nil {
		return nil, fmt.Errorf("decode_head: %w", err)
	}
	for i, spec := range c.AuxiliaryHead {
		hs := s.In("auxiliary_head")
		if len(c.AuxiliaryHead) > 1 {
			hs = hs.In(fmt.Sprint(i))
		}
		h, err := registry.Build[DecodeHead](sub(hs), spec)
		if err != nil {
			return nil, fmt.Errorf("auxiliary_head: %w", err)
		}
		m.AuxHeads = append(m.AuxHeads, h)
	}
	return m, nil
}

// Scope is the scope that holds the model's variables.
func (m *EncoderDecoder) Scope() *nn.Scope { return m.scope }

// Loss is the training loss of a batch of uint8 images and their per-pixel labels
// (b.Masks, int32 [B, H, W], 255 = ignore): the decode head's loss plus each auxiliary
// head's (each with its loss_weight), every head's logits resized bilinearly to the labels'
// size. With b.ImgShapes, the normalised padding is zeroed (ZeroPadding). Batch norms
// record their statistics; dropout draws from ctx.
func (m *EncoderDecoder) Loss(ctx *context.Context, b Batch) *Node {
	if b.Masks == nil {
		panic("EncoderDecoder: the batch has no segmentation masks")
	}
	x := m.Preprocessor.Apply(b.Images)
	if b.ImgShapes != nil {
		x = ZeroPadding(x, b.ImgShapes)
	}
	feats := m.Backbone.Forward(x, true)
	loss := m.DecodeHead.Loss(ctx, m.DecodeHead.Forward(ctx, feats, true), b.Masks)
	for _, h := range m.AuxHeads {
		loss = Add(loss, h.Loss(ctx, h.Forward(ctx, feats, true), b.Masks))
	}
	return loss
}

// Logits is whole-image inference in eval mode (mmseg's test_cfg mode = whole): the decode
// head's logits [B, H, W, classes] for uint8 images [B, H, W, 3], resized bilinearly to the
// input size. The caller resizes them to the original image size before the argmax.
func (m *EncoderDecoder) Logits(images *Node) *Node {
	feats := m.Backbone.Forward(m.Preprocessor.Apply(images), false)
	logits := m.DecodeHead.Forward(nil, feats, false)
	return nn.Resize(logits, images.Shape().Dim(1), images.Shape().Dim(2))
}

// Features returns the features for evaluation: the backbone's last output, globally
// pooled, as NPID's.
func (m *EncoderDecoder) Features(images *Node) *Node {
	feats := m.Backbone.Forward(m.Preprocessor.Apply(images), false)
	return nn.GlobalAvgPool(feats[len(feats)-1])
}

// UsesMasks reports that the model trains on per-pixel labels: the runner passes the
// batches' segmentation maps and image sizes to Loss.
func (m *EncoderDecoder) UsesMasks() bool { return true }
