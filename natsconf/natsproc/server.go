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
	// readyTimeout bounds how long Launch, Start, Ready and Restart wait for a server.
	readyTimeout = 30 * time.Second
	// stopTimeout is how long Terminate and Stop wait after SIGTERM before sending
	// SIGKILL, and how long anything waits for a killed process to be reaped.
	stopTimeout = 10 * time.Second
	// pollInterval is how often readiness and health are checked.
	pollInterval = 50 * time.Millisecond
)

// Config says how to run one nats-server process.
type Config struct {
	// Name names the server in messages (its server_name, say).
	Name string
	// Binary is the nats-server executable.
	Binary string
	// ConfPath is the config file the process runs with (`nats-server -c`); the process
	// runs in the file's directory.
	ConfPath string
	// ClientPort is the client port the config listens on, on 127.0.0.1.
	ClientPort int
	// MonitorPort is its HTTP monitoring port on 127.0.0.1, 0 if it has none.
	MonitorPort int
	// Log, when set, receives a copy of everything the process prints (the Server keeps
	// the last 1 MiB itself).
	Log io.Writer
	// Logf, when set, is told about what the Server does on its own: starting a second
	// time because a port was still in use, killing a server that ignored SIGTERM.
	Logf func(format string, args ...any)
}

// Server is one nats-server process started from a config file, by Launch (which
// returns errors) or by Start (which fails the test and stops the process when the
// test ends). Its methods are safe for concurrent use.
type Server struct {
	// Name names the server in messages.
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
	logf        func(string, ...any)
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

// Launch starts `nats-server -c cfg.ConfPath` and waits until it is ready (see Ready),
// starting it once more if it exits at once because a port is still in use. The process
// gets Pdeathsig SIGKILL on Linux, so it never outlives the process that started it, and
// its own process group, so a terminal's Ctrl-C reaches only its parent, which decides
// when to stop it. If the server is not ready within 30 s, Launch kills it and returns an
// error that holds the last 4 KiB of its output; otherwise the caller stops it with
// Terminate.
func Launch(cfg Config) (*Server, error) {
	s, err := newServer(cfg)
	if err != nil {
		return nil, err
	}
	if err := s.start(); err != nil {
		return nil, err
	}
	return s, nil
}

func newServer(cfg Config) (*Server, error) {
	if cfg.Name == "" || cfg.Binary == "" || cfg.ConfPath == "" || cfg.ClientPort <= 0 {
		return nil, fmt.Errorf("natsproc: server config needs a name, a binary, a config file and a client port, got %+v", cfg)
	}
	confPath, err := filepath.Abs(cfg.ConfPath)
	if err != nil {
		return nil, fmt.Errorf("natsproc: %s: config file: %w", cfg.Name, err)
	}
	clientAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(cfg.ClientPort))
	s := &Server{
		Name:        cfg.Name,
		ConfPath:    confPath,
		ClientURL:   "nats://" + clientAddr,
		bin:         cfg.Binary,
		dir:         filepath.Dir(confPath),
		clientAddr:  clientAddr,
		clientPort:  cfg.ClientPort,
		monitorPort: cfg.MonitorPort,
		logf:        cfg.Logf,
		http: &http.Client{
			Timeout:   2 * time.Second,
			Transport: &http.Transport{DisableKeepAlives: true},
		},
		shownLen: -1,
	}
	s.out.copy = cfg.Log
	if s.logf == nil {
		s.logf = func(string, ...any) {}
	}
	if cfg.MonitorPort != 0 {
		s.MonitorURL = "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(cfg.MonitorPort))
	}
	return s, nil
}

// Start writes conf to dir/<name>.conf (mode 0600), starts bin/nats-server of this module
// (see Binary) on it as Launch does and registers cleanup: Stop, and on failure the last
// 4 KiB of output. clientPort is the client port the config listens on, monitorPort its
// HTTP monitoring port (0 if none); if the server is not ready within 30 s the test fails
// with the last 4 KiB of its output.
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
	s, err := newServer(Config{Name: name, Binary: bin, ConfPath: confPath, ClientPort: clientPort, MonitorPort: monitorPort, Logf: t.Logf})
	if err != nil {
		t.Fatalf("%v", err)
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
	s.startOrFail(t)
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
		s.fatal(t, s.withTail(fmt.Sprintf("%s is not ready", s.Name), err))
	}
}

// Kill sends SIGKILL and waits until the process has exited; it does nothing if the
// process is not running.
func (s *Server) Kill(t testing.TB) {
	t.Helper()
	if p := s.current(); p != nil && !p.exited() {
		if err := s.kill(p); err != nil {
			t.Errorf("%v", err)
		}
	}
}

// Terminate sends SIGTERM and waits until the process has exited, sending SIGKILL if it
// is still running after 10 s; it does nothing if the process is not running. It returns
// an error only if the process could not be signalled or was not reaped after SIGKILL.
func (s *Server) Terminate() error {
	p := s.current()
	if p == nil || p.exited() {
		return nil
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("natsproc: %s: SIGTERM: %w", s.Name, err)
	}
	timer := time.NewTimer(stopTimeout)
	defer timer.Stop()
	select {
	case <-p.done:
		return nil
	case <-timer.C:
	}
	s.logf("natsproc: %s still running %v after SIGTERM: sending SIGKILL", s.Name, stopTimeout)
	return s.kill(p)
}

