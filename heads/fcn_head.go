package heads

import (
	"errors"
	"fmt"

	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/goselfsup/goselfsup/models"
	"github.com/goselfsup/goselfsup/models/nn"
	"github.com/goselfsup/goselfsup/registry"
)

// FCNHeadConfig is mmseg's FCNHead (with BaseDecodeHead's keys): num_convs 3x3 ConvModules
// (conv, BN, ReLU) over one backbone output, optionally concatenated with that output and
// fused by conv_cat, then Dropout2d and the 1x1 classifier conv_seg.
type FCNHeadConfig struct {
	InChannels     int               `toml:"in_channels" doc:"the channels of the backbone output the head reads" required:"true"`
	Channels       int               `toml:"channels" doc:"the channels of the head's convolutions" required:"true"`
	NumClasses     int               `toml:"num_classes" doc:"the number of classes" required:"true"`
	InIndex        int               `toml:"in_index" doc:"which of the backbone's outputs the head reads (an index into its out_indices outputs; negative counts from the end)"`
	InputTransform string            `toml:"input_transform" doc:"only none (a single input) is supported"`
	NumConvs       int               `toml:"num_convs" doc:"the number of 3x3 ConvModules"`
	KernelSize     int               `toml:"kernel_size" doc:"the kernel size of the ConvModules (odd)"`
	Dilation       int               `toml:"dilation" doc:"the dilation of the ConvModules (not of conv_cat)"`
	ConcatInput    bool              `toml:"concat_input" doc:"concatenate the input with the convs' output and fuse them with conv_cat"`
	DropoutRatio   float64           `toml:"dropout_ratio" doc:"the Dropout2d probability before conv_seg (whole channels, training only)"`
	NormCfg        models.NormConfig `toml:"norm_cfg" doc:"the batch norm of the ConvModules (mmseg's configs set SyncBN; goselfsup's default is BN)"`
	AlignCorners   bool              `toml:"align_corners" doc:"only false (half-pixel bilinear resizing) is supported"`
	IgnoreIndex    int               `toml:"ignore_index" doc:"the label value of pixels that the loss ignores"`
	LossDecode     registry.Spec     `toml:"loss_decode" registry:"losses" doc:"the per-pixel loss, such as CrossEntropyLoss (with loss_weight)"`
}

func init() {
	registry.Add(registry.Heads, "FCNHead", "mmseg's FCN decode head: 3x3 ConvModules, optional concat with the input, Dropout2d and a 1x1 classifier",
		func() *FCNHeadConfig {
			return &FCNHeadConfig{InIndex: -1, NumConvs: 2, KernelSize: 3, Dilation: 1, ConcatInput: true, DropoutRatio: 0.1,
				NormCfg:     models.NormConfig{Type: "BN", RequiresGrad: true, Momentum: 0.1, Eps: 1e-5, Affine: true},
				IgnoreIndex: 255, LossDecode: crossEntropy()}
		})
}

func (c *FCNHeadConfig) Validate() error {
	var errs []error
	if c.InChannels < 1 || c.Channels < 1 {
		errs = append(errs, registry.FieldErrorf("channels", "in_channels and channels must be at least 1, got %d and %d", c.InChannels, c.Channels))
	}
	if c.NumClasses < 1 {
		errs = append(errs, registry.FieldErrorf("num_classes", "must be at least 1, got %d", c.NumClasses))
	}
	if c.InputTransform != "" {
		errs = append(errs, registry.FieldErrorf("input_transform", "only a single input is supported, got %q", c.InputTransform))
	}
	if c.NumConvs < 0 {
		errs = append(errs, registry.FieldErrorf("num_convs", "must be at least 0, got %d", c.NumConvs))
	}
	if c.NumConvs == 0 && c.InChannels != c.Channels {
		errs = append(errs, registry.FieldErrorf("num_convs", "0 needs in_channels = channels, got %d and %d", c.InChannels, c.Channels))
	}
	if c.KernelSize < 1 || c.KernelSize%2 == 0 {
		errs = append(errs, registry.FieldErrorf("kernel_size", "must be odd and positive, got %d", c.KernelSize))
	}
	if c.Dilation < 1 {
		errs = append(errs, registry.FieldErrorf("dilation", "must be at least 1, got %d", c.Dilation))
	}
	if c.DropoutRatio < 0 || c.DropoutRatio >= 1 {
		errs = append(errs, registry.FieldErrorf("dropout_ratio", "must be in [0, 1), got %g", c.DropoutRatio))
	}
	if c.AlignCorners {
		errs = append(errs, registry.FieldErrorf("align_corners", "only false is supported"))
	}
	return errors.Join(errs...)
}

