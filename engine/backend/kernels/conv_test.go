package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"testing"
)

// convRefTaps calls fn(xi, ki, yi) for every term x[xi]·k[ki] of every output y[yi], in
// flat indices, straight from the definition in ConvShape's doc: it is the one nested loop
// that the reference forward, backward-data and backward-filter below share.
func convRefTaps(s ConvShape, fn func(xi, ki, yi int)) {
	oh, ow := s.OutH(), s.OutW()
	for n := 0; n < s.N; n++ {
		for i := 0; i < oh; i++ {
			for j := 0; j < ow; j++ {
				for a := 0; a < s.KH; a++ {
					for b := 0; b < s.KW; b++ {
						ih := i*s.StrideH + a*s.DilH - s.PadTop
						iw := j*s.StrideW + b*s.DilW - s.PadLeft
						if ih < 0 || ih >= s.H || iw < 0 || iw >= s.W {
							continue
						}
						for c := 0; c < s.C; c++ {
							for o := 0; o < s.O; o++ {
								fn(((n*s.H+ih)*s.W+iw)*s.C+c, ((a*s.KW+b)*s.C+c)*s.O+o, ((n*oh+i)*ow+j)*s.O+o)
							}
						}
					}
				}
			}
		}
	}
}

// refConv returns the float64 reference results and, for tolerances, the same sums over
// absolute values: y = x ⊛ k, dx = ∂(Σ y·dy)/∂x and dk = ∂(Σ y·dy)/∂k.
func refConv[T Float](s ConvShape, x, k, dy []T) (y, yAbs, dx, dxAbs, dk, dkAbs []float64) {
	y, yAbs = make([]float64, len(dy)), make([]float64, len(dy))
	dx, dxAbs = make([]float64, len(x)), make([]float64, len(x))
	dk, dkAbs = make([]float64, len(k)), make([]float64, len(k))
	convRefTaps(s, func(xi, ki, yi int) {
		xv, kv, dv := float64(x[xi]), float64(k[ki]), float64(dy[yi])
		y[yi] += xv * kv
		yAbs[yi] += math.Abs(xv * kv)
		dx[xi] += dv * kv
		dxAbs[xi] += math.Abs(dv * kv)
		dk[ki] += xv * dv
		dkAbs[ki] += math.Abs(xv * dv)
	})
	return
}

func nanSlice[T Float](n int) []T {
	out := make([]T, n)
	for i := range out {
		out[i] = T(math.NaN())
	}
	return out
}

// flipKernel reverses k [KH, KW, C, O] in both spatial axes.
func flipKernel[T Float](s ConvShape, k []T) []T {
	out := make([]T, len(k))
	tap := s.C * s.O
	for a := 0; a < s.KH; a++ {
		for b := 0; b < s.KW; b++ {
			src := (a*s.KW + b) * tap
			dst := ((s.KH-1-a)*s.KW + (s.KW - 1 - b)) * tap
			copy(out[dst:dst+tap], k[src:src+tap])
		}
	}
	return out
}

// checkConvClose fails t unless got matches want to a tolerance relative to the sum of the
// absolute values of the terms (scale).
func checkConvClose[T Float](t *testing.T, what string, got []T, want, scale []float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d elements, want %d", what, len(got), len(want))
	}
	rel := 1e-12
	var zero T
	if _, ok := any(zero).(float32); ok {
		rel = 1e-5
	}
	bad := 0
	for i := range got {
		g := float64(got[i])
		if d := math.Abs(g - want[i]); !(d <= rel*(scale[i]+1e-3)) {
			if bad++; bad <= 3 {
				t.Errorf("%s[%d] = %v, want %v (scale %v)", what, i, g, want[i], scale[i])
			}
		}
	}
	if bad > 3 {
		t.Errorf("%s: %d of %d elements wrong", what, bad, len(got))
	}
}

