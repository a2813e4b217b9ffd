package natsproc

import "syscall"

// sysProcAttr makes the kernel kill the server if the process that started it dies
// (Pdeathsig), and puts the server in its own process group, so a terminal's Ctrl-C
// reaches only that process, which stops the server when it is ready to.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
}
