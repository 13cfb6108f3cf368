//go:build !linux

package testbed

import "os/exec"

// setDeathSignal: only Linux offers Pdeathsig; elsewhere Stop must run.
func setDeathSignal(*exec.Cmd) {}
