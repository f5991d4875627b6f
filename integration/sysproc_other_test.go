//go:build !linux

package integration

import "syscall"

// sysProcAttr puts a subprocess in a process group of its own.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