// convTestShapes is a fixed list of awkward shapes followed by random valid ones.
func convTestShapes(r *rand.Rand, random int) []ConvShape {
	shapes := []ConvShape{
		// 1x1 stride 1 without padding: the no-packing path, odd channel counts.
		{N: 2, H: 5, W: 3, C: 17, KH: 1, KW: 1, O: 5, StrideH: 1, StrideW: 1, DilH: 1, DilW: 1},
		{N: 1, H: 1, W: 1, C: 1, KH: 1, KW: 1, O: 1, StrideH: 1, StrideW: 1, DilH: 1, DilW: 1},
		// 1x1 stride 2 (ResNet shortcut) and stride 3 with a negative end padding.
		{N: 3, H: 7, W: 9, C: 5, KH: 1, KW: 1, O: 3, StrideH: 2, StrideW: 2, DilH: 1, DilW: 1},
		{N: 1, H: 8, W: 7, C: 3, KH: 1, KW: 1, O: 17, StrideH: 3, StrideW: 3, DilH: 1, DilW: 1, PadBottom: -1, PadRight: -2},
		// 1x1 strided with end padding (positions that read no input) and odd channels.
		{N: 2, H: 8, W: 9, C: 17, KH: 1, KW: 1, O: 19, StrideH: 2, StrideW: 3, DilH: 1, DilW: 1, PadBottom: 1, PadRight: 2},
		{N: 3, H: 5, W: 5, C: 33, KH: 1, KW: 1, O: 7, StrideH: 2, StrideW: 2, DilH: 1, DilW: 1, PadBottom: 2, PadRight: 1},
		// 3x3 same padding, batch 1 and batch 5.
		{N: 1, H: 9, W: 7, C: 3, KH: 3, KW: 3, O: 17, StrideH: 1, StrideW: 1, DilH: 1, DilW: 1, PadTop: 1, PadBottom: 1, PadLeft: 1, PadRight: 1},
		{N: 5, H: 6, W: 6, C: 5, KH: 3, KW: 3, O: 4, StrideH: 2, StrideW: 2, DilH: 1, DilW: 1, PadTop: 1, PadBottom: 1, PadLeft: 1, PadRight: 1},
		// 7x7 stride 2 pad 3 (ResNet stem), dilated, non-square, asymmetric padding.
		{N: 2, H: 13, W: 11, C: 3, KH: 7, KW: 7, O: 5, StrideH: 2, StrideW: 2, DilH: 1, DilW: 1, PadTop: 3, PadBottom: 3, PadLeft: 3, PadRight: 3},
		{N: 1, H: 11, W: 10, C: 5, KH: 3, KW: 3, O: 3, StrideH: 1, StrideW: 2, DilH: 2, DilW: 2, PadTop: 2, PadBottom: 0, PadLeft: 1, PadRight: 3},
		{N: 3, H: 5, W: 8, C: 17, KH: 1, KW: 3, O: 2, StrideH: 1, StrideW: 3, DilH: 1, DilW: 2, PadLeft: 2, PadRight: -1},
		{N: 2, H: 7, W: 6, C: 1, KH: 2, KW: 3, O: 3, StrideH: 3, StrideW: 1, DilH: 2, DilW: 1, PadTop: 3, PadBottom: -2, PadLeft: 0, PadRight: 2},
		// Stride 1 with padding wider than the kernel: not a transposed forward convolution.
		{N: 1, H: 4, W: 5, C: 3, KH: 1, KW: 1, O: 5, StrideH: 1, StrideW: 1, DilH: 1, DilW: 1, PadTop: 2, PadBottom: 1, PadLeft: 0, PadRight: 2},
		{N: 4, H: 6, W: 5, C: 5, KH: 3, KW: 3, O: 3, StrideH: 1, StrideW: 1, DilH: 1, DilW: 1, PadTop: 3, PadBottom: 0, PadLeft: 1, PadRight: 3},
		// Large enough for several full blocks of rows per CPU.
		{N: 2, H: 20, W: 19, C: 17, KH: 3, KW: 3, O: 33, StrideH: 1, StrideW: 1, DilH: 1, DilW: 1, PadTop: 1, PadBottom: 1, PadLeft: 1, PadRight: 1},
		{N: 3, H: 31, W: 29, C: 5, KH: 3, KW: 3, O: 17, StrideH: 2, StrideW: 2, DilH: 1, DilW: 1, PadTop: 1, PadBottom: 0, PadLeft: 1, PadRight: 0},
	}
	kernels := [][2]int{{1, 1}, {3, 3}, {7, 7}, {1, 3}, {2, 3}, {3, 1}}
	channels := []int{1, 3, 5, 17}
	fixed := len(shapes)
	for len(shapes) < fixed+random {
		kh := kernels[r.IntN(len(kernels))]
		s := ConvShape{
			N: 1 + r.IntN(3), H: 1 + r.IntN(12), W: 1 + r.IntN(12),
			C: channels[r.IntN(len(channels))], O: channels[r.IntN(len(channels))],
			KH: kh[0], KW: kh[1],
			StrideH: 1 + r.IntN(3), StrideW: 1 + r.IntN(3),
			DilH: 1 + r.IntN(2), DilW: 1 + r.IntN(2),
			PadTop: r.IntN(4), PadBottom: r.IntN(6) - 2, PadLeft: r.IntN(4), PadRight: r.IntN(6) - 2,
		}
		if s.Validate() == nil {
			shapes = append(shapes, s)
		}
	}
	return shapes
}

