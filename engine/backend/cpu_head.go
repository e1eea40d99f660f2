package backend

import (
	"slices"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/shapes"

	"github.com/goselfsup/goselfsup/engine/backend/kernels"
)

// The NPID head: the logits of the negatives are dot products of each sample's embedding
// with rows of the memory bank gathered by index,
//
//	neg[b, j] = <bank[idx[b, j]], f[b]>
//
// and their gradient with respect to the embedding is Σ_j g[b, j]·bank[idx[b, j]]. Built from
// GoMLX's ops, the forward gathers a [batch, negatives, dim] tensor (64 x 4,096 x 128 floats
// in the train-step benchmark, 1 GB for ResNet-18's 32 x 65,536) and the gradient
// multiplies another of that size. The CPU builder recognises both and runs fused kernels that
// read the bank's rows in place; the gathered tensor is then dead code and never built.

// gatheredRows marks a value as rows of table (a [rows, dim] value) picked by index (an [n, 1]
// integer value): Gather(table, index) with one index per row.
type gatheredRows struct {
	table, index *value
}

// Gather records row gathers (for the head's patterns) and forwards every gather to the
// pure-Go backend.
func (b *cpuBuilder) Gather(operand, startIndices op, indexVectorAxis int, offsetOutputAxes, collapsedSliceAxes,
	startIndexMap, sliceSizes []int, indicesAreSorted bool) (op, error) {
	out, err := b.forwardGather(operand, startIndices, indexVectorAxis, offsetOutputAxes, collapsedSliceAxes, startIndexMap,
		sliceSizes, indicesAreSorted)
	if err != nil {
		return nil, err
	}
	t, is := b.shape(operand), b.shape(startIndices)
	if t.Rank() == 2 && isFloat(t.DType) && is.Rank() == 2 && is.Dimensions[1] == 1 && indexVectorAxis == 1 &&
		(is.DType == dtypes.Int32 || is.DType == dtypes.Int64) &&
		slices.Equal(offsetOutputAxes, []int{1}) && slices.Equal(collapsedSliceAxes, []int{0}) &&
		slices.Equal(startIndexMap, []int{0}) && slices.Equal(sliceSizes, []int{1, t.Dimensions[1]}) {
		table, _ := b.val(operand)
		index, _ := b.val(startIndices)
		v, _ := b.val(out)
		v.rows = &gatheredRows{table: table, index: index}
	}
	return out, nil
}

// rowsOf finds the gathered rows that v is (through identities and reshapes that keep rows
// whole) and v's shape as [batch, k, dim].
func (b *cpuBuilder) rowsOf(x op) (r *gatheredRows, batch, k int, ok bool) {
	v, err := b.val(x)
	if err != nil || v.shape.Rank() != 3 {
		return nil, 0, 0, false
	}
	batch, k = v.shape.Dimensions[0], v.shape.Dimensions[1]
	dim := v.shape.Dimensions[2]
	for v.rows == nil {
		if v.node == nil || (v.node.op != "Reshape" && v.node.op != "Identity") {
			return nil, 0, 0, false
		}
		v = v.node.inputs[0][0]
		if r := v.shape.Rank(); r == 0 || v.shape.Dimensions[r-1] != dim {
			return nil, 0, 0, false
		}
	}
	return v.rows, batch, k, v.shape.Dimensions[0] == batch*k
}

