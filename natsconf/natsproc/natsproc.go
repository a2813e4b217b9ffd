// Package natsproc runs real nats-server processes from config text for tests: each
// process is owned by the test that started it, listens on 127.0.0.1 only and is
// stopped at cleanup. A Proxy lets a test cut and heal a TCP link between servers or
// between a client and a server.
package natsproc

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// Binary returns the absolute path of bin/nats-server of this module (found by walking
// up from the working directory to the directory holding go.mod), or fails the test.
func Binary(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatalf("natsproc: working directory: %v", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatalf("natsproc: no go.mod above the working directory: nats-server is not installed in bin/: run make tools")
		}
		dir = parent
	}
	bin := filepath.Join(dir, "bin", "nats-server")
	fi, err := os.Stat(bin)
	if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
		t.Fatalf("natsproc: nats-server is not installed in bin/: run make tools")
	}
	return bin
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago (it listens on
// port 0, closes the listener and returns the port it got).
func FreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("natsproc: free port: %v", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
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
