//go:build amd64 && !purego

package kernels

// bnAsmF32 reports whether the float32 batch-norm loops run in assembly (AVX-512 only; the
// AVX2 path uses the plain-Go loops).
func bnAsmF32() bool { return activeISA == isaAVX512 }

// The assembly in batchnorm_amd64.s; see there and the Go loops in batchnorm.go for what each
// computes. c = len(s) or len(mean) must be positive, and x (and y, dy, dx) whole rows.

//go:noescape
func bnSumF32AVX512(x []float32, s []float64)

//go:noescape
func bnSqDevF32AVX512(x []float32, mean, sq []float64)

//go:noescape
func bnGradSumsF32AVX512(x, y, dy []float32, mean, sg, sgx []float64)

//go:noescape
func bnApplyF32AVX512(x, y, coef []float32, c int, relu bool)

//go:noescape
func bnDxF32AVX512(x, y, dy, dx, coef []float32, c int)
