package kernels

import (
	"math/bits"
	"runtime"
	"sync"
	"unsafe"
)

// Matrix products.
//
// Tiling. op(b) ([k, n]) is packed into panels of gemmPanelWidth columns (16 float32 or
// 8 float64: one 64-byte row of a panel is one AVX-512 vector), the last panel padded
// with zeros. A micro-kernel (assembly, gemm_amd64.s) computes a tile of C of MR rows by
// one panel, holding the whole tile in vector registers (AVX-512: 24 rows, 24 zmm
// accumulators; AVX2: 6 rows, two ymm a row) and, for each step of k, loads one panel row
// and broadcasts one value of A a row into fused multiply-adds. A's element (r, q) is
// addressed as a + r*rs + q*cs, so the same kernel reads a (rs = lda, cs = 1) and aᵀ
// (rs = 1, cs = lda) in place.
//
// Blocking (gemmPanels). k is cut into blocks of gemmBlockK steps (512 bytes of a row of
// A), and B is packed block by block, so that a row tile of A's block stays in the L1
// cache while it is run over a group of panels whose block (up to gemmBlockBytes) stays
// in L2; rows are taken in blocks whose part of C fits in gemmBlockBytes too, so that C
// stays in L2 over the k blocks (blocks after the first add to C); when all of B fits,
// each row tile runs over all of k in turn instead. A row tile of a (not aᵀ) is read in
// place when it meets few panels, and otherwise copied into a small contiguous buffer
// first: cheaper than reading it strided for every panel, and rows a multiple of 4 KiB
// apart would evict each other from the cache.
//
// Edges. Tiles with fewer than MR rows left have their rows of A copied (zero-padded);
// tiles of the last, narrower panel (or short of rows) compute into a full-size scratch
// tile that is then copied into C, so the assembly never reads or writes past a slice.
//
// The plain-Go path (gemmTileGo) uses the same panels with a 2x4 register tile of
// scalars.

// gemmBlockK is the depth of the k blocks: 128 float32 or 64 float64 (512 bytes), so that
// a row tile of A (24 rows of it, 12 KiB) stays in the L1 cache, next to the panel block it
// is multiplied with, while it is run over the panels.
func gemmBlockK[T Float]() int {
	var z T
	return 512 / int(unsafe.Sizeof(z))
}

// gemmCopyPanels is the number of panels from which a row tile of a (not aᵀ) is copied
// rather than read in place.
const gemmCopyPanels = 4

// gemmBlockBytes bounds the size of the part of a k block of packed B (a group of panels)
// that every row tile of A is run over, so that it stays in the L2 cache.
const gemmBlockBytes = 256 << 10

// gemmPanelWidth is the number of columns of a packed panel of B for elements of T.
func gemmPanelWidth[T Float]() int {
	var z T
	return 64 / int(unsafe.Sizeof(z))
}

// PackedB is op(b) ([k, n]) packed once for many products with it (a convolution's
// kernel used for every block of image patches). See GemmPacked.
type PackedB[T Float] struct {
	k, n   int
	nr     int // panel width
	panels int
	data   []T // panels*k*nr values, k block after k block (see panel)
}

// K is the number of rows of op(b).
func (p *PackedB[T]) K() int { return p.k }

// N is the number of columns of op(b).
func (p *PackedB[T]) N() int { return p.n }

// PackB packs op(b) ([k, n]) for GemmPacked: b is [k, n], or [n, k] with transB, row-major
// with leading dimension ldb.
func PackB[T Float](transB bool, k, n int, b []T, ldb int) *PackedB[T] {
	p := &PackedB[T]{}
	p.pack(transB, k, n, b, ldb)
	return p
}

// resize makes p hold a [k, n] matrix in panels, reusing p.data when it is large enough.
func (p *PackedB[T]) resize(k, n int) {
	nr := gemmPanelWidth[T]()
	panels := (n + nr - 1) / nr
	size := panels * k * nr
	if cap(p.data) < size {
		p.data = make([]T, size)
	}
	p.k, p.n, p.nr, p.panels, p.data = k, n, nr, panels, p.data[:size]
}

