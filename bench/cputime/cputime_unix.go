//go:build unix

// Package cputime reads how much CPU time a process has used: this one (getrusage), or
// another by its process id (/proc/<pid>/stat). The benchmarks report CPU per event
// from it, which holds better than throughput on a shared machine.
package cputime

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"syscall"
	"time"
)

// Self returns the CPU time (user plus system, all threads) this process has used so
// far, or 0 if it cannot be read.
func Self() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// userHZ is the unit of the CPU times in /proc/<pid>/stat: Linux reports them in
// USER_HZ, 100 ticks a second on every architecture it supports.
const userHZ = 100

// Of returns the CPU time (user plus system, all threads) process pid has used so
// far, from /proc/<pid>/stat (10 ms resolution).
func Of(pid int) (time.Duration, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, fmt.Errorf("cpu of process %d: %w", pid, err)
	}
	// The command name, in parentheses, may hold spaces: fields count from after it.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("cpu of process %d: unreadable /proc stat", pid)
	}
	fields := bytes.Fields(b[i+1:])
	// After the name: state (field 3) ... utime (14) and stime (15).
	const utime, stime = 14 - 3, 15 - 3
	if len(fields) <= stime {
		return 0, fmt.Errorf("cpu of process %d: short /proc stat", pid)
	}
	u, err1 := strconv.ParseUint(string(fields[utime]), 10, 64)
	s, err2 := strconv.ParseUint(string(fields[stime]), 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("cpu of process %d: unreadable /proc stat times", pid)
	}
	return time.Duration(u+s) * (time.Second / userHZ), nil
}
