package kernels

import (
	"math/rand/v2"
	"testing"
)

// TestElementWise checks every operation and broadcast against the definition, with rows of
// one value, a few, and enough for several workers.
func TestElementWise(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	apply := func(op BinaryOp, a, b float64) float64 {
		switch op {
		case OpAdd:
			return a + b
		case OpSub:
			return a - b
		case OpMul:
			return a * b
		}
		return a / b
	}
	operand := func(m Broadcast, n, c int) []float64 {
		x := make([]float64, map[Broadcast]int{Full: n, PerChannel: c, Scalar: 1}[m])
		for i := range x {
			x[i] = rng.NormFloat64()
		}
		return x
	}
	at := func(x []float64, m Broadcast, i, c int) float64 {
		switch m {
		case Full:
			return x[i]
		case PerChannel:
			return x[i%c]
		}
		return x[0]
	}
	for _, rc := range [][2]int{{7, 1}, {5, 3}, {1 << 12, 16}, {3, 1 << 16}} {
		rows, c := rc[0], rc[1]
		n := rows * c
		for op := OpAdd; op <= OpDiv; op++ {
			for am := Full; am <= Scalar; am++ {
				for bm := Full; bm <= Scalar; bm++ {
					a, b := operand(am, n, c), operand(bm, n, c)
					out := make([]float64, n)
					ElementWise(op, a, am, b, bm, c, out)
					for i := range out {
						if want := apply(op, at(a, am, i, c), at(b, bm, i, c)); out[i] != want {
							t.Fatalf("%v %d×%d (%d, %d): out[%d] = %v, want %v", op, rows, c, am, bm, i, out[i], want)
						}
					}
					a32, b32 := toF32(a), toF32(b)
					out32 := make([]float32, n)
					ElementWise(op, a32, am, b32, bm, c, out32)
					for i := range out32 {
						x, y := a32[min(i, len(a32)-1)], b32[min(i, len(b32)-1)]
						if am == PerChannel {
							x = a32[i%c]
						}
						if bm == PerChannel {
							y = b32[i%c]
						}
						var want float32
						switch op {
						case OpAdd:
							want = x + y
						case OpSub:
							want = x - y
						case OpMul:
							want = x * y
						default:
							want = x / y
						}
						if out32[i] != want {
							t.Fatalf("float32 %v %d×%d (%d, %d): out[%d] = %v, want %v", op, rows, c, am, bm, i, out32[i], want)
						}
					}
				}
			}
		}
		x := operand(Full, n, c)
		sums := make([]float64, c)
		SumRows(x, c, sums)
		for j := range c {
			want := 0.0
			for r := range rows {
				want += x[r*c+j]
			}
			if sums[j] != want {
				t.Fatalf("SumRows %d×%d: sum %d = %v, want %v (in row order)", rows, c, j, sums[j], want)
			}
		}
	}
}

func toF32(x []float64) []float32 {
	y := make([]float32, len(x))
	for i, v := range x {
		y[i] = float32(v)
	}
	return y
}
