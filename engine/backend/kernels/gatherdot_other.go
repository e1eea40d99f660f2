//go:build !amd64 || purego

package kernels

import "unsafe"

// prefetchLines does nothing without assembly.
func prefetchLines(p unsafe.Pointer, n int) {}
