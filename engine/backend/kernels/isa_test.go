package kernels

import (
	"math/rand/v2"
	"testing"
)

// forEachISA runs fn once per instruction set this CPU supports (plain Go always), as a
// subtest named after it.
func forEachISA(t *testing.T, fn func(t *testing.T)) {
	t.Helper()
	defer func() { activeISA = hostISA }()
	for _, i := range supportedISAs() {
		activeISA = i
		t.Run(i.String(), fn)
	}
}

// randSlice returns n values uniform in [-1, 1).
func randSlice[T Float](rng *rand.Rand, n int) []T {
	s := make([]T, n)
	for i := range s {
		s[i] = T(2*rng.Float64() - 1)
	}
	return s
}
