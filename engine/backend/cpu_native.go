package backend

import (
	"slices"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/shapes"

	"github.com/goselfsup/goselfsup/engine/backend/kernels"
)

// The ops that the CPU builder writes itself: native kernels where one covers the op's
// configuration, otherwise the lowering of filled (ops the pure-Go backend lacks) or the
// pure-Go backend's own op.

// Kinds of host steps, as the profile names them.
const (
	kindConv      = "convolutions"
	kindBatchNorm = "batch norm"
	kindMatMul    = "matrix products"
	kindHead      = "NPID head"
	kindPool      = "max-pooling"
)

// kernelsOff reports whether the native kernels are off (kernels=off with several devices:
// the builder then puts every op in its pieces, as the pure-Go backend with goselfsup's
// lowerings builds them, and only AllReduce becomes a host step).
func (b *cpuBuilder) kernelsOff() bool { return !b.backend.native }

// isFloat reports whether the kernels take values of this dtype.
func isFloat(d dtypes.DType) bool { return d == dtypes.Float32 || d == dtypes.Float64 }

// Reverse goes to the lowering (slices and a concatenation), and marks the result as the
// reversal of x, for ConvGeneral.
func (b *cpuBuilder) Reverse(x op, axes ...int) (op, error) {
	out, err := b.filled.Reverse(x, axes...)
	if err != nil || out == x {
		return out, err
	}
	if v, err := b.val(out); err == nil {
		if xv, err := b.val(x); err == nil {
			v.reversed = &reversal{x: xv, axes: slices.Clone(axes)}
		}
	}
	return out, nil
}

// reversal marks a value as x reversed along axes.
type reversal struct {
	x    *value
	axes []int
}

// spatiallyReversed returns k when kernel is k reversed along its two spatial axes (0 and 1;
// an axis of size 1 may be missing), nil otherwise.
func (b *cpuBuilder) spatiallyReversed(kernel op) *value {
	v, err := b.val(kernel)
	if err != nil || v.reversed == nil || v.shape.Rank() != 4 {
		return nil
	}
	r := v.reversed
	for _, a := range r.axes {
		if a != 0 && a != 1 {
			return nil
		}
	}
	for a := range 2 {
		if v.shape.Dimensions[a] > 1 && !slices.Contains(r.axes, a) {
			return nil
		}
	}
	return r.x
}

func (b *cpuBuilder) Pad(x, fill op, axes ...backends.PadAxis) (op, error) {
	return b.filled.Pad(x, fill, axes...)
}

func (b *cpuBuilder) SelectAndScatterMin(operand, source op, window, strides []int, paddings [][2]int) (op, error) {
	return b.filled.SelectAndScatterMin(operand, source, window, strides, paddings)
}

