package kernels

import (
	"fmt"
	"math/bits"
	"runtime"
	"sync"
	"sync/atomic"
	"unsafe"
)

// ConvShape describes a 2-D convolution in channels-last layouts: input x [N, H, W, C],
// kernel k [KH, KW, C, O] and output y [N, OutH, OutW, O], with
//
//	y[n, i, j, o] = Σ_{a,b,c} x[n, i*StrideH + a*DilH - PadTop, j*StrideW + b*DilW - PadLeft, c] · k[a, b, c, o]
//
// where reads of x out of range are 0.
type ConvShape struct {
	N, H, W, C       int // input: batch, height, width, channels
	KH, KW, O        int // kernel height and width, output channels
	StrideH, StrideW int
	DilH, DilW       int // kernel dilation (1 = none)

	// PadTop and PadLeft are >= 0; PadBottom and PadRight may be negative, in which case
	// the last input rows or columns are not used.
	PadTop, PadBottom, PadLeft, PadRight int
}

// OutH is the output height, (H + PadTop + PadBottom - ((KH-1)*DilH+1)) / StrideH + 1,
// rounded down; it is zero or less when the dilated kernel does not fit.
func (s ConvShape) OutH() int {
	return convOutSize(s.H, s.PadTop+s.PadBottom, s.KH, s.DilH, s.StrideH)
}

// OutW is the output width, (W + PadLeft + PadRight - ((KW-1)*DilW+1)) / StrideW + 1,
// rounded down; it is zero or less when the dilated kernel does not fit.
func (s ConvShape) OutW() int {
	return convOutSize(s.W, s.PadLeft+s.PadRight, s.KW, s.DilW, s.StrideW)
}

// convOutSize is the number of kernel positions along one axis, using floor division so
// that a kernel larger than the padded input gives zero or less.
func convOutSize(in, pad, k, dil, stride int) int {
	if stride < 1 {
		return 0
	}
	span := in + pad - ((k-1)*dil + 1)
	q := span / stride
	if span%stride != 0 && span < 0 {
		q--
	}
	return q + 1
}

// Validate reports whether the shape describes a convolution that the kernels can run:
// all sizes, strides and dilations at least 1, PadTop and PadLeft not negative, and at
// least one output row and column.
func (s ConvShape) Validate() error {
	for _, d := range []struct {
		name string
		v    int
	}{
		{"N", s.N}, {"H", s.H}, {"W", s.W}, {"C", s.C}, {"KH", s.KH}, {"KW", s.KW}, {"O", s.O},
		{"StrideH", s.StrideH}, {"StrideW", s.StrideW}, {"DilH", s.DilH}, {"DilW", s.DilW},
	} {
		if d.v < 1 {
			return fmt.Errorf("kernels: convolution %s = %d, want >= 1", d.name, d.v)
		}
	}
	if s.PadTop < 0 || s.PadLeft < 0 {
		return fmt.Errorf("kernels: convolution PadTop = %d and PadLeft = %d, want >= 0", s.PadTop, s.PadLeft)
	}
	if oh, ow := s.OutH(), s.OutW(); oh < 1 || ow < 1 {
		return fmt.Errorf("kernels: convolution output is %dx%d: the kernel does not fit the padded %dx%d input", oh, ow, s.H, s.W)
	}
	return nil
}

// mustFit panics unless the shape is valid and the slices hold at least the elements it
// describes: x [N,H,W,C], k [KH,KW,C,O], y [N,OutH,OutW,O].
func (s ConvShape) mustFit(op string, lx, lk, ly int) {
	if err := s.Validate(); err != nil {
		panic(op + ": " + err.Error())
	}
	nx, nk, ny := s.N*s.H*s.W*s.C, s.KH*s.KW*s.C*s.O, s.N*s.OutH()*s.OutW()*s.O
	if lx < nx || lk < nk || ly < ny {
		panic(fmt.Sprintf("kernels: %s: slices of %d, %d and %d elements for input, kernel and output, want %d, %d and %d",
			op, lx, lk, ly, nx, nk, ny))
	}
}

