//go:build !race

package kernels

// gemmRace: the race detector is off.
const gemmRace = false
