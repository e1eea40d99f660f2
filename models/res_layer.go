package models

import (
	"errors"
	"fmt"

	. "github.com/gomlx/gomlx/pkg/core/graph"

	"github.com/goselfsup/goselfsup/models/nn"
	"github.com/goselfsup/goselfsup/registry"
)

// ResLayerConfig is mmdet's ResLayer shared head: one stage of a ResNet (res5 for the C4
// detectors) applied to each RoI's features. ResLayerExtraNorm is mmselfsup's variant with
// a batch norm after the stage (MoCo's "extra BN layer following the res5 stage").
type ResLayerConfig struct {
	Depth    int        `toml:"depth" doc:"the ResNet's depth whose stage this is: 18, 34, 50 or 101" required:"true"`
	Stage    int        `toml:"stage" doc:"the stage, counted from 0: 3 is res5 (layer4)"`
	Stride   int        `toml:"stride" doc:"the stride of the stage's first block"`
	Dilation int        `toml:"dilation" doc:"the dilation of the stage's 3x3 convolutions"`
	Style    string     `toml:"style" doc:"pytorch (stride on the 3x3 convolution); caffe is not supported"`
	NormCfg  NormConfig `toml:"norm_cfg" doc:"the batch normalisation of every layer"`
	NormEval bool       `toml:"norm_eval" doc:"keep every batch norm in eval mode while training"`
	WithCP   bool       `toml:"with_cp" doc:"gradient checkpointing (not supported)"`
	// BaseChannels and NumBlocks shape the stage of a narrower ResNet, as ResNet's
	// base_channels and stage_blocks do (a small network's shared head). goselfsup's own keys.
	BaseChannels int `toml:"base_channels" doc:"the width of the ResNet's first stage (64); the stage's is base_channels * 2^stage; goselfsup's own key"`
	NumBlocks    int `toml:"num_blocks" doc:"the stage's blocks instead of those that depth implies (0); goselfsup's own key"`

	extraNorm bool
}

func init() {
	registry.Add(registry.SharedHeads, "ResLayer", "one ResNet stage applied to each RoI's features (mmdet's C4 shared head)",
		func() *ResLayerConfig { return defaultResLayer(false) })
	registry.Add(registry.SharedHeads, "ResLayerExtraNorm", "ResLayer followed by a batch norm (mmselfsup's C4 shared head; MoCo's extra BN after res5)",
		func() *ResLayerConfig { return defaultResLayer(true) })
}

func defaultResLayer(extraNorm bool) *ResLayerConfig {
	return &ResLayerConfig{Depth: 50, Stage: 3, Stride: 2, Dilation: 1, Style: "pytorch", NormCfg: defaultNorm(), BaseChannels: 64, extraNorm: extraNorm}
}

func (c *ResLayerConfig) Validate() error {
	var errs []error
	if _, ok := stageBlocks[c.Depth]; !ok {
		errs = append(errs, registry.FieldErrorf("depth", "must be one of %v, got %d", ResNetDepths, c.Depth))
	}
	if c.BaseChannels < 1 {
		errs = append(errs, registry.FieldErrorf("base_channels", "must be at least 1, got %d", c.BaseChannels))
	}
	if c.NumBlocks < 0 {
		errs = append(errs, registry.FieldErrorf("num_blocks", "must not be negative, got %d", c.NumBlocks))
	}
	if c.Stage < 0 || c.Stage > 3 {
		errs = append(errs, registry.FieldErrorf("stage", "must be 0 to 3, got %d", c.Stage))
	}
	if c.Stride < 1 {
		errs = append(errs, registry.FieldErrorf("stride", "must be at least 1, got %d", c.Stride))
	}
	if c.Dilation < 1 {
		errs = append(errs, registry.FieldErrorf("dilation", "must be at least 1, got %d", c.Dilation))
	}
	if c.Style != "pytorch" {
		errs = append(errs, registry.FieldErrorf("style", "only pytorch is supported, got %q", c.Style))
	}
	if c.WithCP {
		errs = append(errs, registry.FieldErrorf("with_cp", "gradient checkpointing is not supported"))
	}
	return errors.Join(errs...)
}

// ResLayer is a built ResLayer or ResLayerExtraNorm: its variables are named as mmdet's,
// layer<stage+1>.<block>.* and, with the extra norm, norm.*, so that a ResNet checkpoint's
// backbone.layer<stage+1>.* initialises the stage.
type ResLayer struct {
	blocks   []block
	norm     *nn.BatchNorm2d // nil without the extra norm
	normEval bool
	in, out  int
	stage    int
}

// Build builds the layer in the scope of the registry.Env.
func (c *ResLayerConfig) Build(env *registry.Env) (any, error) {
	s, err := registry.Need[*nn.Scope](env)
	if err != nil {
		return nil, err
	}
	expansion := 1
	if c.Depth >= 50 {
		expansion = 4
	}
	planes := c.BaseChannels << c.Stage
	in := planes * expansion / 2 // mmdet: 64 * 2**(stage-1) * expansion
	n := stageBlocks[c.Depth][c.Stage]
	if c.NumBlocks > 0 {
		n = c.NumBlocks
	}
	norm := c.NormCfg.Options()
	l := &ResLayer{normEval: c.NormEval, in: in, out: planes * expansion, stage: c.Stage}
	ls := s.In(fmt.Sprintf("layer%d", c.Stage+1))
	for j := range n {
		stride := 1
		if j == 0 {
			stride = c.Stride
		}
		bs := ls.In(fmt.Sprint(j))
		if expansion == 4 {
			l.blocks = append(l.blocks, newBottleneck(bs, in, planes, stride, c.Dilation, norm, false))
		} else {
			l.blocks = append(l.blocks, newBasicBlock(bs, in, planes, stride, c.Dilation, norm, false))
		}
		in = planes * expansion
	}
	if c.extraNorm {
		l.norm = nn.NewBatchNorm2d(s.In("norm"), l.out, norm)
	}
	return l, nil
}

// InChannels and OutChannels are the layer's input and output channels (1024 and 2048 for
// res5 of a ResNet-50, 256 and 512 for a ResNet-18's).
func (l *ResLayer) InChannels() int  { return l.in }
func (l *ResLayer) OutChannels() int { return l.out }

// PretrainedPrefix is the prefix of the ResNet checkpoint's variables that initialise the
// stage: backbone.layer<stage+1>.
func (l *ResLayer) PretrainedPrefix() string { return fmt.Sprintf("backbone.layer%d.", l.stage+1) }

// PretrainedSources maps the stage's variables (layer<stage+1>.*, relative to the layer's
// scope) to the ResNet checkpoint's that initialise them; the extra norm is not among them
// (mmselfsup initialises it afresh).
func (l *ResLayer) PretrainedSources() map[string]string {
	return map[string]string{fmt.Sprintf("layer%d.", l.stage+1): l.PretrainedPrefix()}
}

// Forward applies the stage (and the extra norm) to x [R, H, W, in_channels].
func (l *ResLayer) Forward(x *Node, train bool) *Node {
	train = train && !l.normEval
	for _, b := range l.blocks {
		x = b.forward(x, train)
	}
	if l.norm != nil {
		x = l.norm.Forward(x, train)
	}
	return x
}
