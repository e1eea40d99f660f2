package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// directTestShapes are shapes for the direct path, whether or not useDirect would pick it
// for them: odd channels and widths, strides, dilated rows, asymmetric, wide and negative
// end paddings, rows narrower than a tile and images of one position.
func directTestShapes(r *rand.Rand, random int) []ConvShape {
	shapes := []ConvShape{
		conv3x3(3, 32, 16, 16, 1),
		conv3x3(2, 8, 3, 17, 1),
		conv3x3(2, 4, 33, 9, 1),
		{N: 2, H: 7, W: 9, C: 5, KH: 7, KW: 7, O: 3, StrideH: 1, StrideW: 1, DilH: 1, DilW: 1, PadTop: 3, PadBottom: 3, PadLeft: 3, PadRight: 3},
		{N: 1, H: 11, W: 10, C: 5, KH: 3, KW: 2, O: 3, StrideH: 1, StrideW: 1, DilH: 2, DilW: 1, PadTop: 2, PadBottom: 0, PadLeft: 1, PadRight: 3},
		{N: 3, H: 6, W: 5, C: 1, KH: 2, KW: 3, O: 40, StrideH: 1, StrideW: 1, DilH: 1, DilW: 1, PadTop: 0, PadBottom: -1, PadLeft: 0, PadRight: -1},
		{N: 2, H: 1, W: 1, C: 7, KH: 3, KW: 3, O: 5, StrideH: 1, StrideW: 1, DilH: 1, DilW: 1, PadTop: 1, PadBottom: 1, PadLeft: 1, PadRight: 1},
		{N: 1, H: 4, W: 5, C: 3, KH: 1, KW: 1, O: 5, StrideH: 1, StrideW: 1, DilH: 1, DilW: 1, PadTop: 2, PadBottom: 1, PadLeft: 0, PadRight: 2},
		// Strided: ResNet stages' entries, shortcuts and the ImageNet stem, odd strides.
		conv3x3(2, 32, 16, 32, 2),
		conv1x1(3, 16, 5, 7, 2),
		{N: 2, H: 30, W: 29, C: 3, KH: 7, KW: 7, O: 16, StrideH: 2, StrideW: 2, DilH: 1, DilW: 1, PadTop: 3, PadBottom: 3, PadLeft: 3, PadRight: 3},
		{N: 1, H: 17, W: 23, C: 6, KH: 3, KW: 2, O: 9, StrideH: 3, StrideW: 2, DilH: 2, DilW: 1, PadTop: 2, PadBottom: -1, PadLeft: 1, PadRight: 0},
		{N: 2, H: 9, W: 40, C: 4, KH: 2, KW: 5, O: 3, StrideH: 1, StrideW: 3, DilH: 1, DilW: 1, PadTop: 0, PadBottom: 1, PadLeft: 4, PadRight: 2},
		// Kernel rows longer than a k block (KW*C > 128 values).
		{N: 2, H: 5, W: 6, C: 70, KH: 3, KW: 3, O: 18, StrideH: 1, StrideW: 1, DilH: 1, DilW: 1, PadTop: 1, PadBottom: 1, PadLeft: 1, PadRight: 1},
	}
	fixed := len(shapes)
	for len(shapes) < fixed+random {
		s := ConvShape{
			N: 1 + r.IntN(3), H: 1 + r.IntN(12), W: 1 + r.IntN(30), C: 1 + r.IntN(20), O: 1 + r.IntN(40),
			KH: 1 + r.IntN(4), KW: 1 + r.IntN(4), StrideH: 1 + r.IntN(3), StrideW: 1 + r.IntN(3), DilH: 1 + r.IntN(2), DilW: 1,
			PadTop: r.IntN(4), PadBottom: r.IntN(6) - 2, PadLeft: r.IntN(4), PadRight: r.IntN(6) - 2,
		}
		if s.Validate() == nil {
			shapes = append(shapes, s)
		}
	}
	return shapes
}

func testConvForwardDirect[T Float](t *testing.T) {
	r := rand.New(rand.NewPCG(31, 32))
	for _, s := range directTestShapes(r, 60) {
		x := randSlice[T](r, s.N*s.H*s.W*s.C)
		k := randSlice[T](r, s.KH*s.KW*s.C*s.O)
		dy := randSlice[T](r, s.N*s.OutH()*s.OutW()*s.O)
		y, yAbs, dx, dxAbs, dk, dkAbs := refConv(s, x, k, dy)
		got := nanSlice[T](len(dy))
		convForwardDirect(s, x, convKernel[T]{k: k}, got)
		checkConvClose(t, s.String()+" direct forward", got, y, yAbs)
		gotDk := nanSlice[T](len(k))
		convBackwardFilterDirect(s, x, dy, gotDk)
		checkConvClose(t, s.String()+" direct backward filter", gotDk, dk, dkAbs)
		// The input gradient of a stride-1 convolution as a direct forward one.
		if ts, ok := s.transposed(); ok && ts.DilW == 1 && s.StrideH == 1 && s.StrideW == 1 {
			gotDx := nanSlice[T](len(x))
			convForwardDirect(ts, dy, transposedSource(s, k, false), gotDx)
			checkConvClose(t, s.String()+" direct backward data", gotDx, dx, dxAbs)
		}
	}
}