// Stop is Terminate for a test: an error fails the test.
func (s *Server) Stop(t testing.TB) {
	t.Helper()
	if err := s.Terminate(); err != nil {
		t.Errorf("%v", err)
	}
}

// Restart starts the same config again (same ports, same store directory) and waits
// until the server is ready; a server still running is stopped first.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.Stop(t)
	s.startOrFail(t)
}

// Running reports whether the process is alive.
func (s *Server) Running() bool {
	p := s.current()
	return p != nil && !p.exited()
}

// Pid returns the process id of the current (or last) process, 0 before the first start.
func (s *Server) Pid() int {
	if p := s.current(); p != nil {
		return p.cmd.Process.Pid
	}
	return 0
}

// Exited returns a channel that is closed once the current process has exited (and been
// reaped); after a Restart, call it again for the new process. Before the first start it
// returns a closed channel.
func (s *Server) Exited() <-chan struct{} {
	if p := s.current(); p != nil {
		return p.done
	}
	closed := make(chan struct{})
	close(closed)
	return closed
}

// ExitError describes how the current process ended, with the last 4 KiB of its
// output; it is nil while the process runs.
func (s *Server) ExitError() error {
	p := s.current()
	if p == nil || !p.exited() {
		return nil
	}
	return s.withTail(fmt.Sprintf("%s exited", s.Name), fmt.Errorf("nats-server: %v", p.err))
}

// Output returns what the process printed so far on stdout and stderr, across restarts
// (the last 1 MiB of it).
func (s *Server) Output() string {
	return s.out.String()
}

// WaitHealthy waits until the monitoring endpoint /healthz (no query) answers 200,
// meaning JetStream, if configured, is healthy and its streams recovered; it fails the
// test with the last answer if that has not happened within timeout.
func (s *Server) WaitHealthy(t testing.TB, timeout time.Duration) {
	t.Helper()
	if err := s.Healthy(timeout); err != nil {
		s.fatal(t, err)
	}
}

// Healthy waits until the monitoring endpoint /healthz (no query) answers 200, meaning
// JetStream, if configured, is healthy and its streams recovered; it returns an error
// with the last answer and the last 4 KiB of output if that has not happened within
// timeout, or at once if the process exits.
func (s *Server) Healthy(timeout time.Duration) error {
	if s.MonitorURL == "" {
		return fmt.Errorf("natsproc: %s has no monitoring port: Healthy needs one", s.Name)
	}
	p := s.current()
	err := poll(timeout, pollInterval, func() error {
		if p == nil || p.exited() {
			return stopPolling{errors.New("nats-server is not running")}
		}
		return s.healthz("")
	})
	if err != nil {
		return s.withTail(fmt.Sprintf("%s is not healthy", s.Name), err)
	}
	return nil
}

// current returns the current process, nil before the first start.
func (s *Server) current() *proc {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.proc
}

// startOrFail is start for a test.
func (s *Server) startOrFail(t testing.TB) {
	t.Helper()
	if err := s.start(); err != nil {
		s.fatal(t, err)
	}
}

// start runs the binary and waits until the server is ready, starting it once more if
// it exits at once because a port is still in use. On failure no process is left
// running and the error holds the last 4 KiB of output.
func (s *Server) start() error {
	for attempt := 1; ; attempt++ {
		off := s.out.Len()
		p, err := s.spawn()
		if err != nil {
			return fmt.Errorf("natsproc: %s: start %s: %w", s.Name, s.bin, err)
		}
		s.mu.Lock()
		s.proc = p
		s.mu.Unlock()
		err = s.waitReady(p, readyTimeout)
		if err == nil {
			return nil
		}
		if attempt == 1 && p.exited() && strings.Contains(s.out.Since(off), "address already in use") {
			s.logf("natsproc: %s: a port is still in use: starting once more", s.Name)
			s.waitPortsFree()
			continue
		}
		if !p.exited() {
			if kerr := s.kill(p); kerr != nil {
				err = errors.Join(err, kerr)
			}
		}
		return s.withTail(fmt.Sprintf("%s did not become ready", s.Name), err)
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
func (s *Server) kill(p *proc) error {
	if err := p.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("natsproc: %s: SIGKILL: %w", s.Name, err)
	}
	timer := time.NewTimer(stopTimeout)
	defer timer.Stop()
	select {
	case <-p.done:
		return nil
	case <-timer.C:
		return fmt.Errorf("natsproc: %s (pid %d) still not reaped %v after SIGKILL", s.Name, p.cmd.Process.Pid, stopTimeout)
	}
}

// withTail returns an error with what, err and the last 4 KiB of output.
func (s *Server) withTail(what string, err error) error {
	return &tailError{what: what, err: err, name: s.Name, tail: s.out.Tail()}
}

// fatal fails the test with err, recording that its output tail has been shown.
func (s *Server) fatal(t testing.TB, err error) {
	t.Helper()
	s.mu.Lock()
	s.shownLen = s.out.Len()
	s.mu.Unlock()
	t.Fatalf("%v", err)
}

// tailError is an error of a server with the last 4 KiB of its output.
type tailError struct {
	what, name, tail string
	err              error
}

func (e *tailError) Error() string {
	return fmt.Sprintf("natsproc: %s: %v\n--- last output of %s ---\n%s", e.what, e.err, e.name, e.tail)
}

func (e *tailError) Unwrap() error { return e.err }
