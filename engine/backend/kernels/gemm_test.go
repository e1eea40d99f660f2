package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// gemmRef is the plain triple loop that the tests check Gemm against, accumulating in
// float64; it also returns, per element of c, the sum of |a||b| over k, the scale of the
// rounding error.
func gemmRef[T Float](transA, transB bool, m, n, k int, a []T, lda int, b []T, ldb int, c []T, ldc int, accumulate bool) (want, scale []float64) {
	want = make([]float64, m*n)
	scale = make([]float64, m*n)
	for i := range m {
		for j := range n {
			var sum, mag float64
			if accumulate {
				sum = float64(c[i*ldc+j])
				mag = math.Abs(sum)
			}
			for q := range k {
				ai, bi := i*lda+q, q*ldb+j
				if transA {
					ai = q*lda + i
				}
				if transB {
					bi = j*ldb + q
				}
				av, bv := a[ai], b[bi]
				sum += float64(av) * float64(bv)
				mag += math.Abs(float64(av) * float64(bv))
			}
			want[i*n+j], scale[i*n+j] = sum, mag
		}
	}
	return want, scale
}

// matrixLen is the exact length of a row-major matrix of rows x cols with leading
// dimension ld: nothing past its last element.
func matrixLen(rows, cols, ld int) int {
	if rows == 0 || cols == 0 {
		return 0
	}
	return (rows-1)*ld + cols
}

// checkGemm runs one product through Gemm and GemmPacked and compares with gemmRef.
func checkGemm[T Float](t *testing.T, rng *rand.Rand, transA, transB bool, m, n, k, pad int, accumulate bool, tol float64) {
	t.Helper()
	ar, ac := m, k
	if transA {
		ar, ac = k, m
	}
	br, bc := k, n
	if transB {
		br, bc = n, k
	}
	lda, ldb, ldc := ac+pad, bc+pad, n+pad
	a := randSlice[T](rng, matrixLen(ar, ac, lda))
	b := randSlice[T](rng, matrixLen(br, bc, ldb))
	c0 := randSlice[T](rng, matrixLen(m, n, ldc))
	want, scale := gemmRef(transA, transB, m, n, k, a, lda, b, ldb, c0, ldc, accumulate)

	name := fmt.Sprintf("transA=%v transB=%v m=%d n=%d k=%d pad=%d acc=%v", transA, transB, m, n, k, pad, accumulate)
	check := func(how string, c []T) {
		t.Helper()
		for i := range m {
			for j := range n {
				got, w := float64(c[i*ldc+j]), want[i*n+j]
				if math.Abs(got-w) > tol*(scale[i*n+j]+1e-30) && got != w {
					t.Fatalf("%s %s: c[%d,%d] = %v, want %v", how, name, i, j, got, w)
				}
			}
		}
		// The padding between rows is left alone.
		for i := range max(m-1, 0) * min(n, 1) {
			for j := n; j < ldc; j++ {
				if c[i*ldc+j] != c0[i*ldc+j] {
					t.Fatalf("%s %s: wrote c's padding at [%d,%d]", how, name, i, j)
				}
			}
		}
	}

	c := append([]T(nil), c0...)
	Gemm(transA, transB, m, n, k, a, lda, b, ldb, c, ldc, accumulate)
	check("Gemm", c)

	p := PackB(transB, k, n, b, ldb)
	if p.K() != k || p.N() != n {
		t.Fatalf("PackB: K, N = %d, %d, want %d, %d", p.K(), p.N(), k, n)
	}
	c = append(c[:0], c0...)
	GemmPacked(transA, m, a, lda, p, c, ldc, accumulate)
	check("GemmPacked", c)
}

func testGemm[T Float](t *testing.T, tol float64) {
	rng := rand.New(rand.NewPCG(1, 2))
	sizes := []int{0, 1, 3, 7, 15, 17, 31, 33, 100}
	for _, transA := range []bool{false, true} {
		for _, transB := range []bool{false, true} {
			for _, acc := range []bool{false, true} {
				for range 12 {
					m := sizes[rng.IntN(len(sizes))]
					n := sizes[rng.IntN(len(sizes))]
					k := sizes[rng.IntN(len(sizes))]
					checkGemm[T](t, rng, transA, transB, m, n, k, rng.IntN(3)*5, acc, tol)
				}
				// Tiles exactly full, several k blocks, and ragged ones.
				checkGemm[T](t, rng, transA, transB, 48, 32, 300, 0, acc, tol)
				checkGemm[T](t, rng, transA, transB, 50, 40, 600, 3, acc, tol)
				checkGemm[T](t, rng, transA, transB, 1, 1, 1, 0, acc, tol)
				checkGemm[T](t, rng, transA, transB, 130, 3, 257, 1, acc, tol)
			}
		}
	}
}

func TestGemm(t *testing.T) {
	forEachISA(t, func(t *testing.T) {
		t.Run("float32", func(t *testing.T) { testGemm[float32](t, 1e-5) })
		t.Run("float64", func(t *testing.T) { testGemm[float64](t, 1e-12) })
	})
}

// TestGemmParallel runs shapes big enough for Gemm to split over the CPUs, both by rows
// and by column panels.
func TestGemmParallel(t *testing.T) {
	forEachISA(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(3, 4))
		checkGemm[float32](t, rng, false, false, 1000, 37, 70, 0, false, 1e-5)
		checkGemm[float32](t, rng, true, false, 5, 500, 200, 2, true, 1e-5)
		checkGemm[float64](t, rng, false, true, 7, 300, 300, 0, false, 1e-12)
		checkGemm[float64](t, rng, true, true, 333, 65, 129, 1, true, 1e-12)
	})
}

