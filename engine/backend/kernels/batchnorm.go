package kernels

import (
	"fmt"
	"math"
)

// Batch normalisation for training, with XLA's semantics: the feature axis is last, so x is
// viewed as a row-major [m, c] matrix whose m rows are the positions (the product of the other
// axes) and whose c columns are the features; the variance is the biased one (divided by m).
//
// Statistics are accumulated in float64 for both element types. The rows are cut into blocks
// of about bnBlockElems elements; each block's mean and centred sum of squares are computed
// in two passes while the block sits in cache, and the blocks are then merged in order with
// Chan et al.'s pairwise update. The result is about as accurate as the two-pass formula over
// the whole input, costs one pass over memory, and does not depend on the number of CPUs.
//
// On AVX-512 machines the float32 loops are assembly (batchnorm_amd64.s); the float64 loops,
// and the float32 ones on AVX2 or with the purego tag, are the plain-Go loops below.

// bnBlockElems is about how many elements a block of rows holds: 64 KiB of float32, which
// stays in the L2 cache between a block's two passes.
const bnBlockElems = 1 << 14

// bnRowGrain is the fewest rows a worker of the elementwise passes gets.
func bnRowGrain(c int) int { return max(1, bnBlockElems/max(c, 1)) }

// BatchNormTrain normalises x ([m, c], features last) with its own batch statistics:
//
//	mean[j] = Σ_i x[i,j]/m
//	variance[j] = Σ_i (x[i,j]-mean[j])²/m
//	y[i,j] = (x[i,j]-mean[j])/sqrt(variance[j]+eps)·scale[j] + offset[j]
//
// scale, offset, mean and variance have length c; x and y have length m·c. It panics on
// other lengths. With m = 0 the statistics are NaN.
func BatchNormTrain[T Float](m, c int, x, scale, offset []T, eps float64, y, mean, variance []T) {
	batchNormTrain(m, c, x, scale, offset, eps, y, mean, variance, false)
}

// BatchNormTrainReLU is BatchNormTrain followed by a ReLU: y = max(0, bn(x)). mean and
// variance are the statistics of x, as in BatchNormTrain.
func BatchNormTrainReLU[T Float](m, c int, x, scale, offset []T, eps float64, y, mean, variance []T) {
	batchNormTrain(m, c, x, scale, offset, eps, y, mean, variance, true)
}

// BatchNormInference normalises x ([m, c], features last) with the given statistics:
// y[i,j] = (x[i,j]-mean[j])/sqrt(variance[j]+eps)·scale[j] + offset[j].
func BatchNormInference[T Float](m, c int, x, scale, offset, mean, variance []T, eps float64, y []T) {
	checkBN("BatchNormInference", m, c, [][]T{x, y}, [][]T{scale, offset, mean, variance})
	a := make([]T, c)
	for j := range a {
		a[j] = T(float64(scale[j]) / math.Sqrt(float64(variance[j])+eps))
	}
	bnApply(m, c, x, mean, a, offset, y, false)
}

// BatchNormGrad is the gradient of BatchNormTrain. Given x, the scale, the batch statistics
// that BatchNormTrain returned and the gradient dy of the output, with
// x̂ = (x-mean)/sqrt(variance+eps), it computes
//
//	dOffset[j] = Σ_i dy[i,j]
//	dScale[j] = Σ_i dy[i,j]·x̂[i,j]
//	dx[i,j] = scale[j]/sqrt(variance[j]+eps)·(dy[i,j] - dOffset[j]/m - x̂[i,j]·dScale[j]/m)
func BatchNormGrad[T Float](m, c int, x, scale, mean, variance, dy []T, eps float64, dx, dScale, dOffset []T) {
	checkBN("BatchNormGrad", m, c, [][]T{x, dy, dx}, [][]T{scale, mean, variance, dScale, dOffset})
	batchNormGrad(m, c, x, scale, mean, variance, nil, dy, eps, dx, dScale, dOffset)
}

