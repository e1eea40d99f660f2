package kernels

import (
	"runtime"
	"sync"
	"unsafe"
)

// Direct stride-1 convolution without a patch matrix.
//
// With strides 1 and DilW 1, an image padded to Hp x Wp (Wp = OutW+KW-1) is itself every
// kernel row's patch matrix, read in place: number the output positions of an image
// p = i*Wp + j over the padded width (positions with j >= OutW are computed but thrown
// away), and the KW*C values under kernel row a at position p are the contiguous
// padded[(p + a*DilH*Wp)*C : ... + KW*C]. Consecutive positions are C elements apart,
// whatever the image row, so that a tile of rows of A is a strided view that the GEMM
// micro-kernels read in place (rs = C, cs = 1). Each kernel row's [KW*C, O] slice of the
// kernel is packed on its own; a tile of output rows sums the KH products into a scratch
// tile, whose rows for real positions are copied into y.
//
// This does away with the packing of patch rows (most of the time of layers with few
// channels) at the price of Wp/OutW times the arithmetic, and is taken where that is
// small and the packed kernel stays in the L2 cache for every tile.

// convDirectTile is the number of rows of a tile: the AVX-512 micro-kernel's, and a whole
// number of the AVX2 one's (6).
const convDirectTile = 24

// useDirect reports whether ConvForward (or, with filter, ConvBackwardFilter) takes the
// direct path for s with elements of size bytes: the padded width must add at most 15%
// to the arithmetic, and the packed kernel (or the kernel gradient, which every image
// adds to) must stay in the caches, 1 MiB for the kernel that tiles of rows read in turn,
// 256 KiB (gemmBlockBytes, L2) for the gradient that each image reads and writes whole.
// Measured on one AMD EPYC (Zen 4) core: 32x32 with 16 channels and 16x16 with 32 run
// about twice as fast, 56x56 with 64 forward 1.4 times; 8x8 (25% more arithmetic) and
// 14x14 with 256 channels run slower than through the patch matrix.
func (s ConvShape) useDirect(size int, filter bool) bool {
	if s.StrideH != 1 || s.StrideW != 1 || s.DilW != 1 || s.pointwise() {
		return false
	}
	if s.N < runtime.GOMAXPROCS(0) {
		return false // the CPUs share out images
	}
	ow := s.OutW()
	wp := ow + s.KW - 1
	nr := 64 / size
	panels := (s.O + nr - 1) / nr
	kernelBytes := s.KH * s.KW * s.C * panels * nr * size
	limit := 1 << 20
	if filter {
		limit = gemmBlockBytes
	}
	return 100*wp <= 115*ow && kernelBytes <= limit
}

