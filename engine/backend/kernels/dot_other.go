//go:build !amd64 || purego

package kernels

// Without assembly the primitives are the plain-Go loops.

func dotF32(a, b []float32) float32         { return dotGo(a, b) }
func dotF64(a, b []float64) float64         { return dotGo(a, b) }
func axpyF32(alpha float32, x, y []float32) { axpyGo(alpha, x, y) }
func axpyF64(alpha float64, x, y []float64) { axpyGo(alpha, x, y) }