// BatchNormGradReLU is the gradient of BatchNormTrainReLU: BatchNormGrad applied to
// dy·(y > 0), where y is the output of BatchNormTrainReLU (or any array that is positive
// exactly where the ReLU passed its input).
func BatchNormGradReLU[T Float](m, c int, x, scale, mean, variance, y, dy []T, eps float64, dx, dScale, dOffset []T) {
	checkBN("BatchNormGradReLU", m, c, [][]T{x, y, dy, dx}, [][]T{scale, mean, variance, dScale, dOffset})
	batchNormGrad(m, c, x, scale, mean, variance, y, dy, eps, dx, dScale, dOffset)
}

// checkBN panics unless every slice of big has length m·c and every slice of small length c.
func checkBN[T Float](name string, m, c int, big, small [][]T) {
	if m < 0 || c < 0 {
		panic(fmt.Sprintf("kernels.%s: negative shape [%d, %d]", name, m, c))
	}
	for _, s := range big {
		if len(s) != m*c {
			panic(fmt.Sprintf("kernels.%s: an operand of shape [%d, %d] has %d elements", name, m, c, len(s)))
		}
	}
	for _, s := range small {
		if len(s) != c {
			panic(fmt.Sprintf("kernels.%s: a per-feature operand has %d elements, want %d", name, len(s), c))
		}
	}
}

func batchNormTrain[T Float](m, c int, x, scale, offset []T, eps float64, y, mean, variance []T, relu bool) {
	checkBN("BatchNormTrain", m, c, [][]T{x, y}, [][]T{scale, offset, mean, variance})
	mu, v := bnMoments(m, c, x)
	a := make([]T, c)
	for j := range c {
		mean[j] = T(mu[j])
		variance[j] = T(v[j])
		a[j] = T(float64(scale[j]) / math.Sqrt(v[j]+eps))
	}
	bnApply(m, c, x, mean, a, offset, y, relu)
}

// bnApply sets y[i,j] = (x[i,j]-mean[j])·a[j] + b[j], clamped at zero when relu is set.
func bnApply[T Float](m, c int, x, mean, a, b, y []T, relu bool) {
	if c == 0 {
		return
	}
	if isF32[T]() && bnAsmF32() {
		coef := bnPack(c, mean, a, b)
		x, y := asF32(x), asF32(y)
		parallelFor(m, bnRowGrain(c), func(lo, hi int) {
			bnApplyF32AVX512(x[lo*c:hi*c], y[lo*c:hi*c], coef, c, relu)
		})
		return
	}
	parallelFor(m, bnRowGrain(c), func(lo, hi int) {
		mean, a, b := mean[:c], a[:c], b[:c]
		for i := lo; i < hi; i++ {
			xr := x[i*c : i*c+c]
			yr := y[i*c : i*c+c]
			xr, yr = xr[:len(mean)], yr[:len(mean)]
			if relu {
				for j, mu := range mean {
					yr[j] = max((xr[j]-mu)*a[j]+b[j], 0)
				}
			} else {
				for j, mu := range mean {
					yr[j] = (xr[j]-mu)*a[j] + b[j]
				}
			}
		}
	})
}

// bnBlocks returns how many rows a block holds and how many blocks cover m rows.
func bnBlocks(m, c int) (rows, blocks int) {
	rows = max(1, bnBlockElems/max(c, 1))
	return rows, (m + rows - 1) / rows
}