// headDot matches DotGeneral(rows [B, K, D], f [B, D]) contracting D with batch B, in either
// order; the result is [B, K].
func (b *cpuBuilder) headDot(lhs op, lhsContracting, lhsBatch []int, rhs op, rhsContracting, rhsBatch []int) (op, bool, error) {
	if !slices.Equal(lhsBatch, []int{0}) || !slices.Equal(rhsBatch, []int{0}) {
		return nil, false, nil
	}
	rowsOp, f := lhs, rhs
	if slices.Equal(lhsContracting, []int{1}) && slices.Equal(rhsContracting, []int{2}) {
		rowsOp, f = rhs, lhs
	} else if !slices.Equal(lhsContracting, []int{2}) || !slices.Equal(rhsContracting, []int{1}) {
		return nil, false, nil
	}
	r, batch, k, ok := b.rowsOf(rowsOp)
	fs := b.shape(f)
	if !ok || fs.Rank() != 2 || fs.Dimensions[0] != batch || !isFloat(fs.DType) || fs.DType != r.table.shape.DType ||
		fs.Dimensions[1] != r.table.shape.Dimensions[1] {
		return nil, false, nil
	}
	dim := fs.Dimensions[1]
	var run func(in, out []any)
	if fs.DType == dtypes.Float32 {
		run = headDotRun[float32](r.index.shape.DType, dim, batch, k)
	} else {
		run = headDotRun[float64](r.index.shape.DType, dim, batch, k)
	}
	outs, err := b.addStep(kindHead, []op{r.table, r.index, f}, []shapes.Shape{shapes.Make(fs.DType, batch, k)}, run)
	if err != nil {
		return nil, true, err
	}
	return outs[0], true, nil
}

func headDotRun[T kernels.Float](index dtypes.DType, dim, batch, k int) func(in, out []any) {
	return func(in, out []any) {
		table, f, o := in[0].([]T), in[2].([]T), out[0].([]T)
		if index == dtypes.Int32 {
			kernels.GatherDot(dim, table, in[1].([]int32), batch, k, f, o)
		} else {
			kernels.GatherDot(dim, table, in[1].([]int64), batch, k, f, o)
		}
	}
}

// ReduceSum runs the gradient of the head's dot products with respect to the embedding,
// ReduceSum(Mul(g [B, K, 1], rows [B, K, D]), 1) as autodiff writes it, as a fused kernel,
// bfloat16 sums in float32 (reduceSumBF16), and sums over every axis but the last as an
// element-wise step (sumRows); every other sum goes to the pure-Go backend.
func (b *cpuBuilder) ReduceSum(x op, axes ...int) (op, error) {
	if b.kernelsOff() {
		return b.forwardReduceSum(x, axes...)
	}
	if out, ok, err := b.headGrad(x, axes); ok || err != nil {
		return out, err
	}
	if out, ok, err := b.reduceSumBF16(x, axes); ok || err != nil {
		return out, err
	}
	if out, ok, err := b.sumRows(x, axes); ok || err != nil {
		return out, err
	}
	return b.forwardReduceSum(x, axes...)
}

func (b *cpuBuilder) headGrad(x op, axes []int) (op, bool, error) {
	v, err := b.val(x)
	if err != nil || !slices.Equal(axes, []int{1}) || v.node == nil || v.node.op != "Mul" {
		return nil, false, nil
	}
	g, rowsVal := v.node.inputs[0][0], v.node.inputs[1][0]
	r, batch, k, ok := b.rowsOf(rowsVal)
	if !ok {
		g, rowsVal = rowsVal, g
		if r, batch, k, ok = b.rowsOf(rowsVal); !ok {
			return nil, false, nil
		}
	}
	if !slices.Equal(g.shape.Dimensions, []int{batch, k, 1}) || g.shape.DType != r.table.shape.DType {
		return nil, false, nil
	}
	dim := r.table.shape.Dimensions[1]
	var run func(in, out []any)
	if g.shape.DType == dtypes.Float32 {
		run = headGradRun[float32](r.index.shape.DType, dim, batch, k)
	} else {
		run = headGradRun[float64](r.index.shape.DType, dim, batch, k)
	}
	outs, err := b.addStep(kindHead, []op{r.table, r.index, g}, []shapes.Shape{shapes.Make(g.shape.DType, batch, dim)}, run)
	if err != nil {
		return nil, true, err
	}
	return outs[0], true, nil
}

func headGradRun[T kernels.Float](index dtypes.DType, dim, batch, k int) func(in, out []any) {
	return func(in, out []any) {
		table, g, df := in[0].([]T), in[2].([]T), out[0].([]T)
		if index == dtypes.Int32 {
			kernels.GatherDotGrad(dim, table, in[1].([]int32), batch, k, g, df)
		} else {
			kernels.GatherDotGrad(dim, table, in[1].([]int64), batch, k, g, df)
		}
	}
}

var _ backends.Builder = (*cpuBuilder)(nil)
