package dynalitetest

import "syscall"

// sysProcAttr makes the kernel kill dynalite if the test process dies (Pdeathsig), so
// no server outlives a crashed or killed test binary.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