// bnMoments returns the mean and the biased variance of the columns of x ([m, c]), in
// float64.
func bnMoments[T Float](m, c int, x []T) (mean, variance []float64) {
	rows, blocks := bnBlocks(m, c)
	means := make([]float64, blocks*c)
	sqs := make([]float64, blocks*c)
	parallelFor(blocks, 1, func(lo, hi int) {
		for k := lo; k < hi; k++ {
			r0, r1 := k*rows, min(k*rows+rows, m)
			xb := x[r0*c : r1*c]
			mu, sq := means[k*c:k*c+c], sqs[k*c:k*c+c]
			colSums(xb, mu)
			inv := 1 / float64(r1-r0)
			for j := range mu {
				mu[j] *= inv
			}
			colSqDevs(xb, mu, sq)
		}
	})
	// Merge the blocks in order: (n, mean, M2) with (nb, meanb, M2b).
	mean = make([]float64, c)
	variance = make([]float64, c)
	n := 0.0
	for k := range blocks {
		nb := float64(min(k*rows+rows, m) - k*rows)
		tot := n + nb
		mu, sq := means[k*c:k*c+c], sqs[k*c:k*c+c]
		for j := range mean {
			d := mu[j] - mean[j]
			mean[j] += d * nb / tot
			variance[j] += sq[j] + d*d*n*nb/tot
		}
		n = tot
	}
	for j := range variance {
		if m == 0 {
			mean[j] = math.NaN()
		}
		variance[j] /= float64(m)
	}
	return mean, variance
}

// bnPack interleaves per-feature columns in vectors of 16 features for the assembly: for
// features [16q, 16q+16) it holds cols[0] there, then cols[1] there, and so on, zero-padded.
func bnPack[T Float](c int, cols ...[]T) []float32 {
	n := len(cols)
	out := make([]float32, (c+15)/16*16*n)
	for i, col := range cols {
		for j, v := range col[:c] {
			out[(j/16*n+i)*16+j%16] = float32(v)
		}
	}
	return out
}

// colSums adds the columns of x (rows of len(s)) into s.
func colSums[T Float](x []T, s []float64) {
	c := len(s)
	if c == 0 {
		return
	}
	if isF32[T]() && bnAsmF32() {
		bnSumF32AVX512(asF32(x), s)
		return
	}
	for i := 0; i+c <= len(x); i += c {
		xr := x[i : i+c]
		xr = xr[:len(s)]
		for j, v := range xr {
			s[j] += float64(v)
		}
	}
}

// colSqDevs adds Σ_i (x[i,j]-mean[j])² into sq[j] (rows of len(mean)).
func colSqDevs[T Float](x []T, mean, sq []float64) {
	c := len(mean)
	if c == 0 {
		return
	}
	if isF32[T]() && bnAsmF32() {
		bnSqDevF32AVX512(asF32(x), mean, sq[:c])
		return
	}
	sq = sq[:c]
	for i := 0; i+c <= len(x); i += c {
		xr := x[i : i+c]
		xr = xr[:len(mean)]
		for j, v := range xr {
			d := float64(v) - mean[j]
			sq[j] += d * d
		}
	}
}

