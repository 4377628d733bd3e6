package worker

import (
	"os/exec"
	"syscall"
)

// setParentDeath has the kernel kill the worker when Roro dies, even mid-render.
func setParentDeath(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
