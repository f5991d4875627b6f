//go:build linux

package integration

import "syscall"

// sysProcAttr puts a subprocess in a process group of its own and has the
// kernel send it SIGTERM if the test binary dies without cleaning up (a
// panic, a -timeout), so that no Vault or emulator outlives the run.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}