func (s ConvShape) String() string {
	return fmt.Sprintf("n%d_%dx%dx%d_k%dx%dx%d_s%dx%d_d%dx%d_p%d,%d,%d,%d", s.N, s.H, s.W, s.C, s.KH, s.KW, s.O,
		s.StrideH, s.StrideW, s.DilH, s.DilW, s.PadTop, s.PadBottom, s.PadLeft, s.PadRight)
}

// testConvAgainstReference runs all three kernels on every test shape, with exact-length
// slices and outputs filled with NaN beforehand (so every element must be written), and
// compares them with the nested-loop reference.
func testConvAgainstReference[T Float](t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, s := range convTestShapes(r, 60) {
		x := randSlice[T](r, s.N*s.H*s.W*s.C)
		k := randSlice[T](r, s.KH*s.KW*s.C*s.O)
		dy := randSlice[T](r, s.N*s.OutH()*s.OutW()*s.O)
		y, yAbs, dx, dxAbs, dk, dkAbs := refConv(s, x, k, dy)

		gotY := nanSlice[T](len(dy))
		ConvForward(s, x, k, gotY)
		checkConvClose(t, s.String()+" forward", gotY, y, yAbs)

		gotDx := nanSlice[T](len(x))
		ConvBackwardData(s, dy, k, false, gotDx)
		checkConvClose(t, s.String()+" backward data", gotDx, dx, dxAbs)

		gotDxFlipped := nanSlice[T](len(x))
		ConvBackwardData(s, dy, flipKernel(s, k), true, gotDxFlipped)
		checkConvClose(t, s.String()+" backward data, flipped kernel", gotDxFlipped, dx, dxAbs)

		gotDk := nanSlice[T](len(k))
		ConvBackwardFilter(s, x, dy, gotDk)
		checkConvClose(t, s.String()+" backward filter", gotDk, dk, dkAbs)
	}
}

// TestConvAgainstReference checks the kernels against the nested loop on every
// instruction-set path, in float32 and float64, with one CPU and with several (the kernels
// take different paths by number of images per CPU).
func TestConvAgainstReference(t *testing.T) {
	for _, procs := range []int{1, 3} {
		t.Run(fmt.Sprintf("procs%d", procs), func(t *testing.T) {
			defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
			forEachISA(t, func(t *testing.T) {
				t.Run("float32", testConvAgainstReference[float32])
				t.Run("float64", testConvAgainstReference[float64])
			})
		})
	}
}

