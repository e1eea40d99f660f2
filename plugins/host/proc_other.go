//go:build !linux

package host

import "os/exec"

// setParentDeathSignal does nothing where the system cannot signal a parent's death; the
// SDK's plugins watch their parent instead.
func setParentDeathSignal(*exec.Cmd) {}
