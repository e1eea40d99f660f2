package kernels

import "unsafe"

// This file holds the vector primitives that the batch-norm and gather-and-dot kernels (and
// anyone else in the package) build on. The generic entry points pick the float32 or float64
// path by element size and then the instruction set by activeISA; dot_amd64.go and
// dot_other.go hold the per-architecture dispatch.

// dot returns Σ a[i]·b[i]. It panics if b is shorter than a; elements of b past len(a) are
// ignored. The sum is accumulated in T in an order that depends on the instruction set.
func dot[T Float](a, b []T) T {
	b = b[:len(a)]
	if len(a) == 0 {
		return 0
	}
	if isF32[T]() {
		return T(dotF32(asF32(a), asF32(b)))
	}
	return T(dotF64(asF64(a), asF64(b)))
}

// axpy adds alpha·x to y element by element (y[i] += alpha·x[i]). It panics if y is shorter
// than x; elements of y past len(x) are left alone.
func axpy[T Float](alpha T, x, y []T) {
	y = y[:len(x)]
	if len(x) == 0 {
		return
	}
	if isF32[T]() {
		axpyF32(float32(alpha), asF32(x), asF32(y))
		return
	}
	axpyF64(float64(alpha), asF64(x), asF64(y))
}

// isF32 reports whether T is 4 bytes wide (float32 or a type defined on it); the compiler
// folds it to a constant in each instantiation.
func isF32[T Float]() bool {
	var z T
	return unsafe.Sizeof(z) == 4
}

// asF32 views s, whose element type has float32 as its underlying type, as []float32.
func asF32[T Float](s []T) []float32 {
	return unsafe.Slice((*float32)(unsafe.Pointer(unsafe.SliceData(s))), len(s))
}

// asF64 views s, whose element type has float64 as its underlying type, as []float64.
func asF64[T Float](s []T) []float64 {
	return unsafe.Slice((*float64)(unsafe.Pointer(unsafe.SliceData(s))), len(s))
}

// dotGo is the plain-Go dot product, unrolled four ways with four partial sums.
func dotGo[T Float](a, b []T) T {
	b = b[:len(a)]
	var s0, s1, s2, s3 T
	i := 0
	for ; i+4 <= len(a); i += 4 {
		aa := a[i : i+4 : i+4]
		bb := b[i : i+4 : i+4]
		s0 += aa[0] * bb[0]
		s1 += aa[1] * bb[1]
		s2 += aa[2] * bb[2]
		s3 += aa[3] * bb[3]
	}
	for ; i < len(a); i++ {
		s0 += a[i] * b[i]
	}
	return (s0 + s1) + (s2 + s3)
}

// axpyGo is the plain-Go y += alpha·x, unrolled four ways.
func axpyGo[T Float](alpha T, x, y []T) {
	y = y[:len(x)]
	i := 0
	for ; i+4 <= len(x); i += 4 {
		xx := x[i : i+4 : i+4]
		yy := y[i : i+4 : i+4]
		yy[0] += alpha * xx[0]
		yy[1] += alpha * xx[1]
		yy[2] += alpha * xx[2]
		yy[3] += alpha * xx[3]
	}
	for ; i < len(x); i++ {
		y[i] += alpha * x[i]
	}
}
