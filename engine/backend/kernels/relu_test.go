package kernels

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestReLUMask(t *testing.T) {
	forEachISA(t, func(t *testing.T) {
		t.Run("float32", testReLUMask[float32])
		t.Run("float64", testReLUMask[float64])
	})
}

func testReLUMask[T Float](t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, n := range []int{0, 1, 7, 1023, 3*reluGrain + 5} {
		a, x := randSlice[T](rng, n), randSlice[T](rng, n)
		if n > 4 {
			a[0], a[1], a[2], a[3] = 0, T(math.NaN()), T(math.Inf(-1)), T(math.Inf(1))
			x[4] = T(math.Inf(1))
			a[4] = -1
		}
		want := make([]T, n)
		for i := range a {
			var m T
			if a[i] > 0 {
				m = 1
			}
			want[i] = x[i] * m
		}
		out := make([]T, n)
		ReLUMask(a, x, out)
		for i := range want {
			if !same(out[i], want[i]) {
				t.Fatalf("n=%d: out[%d] = %v, want %v (a=%v, x=%v)", n, i, out[i], want[i], a[i], x[i])
			}
		}
		// The forward ReLU in place: out = a.
		fwd := append([]T(nil), a...)
		ReLUMask(fwd, fwd, fwd)
		for i, v := range a {
			var m T
			if v > 0 {
				m = 1
			}
			if !same(fwd[i], v*m) {
				t.Fatalf("n=%d: in place, out[%d] = %v, want %v", n, i, fwd[i], v*m)
			}
		}
	}
}

// same reports whether a and b are equal or both NaN.
func same[T Float](a, b T) bool { return a == b || (a != a && b != b) }

func BenchmarkReLUMask(b *testing.B) {
	rng := rand.New(rand.NewPCG(5, 6))
	n := 64 * 32 * 32 * 16
	a, x, out := randSlice[float32](rng, n), randSlice[float32](rng, n), make([]float32, n)
	b.SetBytes(int64(12 * n))
	for b.Loop() {
		ReLUMask(a, x, out)
	}
}
