package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// refClamp clamps i into [0, rows-1], written separately from the kernel's.
func refClamp(i int64, rows int) int64 { return min(max(i, 0), int64(rows-1)) }

func testGatherDot[T Float, I int32 | int64](t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	tol := tolFor[T]()
	type shape struct{ dim, rows, batch, k int }
	var shapes []shape
	for _, dim := range []int{1, 7, 16, 128, 129} {
		for _, bk := range [][2]int{{1, 1}, {1, 5}, {3, 17}, {2, 1500}, {5, 300}} {
			shapes = append(shapes, shape{dim, 37, bk[0], bk[1]})
		}
	}
	shapes = append(shapes, shape{16, 1, 2, 9}, shape{8, 50, 1, 2049}) // one row; several gradient blocks
	for _, sh := range shapes {
		t.Run(fmt.Sprintf("dim%d/rows%d/%dx%d", sh.dim, sh.rows, sh.batch, sh.k), func(t *testing.T) {
			dim, rows, batch, k := sh.dim, sh.rows, sh.batch, sh.k
			bank := randSlice[T](rng, rows*dim)
			f, g := randSlice[T](rng, batch*dim), randSlice[T](rng, batch*k)
			idx := make([]I, batch*k)
			for i := range idx {
				// Mostly in range, some negative and some past the end (clamped).
				idx[i] = I(rng.IntN(rows+10) - 5)
			}
			out := make([]T, batch*k)
			GatherDot(dim, bank, idx, batch, k, f, out)
			df := randSlice[T](rng, batch*dim) // overwritten
			GatherDotGrad(dim, bank, idx, batch, k, g, df)

			wout, sout := make([]float64, batch*k), make([]float64, batch*k)
			wdf, sdf := make([]float64, batch*dim), make([]float64, batch*dim)
			for b := range batch {
				for j := range k {
					r := refClamp(int64(idx[b*k+j]), rows)
					for d := range dim {
						p := float64(bank[int(r)*dim+d]) * float64(f[b*dim+d])
						wout[b*k+j] += p
						sout[b*k+j] += math.Abs(p)
						q := float64(g[b*k+j]) * float64(bank[int(r)*dim+d])
						wdf[b*dim+d] += q
						sdf[b*dim+d] += math.Abs(q)
					}
				}
			}
			checkClose(t, "out", out, wout, sout, tol)
			checkClose(t, "df", df, wdf, sdf, tol)
		})
	}
}

func TestGatherDot(t *testing.T) {
	forEachISA(t, func(t *testing.T) {
		t.Run("f32/i32", testGatherDot[float32, int32])
		t.Run("f32/i64", testGatherDot[float32, int64])
		t.Run("f64/i32", testGatherDot[float64, int32])
		t.Run("f64/i64", testGatherDot[float64, int64])
	})
}

func TestGatherDotEmpty(t *testing.T) {
	// k = 0 leaves df zero; dim = 0 gives zero scores; batch = 0 does nothing.
	df := []float32{1, 2}
	GatherDotGrad(2, []float32{1, 2}, []int32{}, 1, 0, nil, df)
	if df[0] != 0 || df[1] != 0 {
		t.Errorf("k=0: df = %v, want zeros", df)
	}
	out := []float32{5, 5}
	GatherDot(0, []float32{}, []int64{3, 4}, 1, 2, nil, out)
	if out[0] != 0 || out[1] != 0 {
		t.Errorf("dim=0: out = %v, want zeros", out)
	}
	GatherDot[float64](4, nil, []int32{}, 0, 3, nil, nil)
}

// naiveGatherDot is the reference for the benchmarks: the plain triple loop.
func naiveGatherDot(dim int, bank []float32, idx []int32, batch, k int, f, out []float32) {
	rows := len(bank) / dim
	for b := range batch {
		for j := range k {
			r := int(refClamp(int64(idx[b*k+j]), rows))
			var s float32
			for d := range dim {
				s += bank[r*dim+d] * f[b*dim+d]
			}
			out[b*k+j] = s
		}
	}
}

// naiveGatherDotGrad is the plain-loop reference of GatherDotGrad.
func naiveGatherDotGrad(dim int, bank []float32, idx []int32, batch, k int, g, df []float32) {
	rows := len(bank) / dim
	clear(df)
	for b := range batch {
		for j := range k {
			r := int(refClamp(int64(idx[b*k+j]), rows))
			for d := range dim {
				df[b*dim+d] += g[b*k+j] * bank[r*dim+d]
			}
		}
	}
}

// BenchmarkGatherDot times the NPID head's shapes: batch 64, k 4096, dim 128 over a
// 50,000-row float32 bank, against the naive loops.
func BenchmarkGatherDot(b *testing.B) {
	const rows, dim, batch, k = 50000, 128, 64, 4096
	rng := rand.New(rand.NewPCG(13, 14))
	bank := randSlice[float32](rng, rows*dim)
	f, g := randSlice[float32](rng, batch*dim), randSlice[float32](rng, batch*k)
	idx := make([]int32, batch*k)
	for i := range idx {
		idx[i] = int32(rng.IntN(rows))
	}
	out, df := make([]float32, batch*k), make([]float32, batch*dim)
	report := func(b *testing.B) {
		b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/1000, "ms/op")
		b.ReportMetric(float64(batch*k*dim*4)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GB/s")
	}
	b.Run("fwd/kernel", func(b *testing.B) {
		for b.Loop() {
			GatherDot(dim, bank, idx, batch, k, f, out)
		}
		report(b)
	})
	b.Run("fwd/naive", func(b *testing.B) {
		for b.Loop() {
			naiveGatherDot(dim, bank, idx, batch, k, f, out)
		}
		report(b)
	})
	b.Run("grad/kernel", func(b *testing.B) {
		for b.Loop() {
			GatherDotGrad(dim, bank, idx, batch, k, g, df)
		}
		report(b)
	})
	b.Run("grad/naive", func(b *testing.B) {
		for b.Loop() {
			naiveGatherDotGrad(dim, bank, idx, batch, k, g, df)
		}
		report(b)
	})
}

// BenchmarkGatherDotImageNet times the ImageNet-sized head: batch 32, k 65536, dim 128 over
// a 1,281,167-row float32 bank (655 MB), where every row comes from memory.
func BenchmarkGatherDotImageNet(b *testing.B) {
	const rows, dim, batch, k = 1281167, 128, 32, 65536
	rng := rand.New(rand.NewPCG(17, 18))
	bank := randSlice[float32](rng, rows*dim)
	f, g := randSlice[float32](rng, batch*dim), randSlice[float32](rng, batch*k)
	idx := make([]int64, batch*k)
	for i := range idx {
		idx[i] = int64(rng.IntN(rows))
	}
	out, df := make([]float32, batch*k), make([]float32, batch*dim)
	report := func(b *testing.B) {
		b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/1000, "ms/op")
		b.ReportMetric(float64(batch*k*dim*4)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GB/s")
	}
	b.Run("fwd", func(b *testing.B) {
		for b.Loop() {
			GatherDot(dim, bank, idx, batch, k, f, out)
		}
		report(b)
	})
	b.Run("grad", func(b *testing.B) {
		for b.Loop() {
			GatherDotGrad(dim, bank, idx, batch, k, g, df)
		}
		report(b)
	})
}
