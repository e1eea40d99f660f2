package nn

import (
	"math"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/ml/context"
)

func shapesOf(dtype dtypes.DType, dims []int) shapes.Shape { return shapes.Make(dtype, dims...) }

// Conv2d is a 2D convolution over NHWC images with a kernel stored as [kh, kw, in, out].
type Conv2d struct {
	Weight, Bias                    *context.Variable // Bias is nil without one
	Stride, Padding                 int
	Dilation                        int // 0 or 1: none
	InChannels, OutChannels, Kernel int
	ctx                             *context.Context // for the graph's autocast region
}

// NewConv2d creates a square convolution with Kaiming normal (fan_out) initialisation, as
// mmselfsup's ResNet initialises its convolutions; a bias starts at zero.
func NewConv2d(s *Scope, in, out, kernel, stride, padding int, bias bool) *Conv2d {
	checkPositive("in_channels", in)
	checkPositive("out_channels", out)
	c := &Conv2d{Stride: stride, Padding: padding, InChannels: in, OutChannels: out, Kernel: kernel, ctx: s.ctx}
	c.Weight = s.variable("weight", Weight, true, []int{kernel, kernel, in, out}, normal(KaimingFanOutStd(out, kernel, kernel)))
	if bias {
		c.Bias = s.variable("bias", Bias, true, []int{out}, constant(0))
	}
	return c
}

// NewConv2dDilated creates a square convolution as NewConv2d, with a dilation (PyTorch's
// dilation: the kernel's taps are dilation pixels apart).
func NewConv2dDilated(s *Scope, in, out, kernel, stride, padding, dilation int, bias bool) *Conv2d {
	checkPositive("dilation", dilation)
	c := NewConv2d(s, in, out, kernel, stride, padding, bias)
	c.Dilation = dilation
	return c
}

// NewConv2dNormal creates a square convolution with stride 1, padding kernel/2, weights
// drawn from N(0, std) and a zero bias (mmcv's normal_init, as mmseg's conv_seg).
func NewConv2dNormal(s *Scope, in, out, kernel int, std float64) *Conv2d {
	checkPositive("in_channels", in)
	checkPositive("out_channels", out)
	c := &Conv2d{Stride: 1, Padding: kernel / 2, InChannels: in, OutChannels: out, Kernel: kernel, ctx: s.ctx}
	c.Weight = s.variable("weight", Weight, true, []int{kernel, kernel, in, out}, normal(std))
	c.Bias = s.variable("bias", Bias, true, []int{out}, constant(0))
	return c
}

// Freeze stops the weight's gradient.
func (c *Conv2d) Freeze() {
	c.Weight.SetTrainable(false)
	if c.Bias != nil {
		c.Bias.SetTrainable(false)
	}
}

// Forward convolves x; in an autocast region (see SetAutocast), in its dtype, the result
// converted back to x's.
func (c *Conv2d) Forward(x *Node) *Node {
	w := c.Weight.ValueGraph(x.Graph())
	p := [2]int{c.Padding, c.Padding}
	in, dt := x, autocastTo(c.ctx, x)
	if dt != x.DType() {
		in, w = ConvertDType(x, dt), ConvertDType(w, dt)
	}
	d, stride := max(c.Dilation, 1), c.Stride
	if d > 1 {
		stride = 1 // XLA takes strides or dilations: a dilated convolution is subsampled below
	}
	y := Convolve(in, w).StridePerAxis(stride, stride).DilationPerAxis(d, d).PaddingPerDim([][2]int{p, p}).Done()
	if stride != c.Stride {
		s := c.Stride
		y = Slice(y, AxisRange(), AxisRange().Stride(s), AxisRange().Stride(s), AxisRange())
	}
	y = ConvertDType(y, x.DType())
	if c.Bias != nil {
		y = Add(y, ExpandLeftToRank(c.Bias.ValueGraph(x.Graph()), y.Rank()))
	}
	return y
}