// convForwardDirect computes ConvForward for a shape with useDirect.
func convForwardDirect[T Float](s ConvShape, x, k, y []T) {
	oh, ow := s.OutH(), s.OutW()
	wp := ow + s.KW - 1
	hp := oh + (s.KH-1)*s.DilH
	rowLen := s.KW * s.C
	// One packed [KW*C, O] matrix a kernel row: rows [a*KW*C, (a+1)*KW*C) of k as
	// [KH*KW*C, O].
	pks := make([]*PackedB[T], s.KH)
	for a := range pks {
		pks[a] = getPackedB[T]()
		pks[a].pack(false, rowLen, s.O, k[a*rowLen*s.O:], s.O)
	}
	defer func() {
		for _, p := range pks {
			putPackedB(p)
		}
	}()
	nr := pks[0].nr
	panels := pks[0].panels
	ldc := panels * nr
	mext := oh * wp // positions of an image over the padded width
	tiles := (mext + convDirectTile - 1) / convDirectTile
	// The last tile reads up to convDirectTile-1 positions past the image, and position
	// mext-1 reads KW*C values from its start: slack keeps every read inside the buffer.
	padLen := hp*wp*s.C + (convDirectTile+s.KW)*s.C
	var z T
	size := unsafe.Sizeof(z)
	mr := gemmAsmRows(activeISA, size)
	blockK := gemmBlockK[T]()
	img, outImg := s.H*s.W*s.C, oh*ow*s.O

	parallelFor(s.N, 1, func(lo, hi int) {
		// ct holds the image's output over the padded width, tile after tile.
		ctLen := tiles * convDirectTile * ldc
		pbuf := getConvBuffer[T](padLen + ctLen)
		defer putConvBuffer(pbuf)
		xp, ct := (*pbuf)[:padLen], (*pbuf)[padLen:padLen+ctLen]
		clear(xp[hp*wp*s.C:])
		for n := lo; n < hi; n++ {
			padImage(s, x[n*img:(n+1)*img], hp, wp, xp)
			yn := y[n*outImg : (n+1)*outImg]
			for t := range tiles {
				p0 := t * convDirectTile
				for jp := range panels {
					for a := range s.KH {
						pk := pks[a]
						aOff := (p0 + a*s.DilH*wp) * s.C
						for q0 := 0; q0 < rowLen; q0 += blockK {
							kc := min(blockK, rowLen-q0)
							panel := pk.panel(q0, kc, jp)
							acc := a > 0 || q0 > 0
							if mr == 0 {
								gemmTileGo(convDirectTile, nr, kc, xp, aOff+q0, s.C, 1, panel, nr, ct[p0*ldc:], jp*nr, ldc, acc)
								continue
							}
							for r := 0; r < convDirectTile; r += mr {
								gemmAsmKernel(activeISA, size, kc, unsafe.Pointer(&xp[aOff+r*s.C+q0]), s.C, 1,
									unsafe.Pointer(&panel[0]), unsafe.Pointer(&ct[(p0+r)*ldc+jp*nr]), ldc, acc)
							}
						}
					}
				}
			}
			// Copy the real positions out, a row at a time where ct's rows are y's.
			for i := range oh {
				src := ct[i*wp*ldc:]
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

// padImage writes one image xi [H, W, C] into xp as the [hp, wp, C] window of its padded
// form that a stride-1 convolution s reads: padded row r and column c hold input row
// r-PadTop and column c-PadLeft, zero where those are outside the image.
func padImage[T Float](s ConvShape, xi []T, hp, wp int, xp []T) {
	rowLen := wp * s.C
	for r := range hp {
		dst := xp[r*rowLen : (r+1)*rowLen]
		ih := r - s.PadTop
		if ih < 0 || ih >= s.H {
			clear(dst)
			continue
		}
		// Columns [c0, c1) of the padded row come from the input.
		c0 := s.PadLeft
		c1 := min(wp, s.PadLeft+s.W)
		if c1 <= c0 {
			clear(dst)
			continue
		}
		clear(dst[:c0*s.C])
		copy(dst[c0*s.C:c1*s.C], xi[ih*s.W*s.C:])
		clear(dst[c1*s.C:])
	}
}

// convBackwardFilterDirect computes ConvBackwardFilter for a shape with useDirect, without
// a patch matrix (see convForwardDirect): kernel row a's gradient [KW*C, O] is
// Σ_n Σ_p A_a[p]ᵀ·dy[p], where A_a[p] is the KW*C padded values at (p + a*DilH*Wp)*C,
// read in place as aᵀ (rs = 1, cs = C), and dy is laid out over the padded width with zero
// rows at the positions thrown away. The CPUs share out the images, each summing into its
// own partial gradient; the partials are added up at the end.
func convBackwardFilterDirect[T Float](s ConvShape, x, dy, dk []T) {
	oh, ow := s.OutH(), s.OutW()
	wp := ow + s.KW - 1
	hp := oh + (s.KH-1)*s.DilH
	rowLen := s.KW * s.C
	nr := gemmPanelWidth[T]()
	panels := (s.O + nr - 1) / nr
	ldc := panels * nr
	rowTiles := (rowLen + convDirectTile - 1) / convDirectTile
	partLen := s.KH * rowTiles * convDirectTile * ldc // [KH][rowTiles*tile][ldc]
	mext := oh * wp
	padLen := hp*wp*s.C + (convDirectTile+s.KW)*s.C
	var z T
	size := unsafe.Sizeof(z)
	mr := gemmAsmRows(activeISA, size)
	img, outImg := s.H*s.W*s.C, oh*ow*s.O

	var mu sync.Mutex
	var partials []*[]T
	parallelFor(s.N, 1, func(lo, hi int) {
		buf := getConvBuffer[T](partLen + padLen + mext*s.O)
		part := (*buf)[:partLen]
		xp := (*buf)[partLen : partLen+padLen]
		dyext := (*buf)[partLen+padLen : partLen+padLen+mext*s.O]
		clear(xp[hp*wp*s.C:])
		pdy := getPackedB[T]()
		defer putPackedB(pdy)
		for n := lo; n < hi; n++ {
			padImage(s, x[n*img:(n+1)*img], hp, wp, xp)
			// dy over the padded width, zero at the positions j >= OutW.
			dyn := dy[n*outImg : (n+1)*outImg]
			for i := range oh {
				row := dyext[i*wp*s.O : (i+1)*wp*s.O]
				copy(row, dyn[i*ow*s.O:(i+1)*ow*s.O])
				clear(row[ow*s.O:])
			}
			pdy.pack(false, mext, s.O, dyext, s.O)
			blockK := gemmBlockK[T]()
			for a := range s.KH {
				pa := part[a*rowTiles*convDirectTile*ldc:]
				for rt := range rowTiles {
					r0 := rt * convDirectTile
					for jp := range panels {
						cOff := r0*ldc + jp*nr
						for p0 := 0; p0 < mext; p0 += blockK {
							kc := min(blockK, mext-p0)
							panel := pdy.panel(p0, kc, jp)
							aOff := (p0+a*s.DilH*wp)*s.C + r0
							acc := n > lo || p0 > 0
							if mr == 0 {
								rows := min(convDirectTile, rowLen-r0)
								gemmTileGo(rows, nr, kc, xp, aOff, 1, s.C, panel, nr, pa, cOff, ldc, acc)
								continue
							}
							for r := 0; r < convDirectTile; r += mr {
								gemmAsmKernel(activeISA, size, kc, unsafe.Pointer(&xp[aOff+r]), 1, s.C,
									unsafe.Pointer(&panel[0]), unsafe.Pointer(&pa[cOff+r*ldc]), ldc, acc)
							}
						}
					}
				}
			}
		}
		mu.Lock()
		partials = append(partials, buf)
		mu.Unlock()
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
