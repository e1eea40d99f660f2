//go:build !amd64 || purego

package kernels

// Without assembly the batch-norm loops are the plain-Go ones; the stubs below are never
// called.

func bnAsmF32() bool { return false }

func bnSumF32AVX512(x []float32, s []float64)                         { panic("unreachable") }
func bnSqDevF32AVX512(x []float32, mean, sq []float64)                { panic("unreachable") }
func bnGradSumsF32AVX512(x, y, dy []float32, mean, sg, sgx []float64) { panic("unreachable") }
func bnApplyF32AVX512(x, y, coef []float32, c int, relu bool)         { panic("unreachable") }
func bnDxF32AVX512(x, y, dy, dx, coef []float32, c int)               { panic("unreachable") }
