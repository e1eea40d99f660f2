// Package nn holds the layers that goselfsup's models are made of, written on GoMLX with
// PyTorch's semantics and parameter names: Conv2d (Kaiming normal, fan_out), BatchNorm2d
// (momentum as the weight of the new batch statistic, unbiased running variance, eps 1e-5),
// Linear (PyTorch's default uniform initialisation) and ReLU (gradient 0 at 0). Images are
// NHWC, the layout XLA prefers on GPUs; convolution kernels are stored HWIO and converted to
// PyTorch's OIHW only when exported.
//
// Layers are values built once, holding their variables; their Forward methods build graph
// nodes and may run in several graphs (training, feature extraction).
package nn

import (
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"strings"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
)

// ParamKind tells the optimizer how a parameter's weight decay is scaled
// (mmengine's norm_decay_mult and bias_decay_mult).
type ParamKind int

const (
	Weight ParamKind = iota // a convolution or linear weight
	Bias                    // a convolution or linear bias
	Norm                    // a normalisation layer's weight or bias
)

// Scope creates variables under a name prefix, with initial values drawn from a seed and the
// variable's full name, so that they do not depend on the order in which layers are built.
type Scope struct {
	ctx   *context.Context
	seed  uint64
	dtype dtypes.DType
	kinds map[*context.Variable]ParamKind
}

// NewScope returns the root scope of a float32 model whose variables live in ctx.
func NewScope(ctx *context.Context, seed uint64) *Scope {
	return &Scope{ctx: ctx, seed: seed, dtype: dtypes.Float32, kinds: map[*context.Variable]ParamKind{}}
}

// WithDType returns the scope for a model computed in dtype (Float32, or Float64 for
// checks that float32 rounding would blur).
func (s *Scope) WithDType(dtype dtypes.DType) *Scope {
	c := *s
	c.dtype = dtype
	return &c
}

// DType is the dtype of the model's floating-point values.
func (s *Scope) DType() dtypes.DType { return s.dtype }

// In returns the scope of a sub-module, such as "backbone" or "layer1" or "0".
func (s *Scope) In(name string) *Scope {
	c := *s
	c.ctx = s.ctx.In(name)
	return &c
}

// Tensor returns values as a tensor of the scope's dtype.
func (s *Scope) Tensor(values []float64, dims ...int) *tensors.Tensor {
	if s.dtype == dtypes.Float64 {
		return tensors.FromFlatDataAndDimensions(values, dims...)
	}
	f := make([]float32, len(values))
	for i, v := range values {
		f[i] = float32(v)
	}
	return tensors.FromFlatDataAndDimensions(f, dims...)
}

// Seed is the seed that initial values derive from.
func (s *Scope) Seed() uint64 { return s.seed }

// Context is the GoMLX context that holds the variables.
func (s *Scope) Context() *context.Context { return s.ctx }

// Kind returns the kind of a trainable variable created through a Scope.
func (s *Scope) Kind(v *context.Variable) (ParamKind, bool) {
	k, ok := s.kinds[v]
	return k, ok
}

// TorchName returns the PyTorch state_dict name of a variable: its scope and name joined by
// dots, "backbone.layer1.0.conv1.weight".
func TorchName(v *context.Variable) string {
	scope := strings.Trim(v.Scope(), context.ScopeSeparator)
	if scope == "" {
		return v.Name()
	}
	return strings.ReplaceAll(scope, context.ScopeSeparator, ".") + "." + v.Name()
}

// rng returns the random source for the variable name in this scope.
func (s *Scope) rng(name string) *rand.Rand {
	h := fnv.New64a()
	h.Write([]byte(s.ctx.Scope()))
	h.Write([]byte{0})
	h.Write([]byte(name))
	return rand.New(rand.NewPCG(s.seed, h.Sum64()))
}

// variable creates a variable of the scope's dtype filled by init.
func (s *Scope) variable(name string, kind ParamKind, trainable bool, dims []int, init func(rng *rand.Rand, data []float64)) *context.Variable {
	n := 1
	for _, d := range dims {
		n *= d
	}
	data := make([]float64, n)
	init(s.rng(name), data)
	v := s.ctx.Checked(false).VariableWithValue(name, s.Tensor(data, dims...))
	v.SetTrainable(trainable)
	if trainable {
		s.kinds[v] = kind
	}
	return v
}

// buffer creates a non-trainable variable of the given dtype, zero-filled.
func (s *Scope) buffer(name string, dtype dtypes.DType, dims ...int) *context.Variable {
	v := s.ctx.Checked(false).VariableWithValue(name, tensors.FromShape(shapesOf(dtype, dims)))
	v.SetTrainable(false)
	return v
}

func constant(v float64) func(*rand.Rand, []float64) {
	return func(_ *rand.Rand, data []float64) {
		for i := range data {
			data[i] = v
		}
	}
}

func normal(std float64) func(*rand.Rand, []float64) {
	return func(rng *rand.Rand, data []float64) {
		for i := range data {
			data[i] = rng.NormFloat64() * std
		}
	}
}

func uniform(bound float64) func(*rand.Rand, []float64) {
	return func(rng *rand.Rand, data []float64) {
		for i := range data {
			data[i] = (2*rng.Float64() - 1) * bound
		}
	}
}

// KaimingFanOutStd is the standard deviation of mmcv's kaiming_init(mode="fan_out",
// nonlinearity="relu", distribution="normal"): sqrt(2 / (out_channels * kh * kw)).
func KaimingFanOutStd(outChannels, kh, kw int) float64 {
	return math.Sqrt(2 / float64(outChannels*kh*kw))
}

func checkPositive(what string, v int) {
	if v < 1 {
		panic(fmt.Sprintf("nn: %s must be positive, got %d", what, v))
	}
}