// ConvGeneral runs the three layouts of a 2-D convolution that GoMLX's autodiff emits
// (forward, gradient of the input, gradient of the kernel; channels last) as native
// kernels; any other configuration goes to the lowering.
func (b *cpuBuilder) ConvGeneral(input, kernel op, axes backends.ConvolveAxesConfig, strides []int,
	paddings [][2]int, inputDilations, kernelDilations []int, channelGroupCount, batchGroupCount int) (op, error) {
	n := len(axes.InputSpatial)
	strides, inputDilations, kernelDilations = orOnes(strides, n), orOnes(inputDilations, n), orOnes(kernelDilations, n)
	if paddings == nil {
		paddings = make([][2]int, n)
	}
	xs, ks := b.shape(input), b.shape(kernel)
	if channelGroupCount > 1 || batchGroupCount > 1 {
		if xs.DType == dtypes.BFloat16 && ks.DType == dtypes.BFloat16 {
			return b.convViaFloat32(input, kernel, func(x, k op) (op, error) {
				return b.ConvGeneral(x, k, axes, strides, paddings, inputDilations, kernelDilations, channelGroupCount, batchGroupCount)
			})
		}
		return b.forwardConvGeneral(input, kernel, axes, strides, paddings, inputDilations, kernelDilations,
			channelGroupCount, batchGroupCount)
	}
	if b.kernelsOff() {
		return b.filled.ConvGeneral(input, kernel, axes, strides, paddings, inputDilations, kernelDilations,
			channelGroupCount, batchGroupCount)
	}
	if c, ok := matchConv(xs, ks, axes, strides, paddings, inputDilations, kernelDilations); ok {
		if c.kind == convBackwardData {
			// Autodiff reverses the kernel for the input's gradient, and the kernel reverses
			// it back as it reads it: given the kernel itself, the reversal is dead code.
			if k := b.spatiallyReversed(kernel); k != nil {
				c.unflipped = true
				kernel = k
			}
		}
		return c.build(b, input, kernel)
	}
	if xs.DType == dtypes.BFloat16 && ks.DType == dtypes.BFloat16 {
		return b.convViaFloat32(input, kernel, func(x, k op) (op, error) {
			return b.ConvGeneral(x, k, axes, strides, paddings, inputDilations, kernelDilations, channelGroupCount, batchGroupCount)
		})
	}
	return b.filled.ConvGeneral(input, kernel, axes, strides, paddings, inputDilations, kernelDilations,
		channelGroupCount, batchGroupCount)
}

// convKind is what a matched convolution computes.
type convKind int

const (
	convForward convKind = iota
	convBackwardData
	convBackwardFilter
)

// nativeConv is a convolution matched to a kernel: which one, and the forward convolution it
// belongs to.
type nativeConv struct {
	kind  convKind
	s     kernels.ConvShape
	dtype dtypes.DType
	out   shapes.Shape
	// unflipped: the input gradient's kernel is the forward kernel, not its spatial reversal
	// (see ConvGeneral).
	unflipped bool
}

var (
	// Channels last: x [N, H, W, C], kernel [KH, KW, C, O], y [N, Ho, Wo, O].
	forwardAxes = backends.ConvolveAxesConfig{
		InputBatch: 0, InputChannels: 3, InputSpatial: []int{1, 2},
		KernelInputChannels: 2, KernelOutputChannels: 3, KernelSpatial: []int{0, 1},
		OutputBatch: 0, OutputChannels: 3, OutputSpatial: []int{1, 2},
	}
	// The gradient of the input: dy [N, Ho, Wo, O] convolved with the reversed kernel, its
	// channels swapped ([KH, KW, C, O] read as in = O, out = C).
	backwardDataAxes = backends.ConvolveAxesConfig{
		InputBatch: 0, InputChannels: 3, InputSpatial: []int{1, 2},
		KernelInputChannels: 3, KernelOutputChannels: 2, KernelSpatial: []int{0, 1},
		OutputBatch: 0, OutputChannels: 3, OutputSpatial: []int{1, 2},
	}
	// The gradient of the kernel: x [N, H, W, C] read with batch = C and channels = N,
	// convolved with dy [N, Ho, Wo, O] as the kernel (in = N, out = O), into [KH, KW, C, O].
	backwardFilterAxes = backends.ConvolveAxesConfig{
		InputBatch: 3, InputChannels: 0, InputSpatial: []int{1, 2},
		KernelInputChannels: 0, KernelOutputChannels: 3, KernelSpatial: []int{1, 2},
		OutputBatch: 2, OutputChannels: 3, OutputSpatial: []int{0, 1},
	}
)

func sameAxes(a, b backends.ConvolveAxesConfig) bool {
	return a.InputBatch == b.InputBatch && a.InputChannels == b.InputChannels && slices.Equal(a.InputSpatial, b.InputSpatial) &&
		a.KernelInputChannels == b.KernelInputChannels && a.KernelOutputChannels == b.KernelOutputChannels &&
		slices.Equal(a.KernelSpatial, b.KernelSpatial) &&
		a.OutputBatch == b.OutputBatch && a.OutputChannels == b.OutputChannels && slices.Equal(a.OutputSpatial, b.OutputSpatial)
}