// pointwise reports whether x itself is the patch matrix: a 1x1 kernel with stride 1 and
// no padding.
func (s ConvShape) pointwise() bool {
	return s.KH == 1 && s.KW == 1 && s.StrideH == 1 && s.StrideW == 1 &&
		s.PadTop == 0 && s.PadBottom == 0 && s.PadLeft == 0 && s.PadRight == 0
}

// convBlockBytes is the size aimed at for one worker's block of packed patch rows: it
// should stay in L2 while the GEMM runs over it.
const convBlockBytes = 512 << 10

// convRowTile is the granule of block heights: a multiple of the GEMM's row tiles (24 rows
// with AVX-512, 6 with AVX2), so that only a matrix's last block has a partial tile.
const convRowTile = 24

// convBlocks splits m patch rows (output positions) of kdim elements into blocks for the
// CPUs: about convBlockBytes a block, 48 to 240 rows, a multiple of convRowTile where there
// are enough rows, and a number of blocks that the CPUs share evenly.
func convBlocks[T Float](kdim, m int) (rows, blocks int) {
	return convBlocksFor[T](kdim, m, runtime.GOMAXPROCS(0))
}

// convBlocksFor is convBlocks with the number of blocks a multiple of workers.
func convBlocksFor[T Float](kdim, m, workers int) (rows, blocks int) {
	var zero T
	rows = convBlockBytes / (kdim * int(unsafe.Sizeof(zero)))
	rows = min(max(rows, 2*convRowTile), 10*convRowTile) / convRowTile * convRowTile
	blocks = (m + rows - 1) / rows
	blocks = (blocks + workers - 1) / workers * workers
	rows = (m + blocks - 1) / blocks
	if rows > convRowTile {
		rows = (rows + convRowTile - 1) / convRowTile * convRowTile
	}
	return rows, (m + rows - 1) / rows
}

// convBuffers32 and convBuffers64 recycle the convolutions' scratch buffers (blocks of
// patch rows, padded images, partial kernel gradients), as *[]float32 and *[]float64, by
// size class: pool b holds buffers of capacity 2^b, so that the layers of a network, each
// asking for its own sizes in turn, find buffers they fit in instead of dropping the
// pooled ones and allocating (fresh memory costs more than packing into it).
var convBuffers32, convBuffers64 [64]sync.Pool

func convBuffers[T Float]() *[64]sync.Pool {
	var zero T
	if unsafe.Sizeof(zero) == 4 {
		return &convBuffers32
	}
	return &convBuffers64
}

// sizeClass is the least b with 2^b >= n.
func sizeClass(n int) int { return bits.Len(uint(max(n, 1) - 1)) }

// getConvBuffer returns a buffer of n elements, of any content, for putConvBuffer to
// recycle.
func getConvBuffer[T Float](n int) *[]T {
	c := sizeClass(n)
	if p, ok := convBuffers[T]()[c].Get().(*[]T); ok && cap(*p) >= n {
		*p = (*p)[:n]
		return p
	} // one of a named element type is dropped
	b := make([]T, n, 1<<c)
	return &b
}

func putConvBuffer[T Float](p *[]T) {
	if cap(*p) > 0 {
		convBuffers[T]()[bits.Len(uint(cap(*p)))-1].Put(p)
	}
}

// convShare runs fn on min(GOMAXPROCS, n) workers (worker 0 on the calling goroutine)
// that take the units [0, n) one at a time from a shared counter through next, and waits
// for them. Unlike parallelFor's fixed shares, a CPU that other processes hold back takes
// fewer units instead of holding up the others at the end.
func convShare(n int, fn func(worker int, next func() (int, bool))) {
	convShareN(runtime.GOMAXPROCS(0), n, fn)
}

// convShareN is convShare on at most workers workers.
func convShareN(workers, n int, fn func(worker int, next func() (int, bool))) {
	if n <= 0 {
		return
	}
	var counter atomic.Int64
	next := func() (int, bool) {
		i := int(counter.Add(1)) - 1
		return i, i < n
	}
	workers = max(1, min(workers, n))
	var wg sync.WaitGroup
	for w := 1; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fn(w, next)
		}()
	}
	fn(0, next)
	wg.Wait()
}

// patchCursor walks output positions (n, i, j) in row-major order, the rows of the patch
// matrix.
type patchCursor struct {
	oh, ow  int
	n, i, j int
}

