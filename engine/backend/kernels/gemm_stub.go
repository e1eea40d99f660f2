package kernels

// TEMPORARY: a plain-Go stand-in for the package's GEMM (files gemm*), written only so
// that the convolutions build and test before the real one lands. It implements the same
// API; drop this file when merging with the real GEMM.

// PackedB is op(b) [K, N] prepared once for repeated products (GemmPacked). The stub
// keeps a row-major copy.
type PackedB[T Float] struct {
	k, n int
	data []T // [k, n], row-major
}

// K is the number of rows of the packed matrix (the inner dimension of the product).
func (p *PackedB[T]) K() int { return p.k }

// N is the number of columns of the packed matrix.
func (p *PackedB[T]) N() int { return p.n }

// PackB packs op(b) [k, n]: b itself (stored [k, n]) or, with transB, the transpose of b
// stored [n, k]; ldb is b's row stride.
func PackB[T Float](transB bool, k, n int, b []T, ldb int) *PackedB[T] {
	p := &PackedB[T]{k: k, n: n, data: make([]T, k*n)}
	for i := 0; i < k; i++ {
		row := p.data[i*n : (i+1)*n]
		if transB {
			for j := range row {
				row[j] = b[j*ldb+i]
			}
		} else {
			copy(row, b[i*ldb:i*ldb+n])
		}
	}
	return p
}

// Gemm computes c = op(a)·op(b), or c += op(a)·op(b) with accumulate, for op(a) [m, k]
// and op(b) [k, n]; transA means a is stored [k, m], transB that b is stored [n, k].
func Gemm[T Float](transA, transB bool, m, n, k int, a []T, lda int, b []T, ldb int, c []T, ldc int, accumulate bool) {
	p := PackB(transB, k, n, b, ldb)
	parallelFor(m, 16, func(lo, hi int) {
		gemmStubRows(transA, lo, hi, a, lda, p, c, ldc, accumulate)
	})
}

// GemmPacked computes c (+)= op(a)·p for op(a) [m, p.K()] (transA: a stored [p.K(), m]) on
// the calling goroutine.
func GemmPacked[T Float](transA bool, m int, a []T, lda int, p *PackedB[T], c []T, ldc int, accumulate bool) {
	gemmStubRows(transA, 0, m, a, lda, p, c, ldc, accumulate)
}

// gemmStubRows computes rows [lo, hi) of c.
func gemmStubRows[T Float](transA bool, lo, hi int, a []T, lda int, p *PackedB[T], c []T, ldc int, accumulate bool) {
	n := p.n
	for i := lo; i < hi; i++ {
		crow := c[i*ldc : i*ldc+n]
		if !accumulate {
			clear(crow)
		}
		for l := 0; l < p.k; l++ {
			var ail T
			if transA {
				ail = a[l*lda+i]
			} else {
				ail = a[i*lda+l]
			}
			if ail == 0 {
				continue
			}
			brow := p.data[l*n : (l+1)*n]
			for j, v := range brow {
				crow[j] += ail * v
			}
		}
	}
}
