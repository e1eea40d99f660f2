//go:build linux

package kernels

import (
	"time"

	"golang.org/x/sys/unix"
)

// threadCPUTime is the CPU time of the calling OS thread, or zero where it cannot be read:
// with GOMAXPROCS 1 and the goroutine locked to its thread, the time a kernel ran for,
// not counting other processes' turns on a shared machine.
func threadCPUTime() time.Duration {
	var ts unix.Timespec
	if unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts) != nil {
		return 0
	}
	return time.Duration(ts.Nano())
}