// TestConvBackwardDataFlipped checks that the flipped kernel gives exactly the gradient of
// the unflipped one.
func TestConvBackwardDataFlipped(t *testing.T) {
	forEachISA(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(3, 4))
		for _, s := range convTestShapes(r, 20) {
			k := randSlice[float32](r, s.KH*s.KW*s.C*s.O)
			dy := randSlice[float32](r, s.N*s.OutH()*s.OutW()*s.O)
			want := make([]float32, s.N*s.H*s.W*s.C)
			got := make([]float32, len(want))
			ConvBackwardData(s, dy, k, false, want)
			ConvBackwardData(s, dy, flipKernel(s, k), true, got)
			for i := range want {
				if got[i] != want[i] {
					t.Fatalf("%v: dx[%d] = %v with the flipped kernel, %v with the kernel", s, i, got[i], want[i])
				}
			}
		}
	})
}

// convLoss is L = Σ y·rw for y = x ⊛ k.
func convLoss(s ConvShape, x, k, rw []float64) float64 {
	y := make([]float64, len(rw))
	ConvForward(s, x, k, y)
	return dot64(y, rw)
}

func dot64(a, b []float64) float64 {
	var sum float64
	for i := range a {
		sum += a[i] * b[i]
	}
	return sum
}

// TestConvGradients checks ConvBackwardData and ConvBackwardFilter in float64 against
// central differences of L = Σ y·rw on a few entries, and the adjoint identity
// <x ⊛ k, dy> = <x, BackwardData(dy)> = <k, BackwardFilter(x, dy)> on whole tensors.
func TestConvGradients(t *testing.T) {
	forEachISA(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(5, 6))
		for _, s := range convTestShapes(r, 20) {
			x := randSlice[float64](r, s.N*s.H*s.W*s.C)
			k := randSlice[float64](r, s.KH*s.KW*s.C*s.O)
			rw := randSlice[float64](r, s.N*s.OutH()*s.OutW()*s.O)
			dx := make([]float64, len(x))
			dk := make([]float64, len(k))
			ConvBackwardData(s, rw, k, false, dx)
			ConvBackwardFilter(s, x, rw, dk)

			const h = 1e-3 // L is linear in each of x and k: central differences are exact but for rounding
			for _, v := range []struct {
				name      string
				param, dv []float64
			}{{"dx", x, dx}, {"dk", k, dk}} {
				for range 5 {
					i := r.IntN(len(v.param))
					old := v.param[i]
					v.param[i] = old + h
					lp := convLoss(s, x, k, rw)
					v.param[i] = old - h
					lm := convLoss(s, x, k, rw)
					v.param[i] = old
					if fd := (lp - lm) / (2 * h); math.Abs(fd-v.dv[i]) > 1e-8*(1+math.Abs(fd)) {
						t.Errorf("%v: %s[%d] = %v, central difference %v", s, v.name, i, v.dv[i], fd)
					}
				}
			}

			y := make([]float64, len(rw))
			ConvForward(s, x, k, y)
			fwd, data, filter := dot64(y, rw), dot64(x, dx), dot64(k, dk)
			if tol := 1e-10 * (1 + math.Abs(fwd)); math.Abs(fwd-data) > tol || math.Abs(fwd-filter) > tol {
				t.Errorf("%v: <x⊛k, dy> = %v, <x, dx> = %v, <k, dk> = %v", s, fwd, data, filter)
			}
		}
	})
}

