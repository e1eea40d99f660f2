package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// bnShapes are the [m, c] shapes the batch-norm tests run, odd sizes included.
var bnShapes = [][2]int{}

func init() {
	for _, m := range []int{1, 3, 17, 1000} {
		for _, c := range []int{1, 3, 5, 16, 17, 33} {
			bnShapes = append(bnShapes, [2]int{m, c})
		}
	}
	bnShapes = append(bnShapes, [2]int{5000, 7}, [2]int{2500, 64}, // several blocks of rows
		[2]int{9, 2048}, [2]int{40, 129}) // wide rows, a block of a few rows
}

// refBNTrain is BatchNormTrain written from its formulas, in float64.
func refBNTrain(m, c int, x, scale, offset []float64, eps float64) (y, mean, variance []float64) {
	y, mean, variance = make([]float64, m*c), make([]float64, c), make([]float64, c)
	for j := range c {
		for i := range m {
			mean[j] += x[i*c+j]
		}
		mean[j] /= float64(m)
		for i := range m {
			d := x[i*c+j] - mean[j]
			variance[j] += d * d
		}
		variance[j] /= float64(m)
		for i := range m {
			y[i*c+j] = (x[i*c+j]-mean[j])/math.Sqrt(variance[j]+eps)*scale[j] + offset[j]
		}
	}
	return y, mean, variance
}

// refBNGrad is BatchNormGrad written from its formulas, in float64.
func refBNGrad(m, c int, x, scale, mean, variance, dy []float64, eps float64) (dx, dScale, dOffset []float64) {
	dx, dScale, dOffset = make([]float64, m*c), make([]float64, c), make([]float64, c)
	for j := range c {
		is := 1 / math.Sqrt(variance[j]+eps)
		for i := range m {
			dOffset[j] += dy[i*c+j]
			dScale[j] += dy[i*c+j] * (x[i*c+j] - mean[j]) * is
		}
		for i := range m {
			xh := (x[i*c+j] - mean[j]) * is
			dx[i*c+j] = scale[j] * is * (dy[i*c+j] - dOffset[j]/float64(m) - xh*dScale[j]/float64(m))
		}
	}
	return dx, dScale, dOffset
}

func to64[T Float](s []T) []float64 {
	out := make([]float64, len(s))
	for i, v := range s {
		out[i] = float64(v)
	}
	return out
}

// checkClose fails t unless got matches want within tol relative to scale (a per-element
// magnitude, or nil for max(1, |want|)).
func checkClose[T Float](t *testing.T, what string, got []T, want, scale []float64, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d elements, want %d", what, len(got), len(want))
	}
	for i := range want {
		s := math.Max(1, math.Abs(want[i]))
		if scale != nil {
			s = scale[i]
		}
		if !closeTo(float64(got[i]), want[i], s, tol) {
			t.Fatalf("%s[%d] = %v, want %v (scale %v)", what, i, got[i], want[i], s)
		}
	}
}

func testBatchNorm[T Float](t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	tol := tolFor[T]()
	const eps = 1e-3
	for _, sh := range bnShapes {
		m, c := sh[0], sh[1]
		t.Run(fmt.Sprintf("%dx%d", m, c), func(t *testing.T) {
			x := randSlice[T](rng, m*c)
			for i := range x {
				x[i] = x[i]*3 + T(0.5) // a mean away from zero
			}
			scale, offset := randSlice[T](rng, c), randSlice[T](rng, c)
			dy := randSlice[T](rng, m*c)
			y, mean, variance := make([]T, m*c), make([]T, c), make([]T, c)
			BatchNormTrain(m, c, x, scale, offset, eps, y, mean, variance)
			wy, wmean, wvar := refBNTrain(m, c, to64(x), to64(scale), to64(offset), eps)
			checkClose(t, "mean", mean, wmean, nil, tol)
			checkClose(t, "variance", variance, wvar, nil, tol)
			checkClose(t, "y", y, wy, nil, tol)

			yi := make([]T, m*c)
			BatchNormInference(m, c, x, scale, offset, mean, variance, eps, yi)
			checkClose(t, "inference y", yi, wy, nil, tol)

			// ReLU variant: the same statistics, y clamped at zero.
			yr := make([]T, m*c)
			BatchNormTrainReLU(m, c, x, scale, offset, eps, yr, mean, variance)
			wr := make([]float64, m*c)
			for i, v := range wy {
				wr[i] = math.Max(v, 0)
			}
			checkClose(t, "relu y", yr, wr, nil, tol)

			// Gradient, from the statistics the kernel returned.
			dx, dScale, dOffset := make([]T, m*c), make([]T, c), make([]T, c)
			BatchNormGrad(m, c, x, scale, mean, variance, dy, eps, dx, dScale, dOffset)
			wdx, wds, wdo := refBNGrad(m, c, to64(x), to64(scale), to64(mean), to64(variance), to64(dy), eps)
			gradScales := func(wdx, wds, wdo []float64) (sdx, sds, sdo []float64) {
				// Magnitudes: the sums of absolute terms, and for dx the largest term.
				sds, sdo = make([]float64, c), make([]float64, c)
				for i := range m {
					for j := range c {
						sdo[j] += math.Abs(float64(dy[i*c+j]))
						sds[j] += math.Abs(float64(dy[i*c+j]) * (float64(x[i*c+j]) - float64(mean[j])) / math.Sqrt(float64(variance[j])+eps))
					}
				}
				sdx = make([]float64, m*c)
				for i := range m {
					for j := range c {
						a := math.Abs(float64(scale[j])) / math.Sqrt(float64(variance[j])+eps)
						xh := math.Abs(float64(x[i*c+j])-float64(mean[j])) / math.Sqrt(float64(variance[j])+eps)
						sdx[i*c+j] = max(1e-3, a*(math.Abs(float64(dy[i*c+j]))+sdo[j]/float64(m)+xh*sds[j]/float64(m)))
					}
				}
				return sdx, sds, sdo
			}
			sdx, sds, sdo := gradScales(wdx, wds, wdo)
			checkClose(t, "dOffset", dOffset, wdo, sdo, tol)
			checkClose(t, "dScale", dScale, wds, sds, tol)
			checkClose(t, "dx", dx, wdx, sdx, tol)

			// ReLU gradient: the plain gradient of dy masked by y > 0.
			mdy := make([]T, m*c)
			for i := range dy {
				if yr[i] > 0 {
					mdy[i] = dy[i]
				}
			}
			wdx, wds, wdo = refBNGrad(m, c, to64(x), to64(scale), to64(mean), to64(variance), to64(mdy), eps)
			BatchNormGradReLU(m, c, x, scale, mean, variance, yr, dy, eps, dx, dScale, dOffset)
			checkClose(t, "relu dOffset", dOffset, wdo, sdo, tol)
			checkClose(t, "relu dScale", dScale, wds, sds, tol)
			checkClose(t, "relu dx", dx, wdx, sdx, tol)
		})
	}
}

