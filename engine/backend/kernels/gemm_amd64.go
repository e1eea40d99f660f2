//go:build amd64 && !purego

package kernels

import "unsafe"

// The micro-kernels compute one tile of C = A·B over k steps (see gemm.go): A's element
// (r, q) is at a + r*rs + q*cs elements, b is a packed panel (k rows of 64 bytes), and
// the tile's rows are ldc elements apart in c. With acc the tile is added to c.

//go:noescape
func gemmAVX512F32(k int, a unsafe.Pointer, rs, cs int, b, c unsafe.Pointer, ldc int, acc bool)

//go:noescape
func gemmAVX512F64(k int, a unsafe.Pointer, rs, cs int, b, c unsafe.Pointer, ldc int, acc bool)

//go:noescape
func gemmAVX2F32(k int, a unsafe.Pointer, rs, cs int, b, c unsafe.Pointer, ldc int, acc bool)

//go:noescape
func gemmAVX2F64(k int, a unsafe.Pointer, rs, cs int, b, c unsafe.Pointer, ldc int, acc bool)

// gemmAsmRows is the number of rows of the assembly micro-kernel of this ISA and element
// size, 0 where there is none (plain Go).
func gemmAsmRows(i isa, size uintptr) int {
	switch i {
	case isaAVX512:
		return 24
	case isaAVX2:
		return 6
	}
	return 0
}

// gemmAsmKernel runs the assembly micro-kernel of isa i for elements of size bytes on a
// full tile (gemmAsmRows(i, size) rows, one packed panel wide).
func gemmAsmKernel(i isa, size uintptr, k int, a unsafe.Pointer, rs, cs int, b, c unsafe.Pointer, ldc int, acc bool) {
	switch {
	case i == isaAVX512 && size == 4:
		gemmAVX512F32(k, a, rs, cs, b, c, ldc, acc)
	case i == isaAVX512:
		gemmAVX512F64(k, a, rs, cs, b, c, ldc, acc)
	case size == 4:
		gemmAVX2F32(k, a, rs, cs, b, c, ldc, acc)
	default:
		gemmAVX2F64(k, a, rs, cs, b, c, ldc, acc)
	}
}
