//go:build !linux

package natsproc

import "syscall"

// sysProcAttr returns nil: Pdeathsig exists only on Linux, so elsewhere a server can
// outlive a process that is killed, and a terminal's Ctrl-C reaches it directly.
func sysProcAttr() *syscall.SysProcAttr {
	return nil
}
