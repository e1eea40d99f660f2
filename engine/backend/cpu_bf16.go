package backend

import (
	"math"
	"runtime"
	"slices"
	"sync"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/dtypes/bfloat16"
	"github.com/gomlx/gomlx/pkg/core/shapes"
)

// bfloat16 on the CPU engine, for mixed precision (AmpOptimWrapper): the models convert the
// operands of their convolutions and matrix products to bfloat16 and the results back to
// float32.
//
// GoMLX's pure-Go backend (v0.26.0) computes bfloat16 convolutions with its direct loops (no
// patches-times-matrix, no native kernel: several times slower than float32 here) and
// bfloat16 products with float32 accumulation, and it converts float32 to bfloat16 by
// truncation (bfloat16.FromFloat32 drops the low 16 bits), where XLA and PyTorch round to
// nearest even. The engine therefore
//
//   - converts float32 to bfloat16 with rounding to nearest even, as a host step;
//   - runs bfloat16 convolutions (forward and both gradients, the ones autodiff emits) and
//     matrix products on the float32 kernels: it widens the operands (exactly), runs the
//     kernel, and rounds each result once to nearest even: the float32 computation on the
//     bfloat16 values, as GPUs compute bfloat16 with float32 accumulation;
//   - runs the other bfloat16 products (those no kernel takes) in float32 the same way;
//   - sums bfloat16 values in float32 (see reduceSumBF16), which the gradients of matrix
//     products need.
//
// The float32 and float64 paths are untouched.

// kindConvert is how the profile counts conversions to bfloat16.
const kindConvert = "conversions"

// roundBF16 rounds a float32 to the nearest bfloat16, ties to even; a NaN stays a (quiet)
// NaN and values beyond bfloat16's largest finite one become infinities, as in IEEE 754.
func roundBF16(f float32) bfloat16.BFloat16 {
	b := math.Float32bits(f)
	if b&0x7fffffff > 0x7f800000 {
		return bfloat16.BFloat16(b>>16 | 0x40)
	}
	b += 0x7fff + (b>>16)&1
	return bfloat16.BFloat16(b >> 16)
}

func roundSliceBF16(src []float32, dst []bfloat16.BFloat16) {
	for i, v := range src {
		dst[i] = roundBF16(v)
	}
}

// ConvertDType converts float32 to bfloat16 with rounding to nearest even (see above);
// every other conversion goes to the pure-Go backend.
func (b *cpuBuilder) ConvertDType(x op, dtype dtypes.DType) (op, error) {
	s := b.shape(x)
	if dtype != dtypes.BFloat16 || s.DType != dtypes.Float32 {
		return b.forwardConvertDType(x, dtype)
	}
	outs, err := b.addStep(kindConvert, []op{x}, []shapes.Shape{shapes.Make(dtypes.BFloat16, s.Dimensions...)},
		func(in, out []any) { roundSliceBF16(in[0].([]float32), out[0].([]bfloat16.BFloat16)) })
	if err != nil {
		return nil, err
	}
	return outs[0], nil
}

// minParallelConvert is the size from which a conversion is shared out among the CPUs.
const minParallelConvert = 1 << 15

// inParallel runs f on consecutive parts of [0, n), on the CPUs for a large n.
func inParallel(n int, f func(lo, hi int)) {
	parts := min(runtime.GOMAXPROCS(0), n/minParallelConvert)
	if parts <= 1 {
		f(0, n)
		return
	}
	var wg sync.WaitGroup
	for p := range parts {
		lo, hi := p*n/parts, (p+1)*n/parts
		wg.Go(func() { f(lo, hi) })
	}
	wg.Wait()
}

// bf16Operands prepares the operands of a bfloat16 kernel step: an operand that a
// conversion step rounds from a float32 value is replaced by that value, which the step
// rounds as it reads it (rounded[i]), so that the conversion and the bfloat16 copy are dead
// code when nothing else reads them. sizes are the operands' sizes.
func (b *cpuBuilder) bf16Operands(ops []op) (out []op, rounded []bool, sizes []int) {
	out, rounded, sizes = make([]op, len(ops)), make([]bool, len(ops)), make([]int, len(ops))
	for i, x := range ops {
		out[i], sizes[i] = x, b.shape(x).Size()
		v, err := b.val(x)
		if err != nil || v.step < 0 {
			continue
		}
		if st := b.steps[v.step]; st.kind == kindConvert && len(st.inputs) == 1 && st.inputs[0].shape.DType == dtypes.Float32 {
			out[i], rounded[i] = st.inputs[0], true
		}
	}
	return out, rounded, sizes
}

