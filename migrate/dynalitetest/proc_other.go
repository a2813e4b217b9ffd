//go:build !linux

package dynalitetest

import "syscall"

// sysProcAttr has no Pdeathsig outside Linux; the test's cleanup kills dynalite.
func sysProcAttr() *syscall.SysProcAttr { return nil }
