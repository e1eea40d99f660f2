package backend

import (
	"fmt"
	"math"
	"slices"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/shapes"
)

// filled wraps GoMLX's pure-Go backend and fills the gaps that training a CNN runs into:
//
//   - Reverse and Pad, which the gradients of convolutions and slices use;
//   - ConvGeneral with default strides and dilations, lowered to patches times a matrix
//     (DotGeneral), which is several times faster than the direct convolution loops and also
//     serves the convolutions that the gradients of convolutions create;
//   - SelectAndScatterMax and Min, the gradient of max- and min-pooling;
//   - BatchNormForTraining, BatchNormForInference and BatchNormGradient;
//   - DynamicSlice and DynamicUpdateSlice (dynamic.go).
//
// Each filled op is written with the backend's own ops, so model code never knows which
// backend runs it. This file is the only place that knows about the gaps.
type filled struct {
	backends.Backend
}

func (b *filled) Builder(name string) backends.Builder {
	return &filledBuilder{Builder: b.Backend.Builder(name)}
}

func (b *filled) Capabilities() backends.Capabilities {
	c := b.Backend.Capabilities().Clone()
	for _, op := range []backends.OpType{
		backends.OpTypeReverse, backends.OpTypePad, backends.OpTypeConvGeneral,
		backends.OpTypeSelectAndScatterMax, backends.OpTypeSelectAndScatterMin,
		backends.OpTypeBatchNormForTraining, backends.OpTypeBatchNormForInference, backends.OpTypeBatchNormGradient,
		backends.OpTypeDynamicSlice, backends.OpTypeDynamicUpdateSlice,
	} {
		c.Operations[op] = true
	}
	return c
}

func (b *filled) Description() string {
	return b.Backend.Description() + " (with goselfsup's filled ops)"
}

type filledBuilder struct {
	backends.Builder
}

type op = backends.Op

func (b *filledBuilder) shape(x op) shapes.Shape {
	s, err := b.OpShape(x)
	if err != nil {
		panic(fmt.Sprintf("goselfsup backend: shape of an op: %v", err))
	}
	return s
}

// scalar returns a constant of the given dtype.
func (b *filledBuilder) scalar(v float64, dtype dtypes.DType) (op, error) {
	c, err := b.Constant([]float64{v})
	if err != nil {
		return nil, err
	}
	if dtype == dtypes.Float64 {
		return c, nil
	}
	return b.ConvertDType(c, dtype)
}

// fill returns a tensor of shape s filled with the scalar v.
func (b *filledBuilder) fill(v op, s shapes.Shape) (op, error) {
	return b.BroadcastInDim(v, s, nil)
}

// Reverse reverses the axes, as concatenated slices of size one.
func (b *filledBuilder) Reverse(x op, axes ...int) (op, error) {
	for _, axis := range axes {
		s := b.shape(x)
		n := s.Dimensions[axis]
		if n <= 1 {
			continue
		}
		parts := make([]op, n)
		for i := 0; i < n; i++ {
			starts := make([]int, s.Rank())
			limits := slices.Clone(s.Dimensions)
			starts[axis], limits[axis] = n-1-i, n-i
			part, err := b.Slice(x, starts, limits, ones(len(starts)))
			if err != nil {
				return nil, err
			}
			parts[i] = part
		}
		var err error
		if x, err = b.Concatenate(axis, parts...); err != nil {
			return nil, err
		}
	}
	return x, nil
}

// Pad pads each axis with fillValue: Interior values between elements, then Start before and
// End after; negative Start and End cut.
func (b *filledBuilder) Pad(x, fillValue op, axesConfig ...backends.PadAxis) (op, error) {
	var err error
	for axis, cfg := range axesConfig {
		if cfg.Interior < 0 {
			return nil, fmt.Errorf("Pad: negative interior padding %d on axis %d", cfg.Interior, axis)
		}
		if x, err = b.padInterior(x, fillValue, axis, cfg.Interior); err != nil {
			return nil, err
		}
		if x, err = b.padEdges(x, fillValue, axis, cfg.Start, cfg.End); err != nil {
			return nil, err
		}
	}
	return x, nil
}

// padInterior inserts n fill values between consecutive elements of axis: each element is
// followed by a block of n fills (a new axis, concatenated and folded back), and the fills
// after the last element are cut.
func (b *filledBuilder) padInterior(x, fillValue op, axis, n int) (op, error) {
	s := b.shape(x)
	d := s.Dimensions[axis]
	if n == 0 || d <= 1 {
		return x, nil
	}
	split := slices.Insert(slices.Clone(s.Dimensions), axis+1, 1)
	x1, err := b.Reshape(x, split...)
	if err != nil {
		return nil, err
	}
	fillDims := slices.Clone(split)
	fillDims[axis+1] = n
	fills, err := b.fill(fillValue, shapes.Make(s.DType, fillDims...))
	if err != nil {
		return nil, err
	}
	joined, err := b.Concatenate(axis+1, x1, fills)
	if err != nil {
		return nil, err
	}
	folded := slices.Clone(s.Dimensions)
	folded[axis] = d * (n + 1)
	if joined, err = b.Reshape(joined, folded...); err != nil {
		return nil, err
	}
	starts := make([]int, s.Rank())
	limits := slices.Clone(folded)
	limits[axis] = d + (d-1)*n
	return b.Slice(joined, starts, limits, ones(len(starts)))
}