func allOnes(v []int) bool {
	for _, x := range v {
		if x != 1 {
			return false
		}
	}
	return true
}

// matchConv recognises a convolution that a kernel computes exactly.
func matchConv(xs, ks shapes.Shape, axes backends.ConvolveAxesConfig, strides []int, paddings [][2]int,
	inputDilations, kernelDilations []int) (nativeConv, bool) {
	if xs.Rank() != 4 || ks.Rank() != 4 || !(isFloat(xs.DType) || xs.DType == dtypes.BFloat16) || ks.DType != xs.DType {
		return nativeConv{}, false
	}
	x, k := xs.Dimensions, ks.Dimensions
	c := nativeConv{dtype: xs.DType}
	span := func(taps, dil int) int { return (taps-1)*dil + 1 }
	switch {
	case sameAxes(axes, forwardAxes) && allOnes(inputDilations):
		if k[2] != x[3] {
			return nativeConv{}, false
		}
		c.kind = convForward
		c.s = kernels.ConvShape{N: x[0], H: x[1], W: x[2], C: x[3], KH: k[0], KW: k[1], O: k[3],
			StrideH: strides[0], StrideW: strides[1], DilH: kernelDilations[0], DilW: kernelDilations[1],
			PadTop: paddings[0][0], PadBottom: paddings[0][1], PadLeft: paddings[1][0], PadRight: paddings[1][1]}
		if c.s.Validate() != nil {
			return nativeConv{}, false
		}
		c.out = shapes.Make(xs.DType, c.s.N, c.s.OutH(), c.s.OutW(), c.s.O)

	case sameAxes(axes, backwardDataAxes) && allOnes(strides):
		// dx[i] = Σ_a dy_dilated[i + a·kd - lo] · kr[a]: the input gradient of the forward
		// convolution with stride = the input dilation and top padding span-1-lo.
		if k[3] != x[3] {
			return nativeConv{}, false
		}
		c.kind = convBackwardData
		s := kernels.ConvShape{N: x[0], C: k[2], KH: k[0], KW: k[1], O: k[3],
			StrideH: inputDilations[0], StrideW: inputDilations[1], DilH: kernelDilations[0], DilW: kernelDilations[1]}
		var dims [2]int
		for i, ho := range []int{x[1], x[2]} {
			sp := span(k[i], kernelDilations[i])
			dilated := (ho-1)*inputDilations[i] + 1
			dims[i] = dilated + paddings[i][0] + paddings[i][1] - sp + 1
			top := sp - 1 - paddings[i][0]
			bottom := (ho-1)*inputDilations[i] + sp - dims[i] - top
			if i == 0 {
				s.H, s.PadTop, s.PadBottom = dims[i], top, bottom
			} else {
				s.W, s.PadLeft, s.PadRight = dims[i], top, bottom
			}
		}
		if s.Validate() != nil || s.OutH() != x[1] || s.OutW() != x[2] {
			return nativeConv{}, false
		}
		c.s = s
		c.out = shapes.Make(xs.DType, s.N, s.H, s.W, s.C)

	case sameAxes(axes, backwardFilterAxes) && allOnes(inputDilations):
		// out[a, b, c, o] = Σ x[n, a·kd + u·s - lo, ...] · dy[n, u, ..., o]: the kernel gradient
		// of the forward convolution with stride s = the kernel dilation, dilation kd = the
		// stride, padding lo.
		if k[0] != x[0] {
			return nativeConv{}, false
		}
		c.kind = convBackwardFilter
		s := kernels.ConvShape{N: x[0], H: x[1], W: x[2], C: x[3], O: k[3],
			StrideH: kernelDilations[0], StrideW: kernelDilations[1], DilH: strides[0], DilW: strides[1],
			PadTop: paddings[0][0], PadLeft: paddings[1][0]}
		for i, ho := range []int{k[1], k[2]} {
			sd := kernelDilations[i]
			extent := x[1+i] + paddings[i][0] + paddings[i][1] - ((ho-1)*sd + 1)
			if extent < 0 {
				return nativeConv{}, false
			}
			taps := extent/strides[i] + 1
			bottom := (ho-1)*sd + span(taps, strides[i]) - x[1+i] - paddings[i][0]
			if i == 0 {
				s.KH, s.PadBottom = taps, bottom
			} else {
				s.KW, s.PadRight = taps, bottom
			}
		}
		if s.Validate() != nil || s.OutH() != k[1] || s.OutW() != k[2] {
			return nativeConv{}, false
		}
		c.s = s
		c.out = shapes.Make(xs.DType, s.KH, s.KW, s.C, s.O)

	default:
		return nativeConv{}, false
	}
	return c, true
}