// TestConvForwardDirect checks the direct path against the nested loop on every
// instruction-set path, in float32 and float64, with exact-length slices and NaN-filled
// outputs, on shapes where ConvForward would not necessarily choose it.
func TestConvForwardDirect(t *testing.T) {
	forEachISA(t, func(t *testing.T) {
		t.Run("float32", testConvForwardDirect[float32])
		t.Run("float64", testConvForwardDirect[float64])
	})
}

// TestConvUseDirect checks which network layers take the direct path.
func TestConvUseDirect(t *testing.T) {
	for _, tc := range []struct {
		s                 ConvShape
		forward, backward bool
	}{
		{conv3x3(64, 32, 16, 16, 1), true, true},
		{conv3x3(64, 32, 3, 16, 1), true, true},
		{conv3x3(64, 16, 32, 32, 1), true, true},
		{conv3x3(32, 56, 64, 64, 1), true, true},
		{conv3x3(32, 28, 128, 128, 1), true, false}, // the gradient would not stay in L2
		{conv3x3(32, 14, 256, 256, 1), false, false},
		{conv3x3(64, 8, 64, 64, 1), false, false}, // 25% more arithmetic
		{conv3x3(64, 32, 16, 32, 2), true, true},  // strided: 17 positions a row for 16
		{conv1x1(64, 32, 16, 32, 2), false, true},
		{conv3x3(64, 8, 64, 128, 2), false, false}, // 5 positions a row for 4
		{conv1x1(64, 32, 16, 32, 1), false, false}, // x is the patch matrix
	} {
		if got := tc.s.useDirect(4, false); got != tc.forward {
			t.Errorf("%v: useDirect forward = %v, want %v", tc.s, got, tc.forward)
		}
		if got := tc.s.useDirect(4, true); got != tc.backward {
			t.Errorf("%v: useDirect filter = %v, want %v", tc.s, got, tc.backward)
		}
	}
}

// TestPackedBRepack packs matrices of different sizes, larger and smaller, into one
// PackedB in turn and checks each product.
func TestPackedBRepack(t *testing.T) {
	forEachISA(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(33, 34))
		var p PackedB[float64]
		var p32 PackedB[float32]
		for i, d := range [][3]int{{30, 200, 17}, {7, 3, 1}, {50, 129, 40}, {1, 1, 1}, {24, 64, 16}} {
			m, k, n := d[0], d[1], d[2]
			for _, transB := range []bool{false, true} {
				name := fmt.Sprintf("%d_%dx%dx%d_t%v", i, m, k, n, transB)
				a := randSlice[float64](rng, m*k)
				b := randSlice[float64](rng, k*n)
				ldb := n
				if transB {
					ldb = k
				}
				c := nanSlice[float64](m * n)
				want, scale := gemmRef(false, transB, m, n, k, a, k, b, ldb, c, n, false)
				p.Repack(transB, k, n, b, ldb)
				GemmPacked(false, m, a, k, &p, c, n, false)
				for j, w := range want {
					if math.Abs(c[j]-w) > 1e-12*(scale[j]+1) {
						t.Fatalf("%s float64: c[%d] = %v, want %v", name, j, c[j], w)
					}
				}
				a32, b32, c32 := make([]float32, len(a)), make([]float32, len(b)), nanSlice[float32](m*n)
				for j := range a {
					a32[j] = float32(a[j])
				}
				for j := range b {
					b32[j] = float32(b[j])
				}
				p32.Repack(transB, k, n, b32, ldb)
				GemmPacked(false, m, a32, k, &p32, c32, n, false)
				for j, w := range want {
					if math.Abs(float64(c32[j])-w) > 1e-5*(scale[j]+1) {
						t.Fatalf("%s float32: c[%d] = %v, want %v", name, j, c32[j], w)
					}
				}
			}
		}
	})
}

