//go:build !unix

package kernels

import "time"

// processCPUTime is zero where the process's CPU time is not read.
func processCPUTime() time.Duration { return 0 }