func TestBatchNorm(t *testing.T) {
	forEachISA(t, func(t *testing.T) {
		t.Run("f32", testBatchNorm[float32])
		t.Run("f64", testBatchNorm[float64])
	})
}

// TestBatchNormGradFiniteDifferences checks BatchNormGrad against central differences of
// L = Σ y·r through BatchNormTrain, with respect to x, scale and offset, in float64.
func TestBatchNormGradFiniteDifferences(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	const eps, h = 1e-3, 1e-5
	for _, sh := range [][2]int{{1, 3}, {3, 5}, {17, 3}, {40, 17}} {
		m, c := sh[0], sh[1]
		x := randSlice[float64](rng, m*c)
		scale, offset, r := randSlice[float64](rng, c), randSlice[float64](rng, c), randSlice[float64](rng, m*c)
		loss := func() float64 {
			y, mean, variance := make([]float64, m*c), make([]float64, c), make([]float64, c)
			BatchNormTrain(m, c, x, scale, offset, eps, y, mean, variance)
			var l float64
			for i := range y {
				l += y[i] * r[i]
			}
			return l
		}
		y, mean, variance := make([]float64, m*c), make([]float64, c), make([]float64, c)
		BatchNormTrain(m, c, x, scale, offset, eps, y, mean, variance)
		dx, dScale, dOffset := make([]float64, m*c), make([]float64, c), make([]float64, c)
		BatchNormGrad(m, c, x, scale, mean, variance, r, eps, dx, dScale, dOffset)
		numeric := func(p []float64, i int) float64 {
			old := p[i]
			p[i] = old + h
			lp := loss()
			p[i] = old - h
			lm := loss()
			p[i] = old
			return (lp - lm) / (2 * h)
		}
		for _, tc := range []struct {
			name  string
			param []float64
			grad  []float64
		}{{"x", x, dx}, {"scale", scale, dScale}, {"offset", offset, dOffset}} {
			for i := range tc.param {
				if n := numeric(tc.param, i); !closeTo(tc.grad[i], n, 1+math.Abs(n), 1e-6) {
					t.Errorf("%dx%d: d%s[%d] = %v, finite differences %v", m, c, tc.name, i, tc.grad[i], n)
				}
			}
		}
	}
}

