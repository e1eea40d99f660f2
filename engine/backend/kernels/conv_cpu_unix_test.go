//go:build unix

package kernels

import (
	"syscall"
	"time"
)

// processCPUTime is the CPU time (user and system) that the process has used so far, or
// zero where it cannot be read.
func processCPUTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