// pack fills p with op(b), reusing p.data when it is large enough.
func (p *PackedB[T]) pack(transB bool, k, n int, b []T, ldb int) {
	p.resize(k, n)
	nr, panels := p.nr, p.panels
	kb := gemmBlockK[T]()
	for p0 := 0; p0 < k; p0 += kb {
		kc := min(kb, k-p0)
		for jp := range panels {
			j0 := jp * nr
			cols := min(nr, n-j0)
			panel := p.panel(p0, kc, jp)
			if cols < nr {
				clear(panel)
			}
			if !transB {
				for q := range kc {
					src := (p0+q)*ldb + j0
					copy(panel[q*nr:q*nr+cols], b[src:src+cols])
				}
				continue
			}
			for j := range cols {
				src := (j0+j)*ldb + p0
				for q, v := range b[src : src+kc] {
					panel[q*nr+j] = v
				}
			}
		}
	}
}

// packTaps fills p with a stack of transposed matrices, as a convolution's input gradient
// needs its kernel: op(b) is [len(taps)*kr, n], and its row t*kr+q, column j is
// src[taps[t]*kr*n + j*kr + q], the transpose of the [n, kr] matrix at taps[t]. Each panel
// block is written from runs of src that are contiguous along q.
func (p *PackedB[T]) packTaps(src []T, taps []int, kr, n int) {
	k := len(taps) * kr
	p.resize(k, n)
	nr, panels := p.nr, p.panels
	kb := gemmBlockK[T]()
	for p0 := 0; p0 < k; p0 += kb {
		kc := min(kb, k-p0)
		for jp := range panels {
			j0 := jp * nr
			cols := min(nr, n-j0)
			panel := p.panel(p0, kc, jp)
			if cols < nr {
				clear(panel)
			}
			for q0 := 0; q0 < kc; {
				t, q := (p0+q0)/kr, (p0+q0)%kr
				run := min(kc-q0, kr-q) // steps left in this tap
				base := taps[t]*kr*n + q
				for j := range cols {
					from := src[base+(j0+j)*kr : base+(j0+j)*kr+run]
					to := panel[q0*nr+j:]
					for i, v := range from {
						to[i*nr] = v
					}
				}
				q0 += run
			}
		}
	}
}

// panel is the block of steps [p0, p0+kc) of panel jp: kc rows of nr values. The k
// blocks are stored one after the other, each holding the block of every panel in turn,
// so that a group of panels' block is contiguous in memory: had every panel been stored
// whole, the blocks of consecutive panels would lie k*nr elements apart, often a
// multiple of 4 KiB, and evict each other from the caches.
func (p *PackedB[T]) panel(p0, kc, jp int) []T {
	base := p0*p.panels*p.nr + jp*kc*p.nr
	return p.data[base : base+kc*p.nr]
}

// GemmPacked computes c = op(a)·p (or c += with accumulate) for op(a) [m, p.K()], on the
// calling goroutine only (callers parallelise over blocks of rows themselves). op(a) is a
// stored row-major [m, p.K()] with leading dimension lda, or with transA a stored
// [p.K(), m]; c is [m, p.N()] with leading dimension ldc.
func GemmPacked[T Float](transA bool, m int, a []T, lda int, p *PackedB[T], c []T, ldc int, accumulate bool) {
	gemmPanels(transA, m, a, lda, p, 0, p.panels, c, ldc, accumulate)
}

// gemmScratch holds the copied tiles of A and the edge tiles of C of one gemmPanels call.
type gemmScratch[T Float] struct {
	a []T // MR rows of a k block of A, zero-padded
	c []T // one MR x panel tile of C
}

var gemmScratchPool sync.Pool // *gemmScratch[T] for any T

