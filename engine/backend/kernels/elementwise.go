package kernels

import "fmt"

// BinaryOp is an element-wise arithmetic operation of ElementWise.
type BinaryOp int

const (
	OpAdd BinaryOp = iota // a + b
	OpSub                 // a - b
	OpMul                 // a · b
	OpDiv                 // a / b
)

func (op BinaryOp) String() string {
	switch op {
	case OpAdd:
		return "Add"
	case OpSub:
		return "Sub"
	case OpMul:
		return "Mul"
	case OpDiv:
		return "Div"
	}
	return fmt.Sprintf("BinaryOp(%d)", int(op))
}

// Broadcast says how an operand of ElementWise covers the output, seen as rows of c values.
type Broadcast int

const (
	Full       Broadcast = iota // one value per output element
	PerChannel                  // c values, the same for every row (a vector along the last axis)
	Scalar                      // one value for every element
)

// elementWiseGrain is the fewest elements a worker of ElementWise gets.
const elementWiseGrain = 1 << 15

// ElementWise sets out[i] = a[i] op b[i] for an output of len(out) elements, seen as rows of
// c values, where each operand is read as its Broadcast says: a Full operand has len(out)
// values, a PerChannel one c (repeated for every row), a Scalar one 1. Each element is one
// operation on the two values, as the pure-Go backend computes it, so the results are the
// same bit for bit; a broadcast operand is read in place, never expanded. out may be a Full
// operand. It panics on lengths that do not fit.
func ElementWise[T Float](op BinaryOp, a []T, am Broadcast, b []T, bm Broadcast, c int, out []T) {
	n := len(out)
	check := func(x []T, m Broadcast) {
		want := map[Broadcast]int{Full: n, PerChannel: c, Scalar: 1}[m]
		if len(x) != want || c < 1 || n%c != 0 {
			panic(fmt.Sprintf("kernels.ElementWise: an operand of %d values (broadcast %d) for %d outputs in rows of %d", len(x), m, n, c))
		}
	}
	check(a, am)
	check(b, bm)
	if am != PerChannel && bm != PerChannel {
		// Flat: any split of the elements will do.
		row := rowKernel[T](op, am == Scalar, bm == Scalar)
		parallelFor(n, elementWiseGrain, func(lo, hi int) {
			row(sliceOf(a, am, lo, hi), sliceOf(b, bm, lo, hi), out[lo:hi])
		})
		return
	}
	row := rowKernel[T](op, am == Scalar, bm == Scalar)
	rows := n / c
	parallelFor(rows, max(1, elementWiseGrain/c), func(lo, hi int) {
		for r := lo; r < hi; r++ {
			row(sliceOf(a, am, r*c, r*c+c), sliceOf(b, bm, r*c, r*c+c), out[r*c:r*c+c])
		}
	})
}

// sliceOf returns the values of an operand for the output elements [lo, hi) (lo and hi on a
// row's boundaries for a PerChannel operand).
func sliceOf[T Float](x []T, m Broadcast, lo, hi int) []T {
	switch m {
	case Full:
		return x[lo:hi]
	case PerChannel:
		return x
	}
	return x[:1]
}

// rowKernel returns the loop that computes out = a op b for one run of elements; a scalar
// operand has one value. For Add and Mul with a scalar left operand it computes b op a, as
// the pure-Go backend does (it moves the scalar to the right of commutative operations).
func rowKernel[T Float](op BinaryOp, aScalar, bScalar bool) func(a, b, out []T) {
	switch op {
	case OpAdd:
		switch {
		case aScalar && bScalar:
			return func(a, b, out []T) { fill(out, a[0]+b[0]) }
		case aScalar:
			return func(a, b, out []T) {
				s, b := a[0], b[:len(out)]
				for i := range out {
					out[i] = b[i] + s
				}
			}
		case bScalar:
			return func(a, b, out []T) {
				s, a := b[0], a[:len(out)]
				for i := range out {
					out[i] = a[i] + s
				}
			}
		}
		return func(a, b, out []T) {
			a, b = a[:len(out)], b[:len(out)]
			for i := range out {
				out[i] = a[i] + b[i]
			}
		}
	case OpSub:
		switch {
		case aScalar && bScalar:
			return func(a, b, out []T) { fill(out, a[0]-b[0]) }
		case aScalar:
			return func(a, b, out []T) {
				s, b := a[0], b[:len(out)]
				for i := range out {
					out[i] = s - b[i]
				}
			}
		case bScalar:
			return func(a, b, out []T) {
				s, a := b[0], a[:len(out)]
				for i := range out {
					out[i] = a[i] - s
				}
			}
		}
		return func(a, b, out []T) {
			a, b = a[:len(out)], b[:len(out)]
			for i := range out {
				out[i] = a[i] - b[i]
			}
		}
	case OpMul:
		switch {
		case aScalar && bScalar:
			return func(a, b, out []T) { fill(out, a[0]*b[0]) }
		case aScalar:
			return func(a, b, out []T) {
				s, b := a[0], b[:len(out)]
				for i := range out {
					out[i] = b[i] * s
				}
			}
		case bScalar:
			return func(a, b, out []T) {
				s, a := b[0], a[:len(out)]
				for i := range out {
					out[i] = a[i] * s
				}
			}
		}
		return func(a, b, out []T) {
			a, b = a[:len(out)], b[:len(out)]
			for i := range out {
				out[i] = a[i] * b[i]
			}
		}
	case OpDiv:
		switch {
		case aScalar && bScalar:
			return func(a, b, out []T) { fill(out, a[0]/b[0]) }
		case aScalar:
			return func(a, b, out []T) {
				s, b := a[0], b[:len(out)]
				for i := range out {
					out[i] = s / b[i]
				}
			}
		case bScalar:
			return func(a, b, out []T) {
				s, a := b[0], a[:len(out)]
				for i := range out {
					out[i] = a[i] / s
				}
			}
		}
		return func(a, b, out []T) {
			a, b = a[:len(out)], b[:len(out)]
			for i := range out {
				out[i] = a[i] / b[i]
			}
		}
	}
	panic(fmt.Sprintf("kernels.ElementWise: unknown operation %v", op))
}

func fill[T Float](out []T, v T) {
	for i := range out {
		out[i] = v
	}
}

// SumRows sets out[j] to the sum of x[r·c + j] over the rows r, added in row order from
// zero: the order of the pure-Go backend's ReduceSum over every axis but the last, so the
// results are the same bit for bit. It panics unless len(out) = c and c divides len(x).
func SumRows[T Float](x []T, c int, out []T) {
	if c < 1 || len(out) != c || len(x)%c != 0 {
		panic(fmt.Sprintf("kernels.SumRows: %d values in rows of %d into %d sums", len(x), c, len(out)))
	}
	rows := len(x) / c
	// Columns are independent: split them across workers when there are enough of both.
	grain := c
	if rows*c >= 2*elementWiseGrain && c >= 32 {
		grain = 16
	}
	parallelFor(c, grain, func(lo, hi int) {
		o := out[lo:hi]
		fill(o, 0)
		for r := range rows {
			row := x[r*c+lo : r*c+hi]
			row = row[:len(o)]
			for j := range o {
				o[j] += row[j]
			}
		}
	})
}