// TestGemmBlocks runs shapes with several blocks of rows, of panels and of k in one
// GemmPacked call.
func TestGemmBlocks(t *testing.T) {
	forEachISA(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(7, 8))
		for _, transA := range []bool{false, true} {
			checkGemm[float32](t, rng, transA, false, 130, 530, 200, 1, true, 1e-5)
			checkGemm[float64](t, rng, transA, true, 130, 530, 200, 0, false, 1e-12)
			// Leading dimensions of 2 KiB: the tiles of A are copied.
			checkGemm[float32](t, rng, transA, false, 512, 20, 512, 0, true, 1e-5)
			checkGemm[float64](t, rng, transA, false, 256, 20, 256, 0, false, 1e-12)
		}
	})
}

// TestGemmPackedRowBlocks uses one PackedB for every block of rows, as a convolution does,
// each block's a and c cut exactly at their needed length.
func TestGemmPackedRowBlocks(t *testing.T) {
	forEachISA(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(9, 10))
		m, k, n, block := 101, 45, 37, 30
		a := randSlice[float32](rng, m*k)
		b := randSlice[float32](rng, n*k)
		c := make([]float32, m*n)
		want, scale := gemmRef(false, true, m, n, k, a, k, b, k, c, n, false)
		p := PackB(true, k, n, b, k)
		for i0 := 0; i0 < m; i0 += block {
			rows := min(block, m-i0)
			GemmPacked(false, rows, a[i0*k:(i0+rows)*k], k, p, c[i0*n:(i0+rows)*n], n, false)
		}
		for i, w := range want {
			if math.Abs(float64(c[i])-w) > 1e-5*scale[i] {
				t.Fatalf("c[%d] = %v, want %v", i, c[i], w)
			}
		}
		if gemmRace {
			return
		}
		if allocs := testing.AllocsPerRun(20, func() { GemmPacked(false, m, a, k, p, c, n, true) }); allocs >= 1 {
			t.Errorf("GemmPacked allocates %v times a call", allocs)
		}
	})
}

// gemmNaive is the plain triple loop, the reference speed in BenchmarkGemm.
func gemmNaive[T Float](m, n, k int, a []T, b []T, c []T) {
	for i := range m {
		for j := range n {
			var sum T
			for q := range k {
				sum += a[i*k+q] * b[q*n+j]
			}
			c[i*n+j] = sum
		}
	}
}

// gemmBenchShapes are products of the convolutions (M x K x N), M cut to at most 16384
// rows: the speed per row tile does not depend on M.
var gemmBenchShapes = []struct {
	m, k, n int
	transA  bool
}{
	{65536, 27, 16, false},
	{65536, 144, 16, false},
	{16384, 288, 32, false},
	{4096, 576, 64, false},
	{1024, 1152, 128, false},
	{100352, 576, 64, false},
	{6272, 2304, 256, false},
	{1568, 4608, 512, false},
	{144, 65536, 16, true},
	{576, 4096, 64, true},
	{65536, 16, 144, false},
	{4096, 64, 576, false},
}

func benchGemm[T Float](b *testing.B, m, k, n int, transA bool) {
	m = min(m, 16384)
	rng := rand.New(rand.NewPCG(5, 6))
	a := randSlice[T](rng, m*k)
	bm := randSlice[T](rng, k*n)
	c := make([]T, m*n)
	lda := k
	if transA {
		lda = m
	}
	p := PackB(false, k, n, bm, n)
	b.ResetTimer()
	for range b.N {
		GemmPacked(transA, m, a, lda, p, c, n, false)
	}
	b.ReportMetric(2*float64(m)*float64(n)*float64(k)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
}

// BenchmarkGemm measures GemmPacked on one goroutine, per ISA and element type, on the
// shapes of gemmBenchShapes; "naive" is the plain triple loop on a small shape.
func BenchmarkGemm(b *testing.B) {
	defer func() { activeISA = hostISA }()
	b.Run("naive/float32/1024x144x16", func(b *testing.B) {
		rng := rand.New(rand.NewPCG(5, 6))
		m, k, n := 1024, 144, 16
		a, bm, c := randSlice[float32](rng, m*k), randSlice[float32](rng, k*n), make([]float32, m*n)
		for range b.N {
			gemmNaive(m, n, k, a, bm, c)
		}
		b.ReportMetric(2*float64(m*n*k)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
	})
	for _, i := range supportedISAs() {
		activeISA = i
		for _, s := range gemmBenchShapes {
			tr := ""
			if s.transA {
				tr = "T"
			}
			shape := fmt.Sprintf("%dx%dx%d%s", s.m, s.k, s.n, tr)
			b.Run(fmt.Sprintf("%s/float32/%s", i, shape), func(b *testing.B) { benchGemm[float32](b, s.m, s.k, s.n, s.transA) })
			b.Run(fmt.Sprintf("%s/float64/%s", i, shape), func(b *testing.B) { benchGemm[float64](b, s.m, s.k, s.n, s.transA) })
		}
	}
}

// BenchmarkGemmParallel measures Gemm, split over all the CPUs, on two of the shapes.
func BenchmarkGemmParallel(b *testing.B) {
	for _, s := range [][3]int{{16384, 576, 64}, {144, 65536, 16}} {
		m, k, n := s[0], s[1], s[2]
		transA := m < k
		b.Run(fmt.Sprintf("float32/%dx%dx%d", m, k, n), func(b *testing.B) {
			rng := rand.New(rand.NewPCG(5, 6))
			a, bm, c := randSlice[float32](rng, m*k), randSlice[float32](rng, k*n), make([]float32, m*n)
			lda := k
			if transA {
				lda = m
			}
			for range b.N {
				Gemm(transA, false, m, n, k, a, lda, bm, n, c, n, false)
			}
			b.ReportMetric(2*float64(m)*float64(n)*float64(k)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
	}
}