// batchNormGrad implements BatchNormGrad, and BatchNormGradReLU when y is not nil.
func batchNormGrad[T Float](m, c int, x, scale, mean, variance, y, dy []T, eps float64, dx, dScale, dOffset []T) {
	// Pass 1: per block, Σ g and Σ g·(x-mean) with g = dy masked by the ReLU.
	rows, blocks := bnBlocks(m, c)
	sums := make([]float64, 2*blocks*c)
	mu := make([]float64, c)
	for j := range mu {
		mu[j] = float64(mean[j])
	}
	parallelFor(blocks, 1, func(lo, hi int) {
		for k := lo; k < hi; k++ {
			r0, r1 := k*rows, min(k*rows+rows, m)
			sg, sgx := sums[2*k*c:2*k*c+c], sums[2*k*c+c:2*k*c+2*c]
			var yb []T
			if y != nil {
				yb = y[r0*c : r1*c]
			}
			gradSums(x[r0*c:r1*c], yb, dy[r0*c:r1*c], mu, sg, sgx)
		}
	})
	sg, sgx := make([]float64, c), make([]float64, c)
	for k := range blocks {
		for j := range c {
			sg[j] += sums[2*k*c+j]
			sgx[j] += sums[2*k*c+c+j]
		}
	}
	// Pass 2: dx = k1·g + kx·(x-mean) + k0.
	k1, kx, k0 := make([]T, c), make([]T, c), make([]T, c)
	fm := float64(m)
	for j := range c {
		invStd := 1 / math.Sqrt(float64(variance[j])+eps)
		ds := sgx[j] * invStd
		dOffset[j] = T(sg[j])
		dScale[j] = T(ds)
		a := float64(scale[j]) * invStd
		k1[j] = T(a)
		kx[j] = T(-a * invStd * ds / fm)
		k0[j] = T(-a * sg[j] / fm)
	}
	if c == 0 {
		return
	}
	if isF32[T]() && bnAsmF32() {
		coef := bnPack(c, mean, k1, kx, k0)
		x, y, dy, dx := asF32(x), asF32(y), asF32(dy), asF32(dx)
		parallelFor(m, bnRowGrain(c), func(lo, hi int) {
			var yr []float32
			if y != nil {
				yr = y[lo*c : hi*c]
			}
			bnDxF32AVX512(x[lo*c:hi*c], yr, dy[lo*c:hi*c], dx[lo*c:hi*c], coef, c)
		})
		return
	}
	parallelFor(m, bnRowGrain(c), func(lo, hi int) {
		mean, k1, kx, k0 := mean[:c], k1[:c], kx[:c], k0[:c]
		for i := lo; i < hi; i++ {
			xr, gr, dr := x[i*c:i*c+c], dy[i*c:i*c+c], dx[i*c:i*c+c]
			xr, gr, dr = xr[:len(mean)], gr[:len(mean)], dr[:len(mean)]
			if y != nil {
				yr := y[i*c : i*c+c]
				yr = yr[:len(mean)]
				for j, mu := range mean {
					g := T(keepIfPositive(float64(yr[j]), float64(gr[j])))
					dr[j] = k1[j]*g + kx[j]*(xr[j]-mu) + k0[j]
				}
			} else {
				for j, mu := range mean {
					dr[j] = k1[j]*gr[j] + kx[j]*(xr[j]-mu) + k0[j]
				}
			}
		}
	})
}

// gradSums adds Σ_i g[i,j] into sg[j] and Σ_i g[i,j]·(x[i,j]-mean[j]) into sgx[j], where
// g = dy, or dy where y > 0 and 0 elsewhere when y is not nil.
func gradSums[T Float](x, y, dy []T, mean, sg, sgx []float64) {
	c := len(mean)
	if c == 0 {
		return
	}
	if isF32[T]() && bnAsmF32() {
		bnGradSumsF32AVX512(asF32(x), asF32(y), asF32(dy), mean, sg[:c], sgx[:c])
		return
	}
	sg, sgx = sg[:c], sgx[:c]
	for i := 0; i+c <= len(x); i += c {
		xr, gr := x[i:i+c], dy[i:i+c]
		xr, gr = xr[:len(mean)], gr[:len(mean)]
		if y != nil {
			yr := y[i : i+c]
			yr = yr[:len(mean)]
			for j, mu := range mean {
				g := keepIfPositive(float64(yr[j]), float64(gr[j]))
				sg[j] += g
				sgx[j] += g * (float64(xr[j]) - mu)
			}
			continue
		}
		for j, mu := range mean {
			g := float64(gr[j])
			sg[j] += g
			sgx[j] += g * (float64(xr[j]) - mu)
		}
	}
}

// keepIfPositive returns g where y > 0 and 0 elsewhere (NaN y included), selecting with a
// mask rather than a branch, which the ReLU's random sign pattern would mispredict.
func keepIfPositive(y, g float64) float64 {
	var mask uint64
	if y > 0 {
		mask = ^uint64(0)
	}
	return math.Float64frombits(math.Float64bits(g) & mask)
}