func newPatchCursor(oh, ow, row int) patchCursor {
	return patchCursor{oh: oh, ow: ow, n: row / (oh * ow), i: row / ow % oh, j: row % ow}
}

func (p *patchCursor) next() {
	if p.j++; p.j == p.ow {
		p.j = 0
		if p.i++; p.i == p.oh {
			p.i = 0
			p.n++
		}
	}
}

// packPatches writes the rows patch rows starting at row r0 of the implicit im2col matrix
// [N*OutH*OutW, KH*KW*C] into dst (rows*KH*KW*C elements): the input values under the
// kernel, in (a, b, c) order, zeros where the kernel hangs over the padding.
func packPatches[T Float](s ConvShape, x []T, r0, rows int, dst []T) {
	kdim, rowLen, img := s.KH*s.KW*s.C, s.KW*s.C, s.H*s.W*s.C
	contiguous := s.DilW == 1 // the taps of one kernel row are adjacent in x
	cur := newPatchCursor(s.OutH(), s.OutW(), r0)
	for r := 0; r < rows; r++ {
		d := dst[r*kdim : (r+1)*kdim]
		xi := x[cur.n*img : (cur.n+1)*img]
		ih0, iw0 := cur.i*s.StrideH-s.PadTop, cur.j*s.StrideW-s.PadLeft
		for a := 0; a < s.KH; a++ {
			seg := d[a*rowLen : (a+1)*rowLen]
			ih := ih0 + a*s.DilH
			if ih < 0 || ih >= s.H {
				clear(seg)
				continue
			}
			xrow := xi[ih*s.W*s.C : (ih+1)*s.W*s.C]
			if contiguous && iw0 >= 0 && iw0+s.KW <= s.W {
				copy(seg, xrow[iw0*s.C:(iw0+s.KW)*s.C])
				continue
			}
			for b := 0; b < s.KW; b++ {
				tap := seg[b*s.C : (b+1)*s.C]
				if iw := iw0 + b*s.DilW; iw < 0 || iw >= s.W {
					clear(tap)
				} else {
					copy(tap, xrow[iw*s.C:(iw+1)*s.C])
				}
			}
		}
		cur.next()
	}
}

// scatterPatches is the adjoint of packPatches: it adds the rows patch rows in src, the
// rows of the im2col matrix starting at r0, into dx at the input positions they were read
// from (col2im). Padding entries are dropped.
func scatterPatches[T Float](s ConvShape, src []T, r0, rows int, dx []T) {
	kdim, rowLen, img := s.KH*s.KW*s.C, s.KW*s.C, s.H*s.W*s.C
	cur := newPatchCursor(s.OutH(), s.OutW(), r0)
	for r := 0; r < rows; r++ {
		d := src[r*kdim : (r+1)*kdim]
		xi := dx[cur.n*img : (cur.n+1)*img]
		ih0, iw0 := cur.i*s.StrideH-s.PadTop, cur.j*s.StrideW-s.PadLeft
		for a := 0; a < s.KH; a++ {
			ih := ih0 + a*s.DilH
			if ih < 0 || ih >= s.H {
				continue
			}
			seg := d[a*rowLen : (a+1)*rowLen]
			xrow := xi[ih*s.W*s.C : (ih+1)*s.W*s.C]
			for b := 0; b < s.KW; b++ {
				if iw := iw0 + b*s.DilW; iw >= 0 && iw < s.W {
					addTo(xrow[iw*s.C:(iw+1)*s.C], seg[b*s.C:(b+1)*s.C])
				}
			}
		}
		cur.next()
	}
}

// gatherPatchesRow is col2im for the single input row ih of one image: it adds into dxRow
// (the W*C elements of that row) every entry of the image's patch matrix cols
// [OutH*OutW, KH*KW*C] that was read from the row. Different rows can run in parallel.
func gatherPatchesRow[T Float](s ConvShape, cols []T, ih int, dxRow []T) {
	oh, ow := s.OutH(), s.OutW()
	kdim, rowLen := s.KH*s.KW*s.C, s.KW*s.C
	for a := 0; a < s.KH; a++ {
		t := ih + s.PadTop - a*s.DilH // = i*StrideH for the output row i that reads ih with tap a
		if t < 0 || t%s.StrideH != 0 || t/s.StrideH >= oh {
			continue
		}
		i := t / s.StrideH
		for j := 0; j < ow; j++ {
			seg := cols[(i*ow+j)*kdim+a*rowLen : (i*ow+j)*kdim+(a+1)*rowLen]
			iw0 := j*s.StrideW - s.PadLeft
			for b := 0; b < s.KW; b++ {
				if iw := iw0 + b*s.DilW; iw >= 0 && iw < s.W {
					addTo(dxRow[iw*s.C:(iw+1)*s.C], seg[b*s.C:(b+1)*s.C])
				}
			}
		}
	}
}

