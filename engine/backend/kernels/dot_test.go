package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// tolFor is the relative tolerance the tests allow for T: about 1e-5 for float32 and 1e-10
// for float64.
func tolFor[T Float]() float64 {
	if isF32[T]() {
		return 1e-5
	}
	return 1e-10
}

// closeTo reports whether got is within tol·scale of want (scale at least 1e-30, so that an
// exact zero still passes only exactly).
func closeTo(got, want, scale, tol float64) bool {
	return math.Abs(got-want) <= tol*math.Max(scale, 1e-30)
}

var vectorLengths = []int{0, 1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 100, 127, 128, 129, 255, 1000, 1031}

func testDot[T Float](t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range vectorLengths {
		a, b := randSlice[T](rng, n), randSlice[T](rng, n)
		var want, mag float64
		for i := range a {
			want += float64(a[i]) * float64(b[i])
			mag += math.Abs(float64(a[i]) * float64(b[i]))
		}
		if got := float64(dot(a, b)); !closeTo(got, want, mag, tolFor[T]()) {
			t.Errorf("n=%d: dot = %v, want %v", n, got, want)
		}
	}
}

func testAxpy[T Float](t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, n := range vectorLengths {
		x, y := randSlice[T](rng, n), randSlice[T](rng, n+3)
		alpha := T(rng.Float64() - 0.5)
		want := make([]float64, len(y))
		for i := range y {
			want[i] = float64(y[i])
			if i < n {
				want[i] += float64(alpha) * float64(x[i])
			}
		}
		axpy(alpha, x, y[:n]) // exact length; the 3 elements past it must stay
		axpy(alpha, x, y)     // and again with a longer y, to check nothing past len(x) moves
		for i := range y {
			w := want[i]
			if i < n {
				w += float64(alpha) * float64(x[i])
			}
			if !closeTo(float64(y[i]), w, 1+math.Abs(w), tolFor[T]()) {
				t.Fatalf("n=%d: y[%d] = %v, want %v", n, i, y[i], w)
			}
		}
	}
}

func TestDot(t *testing.T) {
	forEachISA(t, func(t *testing.T) {
		t.Run("f32", testDot[float32])
		t.Run("f64", testDot[float64])
	})
}

func TestAxpy(t *testing.T) {
	forEachISA(t, func(t *testing.T) {
		t.Run("f32", testAxpy[float32])
		t.Run("f64", testAxpy[float64])
	})
}

func BenchmarkDot(b *testing.B) {
	for _, n := range []int{128, 4096} {
		x, y := randSlice[float32](rand.New(rand.NewPCG(1, 1)), n), randSlice[float32](rand.New(rand.NewPCG(2, 2)), n)
		for _, i := range supportedISAs() {
			b.Run(fmt.Sprintf("f32/n=%d/%v", n, i), func(b *testing.B) {
				activeISA = i
				defer func() { activeISA = hostISA }()
				var s float32
				for b.Loop() {
					s += dot(x, y)
				}
				b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds()/1e9, "Gflop/2/s")
			})
		}
	}
}
