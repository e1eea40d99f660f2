package kernels

// TEMPORARY naive kernels for integrating the engine before the real ones land.

import (
	"errors"
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
