//go:build !linux

package natsproc

import "syscall"

// sysProcAttr returns nil: Pdeathsig exists only on Linux, so elsewhere a server can
// outlive a test binary that is killed.
func sysProcAttr() *syscall.SysProcAttr {
	return nil
}