// BatchNorm2d is PyTorch's BatchNorm2d over the channel (last) axis. In training it
// normalises with the batch statistics and updates the running ones as
// running = (1 - momentum) * running + momentum * batch, with the unbiased batch variance.
//
// In a graph on several devices, a SyncBN (Sync) takes its statistics over the batches of
// all devices, as PyTorch's SyncBatchNorm, and every device keeps the same running
// statistics. A plain one normalises by its device's batch and each device keeps running
// statistics of its own batches; checkpoints and evaluation take device 0's (a replicated
// variable's value is device 0's shard), which is what PyTorch's DistributedDataParallel
// keeps by broadcasting device 0's buffers at each step. Training never reads them, so the
// broadcast (an AllReduce per layer and step) is left out.
type BatchNorm2d struct {
	Weight, Bias            *context.Variable // nil if not affine
	RunningMean, RunningVar *context.Variable
	NumBatchesTracked       *context.Variable
	Momentum, Eps           float64
	Channels                int
	Sync                    bool
}

// NormOptions are the keys of mmcv's norm_cfg that a BatchNorm2d takes.
type NormOptions struct {
	Momentum     float64
	Eps          float64
	Affine       bool
	RequiresGrad bool
	// ZeroWeight starts the weight at 0 instead of 1 (zero_init_residual).
	ZeroWeight bool
	// Sync takes the batch statistics over all devices (SyncBN).
	Sync bool
}

// DefaultNorm is PyTorch's BatchNorm2d default.
var DefaultNorm = NormOptions{Momentum: 0.1, Eps: 1e-5, Affine: true, RequiresGrad: true}

// NewBatchNorm2d creates a batch norm with weight 1 and bias 0, as mmcv's constant_init.
func NewBatchNorm2d(s *Scope, channels int, o NormOptions) *BatchNorm2d {
	checkPositive("channels", channels)
	bn := &BatchNorm2d{Momentum: o.Momentum, Eps: o.Eps, Channels: channels, Sync: o.Sync}
	if o.Affine {
		w := 1.0
		if o.ZeroWeight {
			w = 0
		}
		bn.Weight = s.variable("weight", Norm, o.RequiresGrad, []int{channels}, constant(w))
		bn.Bias = s.variable("bias", Norm, o.RequiresGrad, []int{channels}, constant(0))
	}
	bn.RunningMean = s.variable("running_mean", Norm, false, []int{channels}, constant(0))
	bn.RunningVar = s.variable("running_var", Norm, false, []int{channels}, constant(1))
	bn.NumBatchesTracked = s.buffer("num_batches_tracked", dtypes.Int64)
	return bn
}

// Freeze stops the gradient of the affine parameters (mmcv's requires_grad = False).
func (bn *BatchNorm2d) Freeze() {
	if bn.Weight != nil {
		bn.Weight.SetTrainable(false)
		bn.Bias.SetTrainable(false)
	}
}

// Forward normalises x. With train, it uses and records the batch statistics; otherwise the
// running ones.
func (bn *BatchNorm2d) Forward(x *Node, train bool) *Node {
	g := x.Graph()
	var scale, offset *Node
	if bn.Weight != nil {
		scale, offset = bn.Weight.ValueGraph(g), bn.Bias.ValueGraph(g)
	} else {
		scale, offset = OnesLike(bn.RunningMean.ValueGraph(g)), ZerosLike(bn.RunningMean.ValueGraph(g))
	}
	if !train {
		return InternalBatchNormForInference(x, scale, offset, bn.RunningMean.ValueGraph(g), bn.RunningVar.ValueGraph(g),
			float32(bn.Eps), -1)
	}
	devices := g.NumDevices()
	var y, mean, variance *Node
	n := float64(x.Shape().Size() / bn.Channels)
	if bn.Sync && devices > 1 {
		n *= float64(devices)
		y, mean, variance = bn.syncStatistics(x, scale, offset, n)
	} else {
		y, mean, variance = InternalBatchNormForTraining(x, scale, offset, float32(bn.Eps), -1)
	}
	unbiased := MulScalar(StopGradient(variance), n/math.Max(n-1, 1))
	m := bn.Momentum
	runMean := Add(MulScalar(bn.RunningMean.ValueGraph(g), 1-m), MulScalar(StopGradient(mean), m))
	runVar := Add(MulScalar(bn.RunningVar.ValueGraph(g), 1-m), MulScalar(unbiased, m))
	bn.RunningMean.SetValueGraph(runMean)
	bn.RunningVar.SetValueGraph(runVar)
	bn.NumBatchesTracked.SetValueGraph(AddScalar(bn.NumBatchesTracked.ValueGraph(g), 1))
	return y
}

