package kernels

import (
	"fmt"
	"unsafe"
)

// The NPID head scores each feature f[b] against k rows of the memory bank picked by idx and
// back-propagates into f. These kernels do it without materialising the gathered
// [batch, k, dim] tensor: each bank row is read once, straight from the bank, by a dot
// product (forward) or an axpy (gradient). Indices out of [0, rows) are clamped into it, as
// XLA's gather does.

// gatherGrain is the fewest (b, j) pairs a worker of GatherDot gets.
const gatherGrain = 256

// gatherGradBlock is how many indices of one b a task of GatherDotGrad sums over; the tasks'
// partial sums are then added in order, so the result does not depend on the CPU count.
const gatherGradBlock = 1024

// GatherDot computes out[b, j] = Σ_d bank[idx[b*k+j], d]·f[b, d] for b < batch and j < k,
// where bank is [rows, dim] with rows = len(bank)/dim, idx is [batch·k], f is [batch, dim]
// and out is [batch, k]. Indices are clamped to [0, rows-1]. It panics if the slices are
// shorter than these shapes or the bank is empty while batch·k > 0.
func GatherDot[T Float, I int32 | int64](dim int, bank []T, idx []I, batch, k int, f, out []T) {
	rows := checkGather("GatherDot", dim, bank, len(idx), batch, k, len(f), len(out))
	if batch*k == 0 {
		return
	}
	if dim == 0 {
		clear(out[:batch*k])
		return
	}
	parallelFor(batch*k, gatherGrain, func(lo, hi int) {
		b, j := lo/k, lo%k
		fb := f[b*dim : b*dim+dim]
		for t := lo; t < hi; t++ {
			if t+gatherAhead < hi {
				prefetchRow(bank, dim, clampIndex(idx[t+gatherAhead], rows))
			}
			r := clampIndex(idx[t], rows)
			out[t] = dot(bank[r*dim:r*dim+dim], fb)
			if j++; j == k && t+1 < hi {
				b, j = b+1, 0
				fb = f[b*dim : b*dim+dim]
			}
		}
	})
}

// GatherDotGrad computes df[b, d] = Σ_j g[b, j]·bank[idx[b*k+j], d], the gradient of
// GatherDot with respect to f for the output gradient g ([batch, k]); df ([batch, dim]) is
// overwritten. Shapes and clamping are as in GatherDot.
func GatherDotGrad[T Float, I int32 | int64](dim int, bank []T, idx []I, batch, k int, g, df []T) {
	rows := checkGather("GatherDotGrad", dim, bank, len(idx), batch, k, len(df), len(g))
	if batch*dim == 0 {
		return
	}
	clear(df[:batch*dim])
	if k == 0 {
		return
	}
	// Tasks are (b, block of gatherGradBlock indices). With one block per b each task writes
	// its row of df directly; otherwise into its own partial row, summed in order below.
	blocks := (k + gatherGradBlock - 1) / gatherGradBlock
	var partial []T
	if blocks > 1 {
		partial = make([]T, batch*blocks*dim)
	}
	parallelFor(batch*blocks, 1, func(lo, hi int) {
		for task := lo; task < hi; task++ {
			b, q := task/blocks, task%blocks
			acc := df[b*dim : b*dim+dim]
			if blocks > 1 {
				acc = partial[task*dim : task*dim+dim]
			}
			end := b*k + min(k, (q+1)*gatherGradBlock)
			for t := b*k + q*gatherGradBlock; t < end; t++ {
				if t+gatherAhead < end {
					prefetchRow(bank, dim, clampIndex(idx[t+gatherAhead], rows))
				}
				r := clampIndex(idx[t], rows)
				axpy(g[t], bank[r*dim:r*dim+dim], acc)
			}
		}
	})
	if blocks > 1 {
		parallelFor(batch, 1, func(lo, hi int) {
			for b := lo; b < hi; b++ {
				dst := df[b*dim : b*dim+dim]
				for q := range blocks {
					src := partial[(b*blocks+q)*dim : (b*blocks+q+1)*dim]
					for d, v := range src[:len(dst)] {
						dst[d] += v
					}
				}
			}
		})
	}
}

// gatherAhead is how many rows ahead of the one being read the gather loops prefetch.
const gatherAhead = 8

// prefetchRow prefetches row r of bank ([rows, dim]).
func prefetchRow[T Float](bank []T, dim, r int) {
	var z T
	prefetchLines(unsafe.Pointer(&bank[r*dim]), dim*int(unsafe.Sizeof(z)))
}

// clampIndex clamps i to [0, rows-1].
func clampIndex[I int32 | int64](i I, rows int) int {
	switch {
	case i < 0:
		return 0
	case int64(i) >= int64(rows):
		return rows - 1
	}
	return int(i)
}

// checkGather checks the operands' lengths (nBD of the [batch, dim] operand, nBK of the
// [batch, k] one) and returns the bank's row count.
func checkGather[T Float](name string, dim int, bank []T, nIdx, batch, k, nBD, nBK int) int {
	if dim < 0 || batch < 0 || k < 0 {
		panic(fmt.Sprintf("kernels.%s: negative shape (dim %d, batch %d, k %d)", name, dim, batch, k))
	}
	rows := 0
	if dim > 0 {
		rows = len(bank) / dim
	}
	switch {
	case nIdx < batch*k:
		panic(fmt.Sprintf("kernels.%s: %d indices for batch %d × k %d", name, nIdx, batch, k))
	case nBD < batch*dim:
		panic(fmt.Sprintf("kernels.%s: %d elements for a [%d, %d] operand", name, nBD, batch, dim))
	case nBK < batch*k:
		panic(fmt.Sprintf("kernels.%s: %d elements for a [%d, %d] operand", name, nBK, batch, k))
	case rows == 0 && dim > 0 && batch*k > 0:
		panic(fmt.Sprintf("kernels.%s: the bank has no rows of %d", name, dim))
	}
	return rows
}
