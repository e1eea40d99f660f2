//go:build race

package kernels

// gemmRace: the race detector is on (sync.Pool drops items and instrumentation may
// allocate), so the allocation checks are off.
const gemmRace = true
