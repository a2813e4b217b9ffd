// Package natsproc runs real nats-server processes from config files and cuttable TCP
// proxies between them. Tests use it through the testing.TB helpers (Start, NewProxy,
// FreePort, Eventually), which tie every process and proxy to the test that started it;
// `edgehook mesh` uses the same supervision through Launch and StartProxy, which return
// errors instead and leave stopping to the caller (Server.Terminate, Proxy.Close). Every
// server listens on 127.0.0.1 only.
package natsproc

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// ErrNoBinary is wrapped by the errors of ModuleBinary when nats-server is not installed.
var ErrNoBinary = errors.New("nats-server is not installed in bin/: run make tools")

// Binary returns the absolute path of bin/nats-server of this module (see ModuleBinary),
// or fails the test.
func Binary(t testing.TB) string {
	t.Helper()
	bin, err := ModuleBinary()
	if err != nil {
		t.Fatalf("%v", err)
	}
	return bin
}

// ModuleBinary returns the absolute path of bin/nats-server of the module the working
// directory is in (found by walking up to the directory holding go.mod), where
// `make tools` installs it.
func ModuleBinary() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("natsproc: working directory: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("natsproc: no go.mod above the working directory: %w", ErrNoBinary)
		}
		dir = parent
	}
	bin := filepath.Join(dir, "bin", "nats-server")
	if !IsExecutable(bin) {
		return "", fmt.Errorf("natsproc: %w", ErrNoBinary)
	}
	return bin, nil
}

// IsExecutable reports whether path is a regular file someone may execute.
func IsExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}

// handedOut holds every port FreePort has returned in this process. The kernel may give
// a closed listener's port to the next listener on port 0, so two calls in a row can
// return the same port: a test that asks for a hub node's client and monitor ports would
// then get one port twice.
var handedOut = struct {
	sync.Mutex
	ports map[int]bool
}{ports: map[int]bool{}}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago (it listens on
// port 0, closes the listener and returns the port it got), and that no earlier call in
// this process returned.
func FreePort(t testing.TB) int {
	t.Helper()
	handedOut.Lock()
	defer handedOut.Unlock()
	for range 1000 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("natsproc: free port: %v", err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		if !handedOut.ports[port] {
			handedOut.ports[port] = true
			return port
		}
	}
	t.Fatalf("natsproc: free port: 1000 listeners in a row got ports handed out before")
	return 0
}

// Eventually calls cond every interval until it returns nil, and fails the test with
// what and the last error if that has not happened within timeout. Like t.Fatalf, it
// must be called from the goroutine running the test.
func Eventually(t testing.TB, timeout, interval time.Duration, what string, cond func() error) {
	t.Helper()
	if err := poll(timeout, interval, cond); err != nil {
		t.Fatalf("natsproc: %s: %v", what, err)
	}
}

// stopPolling wraps an error after which poll gives up at once (a process that exited
// will not become ready).
type stopPolling struct{ err error }

func (e stopPolling) Error() string { return e.err.Error() }
func (e stopPolling) Unwrap() error { return e.err }

// poll calls cond every interval until it returns nil (poll returns nil), returns a
// stopPolling error (poll returns the wrapped error), or timeout passes (poll returns the
// last error, saying how long it waited).
func poll(timeout, interval time.Duration, cond func() error) error {
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		err := cond()
		if err == nil {
			return nil
		}
		var stop stopPolling
		if errors.As(err, &stop) {
			return stop.err
		}
		if !time.Now().Before(deadline) {
			return fmt.Errorf("still failing after %v: %w", timeout, err)
		}
		<-tick.C
	}
}