// viaFloat32 runs a float32 kernel (run) on bfloat16 operands (see bf16Operands) and
// outputs: it widens the operands, exactly, into float32 buffers (rounding first those that
// arrive as float32), runs the kernel, and rounds its outputs to bfloat16. The float32
// buffers are reused from one run to the next.
func viaFloat32(run func(in, out []any), rounded []bool, inSizes, outSizes []int) func(in, out []any) {
	pool := &sync.Pool{New: func() any {
		bufs := make([][]float32, 0, len(inSizes)+len(outSizes))
		for _, n := range append(slices.Clone(inSizes), outSizes...) {
			bufs = append(bufs, make([]float32, n))
		}
		return &bufs
	}}
	return func(in, out []any) {
		bufs := pool.Get().(*[][]float32)
		defer pool.Put(bufs)
		in32, out32 := make([]any, len(in)), make([]any, len(out))
		for i, v := range in {
			dst := (*bufs)[i]
			if rounded[i] {
				src := v.([]float32)
				inParallel(len(dst), func(lo, hi int) {
					for j := lo; j < hi; j++ {
						dst[j] = math.Float32frombits(uint32(roundBF16(src[j])) << 16)
					}
				})
			} else {
				src := v.([]bfloat16.BFloat16)
				inParallel(len(dst), func(lo, hi int) {
					for j := lo; j < hi; j++ {
						dst[j] = math.Float32frombits(uint32(src[j]) << 16)
					}
				})
			}
			in32[i] = dst
		}
		for i := range out {
			out32[i] = (*bufs)[len(in)+i]
		}
		run(in32, out32)
		for i, v := range out {
			src, dst := out32[i].([]float32), v.([]bfloat16.BFloat16)
			inParallel(len(dst), func(lo, hi int) { roundSliceBF16(src[lo:hi], dst[lo:hi]) })
		}
	}
}

// dotViaFloat32 computes a bfloat16 DotGeneral that no kernel takes in float32 on the
// widened operands, rounding the result once.
func (b *cpuBuilder) dotViaFloat32(lhs op, lhsContracting, lhsBatch []int, rhs op, rhsContracting, rhsBatch []int) (op, error) {
	l, err := b.forwardConvertDType(lhs, dtypes.Float32)
	if err != nil {
		return nil, err
	}
	r, err := b.forwardConvertDType(rhs, dtypes.Float32)
	if err != nil {
		return nil, err
	}
	out, err := b.DotGeneral(l, lhsContracting, lhsBatch, r, rhsContracting, rhsBatch)
	if err != nil {
		return nil, err
	}
	return b.ConvertDType(out, dtypes.BFloat16)
}

// convViaFloat32 is dotViaFloat32 for a bfloat16 convolution that no kernel takes.
func (b *cpuBuilder) convViaFloat32(input, kernel op, conv func(input, kernel op) (op, error)) (op, error) {
	x, err := b.forwardConvertDType(input, dtypes.Float32)
	if err != nil {
		return nil, err
	}
	k, err := b.forwardConvertDType(kernel, dtypes.Float32)
	if err != nil {
		return nil, err
	}
	out, err := conv(x, k)
	if err != nil {
		return nil, err
	}
	return b.ConvertDType(out, dtypes.BFloat16)
}

// reduceSumBF16 sums a bfloat16 value in float32 and rounds the sums once. GoMLX's pure-Go
// backend accumulates a bfloat16 sum in bfloat16, truncating after every addition, and
// GoMLX's autodiff writes the gradients of DotGeneral as a product of broadcast operands
// summed over the contracted axes: in bfloat16, the gradients of a Linear under autocast
// would lose several percent to those truncations. A sum of a bfloat16 product is taken as
// the float32 product of the widened (exact) operands, so that it is the float32 matrix
// product of the bfloat16 values, rounded once, as the forward product.
func (b *cpuBuilder) reduceSumBF16(x op, axes []int) (op, bool, error) {
	v, err := b.val(x)
	if err != nil || v.shape.DType != dtypes.BFloat16 {
		return nil, false, nil
	}
	var wide op
	if n := v.node; n != nil && n.op == "Mul" && len(n.inputs) == 2 && len(n.inputs[0]) == 1 && len(n.inputs[1]) == 1 &&
		n.inputs[0][0].shape.DType == dtypes.BFloat16 && n.inputs[1][0].shape.DType == dtypes.BFloat16 {
		l, err := b.forwardConvertDType(n.inputs[0][0], dtypes.Float32)
		if err != nil {
			return nil, true, err
		}
		r, err := b.forwardConvertDType(n.inputs[1][0], dtypes.Float32)
		if err != nil {
			return nil, true, err
		}
		if wide, err = b.forwardMul(l, r); err != nil {
			return nil, true, err
		}
	} else if wide, err = b.forwardConvertDType(x, dtypes.Float32); err != nil {
		return nil, true, err
	}
	sum, err := b.forwardReduceSum(wide, axes...)
	if err != nil {
		return nil, true, err
	}
	out, err := b.ConvertDType(sum, dtypes.BFloat16)
	return out, true, err
}
