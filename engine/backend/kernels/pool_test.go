package kernels

import (
	"math"
	"math/rand/v2"
	"testing"
)

// naivePool computes max-pooling and its gradient from the definition: the maximum over the
// window's taps inside x, and each window's dy added at the first of its maxima.
func naivePool(s PoolShape, x, dy []float64) (y, dx []float64) {
	oh, ow := s.OutH(), s.OutW()
	y = make([]float64, s.N*oh*ow*s.C)
	dx = make([]float64, len(x))
	for n := 0; n < s.N; n++ {
		for i := 0; i < oh; i++ {
			for j := 0; j < ow; j++ {
				for c := 0; c < s.C; c++ {
					best, at := math.Inf(-1), -1
					for a := 0; a < s.KH; a++ {
						for b := 0; b < s.KW; b++ {
							r, q := i*s.StrideH+a-s.PadTop, j*s.StrideW+b-s.PadLeft
							if r < 0 || r >= s.H || q < 0 || q >= s.W {
								continue
							}
							idx := ((n*s.H+r)*s.W+q)*s.C + c
							if at < 0 || x[idx] > best {
								best, at = x[idx], idx
							}
						}
					}
					o := ((n*oh+i)*ow+j)*s.C + c
					y[o] = best
					if dy != nil {
						dx[at] += dy[o]
					}
				}
			}
		}
	}
	return y, dx
}

func TestMaxPool(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 22))
	shapes := []PoolShape{
		{N: 2, H: 8, W: 8, C: 16, KH: 3, KW: 3, StrideH: 2, StrideW: 2, PadTop: 1, PadBottom: 1, PadLeft: 1, PadRight: 1}, // ResNet's
		{N: 1, H: 7, W: 5, C: 3, KH: 2, KW: 2, StrideH: 2, StrideW: 2},
		{N: 3, H: 9, W: 11, C: 17, KH: 3, KW: 2, StrideH: 1, StrideW: 3, PadTop: 2, PadBottom: 0, PadLeft: 0, PadRight: 1},
		{N: 1, H: 1, W: 1, C: 1, KH: 1, KW: 1, StrideH: 1, StrideW: 1},
		{N: 2, H: 5, W: 6, C: 5, KH: 3, KW: 3, StrideH: 1, StrideW: 1, PadTop: 1, PadBottom: 1, PadLeft: 1, PadRight: 1},
	}
	for _, s := range shapes {
		if err := s.Validate(); err != nil {
			t.Fatal(err)
		}
		n := s.N * s.H * s.W * s.C
		x := randSlice[float64](rng, n)
		// Ties: some windows hold equal values, whose gradient goes to the first.
		for i := 0; i < n; i += 7 {
			x[i] = 0.5
		}
		dy := randSlice[float64](rng, s.N*s.OutH()*s.OutW()*s.C)
		wantY, wantDx := naivePool(s, x, dy)
		forEachISA(t, func(t *testing.T) {
			checkPool[float64](t, s, x, dy, wantY, wantDx)
			checkPool[float32](t, s, x, dy, wantY, wantDx)
		})
	}
}

func checkPool[T Float](t *testing.T, s PoolShape, x64, dy64, wantY, wantDx []float64) {
	t.Helper()
	x, dy := make([]T, len(x64)), make([]T, len(dy64))
	for i, v := range x64 {
		x[i] = T(v)
	}
	for i, v := range dy64 {
		dy[i] = T(v)
	}
	y, dx := make([]T, len(wantY)), make([]T, len(x))
	for i := range y {
		y[i] = T(math.NaN())
	}
	for i := range dx {
		dx[i] = T(math.NaN())
	}
	MaxPool(s, x, y)
	MaxPoolGrad(s, x, dy, dx)
	for i := range y {
		if float64(y[i]) != float64(T(wantY[i])) {
			t.Fatalf("%+v %T: y[%d] = %v, want %v", s, y[0], i, y[i], wantY[i])
		}
	}
	for i := range dx {
		if math.Abs(float64(dx[i])-wantDx[i]) > 1e-6*(1+math.Abs(wantDx[i])) {
			t.Fatalf("%+v %T: dx[%d] = %v, want %v", s, dx[0], i, dx[i], wantDx[i])
		}
	}
}

func TestPoolShapeValidate(t *testing.T) {
	for _, s := range []PoolShape{
		{N: 1, H: 4, W: 4, C: 1, KH: 2, KW: 2, StrideH: 2, StrideW: 2, PadBottom: 2}, // a window wholly in padding
		{N: 1, H: 4, W: 4, C: 1, KH: 5, KW: 2, StrideH: 1, StrideW: 1},               // no output
		{N: 1, H: 4, W: 4, C: 1, KH: 2, KW: 2, StrideH: 0, StrideW: 1},
	} {
		if s.Validate() == nil {
			t.Errorf("%+v: valid, want an error", s)
		}
	}
}