// build adds the convolution's host step.
func (c nativeConv) build(b *cpuBuilder, input, kernel op) (op, error) {
	s := c.s
	var run func(in, out []any)
	switch c.dtype {
	case dtypes.Float32:
		run = convRun[float32](c.kind, s, !c.unflipped)
	case dtypes.BFloat16:
		ops, rounded, sizes := b.bf16Operands([]op{input, kernel})
		input, kernel = ops[0], ops[1]
		run = viaFloat32(convRun[float32](c.kind, s, !c.unflipped), rounded, sizes, []int{c.out.Size()})
	default:
		run = convRun[float64](c.kind, s, !c.unflipped)
	}
	outs, err := b.addStep(kindConv, []op{input, kernel}, []shapes.Shape{c.out}, run)
	if err != nil {
		return nil, err
	}
	return outs[0], nil
}

// convRun runs a convolution kernel; flipped says that the input gradient's kernel is
// reversed in its spatial axes.
func convRun[T kernels.Float](kind convKind, s kernels.ConvShape, flipped bool) func(in, out []any) {
	return func(in, out []any) {
		a, k, y := in[0].([]T), in[1].([]T), out[0].([]T)
		switch kind {
		case convForward:
			kernels.ConvForward(s, a, k, y)
		case convBackwardData:
			kernels.ConvBackwardData(s, a, k, flipped, y)
		case convBackwardFilter:
			kernels.ConvBackwardFilter(s, a, k, y)
		}
	}
}

// minNativeMACs is the size (multiply-adds) from which a matrix product runs natively: below
// it, cutting the graph costs more than the pure-Go backend's product.
const minNativeMACs = 1 << 15

