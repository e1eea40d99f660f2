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
	Depth    int        `toml:"depth" doc:"the ResNet's depth whose stage this is: 50 or 101" required:"true"`
	Stage    int        `toml:"stage" doc:"the stage, counted from 0: 3 is res5 (layer4)"`
	Stride   int        `toml:"stride" doc:"the stride of the stage's first block"`
	Dilation int        `toml:"dilation" doc:"the dilation of the stage's 3x3 convolutions"`
	Style    string     `toml:"style" doc:"pytorch (stride on the 3x3 convolution); caffe is not supported"`
	NormCfg  NormConfig `toml:"norm_cfg" doc:"the batch normalisation of every layer"`
	NormEval bool       `toml:"norm_eval" doc:"keep every batch norm in eval mode while training"`
	WithCP   bool       `toml:"with_cp" doc:"gradient checkpointing (not supported)"`

	extraNorm bool
}

func init() {
	registry.Add(registry.SharedHeads, "ResLayer", "one ResNet stage applied to each RoI's features (mmdet's C4 shared head)",
		func() *ResLayerConfig { return defaultResLayer(false) })
	registry.Add(registry.SharedHeads, "ResLayerExtraNorm", "ResLayer followed by a batch norm (mmselfsup's C4 shared head; MoCo's extra BN after res5)",
		func() *ResLayerConfig { return defaultResLayer(true) })
}

func defaultResLayer(extraNorm bool) *ResLayerConfig {
	return &ResLayerConfig{Depth: 50, Stage: 3, Stride: 2, Dilation: 1, Style: "pytorch", NormCfg: defaultNorm(), extraNorm: extraNorm}
}

func (c *ResLayerConfig) Validate() error {
	var errs []error
	if c.Depth != 50 && c.Depth != 101 {
		errs = append(errs, registry.FieldErrorf("depth", "must be 50 or 101, got %d", c.Depth))
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
	planes := 64 << c.Stage
	in := planes * 4 / 2 // mmdet: 64 * 2**(stage-1) * expansion
	n := stageBlocks[c.Depth][c.Stage]
	norm := c.NormCfg.Options()
	l := &ResLayer{normEval: c.NormEval, in: in, out: planes * 4, stage: c.Stage}
	ls := s.In(fmt.Sprintf("layer%d", c.Stage+1))
	for j := range n {
		stride := 1
		if j == 0 {
			stride = c.Stride
		}
		l.blocks = append(l.blocks, newBottleneck(ls.In(fmt.Sprint(j)), in, planes, stride, c.Dilation, norm, false))
		in = planes * 4
	}
	if c.extraNorm {
		l.norm = nn.NewBatchNorm2d(s.In("norm"), l.out, norm)
	}
	return l, nil
}

// InChannels and OutChannels are the layer's input and output channels (1024 and 2048 for
// res5 of a ResNet-50).
func (l *ResLayer) InChannels() int  { return l.in }
func (l *ResLayer) OutChannels() int { return l.out }

// PretrainedPrefix is the prefix of the ResNet checkpoint's variables that initialise the
// stage: backbone.layer<stage+1>.
func (l *ResLayer) PretrainedPrefix() string { return fmt.Sprintf("backbone.layer%d.", l.stage+1) }

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
