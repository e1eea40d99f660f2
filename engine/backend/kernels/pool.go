package kernels

import "fmt"

// PoolShape describes a 2-D max-pooling in channels-last layout: x [N, H, W, C] and
// y [N, OutH, OutW, C], y[n, i, j, c] = max over a < KH, b < KW of
// x[n, i*StrideH + a - PadTop, j*StrideW + b - PadLeft, c], where positions outside x (the
// padding) never win.
type PoolShape struct {
	N, H, W, C                           int
	KH, KW                               int
	StrideH, StrideW                     int
	PadTop, PadBottom, PadLeft, PadRight int
}

// OutH is the output height.
func (s PoolShape) OutH() int { return floorDiv(s.H+s.PadTop+s.PadBottom-s.KH, s.StrideH) + 1 }

// OutW is the output width.
func (s PoolShape) OutW() int { return floorDiv(s.W+s.PadLeft+s.PadRight-s.KW, s.StrideW) + 1 }

func floorDiv(a, b int) int {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// Validate reports a shape the kernels do not take: sizes and strides below 1, negative
// paddings, or a window that hangs wholly over the padding somewhere.
func (s PoolShape) Validate() error {
	switch {
	case s.N < 1 || s.H < 1 || s.W < 1 || s.C < 1 || s.KH < 1 || s.KW < 1 || s.StrideH < 1 || s.StrideW < 1:
		return fmt.Errorf("pool %+v: sizes and strides must be positive", s)
	case s.PadTop < 0 || s.PadBottom < 0 || s.PadLeft < 0 || s.PadRight < 0:
		return fmt.Errorf("pool %+v: negative padding", s)
	case s.OutH() < 1 || s.OutW() < 1:
		return fmt.Errorf("pool %+v: no output", s)
	case s.PadTop >= s.KH || s.PadLeft >= s.KW || s.PadBottom >= s.KH || s.PadRight >= s.KW:
		return fmt.Errorf("pool %+v: a window can fall wholly in the padding", s)
	}
	return nil
}

func (s PoolShape) mustFit(what string, lx, ly int) {
	if err := s.Validate(); err != nil {
		panic(what + ": " + err.Error())
	}
	if lx < s.N*s.H*s.W*s.C || ly < s.N*s.OutH()*s.OutW()*s.C {
		panic(fmt.Sprintf("%s %+v: slices too short (%d, %d)", what, s, lx, ly))
	}
}

// window returns the taps of output position (i, j) that fall inside x: rows [a0, a1) and
// columns [b0, b1) of the window, and the position in x of its tap (0, 0).
func (s PoolShape) window(i, j int) (a0, a1, b0, b1, r0, q0 int) {
	r0, q0 = i*s.StrideH-s.PadTop, j*s.StrideW-s.PadLeft
	a0, a1 = max(0, -r0), min(s.KH, s.H-r0)
	b0, b1 = max(0, -q0), min(s.KW, s.W-q0)
	return
}

// MaxPool computes y = max-pooling of x as s describes, overwriting y.
func MaxPool[T Float](s PoolShape, x, y []T) {
	s.mustFit("MaxPool", len(x), len(y))
	oh, ow, c := s.OutH(), s.OutW(), s.C
	parallelFor(s.N*oh, 1, func(lo, hi int) {
		for row := lo; row < hi; row++ {
			n, i := row/oh, row%oh
			img := x[n*s.H*s.W*c : (n+1)*s.H*s.W*c]
			for j := range ow {
				out := y[((n*oh+i)*ow+j)*c:][:c]
				a0, a1, b0, b1, r0, q0 := s.window(i, j)
				first := true
				for a := a0; a < a1; a++ {
					for b := b0; b < b1; b++ {
						in := img[((r0+a)*s.W+q0+b)*c:][:c]
						if first {
							copy(out, in)
							first = false
							continue
						}
						for k, v := range in {
							// Not max(): a NaN in the window stays, as in XLA and PyTorch.
							if v > out[k] || v != v {
								out[k] = v
							}
						}
					}
				}
			}
		}
	})
}

// MaxPoolGrad computes the gradient of max-pooling (XLA's SelectAndScatter with the max):
// dx is zero except at the first maximum of each window, in row-major window order, which
// receives the window's dy (summed where windows overlap). dx is overwritten.
func MaxPoolGrad[T Float](s PoolShape, x, dy, dx []T) {
	s.mustFit("MaxPoolGrad", len(x), len(dy))
	if len(dx) < len(x) {
		panic(fmt.Sprintf("MaxPoolGrad %+v: dx too short (%d)", s, len(dx)))
	}
	oh, ow, c := s.OutH(), s.OutW(), s.C
	img := s.H * s.W * c
	// Windows overlap within an image, so each worker takes whole images.
	parallelFor(s.N, 1, func(lo, hi int) {
		best := make([]T, c)
		at := make([]int, c)
		for n := lo; n < hi; n++ {
			xi, di := x[n*img:(n+1)*img], dx[n*img:(n+1)*img]
			clear(di)
			for i := range oh {
				for j := range ow {
					g := dy[((n*oh+i)*ow+j)*c:][:c]
					a0, a1, b0, b1, r0, q0 := s.window(i, j)
					first := true
					for a := a0; a < a1; a++ {
						for b := b0; b < b1; b++ {
							pos := ((r0+a)*s.W + q0 + b) * c
							in := xi[pos:][:c]
							if first {
								copy(best, in)
								for k := range at {
									at[k] = pos + k
								}
								first = false
								continue
							}
							for k, v := range in {
								if v > best[k] || (v != v && best[k] == best[k]) {
									best[k], at[k] = v, pos+k
								}
							}
						}
					}
					for k, v := range g {
						di[at[k]] += v
					}
				}
			}
		}
	})
}
