package kernels

import (
	"runtime"
	"unsafe"
)

// Direct convolution without a patch matrix.
//
// With DilW 1, an image padded and laid out as below is itself every kernel row's patch
// matrix, read in place. Number the output positions of an image p = i*Wq + j over a
// padded width of Wq >= OutW positions (those with j >= OutW are computed but thrown
// away). The padded image's rows are stored by phase, rows r ≡ φ (mod StrideH) together
// in plane φ, each row Wq*StrideW columns wide. Output row i meets kernel row a in padded
// row i*StrideH + a*DilH, that is row i + a*DilH/StrideH of plane a*DilH mod StrideH, and
// the KW*C values under it at position p are contiguous at
//
//	plane + ((a*DilH/StrideH)*Wq*StrideW + p*StrideW)*C
//
// whatever the image row: consecutive positions are StrideW*C elements apart, so that a
// tile of rows of A is a strided view that the GEMM micro-kernels read in place
// (rs = StrideW*C, cs = 1). Each kernel row's [KW*C, O] slice of the kernel is packed on
// its own, and a tile of positions sums the KH products.
//
// This does away with the packing of patch rows (most of the time of layers with few
// channels) at the price of Wq/OutW times the arithmetic, and is taken where that is
// small and the packed kernel stays in the caches.

// convDirectTile is the number of rows of a tile: the AVX-512 micro-kernel's, and a whole
// number of the AVX2 one's (6).
const convDirectTile = 24

// directLayout is the padded, phase-split image of the direct path (see above).
type directLayout struct {
	oh, ow   int
	wq       int // positions a padded row, >= ow
	rowW     int // columns a padded row: wq*StrideW
	hq       int // rows a plane
	planeLen int // elements a plane: hq*rowW*C
	padLen   int // elements of the buffer: StrideH planes and slack
	mext     int // positions an image: oh*wq
	rowLen   int // K of each kernel row's product: KW*C
}

func (s ConvShape) directLayout() directLayout {
	var l directLayout
	l.oh, l.ow = s.OutH(), s.OutW()
	// Position ow-1 reads columns up to (ow-1)*StrideW + KW - 1.
	l.wq = max(l.ow, ((l.ow-1)*s.StrideW+s.KW+s.StrideW-1)/s.StrideW)
	l.rowW = l.wq * s.StrideW
	hp := (l.oh-1)*s.StrideH + (s.KH-1)*s.DilH + 1 // padded rows read
	l.hq = (hp + s.StrideH - 1) / s.StrideH
	l.planeLen = l.hq * l.rowW * s.C
	// The last tile reads up to convDirectTile-1 positions past the image, and every
	// position reads KW*C values from its start: slack keeps every read in the buffer.
	l.padLen = s.StrideH*l.planeLen + (convDirectTile*s.StrideW+s.KW)*s.C
	l.mext = l.oh * l.wq
	l.rowLen = s.KW * s.C
	return l
}

// rowOff is where kernel row a's patch matrix starts in the buffer (position 0).
func (l directLayout) rowOff(s ConvShape, a int) int {
	r := a * s.DilH
	return (r%s.StrideH)*l.planeLen + (r/s.StrideH)*l.rowW*s.C
}

// useDirect reports whether ConvForward (or, with filter, ConvBackwardFilter) takes the
// direct path for s with elements of size bytes: the padded width must add at most 15%
// to the arithmetic, and the packed kernel (or the kernel gradient, which every image
// adds to) must stay in the caches, 1 MiB for the kernel that tiles of rows read in turn,
// 256 KiB (gemmBlockBytes, L2) for the gradient that each image reads and writes whole.
// Measured on one AMD EPYC (Zen 4) core: 32x32 with 16 channels and 16x16 with 32 run
// about twice as fast, 56x56 with 64 forward 1.4 times, the stride-2 3x3 layers of the
// CIFAR ResNet 1.2 to 1.4 times; 8x8 (25% more arithmetic) and 14x14 with 256 channels
// run slower than through the patch matrix.
func (s ConvShape) useDirect(size int, filter bool) bool {
	return s.useDirectWith(size, filter, runtime.GOMAXPROCS(0))
}

// useDirectWith is useDirect for a convolution run on the given number of workers.
func (s ConvShape) useDirectWith(size int, filter bool, workers int) bool {
	if s.DilW != 1 || s.pointwise() {
		return false
	}
	if s.N < workers {
		return false // the CPUs share out images
	}
	if !filter && s.KH*s.KW == 1 {
		// A strided 1x1 convolution's patch rows are single input positions, cheap to
		// copy, and C-long products are too short for the micro-kernel's calls (1.5
		// times slower direct).
		return false
	}
	l := s.directLayout()
	nr := 64 / size
	panels := (s.O + nr - 1) / nr
	kernelBytes := s.KH * s.KW * s.C * panels * nr * size
	limit := 1 << 20
	if filter {
		limit = gemmBlockBytes
	}
	return 100*l.wq <= 115*l.ow && kernelBytes <= limit
}

