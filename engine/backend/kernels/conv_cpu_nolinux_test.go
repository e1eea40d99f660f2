//go:build !linux

package kernels

import "time"

// threadCPUTime is zero where a thread's CPU time is not read.
func threadCPUTime() time.Duration { return 0 }