// DotGeneral runs the NPID head's dot products with gathered rows (see headDot) and products
// of two matrices (no batch axes, one contracting axis each) as native kernels; others go to
// the pure-Go backend.
func (b *cpuBuilder) DotGeneral(lhs op, lhsContracting, lhsBatch []int, rhs op, rhsContracting, rhsBatch []int) (op, error) {
	if b.kernelsOff() {
		return b.forwardDotGeneral(lhs, lhsContracting, lhsBatch, rhs, rhsContracting, rhsBatch)
	}
	if out, ok, err := b.headDot(lhs, lhsContracting, lhsBatch, rhs, rhsContracting, rhsBatch); ok || err != nil {
		return out, err
	}
	ls, rs := b.shape(lhs), b.shape(rhs)
	bf16 := ls.DType == dtypes.BFloat16 && rs.DType == dtypes.BFloat16
	if ls.Rank() == 2 && rs.Rank() == 2 && len(lhsBatch) == 0 && len(rhsBatch) == 0 &&
		len(lhsContracting) == 1 && len(rhsContracting) == 1 && (isFloat(ls.DType) || bf16) && rs.DType == ls.DType {
		lc, rc := lhsContracting[0], rhsContracting[0]
		k, m, n := ls.Dimensions[lc], ls.Dimensions[1-lc], rs.Dimensions[1-rc]
		if rs.Dimensions[rc] == k && m*n*k >= minNativeMACs {
			transA, transB := lc == 0, rc == 1
			lda, ldb := ls.Dimensions[1], rs.Dimensions[1]
			var run func(in, out []any)
			switch ls.DType {
			case dtypes.Float32:
				run = gemmRun[float32](transA, transB, m, n, k, lda, ldb)
			case dtypes.BFloat16:
				ops, rounded, sizes := b.bf16Operands([]op{lhs, rhs})
				lhs, rhs = ops[0], ops[1]
				run = viaFloat32(gemmRun[float32](transA, transB, m, n, k, lda, ldb), rounded, sizes, []int{m * n})
			default:
				run = gemmRun[float64](transA, transB, m, n, k, lda, ldb)
			}
			outs, err := b.addStep(kindMatMul, []op{lhs, rhs}, []shapes.Shape{shapes.Make(ls.DType, m, n)}, run)
			if err != nil {
				return nil, err
			}
			return outs[0], nil
		}
	}
	if bf16 {
		return b.dotViaFloat32(lhs, lhsContracting, lhsBatch, rhs, rhsContracting, rhsBatch)
	}
	return b.forwardDotGeneral(lhs, lhsContracting, lhsBatch, rhs, rhsContracting, rhsBatch)
}

func gemmRun[T kernels.Float](transA, transB bool, m, n, k, lda, ldb int) func(in, out []any) {
	return func(in, out []any) {
		kernels.Gemm(transA, transB, m, n, k, in[0].([]T), lda, in[1].([]T), ldb, out[0].([]T), n, false)
	}
}

// batchNormNative reports whether the batch norm kernels take x normalised along featureAxis.
func batchNormNative(s shapes.Shape, featureAxis int) bool {
	return isFloat(s.DType) && s.Rank() >= 1 && (featureAxis == s.Rank()-1 || featureAxis == -1)
}

func (b *cpuBuilder) BatchNormForTraining(operand, scale, offset op, epsilon float32, featureAxis int) (op, op, op, error) {
	s := b.shape(operand)
	if !batchNormNative(s, featureAxis) || b.kernelsOff() {
		return b.filled.BatchNormForTraining(operand, scale, offset, epsilon, featureAxis)
	}
	c := s.Dimensions[s.Rank()-1]
	m := s.Size() / max(c, 1)
	vec := shapes.Make(s.DType, c)
	var run, withReLU func(in, out []any)
	if s.DType == dtypes.Float32 {
		run, withReLU = bnTrainRun[float32](m, c, epsilon, false), bnTrainRun[float32](m, c, epsilon, true)
	} else {
		run, withReLU = bnTrainRun[float64](m, c, epsilon, false), bnTrainRun[float64](m, c, epsilon, true)
	}
	outs, err := b.addStep(kindBatchNorm, []op{operand, scale, offset}, []shapes.Shape{s, vec, vec}, run)
	if err != nil {
		return nil, nil, nil, err
	}
	b.steps[len(b.steps)-1].withReLU = withReLU
	return outs[0], outs[1], outs[2], nil
}

// bnTrainRun runs kernels.BatchNormTrain, or kernels.BatchNormTrainReLU with relu set.
func bnTrainRun[T kernels.Float](m, c int, eps float32, relu bool) func(in, out []any) {
	train := kernels.BatchNormTrain[T]
	if relu {
		train = kernels.BatchNormTrainReLU[T]
	}
	return func(in, out []any) {
		train(m, c, in[0].([]T), in[1].([]T), in[2].([]T), float64(eps), out[0].([]T), out[1].([]T), out[2].([]T))
	}
}