func (b *filledBuilder) padEdges(x, fillValue op, axis, start, end int) (op, error) {
	s := b.shape(x)
	if start < 0 || end < 0 {
		starts := make([]int, s.Rank())
		limits := slices.Clone(s.Dimensions)
		starts[axis] = max(0, -start)
		limits[axis] = s.Dimensions[axis] - max(0, -end)
		if limits[axis] < starts[axis] {
			return nil, fmt.Errorf("Pad: cutting %d and %d from an axis of %d", -start, -end, s.Dimensions[axis])
		}
		var err error
		if x, err = b.Slice(x, starts, limits, ones(len(starts))); err != nil {
			return nil, err
		}
		s = b.shape(x)
	}
	parts := []op{x}
	for i, n := range []int{start, end} {
		if n <= 0 {
			continue
		}
		dims := slices.Clone(s.Dimensions)
		dims[axis] = n
		block, err := b.fill(fillValue, shapes.Make(s.DType, dims...))
		if err != nil {
			return nil, err
		}
		if i == 0 {
			parts = append([]op{block}, parts...)
		} else {
			parts = append(parts, block)
		}
	}
	if len(parts) == 1 {
		return x, nil
	}
	return b.Concatenate(axis, parts...)
}

// windows lists every offset of a window of the given dimensions, as multi-indices.
func windows(dims []int) [][]int {
	out := [][]int{make([]int, len(dims))}
	for axis, d := range dims {
		var next [][]int
		for _, w := range out {
			for i := 0; i < d; i++ {
				c := slices.Clone(w)
				c[axis] = i
				next = append(next, c)
			}
		}
		out = next
	}
	return out
}

// SelectAndScatterMax is the gradient of max-pooling: each source value goes to the first
// position of the maximum of its window.
func (b *filledBuilder) SelectAndScatterMax(operand, source op, windowDimensions, windowStrides []int, paddings [][2]int) (op, error) {
	return b.selectAndScatter(operand, source, windowDimensions, windowStrides, paddings, true)
}

// SelectAndScatterMin is the gradient of min-pooling.
func (b *filledBuilder) SelectAndScatterMin(operand, source op, windowDimensions, windowStrides []int, paddings [][2]int) (op, error) {
	return b.selectAndScatter(operand, source, windowDimensions, windowStrides, paddings, false)
}

func (b *filledBuilder) selectAndScatter(operand, source op, window, strides []int, paddings [][2]int, isMax bool) (op, error) {
	s := b.shape(operand)
	rank := s.Rank()
	if len(window) != rank {
		return nil, fmt.Errorf("SelectAndScatter: %d window dimensions for rank %d", len(window), rank)
	}
	if strides == nil {
		strides = window
	}
	pads := make([]backends.PadAxis, rank)
	for i := range pads {
		if paddings != nil {
			pads[i] = backends.PadAxis{Start: paddings[i][0], End: paddings[i][1]}
		}
	}
	// Padding never wins the selection.
	init := math.Inf(-1)
	if !isMax {
		init = math.Inf(1)
	}
	initOp, err := b.scalar(init, s.DType)
	if err != nil {
		return nil, err
	}
	padded, err := b.Pad(operand, initOp, pads...)
	if err != nil {
		return nil, err
	}
	ps := b.shape(padded)
	out := b.shape(source).Dimensions

	// The candidate of every window at each offset, and the best of them.
	offsets := windows(window)
	candidates := make([]op, len(offsets))
	var best op
	for i, off := range offsets {
		starts, limits := make([]int, rank), make([]int, rank)
		for a := range rank {
			starts[a] = off[a]
			limits[a] = off[a] + (out[a]-1)*strides[a] + 1
		}
		if candidates[i], err = b.Slice(padded, starts, limits, strides); err != nil {
			return nil, err
		}
		switch {
		case best == nil:
			best = candidates[i]
		case isMax:
			best, err = b.Max(best, candidates[i])
		default:
			best, err = b.Min(best, candidates[i])
		}
		if err != nil {
			return nil, err
		}
	}

	// Route each source value to the first offset that holds the best, and place it back.
	zero, err := b.scalar(0, b.shape(source).DType)
	if err != nil {
		return nil, err
	}
	zeros, err := b.fill(zero, b.shape(source))
	if err != nil {
		return nil, err
	}
	var taken, sum op
	for i, off := range offsets {
		hit, err := b.Equal(candidates[i], best)
		if err != nil {
			return nil, err
		}
		if taken != nil {
			free, err := b.LogicalNot(taken)
			if err != nil {
				return nil, err
			}
			if hit, err = b.LogicalAnd(hit, free); err != nil {
				return nil, err
			}
			if taken, err = b.LogicalOr(taken, hit); err != nil {
				return nil, err
			}
		} else {
			taken = hit
		}
		routed, err := b.Where(hit, source, zeros)
		if err != nil {
			return nil, err
		}
		back := make([]backends.PadAxis, rank)
		for a := range rank {
			span := (out[a]-1)*strides[a] + 1
			back[a] = backends.PadAxis{Start: off[a], End: ps.Dimensions[a] - off[a] - span, Interior: strides[a] - 1}
		}
		placed, err := b.Pad(routed, zero, back...)
		if err != nil {
			return nil, err
		}
		if sum == nil {
			sum = placed
		} else if sum, err = b.Add(sum, placed); err != nil {
			return nil, err
		}
	}
	// Drop the padding.
	starts, limits := make([]int, rank), make([]int, rank)
	for a := range rank {
		starts[a] = pads[a].Start
		limits[a] = ps.Dimensions[a] - pads[a].End
	}
	return b.Slice(sum, starts, limits, ones(len(starts)))
}

// ones returns n ones: the unit strides that the pure-Go backend wants spelled out.
func ones(n int) []int { return orOnes(nil, n) }
