package host

import (
	"os/exec"
	"syscall"
)

// setParentDeathSignal asks Linux to kill the plugin when the host dies, even by SIGKILL.
// (The SDK also exits when its parent changes, for the other systems.)
func setParentDeathSignal(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
