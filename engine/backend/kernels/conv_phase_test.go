package kernels

import (
	"math/rand/v2"
	"runtime"
	"sync/atomic"
	"testing"
)

// phaseTestShapes are strided shapes that the phase path takes: phases without taps
// (kernel narrower than the stride), odd sizes and channels, end paddings of both signs.
var phaseTestShapes = []ConvShape{
	conv3x3(3, 32, 16, 32, 2),
	conv3x3(2, 17, 5, 3, 2),
	{N: 2, H: 9, W: 25, C: 3, KH: 2, KW: 2, O: 17, StrideH: 3, StrideW: 3, DilH: 1, DilW: 1, PadTop: 0, PadBottom: 1, PadLeft: 0, PadRight: -1},
	{N: 1, H: 7, W: 30, C: 17, KH: 1, KW: 3, O: 5, StrideH: 2, StrideW: 3, DilH: 1, DilW: 1, PadTop: 0, PadBottom: 0, PadLeft: 0, PadRight: 2},
	{N: 2, H: 13, W: 19, C: 3, KH: 7, KW: 7, O: 9, StrideH: 2, StrideW: 2, DilH: 1, DilW: 1, PadTop: 3, PadBottom: 3, PadLeft: 3, PadRight: 3},
	{N: 3, H: 6, W: 24, C: 8, KH: 3, KW: 5, O: 20, StrideH: 1, StrideW: 2, DilH: 1, DilW: 1, PadTop: 1, PadBottom: -1, PadLeft: 2, PadRight: 1},
}

func testConvBackwardDataPhases[T Float](t *testing.T) {
	r := rand.New(rand.NewPCG(41, 42))
	for _, s := range phaseTestShapes {
		k := randSlice[T](r, s.KH*s.KW*s.C*s.O)
		dy := randSlice[T](r, s.N*s.OutH()*s.OutW()*s.O)
		_, _, dx, dxAbs, _, _ := refConv(s, make([]T, s.N*s.H*s.W*s.C), k, dy)
		for _, flipped := range []bool{false, true} {
			kk := k
			if flipped {
				kk = flipKernel(s, k)
			}
			got := nanSlice[T](s.N * s.H * s.W * s.C)
			if !convBackwardDataPhases(s, dy, kk, flipped, got) {
				t.Fatalf("%v: the phase path refused the shape", s)
			}
			checkConvClose(t, s.String()+" backward data by phases", got, dx, dxAbs)
		}
	}
}

// TestConvBackwardDataPhases checks the phase path against the nested loop on every
// instruction-set path, in float32 and float64, with exact-length, NaN-filled outputs.
func TestConvBackwardDataPhases(t *testing.T) {
	forEachISA(t, func(t *testing.T) {
		t.Run("float32", testConvBackwardDataPhases[float32])
		t.Run("float64", testConvBackwardDataPhases[float64])
	})
}

// TestConvShare checks that convShare hands out every unit once, to workers numbered
// from 0, whatever the number of CPUs.
func TestConvShare(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	for _, procs := range []int{1, 2, 3, 8} {
		runtime.GOMAXPROCS(procs)
		for _, n := range []int{0, 1, 2, 5, 100} {
			seen := make([]atomic.Int32, n)
			var maxWorker atomic.Int32
			convShare(n, func(w int, next func() (int, bool)) {
				if int32(w) > maxWorker.Load() {
					maxWorker.Store(int32(w))
				}
				for i, ok := next(); ok; i, ok = next() {
					seen[i].Add(1)
				}
			})
			for i := range seen {
				if c := seen[i].Load(); c != 1 {
					t.Fatalf("procs %d, n %d: unit %d taken %d times", procs, n, i, c)
				}
			}
			if w := int(maxWorker.Load()); w >= max(1, min(procs, n)) {
				t.Errorf("procs %d, n %d: worker %d", procs, n, w)
			}
		}
	}
}
