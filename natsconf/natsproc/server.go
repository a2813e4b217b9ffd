package natsproc

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const (
	// readyTimeout bounds how long Start, Ready and Restart wait for a server.
	readyTimeout = 30 * time.Second
	// stopTimeout is how long Stop waits after SIGTERM before sending SIGKILL, and how
	// long anything waits for a killed process to be reaped.
	stopTimeout = 10 * time.Second
	// pollInterval is how often readiness and health are checked.
	pollInterval = 50 * time.Millisecond
)

// Server is one nats-server process started from a config file by Start; it is stopped
// when the test that started it ends.
type Server struct {
	// Name names the server in messages and is the base name of its config file.
	Name string
	// ConfPath is the config file the process runs with.
	ConfPath string
	// ClientURL is the client URL, nats://127.0.0.1:port.
	ClientURL string
	// MonitorURL is the HTTP monitoring URL, http://127.0.0.1:port, or "" if none.
	MonitorURL string

	bin         string
	dir         string
	clientAddr  string
	clientPort  int
	monitorPort int
	http        *http.Client
	out         output

	mu       sync.Mutex
	proc     *proc // the current (or last) process; nil before the first start
	shownLen int   // output length when a failure message last included the tail, or -1
}

// proc is one run of the nats-server binary.
type proc struct {
	cmd  *exec.Cmd
	done chan struct{} // closed once the process has exited and been reaped
	err  error         // what Wait returned; set before done is closed
}

// exited reports whether the process has exited.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Start writes conf to dir/<name>.conf (mode 0600), starts `nats-server -c` on it in dir,
// waits until it is ready (see Ready) and registers cleanup: SIGTERM, then SIGKILL after
// 10 s; on Linux the process also gets Pdeathsig SIGKILL so it never outlives the test
// binary. clientPort is the client port the config listens on, monitorPort its HTTP
// monitoring port (0 if none); if the server is not ready within 30 s the test fails with
// the last 4 KiB of its output.
func Start(t testing.TB, dir, name, conf string, clientPort, monitorPort int) *Server {
	t.Helper()
	bin := Binary(t)
	dir, err := filepath.Abs(dir)
	if err != nil {
		t.Fatalf("natsproc: %s: directory: %v", name, err)
	}
	confPath := filepath.Join(dir, name+".conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		t.Fatalf("natsproc: %s: write config: %v", name, err)
	}
	s := &Server{
		Name:        name,
		ConfPath:    confPath,
		ClientURL:   "nats://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(clientPort)),
		bin:         bin,
		dir:         dir,
		clientAddr:  net.JoinHostPort("127.0.0.1", strconv.Itoa(clientPort)),
		clientPort:  clientPort,
		monitorPort: monitorPort,
		http: &http.Client{
			Timeout:   2 * time.Second,
			Transport: &http.Transport{DisableKeepAlives: true},
		},
		shownLen: -1,
	}
	if monitorPort != 0 {
		s.MonitorURL = "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(monitorPort))
	}
	// Registered before the first start so that a start that fails the test still
	// leaves no process behind.
	t.Cleanup(func() {
		s.Stop(t)
		s.mu.Lock()
		shown := s.shownLen == s.out.Len()
		s.mu.Unlock()
		if t.Failed() && !shown {
			t.Logf("natsproc: last output of %s (%s):\n%s", s.Name, s.ConfPath, s.out.Tail())
		}
	})
	s.start(t)
	return s
}

// Ready waits until a TCP connection to the client port succeeds and, when there is a
// monitoring port, GET /healthz?js-enabled-only=true answers 200, polling every 50 ms for
// at most 30 s; it fails the test with the last 4 KiB of output otherwise.
func (s *Server) Ready(t testing.TB) {
	t.Helper()
	p := s.current()
	if p == nil {
		t.Fatalf("natsproc: %s was never started", s.Name)
	}
	if err := s.waitReady(p, readyTimeout); err != nil {
		s.fatalWithTail(t, fmt.Sprintf("%s is not ready", s.Name), err)
	}
}

// Kill sends SIGKILL and waits until the process has exited; it does nothing if the
// process is not running.
func (s *Server) Kill(t testing.TB) {
	t.Helper()
	if p := s.current(); p != nil && !p.exited() {
		s.kill(t, p)
	}
}

// Stop sends SIGTERM and waits until the process has exited, sending SIGKILL if it is
// still running after 10 s; it does nothing if the process is not running.
func (s *Server) Stop(t testing.TB) {
	t.Helper()
	p := s.current()
	if p == nil || p.exited() {
		return
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		t.Errorf("natsproc: %s: SIGTERM: %v", s.Name, err)
	}
	timer := time.NewTimer(stopTimeout)
	defer timer.Stop()
	select {
	case <-p.done:
		return
	case <-timer.C:
	}
	t.Logf("natsproc: %s still running %v after SIGTERM: sending SIGKILL", s.Name, stopTimeout)
	s.kill(t, p)
}

// Restart starts the same config again (same ports, same store directory) and waits
// until the server is ready; a server still running is stopped first.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.Stop(t)
	s.start(t)
}

// Running reports whether the process is alive.
func (s *Server) Running() bool {
	p := s.current()
	return p != nil && !p.exited()
}