// addTo adds src into dst element-wise (len(dst) == len(src)).
func addTo[T Float](dst, src []T) {
	src = src[:len(dst)]
	i := 0
	for ; i+4 <= len(dst); i += 4 {
		d, s := dst[i:i+4:i+4], src[i:i+4:i+4]
		d[0] += s[0]
		d[1] += s[1]
		d[2] += s[2]
		d[3] += s[3]
	}
	for ; i < len(dst); i++ {
		dst[i] += src[i]
	}
}

// ConvForward computes the convolution y = x ⊛ k described by s (see ConvShape),
// overwriting y [N, OutH, OutW, O]. It runs as an implicit im2col: the kernel, viewed as
// [KH*KW*C, O], is packed once, and the CPUs each pack blocks of patch rows and multiply
// them with it.
func ConvForward[T Float](s ConvShape, x, k, y []T) {
	s.mustFit("ConvForward", len(x), len(k), len(y))
	var z T
	if s.useDirect(int(unsafe.Sizeof(z)), false) {
		convForwardDirect(s, x, convKernel[T]{k: k}, y)
		return
	}
	convForwardIm2col(s, x, convKernel[T]{k: k}, y)
}

// convForwardKernel is ConvForward (without its checks) with the kernel ck.
func convForwardKernel[T Float](s ConvShape, x []T, ck convKernel[T], y []T) {
	var z T
	if s.useDirectWith(int(unsafe.Sizeof(z)), false, ck.workers()) {
		convForwardDirect(s, x, ck, y)
		return
	}
	convForwardIm2col(s, x, ck, y)
}

// convKernel is the kernel [KH, KW, C, O] of a convolution s run by ConvForward's paths:
// k itself, or with taps, the kernel of a stride-1 convolution's input gradient (see
// transposed), whose tap t is tap taps[t] of k [KH, KW, O, C] transposed, read from k as
// it is packed instead of being transposed into a buffer first.
type convKernel[T Float] struct {
	k    []T
	taps []int
	// serial runs the convolution on the calling goroutine only, for callers that share
	// out the work themselves.
	serial bool
}

// workers is the number of goroutines a convolution with this kernel runs on.
func (ck convKernel[T]) workers() int {
	if ck.serial {
		return 1
	}
	return runtime.GOMAXPROCS(0)
}

// pack packs taps [tap0, tap0+n) of the kernel, as [n*C, O], into p.
func (ck convKernel[T]) pack(p *PackedB[T], s ConvShape, tap0, n int) {
	if ck.taps == nil {
		p.pack(false, n*s.C, s.O, ck.k[tap0*s.C*s.O:], s.O)
		return
	}
	p.packTaps(ck.k, ck.taps[tap0:tap0+n], s.C, s.O)
}

// transposedSource is the kernel of s.transposed() read from s's kernel k (spatially
// reversed already when flipped): tap (a, b) is k's tap (KH-1-a, KW-1-b), or (a, b) when
// flipped, transposed.
func transposedSource[T Float](s ConvShape, k []T, flipped bool) convKernel[T] {
	taps := make([]int, s.KH*s.KW)
	for a := range s.KH {
		for b := range s.KW {
			taps[a*s.KW+b] = (s.KH-1-a)*s.KW + (s.KW - 1 - b)
			if flipped {
				taps[a*s.KW+b] = a*s.KW + b
			}
		}
	}
	return convKernel[T]{k: k, taps: taps}
}

