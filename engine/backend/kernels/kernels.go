// Package kernels holds goselfsup's native CPU kernels: matrix products, convolutions in the
// three layouts that autodiff emits, batch normalisation for training (fused with a ReLU or
// not), the ReLU's mask and the NPID head's gather-and-dot. The engine's CPU backend runs
// them between pieces of GoMLX's pure-Go backend.
//
// Every kernel is generic over float32 and float64, works on flat row-major slices, splits
// its work over the CPUs itself, and has a plain-Go path. Go assembly (AVX-512 or AVX2,
// chosen at run time with golang.org/x/sys/cpu) speeds up the inner loops where the CPU has
// it; the purego build tag switches the assembly off.
package kernels

import (
	"runtime"
	"sync"
)

// Float is the element type of the kernels.
type Float interface {
	~float32 | ~float64
}

// parallelFor calls fn on disjoint ranges [lo, hi) that cover [0, n), at most one range per
// CPU and none shorter than grain (except when n itself is), and waits for them.
func parallelFor(n, grain int, fn func(lo, hi int)) {
	if n <= 0 {
		return
	}
	workers := runtime.GOMAXPROCS(0)
	if grain < 1 {
		grain = 1
	}
	if most := (n + grain - 1) / grain; workers > most {
		workers = most
	}
	if workers <= 1 {
		fn(0, n)
		return
	}
	var wg sync.WaitGroup
	chunk := (n + workers - 1) / workers
	for lo := 0; lo < n; lo += chunk {
		hi := min(lo+chunk, n)
		wg.Add(1)
		go func() {
			defer wg.Done()
			fn(lo, hi)
		}()
	}
	wg.Wait()
}