func (b *cpuBuilder) BatchNormGradient(operand, scale, mean, variance, gradOutput op, epsilon float32, featureAxis int) (op, op, op, error) {
	s := b.shape(operand)
	if !batchNormNative(s, featureAxis) || b.kernelsOff() {
		return b.filled.BatchNormGradient(operand, scale, mean, variance, gradOutput, epsilon, featureAxis)
	}
	c := s.Dimensions[s.Rank()-1]
	m := s.Size() / max(c, 1)
	vec := shapes.Make(s.DType, c)
	if g, _ := b.val(gradOutput); g != nil && g.relu != nil && g.relu.a != g.relu.x && g.shape.Equal(s) {
		// The gradient of a ReLU's output masked by its input's sign: the kernel applies the
		// mask as it reads the gradient.
		var run func(in, out []any)
		if s.DType == dtypes.Float32 {
			run = bnGradReLURun[float32](m, c, epsilon)
		} else {
			run = bnGradReLURun[float64](m, c, epsilon)
		}
		y := g.relu.a
		outs, err := b.addStep(kindBatchNorm, []op{operand, scale, mean, variance, y, g.relu.x}, []shapes.Shape{s, vec, vec}, run)
		if err != nil {
			return nil, nil, nil, err
		}
		b.steps[len(b.steps)-1].signOf = []*value{y}
		return outs[0], outs[1], outs[2], nil
	}
	var run func(in, out []any)
	if s.DType == dtypes.Float32 {
		run = bnGradRun[float32](m, c, epsilon)
	} else {
		run = bnGradRun[float64](m, c, epsilon)
	}
	outs, err := b.addStep(kindBatchNorm, []op{operand, scale, mean, variance, gradOutput}, []shapes.Shape{s, vec, vec}, run)
	if err != nil {
		return nil, nil, nil, err
	}
	return outs[0], outs[1], outs[2], nil
}

func bnGradReLURun[T kernels.Float](m, c int, eps float32) func(in, out []any) {
	return func(in, out []any) {
		kernels.BatchNormGradReLU(m, c, in[0].([]T), in[1].([]T), in[2].([]T), in[3].([]T), in[4].([]T), in[5].([]T),
			float64(eps), out[0].([]T), out[1].([]T), out[2].([]T))
	}
}

func bnGradRun[T kernels.Float](m, c int, eps float32) func(in, out []any) {
	return func(in, out []any) {
		kernels.BatchNormGrad(m, c, in[0].([]T), in[1].([]T), in[2].([]T), in[3].([]T), in[4].([]T), float64(eps),
			out[0].([]T), out[1].([]T), out[2].([]T))
	}
}

func (b *cpuBuilder) BatchNormForInference(operand, scale, offset, mean, variance op, epsilon float32, featureAxis int) (op, error) {
	s := b.shape(operand)
	if !batchNormNative(s, featureAxis) || b.kernelsOff() {
		return b.filled.BatchNormForInference(operand, scale, offset, mean, variance, epsilon, featureAxis)
	}
	c := s.Dimensions[s.Rank()-1]
	m := s.Size() / max(c, 1)
	var run func(in, out []any)
	if s.DType == dtypes.Float32 {
		run = bnInferRun[float32](m, c, epsilon)
	} else {
		run = bnInferRun[float64](m, c, epsilon)
	}
	outs, err := b.addStep(kindBatchNorm, []op{operand, scale, offset, mean, variance}, []shapes.Shape{s}, run)
	if err != nil {
		return nil, err
	}
	return outs[0], nil
}

func bnInferRun[T kernels.Float](m, c int, eps float32) func(in, out []any) {
	return func(in, out []any) {
		kernels.BatchNormInference(m, c, in[0].([]T), in[1].([]T), in[2].([]T), in[3].([]T), in[4].([]T), float64(eps), out[0].([]T))
	}
}

// shape returns the shape of an op of this builder.
func (b *cpuBuilder) shape(x op) shapes.Shape {
	s, err := b.OpShape(x)
	if err != nil {
		panic("goselfsup CPU backend: " + err.Error())
	}
	return s
}