// SegLoss scores per-pixel logits [B, H, W, C] against labels [B, H, W], ignoring the
// pixels labelled ignoreIndex (CrossEntropyLoss's SegLoss).
type SegLoss interface {
	SegLoss(ctx *context.Context, logits, labels *Node, ignoreIndex int) *Node
}

// convModule is mmcv's ConvModule with a norm: a convolution without bias ("conv"), batch
// norm ("bn") and ReLU.
type convModule struct {
	conv *nn.Conv2d
	bn   *nn.BatchNorm2d
}

func newConvModule(s *nn.Scope, in, out, kernel, dilation int, norm nn.NormOptions) convModule {
	return convModule{
		conv: nn.NewConv2dDilated(s.In("conv"), in, out, kernel, 1, kernel/2*dilation, dilation, false),
		bn:   nn.NewBatchNorm2d(s.In("bn"), out, norm),
	}
}

func (m convModule) forward(x *Node, train bool) *Node {
	return nn.ReLU(m.bn.Forward(m.conv.Forward(x), train))
}

// FCNHead is mmseg's FCNHead, with its parameter names: convs.{i}.conv/bn, conv_cat.conv/bn
// and conv_seg (weights N(0, 0.01), zero bias); the ConvModules' convolutions are Kaiming
// normal (fan_out) and their norms start at weight 1, bias 0, as mmcv's ConvModule.
type FCNHead struct {
	convs       []convModule
	convCat     *convModule
	convSeg     *nn.Conv2d
	inIndex     int
	inChannels  int
	dropout     float64
	ignoreIndex int
	criterion   SegLoss
}

func (c *FCNHeadConfig) Build(env *registry.Env) (any, error) {
	s, err := registry.Need[*nn.Scope](env)
	if err != nil {
		return nil, err
	}
	criterion, err := registry.Build[SegLoss](registry.With(env, s.In("loss_decode")), c.LossDecode)
	if err != nil {
		return nil, err
	}
	norm := c.NormCfg.Options()
	h := &FCNHead{inIndex: c.InIndex, inChannels: c.InChannels, dropout: c.DropoutRatio, ignoreIndex: c.IgnoreIndex, criterion: criterion}
	in := c.InChannels
	for i := range c.NumConvs {
		h.convs = append(h.convs, newConvModule(s.In("convs").In(fmt.Sprint(i)), in, c.Channels, c.KernelSize, c.Dilation, norm))
		in = c.Channels
	}
	if c.ConcatInput {
		m := newConvModule(s.In("conv_cat"), c.InChannels+c.Channels, c.Channels, c.KernelSize, 1, norm)
		h.convCat = &m
	}
	h.convSeg = nn.NewConv2dNormal(s.In("conv_seg"), c.Channels, c.NumClasses, 1, 0.01)
	return h, nil
}

// Forward returns the logits [B, h, w, num_classes] at the resolution of the input it reads
// from feats (the backbone's outputs). Dropout2d draws from ctx in training.
func (h *FCNHead) Forward(ctx *context.Context, feats []*Node, train bool) *Node {
	i := h.inIndex
	if i < 0 {
		i += len(feats)
	}
	if i < 0 || i >= len(feats) {
		panic(fmt.Sprintf("FCNHead: in_index %d, but the backbone gives %d outputs", h.inIndex, len(feats)))
	}
	x := feats[i]
	if x.Shape().Dim(-1) != h.inChannels {
		panic(fmt.Sprintf("FCNHead: in_channels is %d but output %d has %d channels", h.inChannels, i, x.Shape().Dim(-1)))
	}
	y := x
	for _, m := range h.convs {
		y = m.forward(y, train)
	}
	if h.convCat != nil {
		y = h.convCat.forward(Concatenate([]*Node{x, y}, -1), train)
	}
	y = nn.Dropout2d(ctx, y, h.dropout, train) // ctx is only read in training with dropout_ratio > 0
	return h.convSeg.Forward(y)
}

// Loss resizes the logits bilinearly (align_corners = False) to the labels' size [B, H, W]
// and returns loss_decode's loss, ignoring the pixels labelled ignore_index.
func (h *FCNHead) Loss(ctx *context.Context, logits, labels *Node) *Node {
	logits = nn.Resize(logits, labels.Shape().Dim(1), labels.Shape().Dim(2))
	return h.criterion.SegLoss(ctx, logits, labels, h.ignoreIndex)
}
