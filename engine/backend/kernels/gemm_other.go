//go:build !amd64 || purego

package kernels

import "unsafe"

// gemmAsmRows is 0: there are no assembly micro-kernels in this build.
func gemmAsmRows(i isa, size uintptr) int { return 0 }

// gemmAsmKernel is never called in this build (gemmAsmRows is 0).
func gemmAsmKernel(i isa, size uintptr, k int, a unsafe.Pointer, rs, cs int, b, c unsafe.Pointer, ldc int, acc bool) {
	panic("kernels: no assembly in this build")
}