// BenchmarkConvDirect compares the direct stride-1 path with the patch matrix, forward
// and kernel gradient, on one CPU (run with -cpu 1 on a shared machine), to place the
// threshold of useDirect.
func BenchmarkConvDirect(b *testing.B) {
	for _, s := range []ConvShape{
		conv3x3(16, 32, 16, 16, 1), conv3x3(16, 16, 32, 32, 1), conv3x3(16, 8, 64, 64, 1),
		conv3x3(16, 4, 128, 128, 1), conv3x3(4, 56, 64, 64, 1), conv3x3(4, 28, 128, 128, 1),
		conv3x3(4, 14, 256, 256, 1), conv3x3(4, 7, 512, 512, 1), conv3x3(16, 8, 128, 64, 1), conv3x3(16, 8, 64, 128, 1),
	} {
		r := rand.New(rand.NewPCG(7, 8))
		x := randSlice[float32](r, s.N*s.H*s.W*s.C)
		k := randSlice[float32](r, s.KH*s.KW*s.C*s.O)
		dy := randSlice[float32](r, s.N*s.OutH()*s.OutW()*s.O)
		flops := 2 * float64(s.N*s.OutH()*s.OutW()) * float64(s.KH*s.KW*s.C*s.O)
		for _, op := range []struct {
			name string
			run  func()
		}{
			{"fwd_direct", func() { convForwardDirect(s, x, convKernel[float32]{k: k}, dy) }},
			{"fwd_im2col", func() { convForwardIm2col(s, x, convKernel[float32]{k: k}, dy) }},
			{"filter_direct", func() { convBackwardFilterDirect(s, x, dy, k) }},
			{"filter_im2col", func() { convBackwardFilterIm2col(s, x, dy, k) }},
		} {
			b.Run(fmt.Sprintf("%dx%d_%d-%d/%s", s.H, s.W, s.C, s.O, op.name), func(b *testing.B) {
				for b.Loop() {
					op.run()
				}
				b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			})
		}
	}
}

// transposedKernel, the reference for transposedSource, returns the kernel [KH, KW, O, C] of s.transposed(): k reversed in both
// spatial axes (unless it already is: flipped) with each tap's [C, O] matrix transposed,
// written into out (KH*KW*C*O elements).
func transposedKernel[T Float](s ConvShape, k []T, flipped bool, out []T) []T {
	tap := s.C * s.O
	out = out[:s.KH*s.KW*tap]
	for a := 0; a < s.KH; a++ {
		for b := 0; b < s.KW; b++ {
			src := ((s.KH-1-a)*s.KW + (s.KW - 1 - b)) * tap
			if flipped {
				src = (a*s.KW + b) * tap
			}
			transposeInto(out[(a*s.KW+b)*tap:(a*s.KW+b+1)*tap], k[src:src+tap], s.C, s.O)
		}
	}
	return out
}

// TestPackTaps checks that packing the transposed kernel straight from k (packTaps, as
// ConvBackwardData does) gives the packing of the kernel transposed first, for whole
// kernels and kernel rows, flipped or not, across k blocks and partial panels.
func TestPackTaps(t *testing.T) {
	r := rand.New(rand.NewPCG(51, 52))
	for _, s := range []ConvShape{conv3x3(1, 4, 5, 19, 1), conv3x3(1, 4, 70, 33, 1), conv3x3(1, 4, 16, 16, 1),
		{N: 1, H: 5, W: 5, C: 3, KH: 2, KW: 3, O: 130, StrideH: 1, StrideW: 1, DilH: 1, DilW: 1}} {
		k := randSlice[float64](r, s.KH*s.KW*s.C*s.O)
		ts, _ := s.transposed()
		for _, flipped := range []bool{false, true} {
			want := transposedKernel(s, k, flipped, make([]float64, len(k)))
			src := transposedSource(s, k, flipped)
			for _, span := range [][2]int{{0, s.KH * s.KW}, {s.KW, s.KW}} {
				var got, ref PackedB[float64]
				src.pack(&got, ts, span[0], span[1])
				convKernel[float64]{k: want}.pack(&ref, ts, span[0], span[1])
				if got.k != ref.k || got.n != ref.n || len(got.data) != len(ref.data) {
					t.Fatalf("%v: packed %dx%d (%d), want %dx%d (%d)", s, got.k, got.n, len(got.data), ref.k, ref.n, len(ref.data))
				}
				for i := range ref.data {
					if got.data[i] != ref.data[i] {
						t.Fatalf("%v flipped %v taps %v: data[%d] = %v, want %v", s, flipped, span, i, got.data[i], ref.data[i])
					}
				}
			}
		}
	}
}

// transposeInto writes the transpose of from [rows, cols] into to [cols, rows], in square
// blocks so that both sides' cache lines are used whole (a plain column-by-column
// transpose of a 512x512 tap ran at a store per cache miss).
func transposeInto[T Float](to, from []T, rows, cols int) {
	const blk = 16
	for r0 := 0; r0 < rows; r0 += blk {
		r1 := min(r0+blk, rows)
		for c0 := 0; c0 < cols; c0 += blk {
			c1 := min(c0+blk, cols)
			for r := r0; r < r1; r++ {
				for c, v := range from[r*cols+c0 : r*cols+c1] {
					to[(c0+c)*rows+r] = v
				}
			}
		}
	}
}
