package models

import (
	"errors"
	"fmt"
	"slices"

	. "github.com/gomlx/gomlx/pkg/core/graph"

	"github.com/goselfsup/goselfsup/models/nn"
	"github.com/goselfsup/goselfsup/registry"
)

// ResNetConfig is mmselfsup's ResNet (mmcls's, with mmselfsup's output indices): 0 is the
// stem (conv, BN, ReLU, before the max-pool) and 1..4 are the four stages.
type ResNetConfig struct {
	Depth            int        `toml:"depth" doc:"the network's depth: 18, 34, 50 or 101" required:"true"`
	InChannels       int        `toml:"in_channels" doc:"the channels of the input images"`
	StemChannels     int        `toml:"stem_channels" doc:"the output channels of the stem"`
	BaseChannels     int        `toml:"base_channels" doc:"the width of the first stage; each stage doubles it"`
	NumStages        int        `toml:"num_stages" doc:"the number of stages, 1 to 4"`
	Strides          []int      `toml:"strides" doc:"the stride of the first block of each stage"`
	Dilations        []int      `toml:"dilations" doc:"the dilation of each stage's 3x3 convolutions (mmseg's dilated ResNet; padding = dilation)"`
	ContractDilation bool       `toml:"contract_dilation" doc:"the first block of a stage with dilation d > 1 uses d/2 (mmseg's key)"`
	OutIndices       []int      `toml:"out_indices" doc:"the outputs the backbone returns: 0 is the stem, 1..4 the stages"`
	Style            string     `toml:"style" doc:"pytorch (stride on the 3x3 convolution, ResNet v1.5); caffe is not supported"`
	DeepStem         bool       `toml:"deep_stem" doc:"three 3x3 convolutions as the stem (not supported)"`
	AvgDown          bool       `toml:"avg_down" doc:"average pooling in the shortcut downsampling (not supported)"`
	FrozenStages     int        `toml:"frozen_stages" doc:"the stages whose weights and batch statistics are frozen: -1 none, 0 the stem, i the stem and stages 1..i"`
	NormCfg          NormConfig `toml:"norm_cfg" doc:"the batch normalisation of every layer"`
	NormEval         bool       `toml:"norm_eval" doc:"keep every batch norm in eval mode while training"`
	WithCP           bool       `toml:"with_cp" doc:"gradient checkpointing (not supported)"`
	ZeroInitResidual bool       `toml:"zero_init_residual" doc:"start the last norm of each residual block at zero, so each block starts as the identity"`
	// StageBlocks overrides the number of blocks of each stage that depth implies, for small
	// networks such as the demo's ResNet-10 ([1, 1, 1, 1] with depth 18). goselfsup's own key.
	StageBlocks []int `toml:"stage_blocks" doc:"the number of blocks of each stage, instead of those that depth implies; goselfsup's own key"`
}

// ResNetDepths are the supported depths.
var ResNetDepths = []int{18, 34, 50, 101}