// naiveBNTrainGrad is the reference for the benchmarks: BatchNormTrain then BatchNormGrad as
// plain single-threaded loops over rows, with float64 statistics.
func naiveBNTrainGrad(m, c int, x, scale, offset, dy []float32, eps float64, y, dx, dScale, dOffset []float32) {
	mean, variance := make([]float64, c), make([]float64, c)
	for i := range m {
		for j := range c {
			mean[j] += float64(x[i*c+j])
		}
	}
	for j := range c {
		mean[j] /= float64(m)
	}
	for i := range m {
		for j := range c {
			d := float64(x[i*c+j]) - mean[j]
			variance[j] += d * d
		}
	}
	for j := range c {
		variance[j] /= float64(m)
	}
	for i := range m {
		for j := range c {
			y[i*c+j] = float32((float64(x[i*c+j])-mean[j])/math.Sqrt(variance[j]+eps)*float64(scale[j]) + float64(offset[j]))
		}
	}
	sg, sgx := make([]float64, c), make([]float64, c)
	for i := range m {
		for j := range c {
			sg[j] += float64(dy[i*c+j])
			sgx[j] += float64(dy[i*c+j]) * (float64(x[i*c+j]) - mean[j]) / math.Sqrt(variance[j]+eps)
		}
	}
	for i := range m {
		for j := range c {
			is := 1 / math.Sqrt(variance[j]+eps)
			xh := (float64(x[i*c+j]) - mean[j]) * is
			dx[i*c+j] = float32(float64(scale[j]) * is * (float64(dy[i*c+j]) - sg[j]/float64(m) - xh*sgx[j]/float64(m)))
		}
	}
	for j := range c {
		dScale[j], dOffset[j] = float32(sgx[j]), float32(sg[j])
	}
}

// BenchmarkBatchNormTrainGrad times BatchNormTrain followed by BatchNormGrad (and their ReLU
// variants) on float32, against the naive loops.
func BenchmarkBatchNormTrainGrad(b *testing.B) {
	for _, sh := range [][2]int{{65536, 16}, {16384, 32}, {4096, 64}, {1024, 128}, {25088, 128}} {
		m, c := sh[0], sh[1]
		rng := rand.New(rand.NewPCG(9, 10))
		x, dy := randSlice[float32](rng, m*c), randSlice[float32](rng, m*c)
		scale, offset := randSlice[float32](rng, c), randSlice[float32](rng, c)
		y, dx := make([]float32, m*c), make([]float32, m*c)
		mean, variance, dScale, dOffset := make([]float32, c), make([]float32, c), make([]float32, c), make([]float32, c)
		report := func(b *testing.B) {
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(m*c), "ns/elem")
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/1000, "ms/op")
		}
		b.Run(fmt.Sprintf("%dx%d/kernel", m, c), func(b *testing.B) {
			for b.Loop() {
				BatchNormTrain(m, c, x, scale, offset, 1e-5, y, mean, variance)
				BatchNormGrad(m, c, x, scale, mean, variance, dy, 1e-5, dx, dScale, dOffset)
			}
			report(b)
		})
		b.Run(fmt.Sprintf("%dx%d/kernel-relu", m, c), func(b *testing.B) {
			for b.Loop() {
				BatchNormTrainReLU(m, c, x, scale, offset, 1e-5, y, mean, variance)
				BatchNormGradReLU(m, c, x, scale, mean, variance, y, dy, 1e-5, dx, dScale, dOffset)
			}
			report(b)
		})
		b.Run(fmt.Sprintf("%dx%d/naive", m, c), func(b *testing.B) {
			for b.Loop() {
				naiveBNTrainGrad(m, c, x, scale, offset, dy, 1e-5, y, dx, dScale, dOffset)
			}
			report(b)
		})
	}
}

// BenchmarkBatchNormReLUNetwork times the fused batch norm + ReLU forward and backward of
// every BN layer of a CIFAR ResNet-20 at batch 64 (7 layers of 65536x16, 6 of 16384x32, 6 of
// 4096x64), each layer on its own arrays as in a training step; ms/op is per step.
func BenchmarkBatchNormReLUNetwork(b *testing.B) {
	type layer struct {
		m, c                              int
		x, y, dy, dx                      []float32
		scale, offset, mean, var_, ds, do []float32
	}
	var layers []*layer
	rng := rand.New(rand.NewPCG(15, 16))
	for _, g := range [][3]int{{7, 65536, 16}, {6, 16384, 32}, {6, 4096, 64}} {
		for range g[0] {
			m, c := g[1], g[2]
			layers = append(layers, &layer{m: m, c: c,
				x: randSlice[float32](rng, m*c), y: make([]float32, m*c), dy: randSlice[float32](rng, m*c), dx: make([]float32, m*c),
				scale: randSlice[float32](rng, c), offset: randSlice[float32](rng, c),
				mean: make([]float32, c), var_: make([]float32, c), ds: make([]float32, c), do: make([]float32, c)})
		}
	}
	for _, i := range supportedISAs() {
		b.Run(i.String(), func(b *testing.B) {
			activeISA = i
			defer func() { activeISA = hostISA }()
			step := func() {
				for _, l := range layers {
					BatchNormTrainReLU(l.m, l.c, l.x, l.scale, l.offset, 1e-5, l.y, l.mean, l.var_)
				}
				for k := len(layers) - 1; k >= 0; k-- {
					l := layers[k]
					BatchNormGradReLU(l.m, l.c, l.x, l.scale, l.mean, l.var_, l.y, l.dy, 1e-5, l.dx, l.ds, l.do)
				}
			}
			step() // touch every page first
			for b.Loop() {
				step()
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/1000, "ms/op")
		})
	}
}
