package testbed

import (
	"os/exec"
	"syscall"
)

// setDeathSignal makes the kernel kill the child if this process dies, so
// a load test killed mid-run leaves no pushupd behind. (Strictly, when the
// OS thread that started it exits; Go keeps its threads unless a goroutine
// locked to one ends, which this package never does.)
func setDeathSignal(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
