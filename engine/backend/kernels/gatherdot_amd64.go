//go:build amd64 && !purego

package kernels

import "unsafe"

// prefetchLines asks the CPU to bring the n > 0 bytes at p into its caches.
//
//go:noescape
func prefetchLines(p unsafe.Pointer, n int)
