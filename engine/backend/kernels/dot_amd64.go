//go:build amd64 && !purego

package kernels

// dotF32 and the other dispatchers call the assembly for activeISA. Their callers guarantee
// len(b) == len(a) (dot) and len(y) == len(x) (axpy), which the assembly relies on.

func dotF32(a, b []float32) float32 {
	switch activeISA {
	case isaAVX512:
		return dotF32AVX512(a, b)
	case isaAVX2:
		return dotF32AVX2(a, b)
	}
	return dotGo(a, b)
}

func dotF64(a, b []float64) float64 {
	switch activeISA {
	case isaAVX512:
		return dotF64AVX512(a, b)
	case isaAVX2:
		return dotF64AVX2(a, b)
	}
	return dotGo(a, b)
}

func axpyF32(alpha float32, x, y []float32) {
	switch activeISA {
	case isaAVX512:
		axpyF32AVX512(alpha, x, y)
	case isaAVX2:
		axpyF32AVX2(alpha, x, y)
	default:
		axpyGo(alpha, x, y)
	}
}

func axpyF64(alpha float64, x, y []float64) {
	switch activeISA {
	case isaAVX512:
		axpyF64AVX512(alpha, x, y)
	case isaAVX2:
		axpyF64AVX2(alpha, x, y)
	default:
		axpyGo(alpha, x, y)
	}
}

// The assembly in dot_amd64.s. Each reads len(a) (or len(x)) elements of both slices.

//go:noescape
func dotF32AVX512(a, b []float32) float32

//go:noescape
func dotF64AVX512(a, b []float64) float64

//go:noescape
func dotF32AVX2(a, b []float32) float32

//go:noescape
func dotF64AVX2(a, b []float64) float64

//go:noescape
func axpyF32AVX512(alpha float32, x, y []float32)

//go:noescape
func axpyF64AVX512(alpha float64, x, y []float64)

//go:noescape
func axpyF32AVX2(alpha float32, x, y []float32)

//go:noescape
func axpyF64AVX2(alpha float64, x, y []float64)