// TestConvShape checks the output sizes, negative end paddings included, and Validate.
func TestConvShape(t *testing.T) {
	base := ConvShape{N: 1, H: 10, W: 10, C: 1, KH: 3, KW: 3, O: 1, StrideH: 1, StrideW: 1, DilH: 1, DilW: 1}
	for _, tc := range []struct {
		mod        func(*ConvShape)
		outH, outW int
		ok         bool
	}{
		{func(s *ConvShape) {}, 8, 8, true},
		{func(s *ConvShape) { s.PadTop, s.PadBottom, s.StrideH = 1, 1, 2 }, 5, 8, true},
		{func(s *ConvShape) { s.PadBottom, s.PadRight = -1, -2 }, 7, 6, true},
		{func(s *ConvShape) { s.DilH, s.DilW, s.StrideW = 2, 4, 3 }, 6, 1, true},
		{func(s *ConvShape) { s.H, s.StrideH = 2, 2 }, 0, 8, false}, // span -1: floor, not truncation
		{func(s *ConvShape) { s.W, s.StrideW = 1, 3 }, 8, 0, false}, // span -2
		{func(s *ConvShape) { s.PadRight = -8 }, 8, 0, false},       // negative end padding eats the input
		{func(s *ConvShape) { s.PadTop = -1 }, 7, 8, false},         // PadTop must not be negative
		{func(s *ConvShape) { s.C = 0 }, 8, 8, false},
		{func(s *ConvShape) { s.DilW = 0 }, 8, 10, false},
	} {
		s := base
		tc.mod(&s)
		if s.OutH() != tc.outH || s.OutW() != tc.outW {
			t.Errorf("%v: output %dx%d, want %dx%d", s, s.OutH(), s.OutW(), tc.outH, tc.outW)
		}
		if err := s.Validate(); (err == nil) != tc.ok {
			t.Errorf("%v: Validate() = %v, want ok %v", s, err, tc.ok)
		}
	}
}

// TestConvPanicsOnShortSlices checks that a slice too short for the shape is refused.
func TestConvPanicsOnShortSlices(t *testing.T) {
	s := ConvShape{N: 1, H: 4, W: 4, C: 2, KH: 3, KW: 3, O: 2, StrideH: 1, StrideW: 1, DilH: 1, DilW: 1}
	defer func() {
		if recover() == nil {
			t.Error("ConvForward with a short output did not panic")
		}
	}()
	ConvForward(s, make([]float32, 32), make([]float32, 36), make([]float32, 7))
}

// convBenchShapes are layers of the CIFAR ResNet (batch 64) and ResNet-18 at 224 (batch 32).
var convBenchShapes = []struct {
	name string
	s    ConvShape
}{
	{"cifar_32x32x16_3x3x16", ConvShape{N: 64, H: 32, W: 32, C: 16, KH: 3, KW: 3, O: 16, StrideH: 1, StrideW: 1, DilH: 1, DilW: 1, PadTop: 1, PadBottom: 1, PadLeft: 1, PadRight: 1}},
	{"cifar_16x16x32_3x3x64_s2", ConvShape{N: 64, H: 16, W: 16, C: 32, KH: 3, KW: 3, O: 64, StrideH: 2, StrideW: 2, DilH: 1, DilW: 1, PadTop: 1, PadBottom: 1, PadLeft: 1, PadRight: 1}},
	{"cifar_8x8x64_1x1x128_s2", ConvShape{N: 64, H: 8, W: 8, C: 64, KH: 1, KW: 1, O: 128, StrideH: 2, StrideW: 2, DilH: 1, DilW: 1}},
	{"r18_224x224x3_7x7x64_s2", ConvShape{N: 32, H: 224, W: 224, C: 3, KH: 7, KW: 7, O: 64, StrideH: 2, StrideW: 2, DilH: 1, DilW: 1, PadTop: 3, PadBottom: 3, PadLeft: 3, PadRight: 3}},
	{"r18_56x56x64_3x3x64", ConvShape{N: 32, H: 56, W: 56, C: 64, KH: 3, KW: 3, O: 64, StrideH: 1, StrideW: 1, DilH: 1, DilW: 1, PadTop: 1, PadBottom: 1, PadLeft: 1, PadRight: 1}},
	{"r18_14x14x256_3x3x256", ConvShape{N: 32, H: 14, W: 14, C: 256, KH: 3, KW: 3, O: 256, StrideH: 1, StrideW: 1, DilH: 1, DilW: 1, PadTop: 1, PadBottom: 1, PadLeft: 1, PadRight: 1}},
}