// convForwardDirect computes ConvForward for a shape with DilW 1 (useDirect says where it
// pays).
func convForwardDirect[T Float](s ConvShape, x []T, ck convKernel[T], y []T) {
	l := s.directLayout()
	oh, ow, rowLen := l.oh, l.ow, l.rowLen
	// One packed [KW*C, O] matrix a kernel row: rows [a*KW*C, (a+1)*KW*C) of k as
	// [KH*KW*C, O].
	pks := make([]*PackedB[T], s.KH)
	for a := range pks {
		pks[a] = getPackedB[T](rowLen, s.O)
		ck.pack(pks[a], s, a*s.KW, s.KW)
	}
	defer func() {
		for _, p := range pks {
			putPackedB(p)
		}
	}()
	nr := pks[0].nr
	panels := pks[0].panels
	ldc := panels * nr
	tiles := (l.mext + convDirectTile - 1) / convDirectTile
	var z T
	size := unsafe.Sizeof(z)
	mr := gemmAsmRows(activeISA, size)
	blockK := gemmBlockK[T]()
	img, outImg := s.H*s.W*s.C, oh*ow*s.O
	rs := s.StrideW * s.C

	convShareN(ck.workers(), s.N, func(_ int, next func() (int, bool)) {
		// ct holds the image's output over the padded width, tile after tile.
		ctLen := tiles * convDirectTile * ldc
		pbuf := getConvBuffer[T](l.padLen + ctLen)
		defer putConvBuffer(pbuf)
		xp, ct := (*pbuf)[:l.padLen], (*pbuf)[l.padLen:l.padLen+ctLen]
		clear(xp[s.StrideH*l.planeLen:])
		for n, ok := next(); ok; n, ok = next() {
			padImage(s, l, x[n*img:(n+1)*img], xp)
			yn := y[n*outImg : (n+1)*outImg]
			for t := range tiles {
				p0 := t * convDirectTile
				for jp := range panels {
					for a := range s.KH {
						pk := pks[a]
						aOff := l.rowOff(s, a) + p0*rs
						for q0 := 0; q0 < rowLen; q0 += blockK {
							kc := min(blockK, rowLen-q0)
							panel := pk.panel(q0, kc, jp)
							acc := a > 0 || q0 > 0
							if mr == 0 {
								gemmTileGo(convDirectTile, nr, kc, xp, aOff+q0, rs, 1, panel, nr, ct[p0*ldc:], jp*nr, ldc, acc)
								continue
							}
							for r := 0; r < convDirectTile; r += mr {
								gemmAsmKernel(activeISA, size, kc, unsafe.Pointer(&xp[aOff+r*rs+q0]), rs, 1,
									unsafe.Pointer(&panel[0]), unsafe.Pointer(&ct[(p0+r)*ldc+jp*nr]), ldc, acc)
							}
						}
					}
				}
			}
			// Copy the real positions out, a row at a time where ct's rows are y's.
			for i := range oh {
				src := ct[i*l.wq*ldc:]
				dst := yn[i*ow*s.O : (i+1)*ow*s.O]
				if ldc == s.O {
					copy(dst, src[:ow*s.O])
					continue
				}
				for j := range ow {
					copy(dst[j*s.O:(j+1)*s.O], src[j*ldc:j*ldc+s.O])
				}
			}
		}
	})
}

// padImage writes one image xi [H, W, C] into xp in the layout l: plane φ's row q holds
// padded row r = q*StrideH + φ, whose column c holds input row r-PadTop and column
// c-PadLeft, zero where those are outside the image.
func padImage[T Float](s ConvShape, l directLayout, xi []T, xp []T) {
	rowLen := l.rowW * s.C
	c0 := min(s.PadLeft, l.rowW) // columns [c0, c1) come from the input
	c1 := max(c0, min(l.rowW, s.PadLeft+s.W))
	for phi := range s.StrideH {
		plane := xp[phi*l.planeLen : (phi+1)*l.planeLen]
		for q := range l.hq {
			dst := plane[q*rowLen : (q+1)*rowLen]
			ih := q*s.StrideH + phi - s.PadTop
			if ih < 0 || ih >= s.H || c1 == c0 {
				clear(dst)
				continue
			}
			clear(dst[:c0*s.C])
			copy(dst[c0*s.C:c1*s.C], xi[ih*s.W*s.C:])
			clear(dst[c1*s.C:])
		}
	}
}

