package backend

import (
	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/shapes"

	"github.com/goselfsup/goselfsup/engine/backend/kernels"
)

// Max-pooling (ResNet's stem: 3x3, stride 2, padding 1) as GoMLX emits it, ReduceWindow with
// the max over [1, KH, KW, 1] windows of an NHWC tensor, and its gradient, SelectAndScatterMax,
// run as native kernels; the pure-Go backend's ReduceWindow and the lowering of
// SelectAndScatter took most of a ResNet-18 step at 224.

// matchPool returns the pooling that a window over x describes, if the kernels take it.
func matchPool(xs shapes.Shape, window, strides, baseDilations, windowDilations []int, paddings [][2]int) (kernels.PoolShape, bool) {
	if xs.Rank() != 4 || !isFloat(xs.DType) || len(window) != 4 || window[0] != 1 || window[3] != 1 {
		return kernels.PoolShape{}, false
	}
	if strides == nil {
		strides = window
	}
	if len(strides) != 4 || strides[0] != 1 || strides[3] != 1 ||
		(baseDilations != nil && !allOnes(baseDilations)) || (windowDilations != nil && !allOnes(windowDilations)) {
		return kernels.PoolShape{}, false
	}
	var pad [4][2]int
	if paddings != nil {
		if len(paddings) != 4 {
			return kernels.PoolShape{}, false
		}
		copy(pad[:], paddings)
	}
	if pad[0] != [2]int{} || pad[3] != [2]int{} {
		return kernels.PoolShape{}, false
	}
	d := xs.Dimensions
	s := kernels.PoolShape{N: d[0], H: d[1], W: d[2], C: d[3], KH: window[1], KW: window[2],
		StrideH: strides[1], StrideW: strides[2],
		PadTop: pad[1][0], PadBottom: pad[1][1], PadLeft: pad[2][0], PadRight: pad[2][1]}
	return s, s.Validate() == nil
}

// ReduceWindow runs max-pooling natively (see matchPool); other windows go to the pure-Go
// backend.
func (b *cpuBuilder) ReduceWindow(x op, reduction backends.ReduceOpType, window, strides, baseDilations,
	windowDilations []int, paddings [][2]int) (op, error) {
	xs := b.shape(x)
	if s, ok := matchPool(xs, window, strides, baseDilations, windowDilations, paddings); ok && reduction == backends.ReduceOpMax && !b.kernelsOff() {
		run := poolRun[float64](s)
		if xs.DType == dtypes.Float32 {
			run = poolRun[float32](s)
		}
		outs, err := b.addStep(kindPool, []op{x}, []shapes.Shape{shapes.Make(xs.DType, s.N, s.OutH(), s.OutW(), s.C)}, run)
		if err != nil {
			return nil, err
		}
		return outs[0], nil
	}
	return b.forwardReduceWindow(x, reduction, window, strides, baseDilations, windowDilations, paddings)
}

func poolRun[T kernels.Float](s kernels.PoolShape) func(in, out []any) {
	return func(in, out []any) { kernels.MaxPool(s, in[0].([]T), out[0].([]T)) }
}

// SelectAndScatterMax, the gradient of max-pooling, runs natively for the windows of
// matchPool; others go to the lowering.
func (b *cpuBuilder) SelectAndScatterMax(operand, source op, window, strides []int, paddings [][2]int) (op, error) {
	xs, ss := b.shape(operand), b.shape(source)
	if s, ok := matchPool(xs, window, strides, nil, nil, paddings); ok && !b.kernelsOff() && ss.DType == xs.DType &&
		ss.Equal(shapes.Make(xs.DType, s.N, s.OutH(), s.OutW(), s.C)) {
		run := poolGradRun[float64](s)
		if xs.DType == dtypes.Float32 {
			run = poolGradRun[float32](s)
		}
		outs, err := b.addStep(kindPool, []op{operand, source}, []shapes.Shape{xs}, run)
		if err != nil {
			return nil, err
		}
		return outs[0], nil
	}
	return b.filled.SelectAndScatterMax(operand, source, window, strides, paddings)
}

func poolGradRun[T kernels.Float](s kernels.PoolShape) func(in, out []any) {
	return func(in, out []any) { kernels.MaxPoolGrad(s, in[0].([]T), in[1].([]T), out[0].([]T)) }
}
