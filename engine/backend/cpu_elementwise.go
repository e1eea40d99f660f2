package backend

import (
	"slices"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/shapes"

	"github.com/goselfsup/goselfsup/engine/backend/kernels"
)

// Element-wise arithmetic. SyncBN (models/nn) and other layers written as explicit ops
// subtract, multiply and add per-channel vectors to [N, H, W, C] tensors and sum them back
// over every axis but the channels, forward and in their gradients. The pure-Go backend
// runs these with generic broadcasting loops, after GoMLX's graph has materialised each
// vector as a full tensor with BroadcastInDim. The CPU builder runs, as host steps of kind
// "element-wise",
//
//   - Add, Sub, Mul and Div of float32 or float64 values of at least minElementWise
//     elements, whose operands each have the output's shape, are a vector along the last
//     axis (shape [1, ..., 1, C]), are a scalar, or are BroadcastInDim of such a vector or
//     scalar: the vector or scalar is read in place (kernels.ElementWise), and the broadcast
//     is then dead code;
//   - ReduceSum over every axis but the last (kernels.SumRows).
//
// Each output element is the same operation on the same values, in the same order for the
// sums, as in the pure-Go backend, so the results are the same bit for bit.

// kindElementWise is how the profile counts element-wise host steps.
const kindElementWise = "element-wise"

// minElementWise is the fewest output elements (or summed elements) that an element-wise op
// needs to run as a host step: a smaller one is cheaper inside a pure-Go piece than as a cut
// between pieces.
const minElementWise = 1 << 14

// broadcast marks a value as BroadcastInDim(x, shape, axes).
type broadcast struct {
	x    *value
	axes []int
}

// BroadcastInDim goes to the pure-Go backend, and marks the result as a broadcast of x, for
// the element-wise steps.
func (b *cpuBuilder) BroadcastInDim(x op, outputShape shapes.Shape, broadcastAxes []int) (op, error) {
	out, err := b.forwardBroadcastInDim(x, outputShape, broadcastAxes)
	if err != nil {
		return nil, err
	}
	if v, err := b.val(out); err == nil {
		if xv, err := b.val(x); err == nil {
			v.bcast = &broadcast{x: xv, axes: slices.Clone(broadcastAxes)}
		}
	}
	return out, nil
}

func (b *cpuBuilder) Add(lhs, rhs op) (op, error) {
	return b.elementWiseOr(kernels.OpAdd, lhs, rhs, backends.Builder.Add, b.forwardAdd)
}

func (b *cpuBuilder) Sub(lhs, rhs op) (op, error) {
	return b.elementWiseOr(kernels.OpSub, lhs, rhs, backends.Builder.Sub, b.forwardSub)
}

func (b *cpuBuilder) Div(lhs, rhs op) (op, error) {
	return b.elementWiseOr(kernels.OpDiv, lhs, rhs, backends.Builder.Div, b.forwardDiv)
}

// elementWiseOr runs the op as an element-wise step if it matches (see above), else with
// forward (the pure-Go backend's op).
func (b *cpuBuilder) elementWiseOr(kind kernels.BinaryOp, lhs, rhs op,
	shapeOf func(backends.Builder, op, op) (op, error), forward func(op, op) (op, error)) (op, error) {
	if b.kernelsOff() {
		return forward(lhs, rhs)
	}
	if out, ok, err := b.elementWise(kind, lhs, rhs, shapeOf); ok || err != nil {
		return out, err
	}
	return forward(lhs, rhs)
}