// syncStatistics normalises x with the mean and the (biased) variance of the n values per
// channel of all devices' batches, both summed across devices in two passes; the gradient
// flows back to every device's values through AllSum.
func (bn *BatchNorm2d) syncStatistics(x, scale, offset *Node, n float64) (y, mean, variance *Node) {
	axes := []int{0, 1, 2}
	mean = DivScalar(AllSum(ReduceSum(x, axes...)), n)
	centered := Sub(x, ExpandLeftToRank(mean, x.Rank()))
	variance = DivScalar(AllSum(ReduceSum(Square(centered), axes...)), n)
	inv := Div(scale, Sqrt(AddScalar(variance, bn.Eps))) // GoMLX v0.26 has no gradient for Rsqrt
	y = Add(Mul(centered, ExpandLeftToRank(inv, x.Rank())), ExpandLeftToRank(offset, x.Rank()))
	return y, mean, variance
}

// Linear is PyTorch's Linear: y = x Wᵀ + b, with W stored as [out, in].
type Linear struct {
	Weight, Bias            *context.Variable
	InFeatures, OutFeatures int
	ctx                     *context.Context // for the graph's autocast region
}

// NewLinear creates a linear layer with PyTorch's default initialisation: weight and bias
// uniform in ±1/sqrt(in) (kaiming_uniform with a = sqrt(5)).
func NewLinear(s *Scope, in, out int, bias bool) *Linear {
	checkPositive("in_features", in)
	checkPositive("out_features", out)
	bound := 1 / math.Sqrt(float64(in))
	l := &Linear{InFeatures: in, OutFeatures: out, ctx: s.ctx}
	l.Weight = s.variable("weight", Weight, true, []int{out, in}, uniform(bound))
	if bias {
		l.Bias = s.variable("bias", Bias, true, []int{out}, uniform(bound))
	}
	return l
}

// NewLinearNormal creates a linear layer with weights drawn from N(0, std) and zero bias
// (mmcv's normal_init, as classification heads use).
func NewLinearNormal(s *Scope, in, out int, std float64) *Linear {
	l := &Linear{InFeatures: in, OutFeatures: out, ctx: s.ctx}
	l.Weight = s.variable("weight", Weight, true, []int{out, in}, normal(std))
	l.Bias = s.variable("bias", Bias, true, []int{out}, constant(0))
	return l
}

// Forward computes x Wᵀ + b; in an autocast region (see SetAutocast), x Wᵀ in its dtype,
// converted back to x's before the bias.
func (l *Linear) Forward(x *Node) *Node {
	g := x.Graph()
	in, w := x, l.Weight.ValueGraph(g)
	if dt := autocastTo(l.ctx, x); dt != x.DType() {
		in, w = ConvertDType(x, dt), ConvertDType(w, dt)
	}
	y := ConvertDType(DotGeneral(in, []int{x.Rank() - 1}, nil, w, []int{1}, nil), x.DType())
	if l.Bias != nil {
		y = Add(y, ExpandLeftToRank(l.Bias.ValueGraph(g), y.Rank()))
	}
	return y
}

// ReLU is max(x, 0) with PyTorch's gradient: 1 where x > 0, else 0.
func ReLU(x *Node) *Node {
	return Mul(x, ConvertDType(GreaterThan(x, ZerosLike(x)), x.DType()))
}

// MaxPool2d is PyTorch's MaxPool2d(kernel, stride, padding) on NHWC images.
func MaxPool2d(x *Node, kernel, stride, padding int) *Node {
	p := [2]int{padding, padding}
	return MaxPool(x).Window(kernel).Strides(stride).PaddingPerDim([][2]int{p, p}).Done()
}

// GlobalAvgPool averages NHWC images over height and width: [N, H, W, C] -> [N, C].
func GlobalAvgPool(x *Node) *Node { return ReduceMean(x, 1, 2) }

// Normalize is PyTorch's F.normalize(x, dim=-1): x / max(||x||, 1e-12).
func Normalize(x *Node) *Node {
	norm := Sqrt(ReduceSum(Mul(x, x), -1))
	norm = Max(norm, Scalar(x.Graph(), x.DType(), 1e-12))
	return Div(x, ExpandAxes(norm, -1))
}