// convForwardIm2col is ConvForward through blocks of the patch matrix.
func convForwardIm2col[T Float](s ConvShape, x []T, ck convKernel[T], y []T) {
	m, kdim := s.N*s.OutH()*s.OutW(), s.KH*s.KW*s.C
	pk := getPackedB[T](kdim, s.O)
	defer putPackedB(pk)
	ck.pack(pk, s, 0, s.KH*s.KW)
	rows, blocks := convBlocks[T](kdim, m)
	pointwise := s.pointwise()
	convShareN(ck.workers(), blocks, func(_ int, next func() (int, bool)) {
		var cols []T
		if !pointwise {
			buf := getConvBuffer[T](rows * kdim)
			defer putConvBuffer(buf)
			cols = *buf
		}
		for b, ok := next(); ok; b, ok = next() {
			r0 := b * rows
			nr := min(rows, m-r0)
			var a []T
			if pointwise {
				a = x[r0*kdim : (r0+nr)*kdim]
			} else {
				a = cols[:nr*kdim]
				packPatches(s, x, r0, nr, a)
			}
			GemmPacked(false, nr, a, kdim, pk, y[r0*s.O:(r0+nr)*s.O], s.O, false)
		}
	})
}

// ConvBackwardData computes the gradient of Σ y·dy with respect to x for the convolution s,
// overwriting dx [N, H, W, C]. With kernelFlipped, k holds the kernel reversed in both
// spatial axes, k'[a, b, c, o] = k[KH-1-a, KW-1-b, c, o], as autodiff hands it.
//
// With stride 1 (and padding no larger than the dilated kernel), the gradient is itself a
// convolution, run by ConvForward: see transposed. Otherwise the patch-matrix gradient
// dcols = dy·kᵀ is computed block by block and added into dx (col2im). The CPUs share out
// the images, whose dx are disjoint; with fewer images than CPUs they instead share each
// image's rows, and then its input rows for the col2im.
func ConvBackwardData[T Float](s ConvShape, dy, k []T, kernelFlipped bool, dx []T) {
	s.mustFit("ConvBackwardData", len(dx), len(k), len(dy))
	if !s.pointwise() {
		if t, ok := s.transposed(); ok {
			convForwardKernel(t, dy, transposedSource(s, k, kernelFlipped), dx)
			return
		}
	}
	if !s.pointwise() && (s.KH > 1 || s.KW > 1) && convBackwardDataPhases(s, dy, k, kernelFlipped, dx) {
		return
	}
	oh, ow := s.OutH(), s.OutW()
	m, kdim := s.N*oh*ow, s.KH*s.KW*s.C
	if kernelFlipped {
		buf := getConvBuffer[T](s.KH * s.KW * s.C * s.O)
		defer putConvBuffer(buf)
		k = unflipKernel(s, k, *buf)
	}
	// kᵀ [O, KH*KW*C]: the kernel, stored [KH*KW*C, O], transposed.
	pkt := getPackedB[T](s.O, kdim)
	defer putPackedB(pkt)
	pkt.pack(true, s.O, kdim, k, s.O)
	rows, blocks := convBlocks[T](kdim, m)
	dcolsBlock := func(r0, nr int, dst []T) {
		GemmPacked(false, nr, dy[r0*s.O:(r0+nr)*s.O], s.O, pkt, dst, kdim, false)
	}

	if s.KH == 1 && s.KW == 1 && s.PadTop == 0 && s.PadLeft == 0 && !s.pointwise() {
		convBackwardDataStrided1x1(s, dy, pkt, dx)
		return
	}
	if s.pointwise() {
		parallelFor(blocks, 1, func(lo, hi int) {
			for b := lo; b < hi; b++ {
				r0 := b * rows
				nr := min(rows, m-r0)
				dcolsBlock(r0, nr, dx[r0*s.C:(r0+nr)*s.C])
			}
		})
		return
	}

	img := s.H * s.W * s.C
	if s.N >= runtime.GOMAXPROCS(0) {
		// One run of whole images per CPU: block by block, dcols then col2im.
		parallelFor(s.N, 1, func(lo, hi int) {
			clear(dx[lo*img : hi*img])
			buf := getConvBuffer[T](rows * kdim)
			defer putConvBuffer(buf)
			cols := *buf
			last := hi * oh * ow
			for r0 := lo * oh * ow; r0 < last; r0 += rows {
				nr := min(rows, last-r0)
				dcolsBlock(r0, nr, cols[:nr*kdim])
				scatterPatches(s, cols[:nr*kdim], r0, nr, dx)
			}
		})
		return
	}

	// Fewer images than CPUs: per image, the CPUs share the rows of dcols, then its input
	// rows for the col2im.
	imgRows := oh * ow
	rows, blocks = convBlocks[T](kdim, imgRows)
	buf := getConvBuffer[T](imgRows * kdim)
	defer putConvBuffer(buf)
	cols := *buf
	rowLen := s.W * s.C
	for n := 0; n < s.N; n++ {
		parallelFor(blocks, 1, func(lo, hi int) {
			for b := lo; b < hi; b++ {
				r0 := b * rows
				nr := min(rows, imgRows-r0)
				dcolsBlock(n*imgRows+r0, nr, cols[r0*kdim:(r0+nr)*kdim])
			}
		})
		dxi := dx[n*img : (n+1)*img]
		parallelFor(s.H, 1, func(lo, hi int) {
			for ih := lo; ih < hi; ih++ {
				row := dxi[ih*rowLen : (ih+1)*rowLen]
				clear(row)
				gatherPatchesRow(s, cols, ih, row)
			}
		})
	}
}

