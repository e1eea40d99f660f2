package models

import (
	"fmt"

	. "github.com/gomlx/gomlx/pkg/core/graph"

	"github.com/goselfsup/goselfsup/models/nn"
	"github.com/goselfsup/goselfsup/registry"
)

// Backbone turns a batch of normalised NHWC images into feature maps, one per output index.
type Backbone interface {
	Forward(x *Node, train bool) []*Node
	// OutChannels are the channels of each output.
	OutChannels() []int
}

// ResNet is mmcls's ResNet in PyTorch style (v1.5: the stride on the 3x3 convolution), with
// mmselfsup's output numbering (0 = stem, 1..4 = stages) and torchvision's parameter names.
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

// ResNetCIFARConfig is mmcls's ResNet_CIFAR: the ResNet with a 3x3 stride-1 stem and no
// max-pool, for 32x32 images.
type ResNetCIFARConfig struct{ ResNetConfig }

// Build builds the ResNet.
func (c *ResNetConfig) Build(env *registry.Env) (any, error) { return newResNet(env, c, false) }

// Build builds the CIFAR ResNet.
func (c *ResNetCIFARConfig) Build(env *registry.Env) (any, error) {
	return newResNet(env, &c.ResNetConfig, true)
}

func newResNet(env *registry.Env, c *ResNetConfig, cifar bool) (*ResNet, error) {
	s, err := registry.Need[*nn.Scope](env)
	if err != nil {
		return nil, err
	}
	if c.DeepStem || c.AvgDown || c.WithCP || c.Style != "pytorch" {
		return nil, fmt.Errorf("deep_stem, avg_down, with_cp and style \"caffe\" are not supported")
	}
	for _, d := range c.Dilations {
		if d != 1 {
			return nil, fmt.Errorf("dilations other than 1 are not supported, got %v", c.Dilations)
		}
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
	norm := normOptions(c.NormCfg)
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
			stride := 1
			if j == 0 {
				stride = c.Strides[i]
			}
			bs := ls.In(fmt.Sprint(j))
			if bottleneck {
				stage = append(stage, newBottleneck(bs, in, planes, stride, norm, c.ZeroInitResidual))
			} else {
				stage = append(stage, newBasicBlock(bs, in, planes, stride, norm, c.ZeroInitResidual))
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

func newBasicBlock(s *nn.Scope, in, planes, stride int, norm nn.NormOptions, zeroInit bool) *basicBlock {
	b := &basicBlock{
		conv1: nn.NewConv2d(s.In("conv1"), in, planes, 3, stride, 1, false),
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

func newBottleneck(s *nn.Scope, in, planes, stride int, norm nn.NormOptions, zeroInit bool) *bottleneck {
	out := planes * 4
	b := &bottleneck{
		conv1: nn.NewConv2d(s.In("conv1"), in, planes, 1, 1, 0, false),
		bn1:   nn.NewBatchNorm2d(s.In("bn1"), planes, norm),
		conv2: nn.NewConv2d(s.In("conv2"), planes, planes, 3, stride, 1, false),
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

func normOptions(c NormConfig) nn.NormOptions {
	return nn.NormOptions{Momentum: c.Momentum, Eps: c.Eps, Affine: c.Affine, RequiresGrad: c.RequiresGrad}
}

// zeroed marks the last norm of a residual block for zero initialisation
// (zero_init_residual), so that each block starts as the identity.
func zeroed(o nn.NormOptions, zero bool) nn.NormOptions {
	o.ZeroWeight = zero
	return o
}