// BenchmarkConv reports GFLOP/s (2·N·OutH·OutW·KH·KW·C·O per call) of the three float32
// kernels on layers of the networks the kernels serve, by wall time and per CPU-second of
// the process.
func BenchmarkConv(b *testing.B) {
	for _, bs := range convBenchShapes {
		b.Run(bs.name, func(b *testing.B) {
			s := bs.s
			r := rand.New(rand.NewPCG(7, 8))
			x := randSlice[float32](r, s.N*s.H*s.W*s.C)
			k := randSlice[float32](r, s.KH*s.KW*s.C*s.O)
			dy := randSlice[float32](r, s.N*s.OutH()*s.OutW()*s.O)
			y := make([]float32, len(dy))
			dx := make([]float32, len(x))
			dk := make([]float32, len(k))
			flops := 2 * float64(s.N*s.OutH()*s.OutW()) * float64(s.KH*s.KW*s.C*s.O)
			for _, op := range []struct {
				name string
				run  func()
			}{
				{"forward", func() { ConvForward(s, x, k, y) }},
				{"data", func() { ConvBackwardData(s, dy, k, true, dx) }},
				{"filter", func() { ConvBackwardFilter(s, x, dy, dk) }},
			} {
				b.Run(op.name, func(b *testing.B) {
					cpu0 := processCPUTime()
					for b.Loop() {
						op.run()
					}
					b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
					// On a shared machine, wall time counts other processes' turns; the CPU
					// time this process got gives the speed per core it actually ran at.
					if cpu := processCPUTime() - cpu0; cpu > 0 {
						b.ReportMetric(flops*float64(b.N)/cpu.Seconds()/1e9, "GFLOP/cpu-s")
					}
				})
			}
		})
	}
}

// TestConvBackwardFilterRepeats checks that the kernel gradient, summed over blocks or images
// shared among the CPUs, comes out bit for bit the same however many CPUs take part and
// whichever takes which part.
func TestConvBackwardFilterRepeats(t *testing.T) {
	rng := rand.New(rand.NewPCG(31, 32))
	for _, s := range []ConvShape{
		{N: 16, H: 32, W: 32, C: 16, KH: 3, KW: 3, O: 16, StrideH: 1, StrideW: 1, DilH: 1, DilW: 1, PadTop: 1, PadBottom: 1, PadLeft: 1, PadRight: 1},
		{N: 16, H: 8, W: 8, C: 64, KH: 3, KW: 3, O: 64, StrideH: 1, StrideW: 1, DilH: 1, DilW: 1, PadTop: 1, PadBottom: 1, PadLeft: 1, PadRight: 1},
		{N: 9, H: 16, W: 16, C: 32, KH: 1, KW: 1, O: 64, StrideH: 2, StrideW: 2, DilH: 1, DilW: 1},
	} {
		x := randSlice[float32](rng, s.N*s.H*s.W*s.C)
		dy := randSlice[float32](rng, s.N*s.OutH()*s.OutW()*s.O)
		var first []float32
		for _, procs := range []int{1, 2, 3, 2, 2} {
			old := runtime.GOMAXPROCS(procs)
			dk := make([]float32, s.KH*s.KW*s.C*s.O)
			ConvBackwardFilter(s, x, dy, dk)
			runtime.GOMAXPROCS(old)
			if first == nil {
				first = dk
				continue
			}
			for i := range dk {
				if math.Float32bits(dk[i]) != math.Float32bits(first[i]) {
					t.Fatalf("%+v: with %d CPUs dk[%d] = %v, with 1 CPU %v", s, procs, i, dk[i], first[i])
				}
			}
		}
	}
}