// convBackwardDataStrided1x1 is ConvBackwardData for a 1x1 kernel with strides (a ResNet
// shortcut) and no top or left padding: dx is zero but at the input positions
// (i*StrideH, j*StrideW), where it is dy's row times kᵀ (pkt). The CPUs take runs of
// images in turn, clear their dx and compute their rows of dy·kᵀ block by block, copying
// each row to its place (a plain copy, not col2im's sums: no two rows meet).
func convBackwardDataStrided1x1[T Float](s ConvShape, dy []T, pkt *PackedB[T], dx []T) {
	oh, ow := s.OutH(), s.OutW()
	img := s.H * s.W * s.C
	rows, _ := convBlocks[T](max(s.C, s.O), s.N*oh*ow)
	run := max(1, rows/(oh*ow)) // images a unit: about a block's rows
	units := (s.N + run - 1) / run
	convShare(units, func(_ int, next func() (int, bool)) {
		buf := getConvBuffer[T](max(rows, oh*ow) * s.C)
		defer putConvBuffer(buf)
		for u, ok := next(); ok; u, ok = next() {
			n0, n1 := u*run, min((u+1)*run, s.N)
			clear(dx[n0*img : n1*img])
			last := n1 * oh * ow
			for r0 := n0 * oh * ow; r0 < last; r0 += rows {
				nr := min(rows, last-r0)
				d := (*buf)[:nr*s.C]
				GemmPacked(false, nr, dy[r0*s.O:(r0+nr)*s.O], s.O, pkt, d, s.C, false)
				cur := newPatchCursor(oh, ow, r0)
				for r := range nr {
					// Positions in the bottom or right padding read no input.
					if ih, iw := cur.i*s.StrideH, cur.j*s.StrideW; ih < s.H && iw < s.W {
						at := ((cur.n*s.H+ih)*s.W + iw) * s.C
						copy(dx[at:at+s.C], d[r*s.C:(r+1)*s.C])
					}
					cur.next()
				}
			}
		}
	})
}

// transposed returns, for a stride-1 convolution s, the convolution t that computes s's
// input gradient from its output gradient: dx = t(dy) with t's kernel from
// transposedSource. Writing a' = KH-1-a,
//
//	dx[n, ih, iw, c] = Σ dy[n, ih + a'*DilH - PT', iw + b'*DilW - PL', o] · k[KH-1-a', KW-1-b', c, o]
//
// with PT' = (KH-1)*DilH - PadTop, PL' likewise, and end paddings that make t's output
// H x W. ok is false unless the strides are 1 and PT', PL' are not negative.
func (s ConvShape) transposed() (t ConvShape, ok bool) {
	if s.StrideH != 1 || s.StrideW != 1 {
		return ConvShape{}, false
	}
	oh, ow := s.OutH(), s.OutW()
	spanH, spanW := (s.KH-1)*s.DilH, (s.KW-1)*s.DilW
	t = ConvShape{
		N: s.N, H: oh, W: ow, C: s.O,
		KH: s.KH, KW: s.KW, O: s.C,
		StrideH: 1, StrideW: 1, DilH: s.DilH, DilW: s.DilW,
		PadTop: spanH - s.PadTop, PadLeft: spanW - s.PadLeft,
	}
	t.PadBottom = s.H - oh - t.PadTop + spanH
	t.PadRight = s.W - ow - t.PadLeft + spanW
	return t, t.PadTop >= 0 && t.PadLeft >= 0
}