func init() {
	registry.Add(registry.Backbones, "ResNet", "ResNet 18/34/50/101; out_indices 0 = stem, 1..4 = stages",
		func() *ResNetConfig { return defaultResNet() })
}

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
	for _, d := range c.Dilations {
		if d < 1 {
			errs = append(errs, registry.FieldErrorf("dilations", "must be at least 1, got %v", c.Dilations))
			break
		}
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

// ResNet is mmcls's ResNet in PyTorch style (v1.5: the stride on the 3x3 convolution), with
// mmselfsup's output numbering (0 = stem, 1..4 = stages) and torchvision's parameter names.
// With dilations (and contract_dilation) it is mmseg's dilated ResNet, such as FCN's D8:
// strides [1, 2, 1, 1], dilations [1, 1, 2, 4]; mmseg's out_indices [0, 1, 2, 3] (its four
// stages) are [1, 2, 3, 4] here.
type ResNet struct {
	cifar      bool
	conv1      *nn.Conv2d
	bn1        *nn.BatchNorm2d
	stages     [][]block
	outIndices []int
	outCh      []int
	allCh      []int // the channels of the stem and of each stage
	frozen     int   // stages frozen: -1 none, 0 the stem, i the stem and stages 1..i
	normEval   bool  // every BatchNorm in eval mode while training
}

type block interface {
	forward(x *Node, train bool) *Node
	freeze()
}

var stageBlocks = map[int][]int{18: {2, 2, 2, 2}, 34: {3, 4, 6, 3}, 50: {3, 4, 6, 3}, 101: {3, 4, 23, 3}}

// Build builds the ResNet.
func (c *ResNetConfig) Build(env *registry.Env) (any, error) { return newResNet(env, c, false) }

func newResNet(env *registry.Env, c *ResNetConfig, cifar bool) (*ResNet, error) {
	s, err := registry.Need[*nn.Scope](env)
	if err != nil {
		return nil, err
	}
	if c.DeepStem || c.AvgDown || c.WithCP || c.Style != "pytorch" {
		return nil, fmt.Errorf("deep_stem, avg_down, with_cp and style \"caffe\" are not supported")
	}
	blocks := stageBlocks[c.Depth]
	if len(c.StageBlocks) > 0 {
		blocks = c.StageBlocks
	}
	bottleneck := c.Depth >= 50
	expansion := 1
	if bottleneck {
		expansion = 4
	}
	norm := c.NormCfg.Options()
	r := &ResNet{cifar: cifar, outIndices: c.OutIndices, frozen: c.FrozenStages, normEval: c.NormEval}
	if cifar {
		r.conv1 = nn.NewConv2d(s.In("conv1"), c.InChannels, c.StemChannels, 3, 1, 1, false)
	} else {
		r.conv1 = nn.NewConv2d(s.In("conv1"), c.InChannels, c.StemChannels, 7, 2, 3, false)
	}
	r.bn1 = nn.NewBatchNorm2d(s.In("bn1"), c.StemChannels, norm)
	channels := []int{c.StemChannels}
	in := c.StemChannels
	for i := 0; i < c.NumStages; i++ {
		planes := c.BaseChannels << i
		ls := s.In(fmt.Sprintf("layer%d", i+1))
		var stage []block
		for j := 0; j < blocks[i]; j++ {
			stride, dilation := 1, c.Dilations[i]
			if j == 0 {
				stride = c.Strides[i]
				if c.ContractDilation && dilation > 1 {
					dilation /= 2 // mmseg's ResLayer: the first block's dilation is contracted
				}
			}
			bs := ls.In(fmt.Sprint(j))
			if bottleneck {
				stage = append(stage, newBottleneck(bs, in, planes, stride, dilation, norm, c.ZeroInitResidual))
			} else {
				stage = append(stage, newBasicBlock(bs, in, planes, stride, dilation, norm, c.ZeroInitResidual))
			}
			in = planes * expansion
		}
		r.stages = append(r.stages, stage)
		channels = append(channels, in)
	}
	r.allCh = channels
	for _, i := range c.OutIndices {
		r.outCh = append(r.outCh, channels[i])
	}
	r.freeze()
	return r, nil
}

// freeze stops the gradients of the frozen stages, as mmcls's _freeze_stages.
func (r *ResNet) freeze() {
	if r.frozen < 0 {
		return
	}
	r.conv1.Freeze()
	r.bn1.Freeze()
	for i := 0; i < r.frozen && i < len(r.stages); i++ {
		for _, b := range r.stages[i] {
			b.freeze()
		}
	}
}

func (r *ResNet) OutChannels() []int { return r.outCh }

// Forward returns the outputs of out_indices. Frozen stages and, with norm_eval, every
// batch norm run in eval mode.
func (r *ResNet) Forward(x *Node, train bool) []*Node { return r.Pick(r.AllOutputs(x, train)) }

// Pick returns the outputs of out_indices among all the outputs that AllOutputs returns.
func (r *ResNet) Pick(all []*Node) []*Node {
	res := make([]*Node, len(r.outIndices))
	for k, i := range r.outIndices {
		res[k] = all[i]
	}
	return res
}

// AllOutputs returns every output whatever out_indices says: the stem's (after its ReLU,
// before the max-pool) and each stage's, as feature extraction and the multi-head
// evaluation use them.
func (r *ResNet) AllOutputs(x *Node, train bool) []*Node {
	stageTrain := func(stage int) bool { return train && !r.normEval && stage > r.frozen }
	x = nn.ReLU(r.bn1.Forward(r.conv1.Forward(x), stageTrain(0)))
	outs := []*Node{x}
	if !r.cifar {
		x = nn.MaxPool2d(x, 3, 2, 1)
	}
	for i, stage := range r.stages {
		for _, b := range stage {
			x = b.forward(x, stageTrain(i+1))
		}
		outs = append(outs, x)
	}
	return outs
}

// AllChannels are the channels of AllOutputs.
func (r *ResNet) AllChannels() []int { return r.allCh }

type basicBlock struct {
	conv1, conv2 *nn.Conv2d
	bn1, bn2     *nn.BatchNorm2d
	down         *downsample
}

// newBasicBlock builds a basic block; as mmseg's, only its first 3x3 convolution is dilated.
func newBasicBlock(s *nn.Scope, in, planes, stride, dilation int, norm nn.NormOptions, zeroInit bool) *basicBlock {
	b := &basicBlock{
		conv1: nn.NewConv2dDilated(s.In("conv1"), in, planes, 3, stride, dilation, dilation, false),
		bn1:   nn.NewBatchNorm2d(s.In("bn1"), planes, norm),
		conv2: nn.NewConv2d(s.In("conv2"), planes, planes, 3, 1, 1, false),
		bn2:   nn.NewBatchNorm2d(s.In("bn2"), planes, zeroed(norm, zeroInit)),
	}
	if stride != 1 || in != planes {
		b.down = newDownsample(s.In("downsample"), in, planes, stride, norm)
	}
	return b
}

func (b *basicBlock) freeze() {
	b.conv1.Freeze()
	b.bn1.Freeze()
	b.conv2.Freeze()
	b.bn2.Freeze()
	b.down.freeze()
}

func (b *basicBlock) forward(x *Node, train bool) *Node {
	y := nn.ReLU(b.bn1.Forward(b.conv1.Forward(x), train))
	y = b.bn2.Forward(b.conv2.Forward(y), train)
	return nn.ReLU(Add(y, b.down.forward(x, train)))
}

type bottleneck struct {
	conv1, conv2, conv3 *nn.Conv2d
	bn1, bn2, bn3       *nn.BatchNorm2d
	down                *downsample
}

// newBottleneck builds a bottleneck block whose 3x3 convolution carries the stride and the
// dilation (padding = dilation).
func newBottleneck(s *nn.Scope, in, planes, stride, dilation int, norm nn.NormOptions, zeroInit bool) *bottleneck {
	out := planes * 4
	b := &bottleneck{
		conv1: nn.NewConv2d(s.In("conv1"), in, planes, 1, 1, 0, false),
		bn1:   nn.NewBatchNorm2d(s.In("bn1"), planes, norm),
		conv2: nn.NewConv2dDilated(s.In("conv2"), planes, planes, 3, stride, dilation, dilation, false),
		bn2:   nn.NewBatchNorm2d(s.In("bn2"), planes, norm),
		conv3: nn.NewConv2d(s.In("conv3"), planes, out, 1, 1, 0, false),
		bn3:   nn.NewBatchNorm2d(s.In("bn3"), out, zeroed(norm, zeroInit)),
	}
	if stride != 1 || in != out {
		b.down = newDownsample(s.In("downsample"), in, out, stride, norm)
	}
	return b
}

func (b *bottleneck) freeze() {
	for _, c := range []*nn.Conv2d{b.conv1, b.conv2, b.conv3} {
		c.Freeze()
	}
	for _, n := range []*nn.BatchNorm2d{b.bn1, b.bn2, b.bn3} {
		n.Freeze()
	}
	b.down.freeze()
}

func (b *bottleneck) forward(x *Node, train bool) *Node {
	y := nn.ReLU(b.bn1.Forward(b.conv1.Forward(x), train))
	y = nn.ReLU(b.bn2.Forward(b.conv2.Forward(y), train))
	y = b.bn3.Forward(b.conv3.Forward(y), train)
	return nn.ReLU(Add(y, b.down.forward(x, train)))
}

// downsample is the 1x1 projection shortcut: downsample.0 (conv) and downsample.1 (BN).
type downsample struct {
	conv *nn.Conv2d
	bn   *nn.BatchNorm2d
}

func newDownsample(s *nn.Scope, in, out, stride int, norm nn.NormOptions) *downsample {
	return &downsample{
		conv: nn.NewConv2d(s.In("0"), in, out, 1, stride, 0, false),
		bn:   nn.NewBatchNorm2d(s.In("1"), out, norm),
	}
}

func (d *downsample) freeze() {
	if d != nil {
		d.conv.Freeze()
		d.bn.Freeze()
	}
}

// forward is the identity for a nil downsample.
func (d *downsample) forward(x *Node, train bool) *Node {
	if d == nil {
		return x
	}
	return d.bn.Forward(d.conv.Forward(x), train)
}

// zeroed marks the last norm of a residual block for zero initialisation
// (zero_init_residual), so that each block starts as the identity.
func zeroed(o nn.NormOptions, zero bool) nn.NormOptions {
	o.ZeroWeight = zero
	return o
}