// convBackwardFilterDirect computes ConvBackwardFilter for a shape with DilW 1, without a
// patch matrix (see convForwardDirect): kernel row a's gradient [KW*C, O] is
// Σ_n Σ_p A_a[p]ᵀ·dy[p], where A_a[p] is the KW*C padded values of position p, read in
// place as aᵀ (rs = 1, cs = StrideW*C), and dy is laid out over the padded width with zero
// rows at the positions thrown away. The CPUs take fixed groups of images in turn
// (convShare), each group summed into its own partial gradient; the partials are added up
// in group order at the end.
func convBackwardFilterDirect[T Float](s ConvShape, x, dy, dk []T) {
	l := s.directLayout()
	oh, ow, rowLen, mext := l.oh, l.ow, l.rowLen, l.mext
	nr := gemmPanelWidth[T]()
	panels := (s.O + nr - 1) / nr
	ldc := panels * nr
	rowTiles := (rowLen + convDirectTile - 1) / convDirectTile
	partLen := s.KH * rowTiles * convDirectTile * ldc // [KH][rowTiles*tile][ldc]
	var z T
	size := unsafe.Sizeof(z)
	mr := gemmAsmRows(activeISA, size)
	img, outImg := s.H*s.W*s.C, oh*ow*s.O
	cs := s.StrideW * s.C

	// The images are summed in fixed groups, each into its own partial, and the partials in
	// group order, so that the sums do not depend on which CPU took which image.
	groups := min(s.N, convFilterGroups)
	partials := make([]*[]T, groups)
	convShare(groups, func(_ int, next func() (int, bool)) {
		buf := getConvBuffer[T](l.padLen + mext*s.O)
		defer putConvBuffer(buf)
		xp := (*buf)[:l.padLen]
		dyext := (*buf)[l.padLen : l.padLen+mext*s.O]
		clear(xp[s.StrideH*l.planeLen:])
		pdy := getPackedB[T](mext, s.O)
		defer putPackedB(pdy)
		for g, ok := next(); ok; g, ok = next() {
			partials[g] = getConvBuffer[T](partLen)
			part := (*partials[g])[:partLen]
			lo, hi := g*s.N/groups, (g+1)*s.N/groups
			for n := lo; n < hi; n++ {
				first := n == lo
				padImage(s, l, x[n*img:(n+1)*img], xp)
				// dy over the padded width, zero at the positions j >= OutW.
				dyn := dy[n*outImg : (n+1)*outImg]
				for i := range oh {
					row := dyext[i*l.wq*s.O : (i+1)*l.wq*s.O]
					copy(row, dyn[i*ow*s.O:(i+1)*ow*s.O])
					clear(row[ow*s.O:])
				}
				pdy.pack(false, mext, s.O, dyext, s.O)
				blockK := gemmBlockK[T]()
				for a := range s.KH {
					pa := part[a*rowTiles*convDirectTile*ldc:]
					base := l.rowOff(s, a)
					for rt := range rowTiles {
						r0 := rt * convDirectTile
						for jp := range panels {
							cOff := r0*ldc + jp*nr
							for p0 := 0; p0 < mext; p0 += blockK {
								kc := min(blockK, mext-p0)
								panel := pdy.panel(p0, kc, jp)
								aOff := base + p0*cs + r0
								acc := !first || p0 > 0
								if mr == 0 {
									rows := min(convDirectTile, rowLen-r0)
									gemmTileGo(rows, nr, kc, xp, aOff, 1, cs, panel, nr, pa, cOff, ldc, acc)
									continue
								}
								for r := 0; r < convDirectTile; r += mr {
									gemmAsmKernel(activeISA, size, kc, unsafe.Pointer(&xp[aOff+r]), 1, cs,
										unsafe.Pointer(&panel[0]), unsafe.Pointer(&pa[cOff+r*ldc]), ldc, acc)
								}
							}
						}
					}
				}
			}
		}
	})
	// dk[a, b, c, o] = Σ partials[a][b*C+c][o].
	for a := range s.KH {
		for r := range rowLen {
			dst := dk[(a*rowLen+r)*s.O : (a*rowLen+r+1)*s.O]
			src := (a*rowTiles*convDirectTile + r) * ldc
			copy(dst, (*partials[0])[src:src+s.O])
			for _, p := range partials[1:] {
				addTo(dst, (*p)[src:src+s.O])
			}
		}
	}
	for _, p := range partials {
		putConvBuffer(p)
	}
}