// unflipKernel returns the kernel k [KH, KW, C, O] given the spatially reversed kernel
// flipped[a, b, c, o] = k[KH-1-a, KW-1-b, c, o], written into k (KH*KW*C*O elements).
func unflipKernel[T Float](s ConvShape, flipped, k []T) []T {
	tap := s.C * s.O
	k = k[:s.KH*s.KW*tap]
	for a := 0; a < s.KH; a++ {
		for b := 0; b < s.KW; b++ {
			src := ((s.KH-1-a)*s.KW + (s.KW - 1 - b)) * tap
			copy(k[(a*s.KW+b)*tap:(a*s.KW+b+1)*tap], flipped[src:src+tap])
		}
	}
	return k
}

// ConvBackwardFilter computes the gradient of Σ y·dy with respect to the kernel for the
// convolution s, overwriting dk [KH, KW, C, O].
//
// dk, viewed as [KH*KW*C, O], is colsᵀ·dy summed over blocks of patch rows: the CPUs take
// fixed groups of blocks in turn (convShare), each group summed into its own partial, and
// the partials are added in group order at the end, so that the result is the same however
// many CPUs share the work.
func ConvBackwardFilter[T Float](s ConvShape, x, dy, dk []T) {
	s.mustFit("ConvBackwardFilter", len(x), len(dk), len(dy))
	var z T
	if s.useDirect(int(unsafe.Sizeof(z)), true) {
		convBackwardFilterDirect(s, x, dy, dk)
		return
	}
	convBackwardFilterIm2col(s, x, dy, dk)
}

// convBackwardFilterIm2col is ConvBackwardFilter through blocks of the patch matrix.
func convBackwardFilterIm2col[T Float](s ConvShape, x, dy, dk []T) {
	m, kdim := s.N*s.OutH()*s.OutW(), s.KH*s.KW*s.C
	// The blocks, like their groups, do not depend on the number of CPUs.
	rows, blocks := convBlocksFor[T](kdim, m, convFilterGroups)
	pointwise := s.pointwise()
	dk = dk[:kdim*s.O]

	// The blocks are summed in fixed groups, each into its own partial (group 0's is dk),
	// and the partials in group order, so that the sums do not depend on which CPU took
	// which block: runs repeat bit for bit.
	groups := min(blocks, convFilterGroups)
	partials := make([]*[]T, groups)
	convShare(groups, func(_ int, next func() (int, bool)) {
		var cols []T
		if !pointwise {
			buf := getConvBuffer[T](rows * kdim)
			defer putConvBuffer(buf)
			cols = *buf
		}
		pdy := getPackedB[T](rows, s.O) // repacked block after block
		defer putPackedB(pdy)
		for g, ok := next(); ok; g, ok = next() {
			acc := dk
			if g > 0 {
				partials[g] = getConvBuffer[T](len(dk))
				acc = (*partials[g])[:len(dk)]
			}
			lo, hi := g*blocks/groups, (g+1)*blocks/groups
			for b := lo; b < hi; b++ {
				r0 := b * rows
				nr := min(rows, m-r0)
				var a []T
				if pointwise {
					a = x[r0*kdim : (r0+nr)*kdim]
				} else {
					a = cols[:nr*kdim]
					packPatches(s, x, r0, nr, a)
				}
				pdy.pack(false, nr, s.O, dy[r0*s.O:(r0+nr)*s.O], s.O)
				GemmPacked(true, kdim, a, kdim, pdy, acc, s.O, b > lo)
			}
		}
	})
	for _, p := range partials[1:] {
		addTo(dk, (*p)[:len(dk)])
		putConvBuffer(p)
	}
}

// convFilterGroups is the number of partial sums a kernel gradient is split into (fewer
// when there are fewer blocks or images): enough for the CPUs to share the work, and the
// same on every machine, so that the gradient does not depend on the number of CPUs.
const convFilterGroups = 8
