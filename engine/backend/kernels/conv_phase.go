package kernels

import "runtime"

// Strided backward data as stride-1 convolutions, one a phase.
//
// With strides sH x sW (and no dilation), the input rows ih = u*sH + ph of one phase ph
// receive gradient only through the kernel rows a ≡ ph + PadTop (mod sH), a = a0 + t*sH,
// from dy row i = u + e - t with e = (ph + PadTop - a0)/sH. So the phase's rows of dx are
// a stride-1 convolution of dy with those kernel rows, reversed and with each tap's
// [C, O] transposed:
//
//	dx[u*sH+ph] = Σ_t' dy[u + t' - (T-1-e)] · k[a0 + (T-1-t')*sH]ᵀ
//
// (padding T-1-e before, T taps), and likewise for columns. Each phase runs through
// ConvForward (the direct path where it pays) into a buffer, whose rows are copied to
// their places in dx: every entry of dx is written once, with no col2im sums. The
// kernels are packed from k's taps as they are (transposed while packed).

// convPhaseAxis describes one phase of one axis: the first kernel index a0, the number of
// taps, the padding before of the stride-1 convolution, and its output size (the number
// of input positions of the phase).
type convPhaseAxis struct{ a0, taps, pad, out int }

func convPhase(ph, stride, k, pad, in int) convPhaseAxis {
	a0 := (ph + pad) % stride
	taps := 0
	if a0 < k {
		taps = (k - a0 + stride - 1) / stride
	}
	e := (ph + pad - a0) / stride
	out := 0
	if ph < in {
		out = (in - ph + stride - 1) / stride
	}
	return convPhaseAxis{a0: a0, taps: taps, pad: taps - 1 - e, out: out}
}

// convBackwardDataPhases computes ConvBackwardData for a strided, undilated s by phases
// and reports true, or does nothing and reports false where a phase would need negative
// padding before (padding larger than the kernel) or the phases are narrow.
func convBackwardDataPhases[T Float](s ConvShape, dy, k []T, kernelFlipped bool, dx []T) bool {
	if s.DilH != 1 || s.DilW != 1 {
		return false
	}
	var rows, cols []convPhaseAxis
	for ph := range s.StrideH {
		rows = append(rows, convPhase(ph, s.StrideH, s.KH, s.PadTop, s.H))
	}
	for pw := range s.StrideW {
		cols = append(cols, convPhase(pw, s.StrideW, s.KW, s.PadLeft, s.W))
	}
	if cols[0].out < 8 {
		// Phases 4 or fewer positions wide are overhead: col2im takes them (8x8 inputs
		// at stride 2 ran 7% slower by phases).
		return false
	}
	missing := false // a phase with input positions but no taps: its dx is zero
	for _, ax := range append(append([]convPhaseAxis(nil), rows...), cols...) {
		if ax.out > 0 && ax.taps > 0 && ax.pad < 0 {
			return false
		}
		if ax.out > 0 && ax.taps == 0 {
			missing = true
		}
	}
	oh, ow := s.OutH(), s.OutW()
	rowLen := s.W * s.C
	if missing {
		parallelFor(s.N*s.H, max(1, 1<<14/rowLen), func(lo, hi int) { clear(dx[lo*rowLen : hi*rowLen]) })
	}
	// Each phase's convolution and kernel (taps of k, transposed as they are packed).
	type phase struct {
		ph, pw int
		t      ConvShape // with N = 1: one image
		ck     convKernel[T]
	}
	var phases []phase
	for ph, ra := range rows {
		for pw, ca := range cols {
			if ra.out == 0 || ca.out == 0 || ra.taps == 0 || ca.taps == 0 {
				continue
			}
			t := ConvShape{N: 1, H: oh, W: ow, C: s.O, KH: ra.taps, KW: ca.taps, O: s.C,
				StrideH: 1, StrideW: 1, DilH: 1, DilW: 1, PadTop: ra.pad, PadLeft: ca.pad}
			t.PadBottom = ra.out - oh - t.PadTop + t.KH - 1
			t.PadRight = ca.out - ow - t.PadLeft + t.KW - 1
			// Tap (t', u') is k[a0 + (T-1-t')*sH, b0 + (U-1-u')*sW] transposed.
			taps := make([]int, t.KH*t.KW)
			for ti := range t.KH {
				for ui := range t.KW {
					a := ra.a0 + (t.KH-1-ti)*s.StrideH
					b := ca.a0 + (t.KW-1-ui)*s.StrideW
					if kernelFlipped {
						a, b = s.KH-1-a, s.KW-1-b
					}
					taps[ti*t.KW+ui] = a*s.KW + b
				}
			}
			phases = append(phases, phase{ph, pw, t, convKernel[T]{k: k, taps: taps, serial: true}})
		}
	}
	// The CPUs take runs of images in turn and run every phase on them, one CPU a run, so
	// that a run's dy and phase outputs stay in the caches between the phases (phases
	// run one after the other over the whole batch, each by all CPUs, read dy from memory
	// four times and did not run faster on two CPUs than on one). Runs are long enough
	// that packing each phase's kernel for each costs little.
	workers := runtime.GOMAXPROCS(0)
	run := max(1, min(s.N/(4*workers), 8))
	units := (s.N + run - 1) / run
	dyImg := oh * ow * s.O
	convShare(units, func(_ int, next func() (int, bool)) {
		obuf := getConvBuffer[T](run * rows[0].out * cols[0].out * s.C) // phase 0 is the largest
		defer putConvBuffer(obuf)
		for u, ok := next(); ok; u, ok = next() {
			n0 := u * run
			nn := min(run, s.N-n0)
			for _, p := range phases {
				t := p.t
				t.N = nn
				ra, ca := rows[p.ph], cols[p.pw]
				out := (*obuf)[:nn*ra.out*ca.out*s.C]
				convForwardKernel(t, dy[n0*dyImg:(n0+nn)*dyImg], p.ck, out)
				for r := range nn * ra.out {
					n, v0 := n0+r/ra.out, r%ra.out
					src := out[r*ca.out*s.C : (r+1)*ca.out*s.C]
					dst := dx[(n*s.H+v0*s.StrideH+p.ph)*rowLen:]
					for v := range ca.out {
						at := (v*s.StrideW + p.pw) * s.C
						copy(dst[at:at+s.C], src[v*s.C:(v+1)*s.C])
					}
				}
			}
		}
	})
	return true
}