// gemmPanels computes the columns of panels [j0, j1) of c = op(a)·p (see GemmPacked).
func gemmPanels[T Float](transA bool, m int, a []T, lda int, p *PackedB[T], j0, j1 int, c []T, ldc int, acc bool) {
	k, n, nr := p.k, p.n, p.nr
	if m <= 0 || n <= 0 || j0 >= j1 {
		return
	}
	if k == 0 {
		if !acc {
			lo, hi := j0*nr, min(j1*nr, n)
			for i := range m {
				clear(c[i*ldc+lo : i*ldc+hi])
			}
		}
		return
	}
	rs, cs := lda, 1
	if transA {
		rs, cs = 1, lda
	}
	var z T
	size := unsafe.Sizeof(z)
	mr := gemmAsmRows(activeISA, size)
	if mr == 0 {
		for p0 := 0; p0 < k; p0 += gemmBlockK[T]() {
			kc := min(gemmBlockK[T](), k-p0)
			for jp := j0; jp < j1; jp++ {
				cols := min(nr, n-jp*nr)
				panel := p.panel(p0, kc, jp)
				gemmTileGo(m, cols, kc, a, p0*cs, rs, cs, panel, nr, c, jp*nr, ldc, acc || p0 > 0)
			}
		}
		return
	}

	blockK := gemmBlockK[T]()
	s, _ := gemmScratchPool.Get().(*gemmScratch[T])
	if s == nil {
		s = &gemmScratch[T]{}
	}
	if cap(s.a) < mr*blockK {
		s.a = make([]T, mr*blockK)
	}
	if cap(s.c) < mr*nr {
		s.c = make([]T, mr*nr)
	}
	defer gemmScratchPool.Put(s)
	// Rows are taken in blocks whose part of C fits in gemmBlockBytes, so that C stays in
	// the L2 cache over the k blocks; panels in groups whose k block does.
	group := max(1, gemmBlockBytes/(blockK*64))
	width := min(j1*nr, n) - j0*nr
	mc := max(mr, gemmBlockBytes/(width*int(size))/mr*mr)
	if k*width*int(size) <= gemmBlockBytes {
		// All of B stays in cache: run each row tile over all of k before the next, so
		// that its rows of A are read from start to end, as the prefetchers like.
		mc = mr
	}
	for i0 := 0; i0 < m; i0 += mc {
		rows := min(mc, m-i0)
		ab, cb := a[i0*rs:], c[i0*ldc:]
		for p0 := 0; p0 < k; p0 += blockK {
			kc := min(blockK, k-p0)
			blockAcc := acc || p0 > 0
			for g0 := j0; g0 < j1; g0 += group {
				g1 := min(g0+group, j1)
				gemmRowTiles(rows, mr, kc, p0, ab, rs, cs, p, g0, g1, cb, ldc, blockAcc, s)
			}
		}
	}
}

// gemmRowTiles runs the assembly micro-kernel over every row tile of A and every panel of
// [j0, j1) for the k block [p0, p0+kc) (see gemmPanels); s is the scratch for edge tiles.
func gemmRowTiles[T Float](m, mr, kc, p0 int, a []T, rs, cs int, p *PackedB[T], j0, j1 int, c []T, ldc int, blockAcc bool, s *gemmScratch[T]) {
	n, nr := p.n, p.nr
	size := unsafe.Sizeof(p.data[0])
	// A tile of a (rows strided, each read a value at a time) is copied when it is run over
	// several panels; a tile of aᵀ (each step's values side by side) is read in place as
	// well as a copy would be. Either is copied when its rows or steps are a multiple of
	// 2 KiB apart (they would fall in the same few sets of the L1 cache and evict each
	// other), and always when fewer than mr rows are left.
	stride := max(rs, cs) * int(size)
	copyAll := cs == 1 && j1-j0 >= gemmCopyPanels || stride%2048 == 0
	for i0 := 0; i0 < m; i0 += mr {
		rows := min(mr, m-i0)
		ap, ars, acs := unsafe.Pointer(&a[i0*rs+p0*cs]), rs, cs
		if rows < mr || copyAll {
			ars, acs = gemmCopyA(s.a, a, i0, rows, mr, p0, kc, rs, cs)
			ap = unsafe.Pointer(&s.a[0])
		}
		for jp := j0; jp < j1; jp++ {
			col := jp * nr
			cols := min(nr, n-col)
			bp := unsafe.Pointer(&p.panel(p0, kc, jp)[0])
			if rows == mr && cols == nr {
				gemmAsmKernel(activeISA, size, kc, ap, ars, acs, bp, unsafe.Pointer(&c[i0*ldc+col]), ldc, blockAcc)
				continue
			}
			sc := s.c[:mr*nr]
			if blockAcc {
				for r := range rows {
					copy(sc[r*nr:r*nr+cols], c[(i0+r)*ldc+col:])
				}
			}
			gemmAsmKernel(activeISA, size, kc, ap, ars, acs, bp, unsafe.Pointer(&sc[0]), nr, blockAcc)
			for r := range rows {
				copy(c[(i0+r)*ldc+col:(i0+r)*ldc+col+cols], sc[r*nr:r*nr+cols])
			}
		}
	}
}