// elementWise matches a binary op to kernels.ElementWise and adds its host step.
func (b *cpuBuilder) elementWise(kind kernels.BinaryOp, lhs, rhs op, shapeOf func(backends.Builder, op, op) (op, error)) (op, bool, error) {
	l, err := b.val(lhs)
	if err != nil {
		return nil, false, nil
	}
	r, err := b.val(rhs)
	if err != nil {
		return nil, false, nil
	}
	if !isFloat(l.shape.DType) || l.shape.DType != r.shape.DType {
		return nil, false, nil
	}
	if _, _, _, ok := b.rowsOf(l); ok {
		return nil, false, nil // the NPID head's gathered rows: see headGrad
	}
	if _, _, _, ok := b.rowsOf(r); ok {
		return nil, false, nil
	}
	shapeOp, err := shapeOf(b.scratch(), l.shapeOp, r.shapeOp)
	if err != nil {
		return nil, false, nil // the pure-Go backend reports the error
	}
	out, err := b.shapes.OpShape(shapeOp)
	if err != nil || out.DType != l.shape.DType || out.Rank() == 0 || out.Size() < minElementWise {
		return nil, false, nil
	}
	a, am, ok := elementWiseOperand(l, out)
	if !ok {
		return nil, false, nil
	}
	c, cm, ok := elementWiseOperand(r, out)
	if !ok {
		return nil, false, nil
	}
	channels := out.Dimensions[out.Rank()-1]
	var run func(in, out []any)
	if out.DType == dtypes.Float32 {
		run = elementWiseRun[float32](kind, am, cm, channels)
	} else {
		run = elementWiseRun[float64](kind, am, cm, channels)
	}
	outs, err := b.addStep(kindElementWise, []op{a, c}, []shapes.Shape{out}, run)
	if err != nil {
		return nil, true, err
	}
	return outs[0], true, nil
}

func elementWiseRun[T kernels.Float](kind kernels.BinaryOp, am, bm kernels.Broadcast, channels int) func(in, out []any) {
	return func(in, out []any) {
		kernels.ElementWise(kind, in[0].([]T), am, in[1].([]T), bm, channels, out[0].([]T))
	}
}

// elementWiseOperand returns the value that an element-wise step reads for the operand v of
// an op with output shape out, and how it covers the output; ok is false when v is none of
// the output's shape, a vector along its last axis, or a scalar.
func elementWiseOperand(v *value, out shapes.Shape) (*value, kernels.Broadcast, bool) {
	if v.shape.DType != out.DType {
		return nil, 0, false
	}
	if bc := v.bcast; bc != nil && v.shape.Equal(out) {
		if m, ok := broadcastKind(bc.x.shape, bc.axes, out); ok {
			return bc.x, m, true
		}
	}
	if v.shape.Equal(out) {
		return v, kernels.Full, true
	}
	if v.shape.Size() == 1 {
		return v, kernels.Scalar, true
	}
	if v.shape.Rank() == out.Rank() {
		axes := make([]int, out.Rank())
		for i := range axes {
			axes[i] = i
		}
		if m, ok := broadcastKind(v.shape, axes, out); ok {
			return v, m, true
		}
	}
	return nil, 0, false
}

// broadcastKind tells whether x, broadcast to out along axes (x's axis i becomes out's axis
// axes[i]), is a scalar or a vector along out's last axis.
func broadcastKind(x shapes.Shape, axes []int, out shapes.Shape) (kernels.Broadcast, bool) {
	if x.Size() == 1 {
		return kernels.Scalar, true
	}
	if len(axes) != x.Rank() {
		return 0, false
	}
	last, channels := out.Rank()-1, out.Dimensions[out.Rank()-1]
	found := false
	for i, d := range x.Dimensions {
		if d == 1 {
			continue
		}
		if found || d != channels || axes[i] != last {
			return 0, false
		}
		found = true
	}
	return kernels.PerChannel, found
}

// sumRows runs ReduceSum over every axis but the last of a float32 or float64 value of at
// least minElementWise elements as an element-wise step (kernels.SumRows).
func (b *cpuBuilder) sumRows(x op, axes []int) (op, bool, error) {
	v, err := b.val(x)
	if err != nil || !isFloat(v.shape.DType) || v.rows != nil || v.shape.Rank() < 2 || v.shape.Size() < minElementWise {
		return nil, false, nil
	}
	rank := v.shape.Rank()
	sorted := slices.Sorted(slices.Values(axes))
	for i, a := range sorted {
		if a != i {
			return nil, false, nil
		}
	}
	if len(sorted) != rank-1 {
		return nil, false, nil
	}
	channels := v.shape.Dimensions[rank-1]
	run := sumRowsRun[float64](channels)
	if v.shape.DType == dtypes.Float32 {
		run = sumRowsRun[float32](channels)
	}
	outs, err := b.addStep(kindElementWise, []op{x}, []shapes.Shape{shapes.Make(v.shape.DType, channels)}, run)
	if err != nil {
		return nil, true, err
	}
	return outs[0], true, nil
}

func sumRowsRun[T kernels.Float](channels int) func(in, out []any) {
	return func(in, out []any) { kernels.SumRows(in[0].([]T), channels, out[0].([]T)) }
}