// Output returns what the process printed so far on stdout and stderr, across restarts.
func (s *Server) Output() string {
	return s.out.String()
}

// WaitHealthy waits until the monitoring endpoint /healthz (no query) answers 200,
// meaning JetStream, if configured, is healthy and its streams recovered; it fails the
// test with the last answer if that has not happened within timeout.
func (s *Server) WaitHealthy(t testing.TB, timeout time.Duration) {
	t.Helper()
	if s.MonitorURL == "" {
		t.Fatalf("natsproc: %s has no monitoring port: WaitHealthy needs one", s.Name)
	}
	p := s.current()
	err := poll(timeout, pollInterval, func() error {
		if p == nil || p.exited() {
			return stopPolling{errors.New("nats-server is not running")}
		}
		return s.healthz("")
	})
	if err != nil {
		s.fatalWithTail(t, fmt.Sprintf("%s is not healthy", s.Name), err)
	}
}

// current returns the current process, nil before the first start.
func (s *Server) current() *proc {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.proc
}

// start runs the binary and waits until the server is ready, starting it once more if
// it exits at once because a port is still in use.
func (s *Server) start(t testing.TB) {
	t.Helper()
	for attempt := 1; ; attempt++ {
		off := s.out.Len()
		p, err := s.spawn()
		if err != nil {
			t.Fatalf("natsproc: %s: start %s: %v", s.Name, s.bin, err)
		}
		s.mu.Lock()
		s.proc = p
		s.mu.Unlock()
		err = s.waitReady(p, readyTimeout)
		if err == nil {
			return
		}
		if attempt == 1 && p.exited() && strings.Contains(s.out.Since(off), "address already in use") {
			t.Logf("natsproc: %s: a port is still in use: starting once more", s.Name)
			s.waitPortsFree()
			continue
		}
		if !p.exited() {
			s.kill(t, p)
		}
		s.fatalWithTail(t, fmt.Sprintf("%s did not become ready", s.Name), err)
	}
}

// spawn starts one process. Pdeathsig is delivered when the thread that started the
// child exits, not the process, so the goroutine that starts it holds its thread until
// the child has been reaped.
func (s *Server) spawn() (*proc, error) {
	p := &proc{done: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		cmd := exec.Command(s.bin, "-c", s.ConfPath)
		cmd.Dir = s.dir
		cmd.Stdout = &s.out
		cmd.Stderr = &s.out
		cmd.SysProcAttr = sysProcAttr()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		p.cmd = cmd
		started <- nil
		p.err = cmd.Wait()
		close(p.done)
	}()
	if err := <-started; err != nil {
		return nil, err
	}
	return p, nil
}

// waitReady polls until p accepts client connections and, with a monitoring port,
// reports JetStream enabled; it gives up at once if p exits.
func (s *Server) waitReady(p *proc, timeout time.Duration) error {
	return poll(timeout, pollInterval, func() error {
		if p.exited() {
			return stopPolling{fmt.Errorf("nats-server exited: %v", p.err)}
		}
		c, err := net.DialTimeout("tcp", s.clientAddr, time.Second)
		if err != nil {
			return err
		}
		c.Close()
		if s.MonitorURL == "" {
			return nil
		}
		return s.healthz("?js-enabled-only=true")
	})
}

// healthz returns nil if GET /healthz with query answers 200, otherwise an error with
// the status and body.
func (s *Server) healthz(query string) error {
	resp, err := s.http.Get(s.MonitorURL + "/healthz" + query)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, tailSize))
	if err != nil {
		return fmt.Errorf("GET /healthz%s: %s: reading body: %w", query, resp.Status, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET /healthz%s: %s: %s", query, resp.Status, strings.TrimSpace(string(body)))
	}
	return nil
}

// waitPortsFree waits, at most stopTimeout, until the server's ports can be listened on
// again.
func (s *Server) waitPortsFree() {
	ports := []int{s.clientPort}
	if s.monitorPort != 0 {
		ports = append(ports, s.monitorPort)
	}
	_ = poll(stopTimeout, pollInterval, func() error {
		for _, port := range ports {
			ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
			if err != nil {
				return err
			}
			ln.Close()
		}
		return nil
	})
}

// kill sends SIGKILL to p and waits until it has been reaped.
func (s *Server) kill(t testing.TB, p *proc) {
	t.Helper()
	if err := p.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		t.Errorf("natsproc: %s: SIGKILL: %v", s.Name, err)
	}
	timer := time.NewTimer(stopTimeout)
	defer timer.Stop()
	select {
	case <-p.done:
	case <-timer.C:
		t.Errorf("natsproc: %s (pid %d) still not reaped %v after SIGKILL", s.Name, p.cmd.Process.Pid, stopTimeout)
	}
}

// fatalWithTail fails the test with what, err and the last 4 KiB of output.
func (s *Server) fatalWithTail(t testing.TB, what string, err error) {
	t.Helper()
	s.mu.Lock()
	s.shownLen = s.out.Len()
	s.mu.Unlock()
	t.Fatalf("natsproc: %s: %v\n--- last output of %s ---\n%s", what, err, s.Name, s.out.Tail())
}
