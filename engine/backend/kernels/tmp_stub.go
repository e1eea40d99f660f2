package kernels

// TEMPORARY naive kernels for integrating the engine before the real ones land.

import (
	"errors"
	"math"
)

type ConvShape struct {
	N, H, W, C                           int
	KH, KW, O                            int
	StrideH, StrideW                     int
	DilH, DilW                           int
	PadTop, PadBottom, PadLeft, PadRight int
}

func (s ConvShape) OutH() int { return (s.H+s.PadTop+s.PadBottom-((s.KH-1)*s.DilH+1))/s.StrideH + 1 }
func (s ConvShape) OutW() int { return (s.W+s.PadLeft+s.PadRight-((s.KW-1)*s.DilW+1))/s.StrideW + 1 }
func (s ConvShape) Validate() error {
	if s.N < 1 || s.H < 1 || s.W < 1 || s.C < 1 || s.KH < 1 || s.KW < 1 || s.O < 1 || s.StrideH < 1 || s.StrideW < 1 ||
		s.DilH < 1 || s.DilW < 1 || s.PadTop < 0 || s.PadLeft < 0 || s.OutH() < 1 || s.OutW() < 1 {
		return errors.New("bad conv shape")
	}
	return nil
}

func convLoop[T Float](s ConvShape, fn func(xi, ki, yi int)) {
	ho, wo := s.OutH(), s.OutW()
	for n := 0; n < s.N; n++ {
		for i := 0; i < ho; i++ {
			for j := 0; j < wo; j++ {
				for a := 0; a < s.KH; a++ {
					r := i*s.StrideH + a*s.DilH - s.PadTop
					if r < 0 || r >= s.H {
						continue
					}
					for b := 0; b < s.KW; b++ {
						q := j*s.StrideW + b*s.DilW - s.PadLeft
						if q < 0 || q >= s.W {
							continue
						}
						for c := 0; c < s.C; c++ {
							for o := 0; o < s.O; o++ {
								fn(((n*s.H+r)*s.W+q)*s.C+c, ((a*s.KW+b)*s.C+c)*s.O+o, ((n*ho+i)*wo+j)*s.O+o)
							}
						}
					}
				}
			}
		}
	}
}

func ConvForward[T Float](s ConvShape, x, k, y []T) {
	clear(y)
	convLoop[T](s, func(xi, ki, yi int) { y[yi] += x[xi] * k[ki] })
}

func ConvBackwardData[T Float](s ConvShape, dy, k []T, kernelFlipped bool, dx []T) {
	clear(dx)
	convLoop[T](s, func(xi, ki, yi int) {
		if kernelFlipped {
			t := ki / (s.C * s.O)
			a, b := t/s.KW, t%s.KW
			ki = (((s.KH-1-a)*s.KW+(s.KW-1-b))*s.C*s.O + ki%(s.C*s.O))
		}
		dx[xi] += dy[yi] * k[ki]
	})
}

func ConvBackwardFilter[T Float](s ConvShape, x, dy, dk []T) {
	clear(dk)
	convLoop[T](s, func(xi, ki, yi int) { dk[ki] += x[xi] * dy[yi] })
}

func Gemm[T Float](transA, transB bool, m, n, k int, a []T, lda int, b []T, ldb int, c []T, ldc int, accumulate bool) {
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			var s T
			for p := 0; p < k; p++ {
				var av, bv T
				if transA {
					av = a[p*lda+i]
				} else {
					av = a[i*lda+p]
				}
				if transB {
					bv = b[j*ldb+p]
				} else {
					bv = b[p*ldb+j]
				}
				s += av * bv
			}
			if accumulate {
				c[i*ldc+j] += s
			} else {
				c[i*ldc+j] = s
			}
		}
	}
}

func BatchNormTrain[T Float](m, c int, x, scale, offset []T, eps float64, y, mean, variance []T) {
	for j := 0; j < c; j++ {
		var s float64
		for i := 0; i < m; i++ {
			s += float64(x[i*c+j])
		}
		mu := s / float64(m)
		var v float64
		for i := 0; i < m; i++ {
			d := float64(x[i*c+j]) - mu
			v += d * d
		}
		v /= float64(m)
		mean[j], variance[j] = T(mu), T(v)
		inv := 1 / math.Sqrt(v+eps)
		for i := 0; i < m; i++ {
			y[i*c+j] = T((float64(x[i*c+j])-mu)*inv*float64(scale[j]) + float64(offset[j]))
		}
	}
}

func BatchNormGrad[T Float](m, c int, x, scale, mean, variance, dy []T, eps float64, dx, dScale, dOffset []T) {
	for j := 0; j < c; j++ {
		inv := 1 / math.Sqrt(float64(variance[j])+eps)
		var so, ss float64
		for i := 0; i < m; i++ {
			xh := (float64(x[i*c+j]) - float64(mean[j])) * inv
			so += float64(dy[i*c+j])
			ss += float64(dy[i*c+j]) * xh
		}
		dOffset[j], dScale[j] = T(so), T(ss)
		for i := 0; i < m; i++ {
			xh := (float64(x[i*c+j]) - float64(mean[j])) * inv
			dx[i*c+j] = T(float64(scale[j]) * inv * (float64(dy[i*c+j]) - so/float64(m) - xh*ss/float64(m)))
		}
	}
}

func BatchNormInference[T Float](m, c int, x, scale, offset, mean, variance []T, eps float64, y []T) {
	for j := 0; j < c; j++ {
		inv := 1 / math.Sqrt(float64(variance[j])+eps)
		for i := 0; i < m; i++ {
			y[i*c+j] = T((float64(x[i*c+j])-float64(mean[j]))*inv*float64(scale[j]) + float64(offset[j]))
		}
	}
}

func GatherDot[T Float, I int32 | int64](dim int, bank []T, idx []I, batch, k int, f, out []T) {
	rows := len(bank) / dim
	for b := 0; b < batch; b++ {
		for j := 0; j < k; j++ {
			r := int(min(max(idx[b*k+j], 0), I(rows-1)))
			var s T
			for d := 0; d < dim; d++ {
				s += bank[r*dim+d] * f[b*dim+d]
			}
			out[b*k+j] = s
		}
	}
}

func GatherDotGrad[T Float, I int32 | int64](dim int, bank []T, idx []I, batch, k int, g, df []T) {
	rows := len(bank) / dim
	clear(df)
	for b := 0; b < batch; b++ {
		for j := 0; j < k; j++ {
			r := int(min(max(idx[b*k+j], 0), I(rows-1)))
			for d := 0; d < dim; d++ {
				df[b*dim+d] += g[b*k+j] * bank[r*dim+d]
			}
		}
	}
}