// gemmCopyA copies rows [i0, i0+rows) and steps [p0, p0+kc) of A (element (r, q) at
// a[r*rs + q*cs]) into dst, zero-padded to mr rows, and returns dst's rs and cs. Either rs
// or cs is 1: contiguous runs of A are copied as they are.
func gemmCopyA[T Float](dst, a []T, i0, rows, mr, p0, kc, rs, cs int) (int, int) {
	dst = dst[:mr*kc]
	if cs == 1 {
		for r := range rows {
			src := (i0+r)*rs + p0
			copy(dst[r*kc:(r+1)*kc], a[src:src+kc])
		}
		clear(dst[rows*kc:])
		return kc, 1
	}
	for q := range kc {
		src := (p0+q)*cs + i0
		copy(dst[q*mr:q*mr+rows], a[src:src+rows])
		clear(dst[q*mr+rows : (q+1)*mr])
	}
	return 1, mr
}

// gemmTileGo computes c[:m, col:col+cols] (+)= A·B for a k block of kc steps in plain Go:
// A's element (r, q) is a[aOff + r*rs + q*cs], B is a packed panel slice (kc rows of nr)
// and c's element (r, j) is c[r*ldc + col + j]; kc is at most 256. Blocks of 2x4 of C
// are held in scalars, over two rows of A copied side by side: the eight accumulators, the
// two values of A and a product fit in amd64's sixteen floating-point registers (B's values
// are read from memory by each multiplication).
func gemmTileGo[T Float](m, cols, kc int, a []T, aOff, rs, cs int, b []T, nr int, c []T, col, ldc int, acc bool) {
	// A's two rows, interleaved step by step: [kc][2].
	var buf [2 * 256]T
	at := buf[:2*kc]
	i := 0
	for ; i+2 <= m; i += 2 {
		pa := aOff + i*rs
		for q := range kc {
			a2 := at[2*q : 2*q+2 : 2*q+2]
			a2[0], a2[1] = a[pa], a[pa+rs]
			pa += cs
		}
		j := 0
		for ; j+4 <= cols; j += 4 {
			c00, c01, c02, c03, c10, c11, c12, c13 := gemmDot2x4(at, b[j:], nr)
			gemmStore4(c[i*ldc+col+j:], acc, c00, c01, c02, c03)
			gemmStore4(c[(i+1)*ldc+col+j:], acc, c10, c11, c12, c13)
		}
		for ; j < cols; j++ {
			var c0, c1 T
			for q := range kc {
				a2 := at[2*q : 2*q+2 : 2*q+2]
				bv := b[q*nr+j]
				c0 += a2[0] * bv
				c1 += a2[1] * bv
			}
			gemmStore1(c, i*ldc+col+j, acc, c0)
			gemmStore1(c, (i+1)*ldc+col+j, acc, c1)
		}
	}
	for ; i < m; i++ {
		for j := range cols {
			var sum T
			pa := aOff + i*rs
			for q := range kc {
				sum += a[pa] * b[q*nr+j]
				pa += cs
			}
			gemmStore1(c, i*ldc+col+j, acc, sum)
		}
	}
}

// gemmDot2x4 is the inner loop of gemmTileGo, on its own so that the compiler keeps its
// few values in registers: the products of two rows of A side by side (at, [kc][2]) and
// the first four columns of b (kc rows of nr).
func gemmDot2x4[T Float](at, b []T, nr int) (c00, c01, c02, c03, c10, c11, c12, c13 T) {
	for len(at) >= 2 && len(b) >= 4 {
		a0, a1 := at[0], at[1]
		b0, b1, b2, b3 := b[0], b[1], b[2], b[3]
		c00 += a0 * b0
		c01 += a0 * b1
		c02 += a0 * b2
		c03 += a0 * b3
		c10 += a1 * b0
		c11 += a1 * b1
		c12 += a1 * b2
		c13 += a1 * b3
		at = at[2:]
		if len(at) == 0 {
			break
		}
		b = b[nr:]
	}
	return
}

