package backend

import (
	"fmt"
	"slices"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/shapes"
)

// DynamicSlice and DynamicUpdateSlice, which GoMLX's pure-Go backend (v0.26) lacks, lowered
// to Gather: a window Gather at the start indices, and a point Gather with a mask (the
// pure-Go backend's ScatterSum, tried with a window of two rows, wrote them next to each
// other). As in XLA, each start is clamped so that the slice lies inside the operand. The
// models' multi-device code takes a device's rows of a global batch with DynamicSlice, and
// its gradient is a DynamicUpdateSlice.

// clampedStarts converts the scalar start indices (one per axis of the operand) to int32 and
// clamps them to [0, dim - size].
func (b *filledBuilder) clampedStarts(operand op, starts []op, sizes []int) ([]op, error) {
	s := b.shape(operand)
	if len(starts) != s.Rank() || len(sizes) != s.Rank() {
		return nil, fmt.Errorf("%d start indices and %d sizes for an operand of rank %d", len(starts), len(sizes), s.Rank())
	}
	out := make([]op, len(starts))
	for i, st := range starts {
		if size := sizes[i]; size < 0 || size > s.Dimensions[i] {
			return nil, fmt.Errorf("axis %d: a slice of %d of a dimension of %d", i, size, s.Dimensions[i])
		}
		v := st
		var err error
		if b.shape(st).DType != dtypes.Int32 {
			if v, err = b.ConvertDType(st, dtypes.Int32); err != nil {
				return nil, err
			}
		}
		lo, err := b.Constant([]int32{0})
		if err != nil {
			return nil, err
		}
		hi, err := b.Constant([]int32{int32(s.Dimensions[i] - sizes[i])})
		if err != nil {
			return nil, err
		}
		if out[i], err = b.Clamp(lo, v, hi); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func axesUpTo(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}

// DynamicSlice is a Gather of one window of the given sizes at the clamped starts.
func (b *filledBuilder) DynamicSlice(operand op, startIndices []op, sliceDims []int) (op, error) {
	starts, err := b.clampedStarts(operand, startIndices, sliceDims)
	if err != nil {
		return nil, fmt.Errorf("DynamicSlice: %w", err)
	}
	parts := make([]op, len(starts))
	for i, st := range starts {
		if parts[i], err = b.Reshape(st, 1); err != nil {
			return nil, err
		}
	}
	idx := parts[0]
	if len(parts) > 1 {
		if idx, err = b.Concatenate(0, parts...); err != nil {
			return nil, err
		}
	}
	rank := len(sliceDims)
	return b.Gather(operand, idx, 0, axesUpTo(rank), nil, axesUpTo(rank), sliceDims, false)
}

// DynamicUpdateSlice places update in operand at the clamped starts: each element of the
// operand inside the window takes the update's element that a point Gather reads at its
// position minus the starts; the others keep the operand's.
func (b *filledBuilder) DynamicUpdateSlice(operand, update op, startIndices []op) (op, error) {
	us, s := b.shape(update), b.shape(operand)
	if us.Rank() != s.Rank() || us.DType != s.DType {
		return nil, fmt.Errorf("DynamicUpdateSlice: update %s for operand %s", us, s)
	}
	starts, err := b.clampedStarts(operand, startIndices, us.Dimensions)
	if err != nil {
		return nil, fmt.Errorf("DynamicUpdateSlice: %w", err)
	}
	rank := s.Rank()
	is := shapes.Make(dtypes.Int32, s.Dimensions...)
	full := func(v int) (op, error) {
		c, err := b.Constant([]int32{int32(v)})
		if err != nil {
			return nil, err
		}
		return b.fill(c, is)
	}
	zeros, err := full(0)
	if err != nil {
		return nil, err
	}
	var inside op
	coords := make([]op, rank)
	for a := range rank {
		pos, err := b.Iota(is, a)
		if err != nil {
			return nil, err
		}
		st, err := b.fill(starts[a], is)
		if err != nil {
			return nil, err
		}
		rel, err := b.Sub(pos, st)
		if err != nil {
			return nil, err
		}
		size, err := full(us.Dimensions[a])
		if err != nil {
			return nil, err
		}
		last, err := full(us.Dimensions[a] - 1)
		if err != nil {
			return nil, err
		}
		geq, err := b.GreaterOrEqual(rel, zeros)
		if err != nil {
			return nil, err
		}
		lt, err := b.LessThan(rel, size)
		if err != nil {
			return nil, err
		}
		in, err := b.LogicalAnd(geq, lt)
		if err != nil {
			return nil, err
		}
		if inside == nil {
			inside = in
		} else if inside, err = b.LogicalAnd(inside, in); err != nil {
			return nil, err
		}
		if rel, err = b.Clamp(zeros, rel, last); err != nil {
			return nil, err
		}
		if coords[a], err = b.Reshape(rel, append(slices.Clone(s.Dimensions), 1)...); err != nil {
			return nil, err
		}
	}
	idx := coords[0]
	if rank > 1 {
		if idx, err = b.Concatenate(rank, coords...); err != nil {
			return nil, err
		}
	}
	gathered, err := b.Gather(update, idx, rank, nil, axesUpTo(rank), axesUpTo(rank), ones(rank), false)
	if err != nil {
		return nil, err
	}
	return b.Where(inside, gathered, operand)
}

func (b *cpuBuilder) DynamicSlice(operand op, startIndices []op, sliceDims []int) (op, error) {
	return b.filled.DynamicSlice(operand, startIndices, sliceDims)
}

func (b *cpuBuilder) DynamicUpdateSlice(operand, update op, startIndices []op) (op, error) {
	return b.filled.DynamicUpdateSlice(operand, update, startIndices)
}