// gemmStore1 stores (or adds, with acc) v at c[i].
func gemmStore1[T Float](c []T, i int, acc bool, v T) {
	if acc {
		v += c[i]
	}
	c[i] = v
}

// gemmStore4 stores (or adds, with acc) four values at the start of c.
func gemmStore4[T Float](c []T, acc bool, v0, v1, v2, v3 T) {
	c = c[:4]
	if acc {
		v0 += c[0]
		v1 += c[1]
		v2 += c[2]
		v3 += c[3]
	}
	c[0], c[1], c[2], c[3] = v0, v1, v2, v3
}

// gemmPackPools recycle the packed B of Gemm and of the convolutions (*PackedB[T] for
// any T) by size class of their memory, as convBuffers do: fresh memory costs more than
// packing into memory already used.
var gemmPackPools [64]sync.Pool

// getPackedB returns a recycled PackedB (or a new one) for pack to fill with a [k, n]
// matrix, and putPackedB recycles it.
func getPackedB[T Float](k, n int) *PackedB[T] {
	nr := gemmPanelWidth[T]()
	c := sizeClass((n + nr - 1) / nr * nr * k)
	if p, ok := gemmPackPools[c].Get().(*PackedB[T]); ok {
		return p
	} // one of the other element type is dropped
	return &PackedB[T]{data: make([]T, 0, 1<<c)} // a whole size class, for the pool
}

func putPackedB[T Float](p *PackedB[T]) {
	if c := cap(p.data); c > 0 {
		gemmPackPools[bits.Len(uint(c))-1].Put(p)
	}
}

// Repack packs op(b) ([k, n], as for PackB) into p, reusing p's memory when it is large
// enough: for products with many matrices in turn, such as the blocks of a convolution's
// output gradient.
func (p *PackedB[T]) Repack(transB bool, k, n int, b []T, ldb int) { p.pack(transB, k, n, b, ldb) }

// gemmMinFlops is the least work worth a goroutine.
const gemmMinFlops = 1 << 18

// Gemm computes c = op(a)·op(b), or c += op(a)·op(b) when accumulate. op(a) is [m, k],
// op(b) is [k, n], c is [m, n]; all row-major with leading dimensions lda, ldb, ldc. With
// transA, a is stored as [k, m] (so op(a) = aᵀ); with transB, b is stored as [n, k]. It
// splits the work over the CPUs (parallelFor): over blocks of rows of c, or over panels
// of columns when there are too few rows to keep every CPU busy.
func Gemm[T Float](transA, transB bool, m, n, k int, a []T, lda int, b []T, ldb int, c []T, ldc int, accumulate bool) {
	if m <= 0 || n <= 0 {
		return
	}
	if k <= 0 {
		if !accumulate {
			for i := range m {
				clear(c[i*ldc : i*ldc+n])
			}
		}
		return
	}
	p := getPackedB[T](k, n)
	defer putPackedB(p)
	p.pack(transB, k, n, b, ldb)

	var z T
	mr := max(gemmAsmRows(activeISA, unsafe.Sizeof(z)), 4)
	tiles := (m + mr - 1) / mr
	tileFlops := 2 * mr * n * k
	grain := max(1, gemmMinFlops/tileFlops)
	workers := runtime.GOMAXPROCS(0)
	if tiles < 2*workers && p.panels >= 2*tiles {
		// Few rows, many columns: split the panels.
		grain := max(1, gemmMinFlops/(2*m*p.nr*k))
		parallelFor(p.panels, grain, func(lo, hi int) {
			gemmPanels(transA, m, a, lda, p, lo, hi, c, ldc, accumulate)
		})
		return
	}
	parallelFor(tiles, grain, func(lo, hi int) {
		i0, i1 := lo*mr, min(hi*mr, m)
		aOff := i0 * lda
		if transA {
			aOff = i0
		}
		gemmPanels(transA, i1-i0, a[aOff:], lda, p, 0, p.panels, c[i0*ldc:], ldc, accumulate)
	})
}
