package natsproc_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/edgehook/edgehook/natsconf/natsproc"
)

// TestServerProxyKillRestart drives a real nats-server through a proxy: a round trip,
// a cut and a heal of the link, a SIGKILL and a restart that keeps a file-stored stream.
func TestServerProxyKillRestart(t *testing.T) {
	dir := t.TempDir()
	port, mport := natsproc.FreePort(t), natsproc.FreePort(t)
	conf := fmt.Sprintf("server_name: t1\nlisten: 127.0.0.1:%d\nhttp: 127.0.0.1:%d\njetstream { store_dir: %q }\n",
		port, mport, filepath.Join(dir, "js"))
	s := natsproc.Start(t, dir, "t1", conf, port, mport)
	if !s.Running() {
		t.Fatal("server not running after Start")
	}
	if fi, err := os.Stat(s.ConfPath); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("config file %s: %v, %v; want mode 0600", s.ConfPath, fi, err)
	}
	if want := fmt.Sprintf("nats://127.0.0.1:%d", port); s.ClientURL != want {
		t.Fatalf("ClientURL = %q, want %q", s.ClientURL, want)
	}
	s.WaitHealthy(t, 10*time.Second)

	p := natsproc.NewProxy(t, fmt.Sprintf("127.0.0.1:%d", port))
	disconnected := make(chan struct{}, 16)
	reconnected := make(chan struct{}, 16)
	nc, err := nats.Connect("nats://"+p.Addr(),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(50*time.Millisecond),
		nats.DisconnectErrHandler(func(*nats.Conn, error) { disconnected <- struct{}{} }),
		nats.ReconnectHandler(func(*nats.Conn) { reconnected <- struct{}{} }),
	)
	if err != nil {
		t.Fatalf("connect through proxy: %v", err)
	}
	t.Cleanup(nc.Close)
	roundTrip(t, nc, "before cut")

	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name: "KEEP", Subjects: []string{"keep.>"}, Storage: jetstream.FileStorage,
	}); err != nil {
		t.Fatalf("create stream: %v", err)
	}
	if _, err := js.Publish(ctx, "keep.one", []byte("kept")); err != nil {
		t.Fatalf("publish to stream: %v", err)
	}

	p.Cut()
	wait(t, disconnected, 5*time.Second, "client disconnect after Cut")
	if got := dialGetsNothing(t, p.Addr()); got != "" {
		t.Fatalf("dial through cut proxy: %s", got)
	}
	if p.Cuts() != 1 {
		t.Fatalf("Cuts() = %d, want 1", p.Cuts())
	}

	p.Heal()
	wait(t, reconnected, 10*time.Second, "client reconnect after Heal")
	roundTrip(t, nc, "after heal")

	s.Kill(t)
	if s.Running() {
		t.Fatal("Running() = true after Kill")
	}
	wait(t, disconnected, 5*time.Second, "client disconnect after Kill")

	s.Restart(t)
	if !s.Running() {
		t.Fatal("Running() = false after Restart")
	}
	s.WaitHealthy(t, 10*time.Second)
	wait(t, reconnected, 10*time.Second, "client reconnect after Restart")
	natsproc.Eventually(t, 5*time.Second, 50*time.Millisecond, "stream KEEP kept its message", func() error {
		st, err := js.Stream(ctx, "KEEP")
		if err != nil {
			return err
		}
		info, err := st.Info(ctx)
		if err != nil {
			return err
		}
		if info.State.Msgs != 1 {
			return fmt.Errorf("stream has %d messages, want 1", info.State.Msgs)
		}
		return nil
	})
	roundTrip(t, nc, "after restart")

	s.Stop(t)
	if s.Running() {
		t.Fatal("Running() = true after Stop")
	}
	if out := s.Output(); !strings.Contains(out, "Server is ready") {
		t.Fatalf("output does not say the server was ready:\n%s", out)
	}
}

// TestStartFailureShowsOutput checks that a server that cannot start fails the test
// with its output, and leaves no process behind.
func TestStartFailureShowsOutput(t *testing.T) {
	dir := t.TempDir()
	port := natsproc.FreePort(t)
	ft := &fakeTB{TB: t}
	runAsTest(ft, func() {
		natsproc.Start(ft, dir, "bad", "listen: 127.0.0.1:"+fmt.Sprint(port)+"\nno_such_setting {{{\n", port, 0)
	})
	if !ft.failed || !strings.Contains(ft.msg, "did not become ready") || !strings.Contains(ft.msg, "last output of bad") {
		t.Fatalf("failure message = %q", ft.msg)
	}
}

// TestLaunchTerminate drives the TB-free API `edgehook mesh` uses: Launch waits until the
// server is ready and copies its output to Log, Terminate stops it and the process is
// gone; a server that cannot start is an error holding its output, with no process left,
// and StartProxy forwards from the address it is given until Close.
func TestLaunchTerminate(t *testing.T) {
	dir := t.TempDir()
	bin := natsproc.Binary(t)
	port, mport := natsproc.FreePort(t), natsproc.FreePort(t)
	conf := filepath.Join(dir, "l1.conf")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf("server_name: l1\nlisten: 127.0.0.1:%d\nhttp: 127.0.0.1:%d\njetstream { store_dir: %q }\n",
		port, mport, filepath.Join(dir, "js"))), 0o600); err != nil {
		t.Fatal(err)
	}
	var log syncBuf
	s, err := natsproc.Launch(natsproc.Config{Name: "l1", Binary: bin, ConfPath: conf, ClientPort: port, MonitorPort: mport, Log: &log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Terminate() })
	if err := s.Healthy(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	pid := s.Pid()
	if pid == 0 || !s.Running() || s.ExitError() != nil {
		t.Fatalf("after Launch: pid %d, running %v, exit error %v", pid, s.Running(), s.ExitError())
	}
	select {
	case <-s.Exited():
		t.Fatal("Exited closed while the server runs")
	default:
	}

	p, err := natsproc.StartProxy(fmt.Sprintf("127.0.0.1:%d", natsproc.FreePort(t)), fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect("nats://"+p.Addr(), nats.MaxReconnects(0))
	if err != nil {
		t.Fatalf("connect through StartProxy's proxy: %v", err)
	}
	roundTrip(t, nc, "through a started proxy")
	p.Cut()
	if !p.IsCut() {
		t.Fatal("IsCut() = false after Cut")
	}
	p.Close()
	p.Close() // a second Close does nothing
	nc.Close()

	if err := s.Terminate(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.Exited():
	default:
		t.Fatal("Exited not closed after Terminate returned")
	}
	if runtime.GOOS == "linux" {
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("process %d still there after Terminate: %v", pid, err)
		}
	}
	if !strings.Contains(log.String(), "Server is ready") {
		t.Fatalf("Log did not get the server's output:\n%s", log.String())
	}

	bad := filepath.Join(dir, "bad.conf")
	if err := os.WriteFile(bad, []byte("listen: 127.0.0.1:"+fmt.Sprint(port)+"\nno_such_setting {{{\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if s, err := natsproc.Launch(natsproc.Config{Name: "bad", Binary: bin, ConfPath: bad, ClientPort: port}); err == nil {
		s.Terminate()
		t.Fatal("Launch of a broken config succeeded")
	} else if !strings.Contains(err.Error(), "did not become ready") || !strings.Contains(err.Error(), "last output of bad") {
		t.Fatalf("Launch error = %v", err)
	}
}

// syncBuf collects output; it is safe for concurrent use.
type syncBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestEventuallyTimeout checks that Eventually fails with what and the last error.
func TestEventuallyTimeout(t *testing.T) {
	ft := &fakeTB{TB: t}
	n := 0
	runAsTest(ft, func() {
		natsproc.Eventually(ft, 100*time.Millisecond, 10*time.Millisecond, "the thing", func() error {
			n++
			return fmt.Errorf("not yet (%d)", n)
		})
	})
	if !ft.failed || !strings.Contains(ft.msg, "the thing") || !strings.Contains(ft.msg, fmt.Sprintf("not yet (%d)", n)) {
		t.Fatalf("failure message = %q after %d calls", ft.msg, n)
	}
	natsproc.Eventually(t, time.Second, 10*time.Millisecond, "immediately true", func() error { return nil })
}

// roundTrip publishes on a fresh subject and waits for the message on a subscription of
// the same connection.
func roundTrip(t *testing.T, nc *nats.Conn, when string) {
	t.Helper()
	subj := "rt." + strings.ReplaceAll(when, " ", "_")
	sub, err := nc.SubscribeSync(subj)
	if err != nil {
		t.Fatalf("%s: subscribe: %v", when, err)
	}
	defer sub.Unsubscribe()
	if err := nc.Publish(subj, []byte(when)); err != nil {
		t.Fatalf("%s: publish: %v", when, err)
	}
	msg, err := sub.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatalf("%s: round trip: %v", when, err)
	}
	if string(msg.Data) != when {
		t.Fatalf("%s: got %q", when, msg.Data)
	}
}

// wait receives from ch or fails the test after timeout.
func wait(t *testing.T, ch <-chan struct{}, timeout time.Duration, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(timeout):
		t.Fatalf("timed out after %v waiting for %s", timeout, what)
	}
}

// dialGetsNothing dials addr and returns "" if the connection is accepted and then
// closed without a byte (no NATS INFO), or what happened instead.
func dialGetsNothing(t *testing.T, addr string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return fmt.Sprintf("dial: %v (the proxy should accept and close)", err)
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 512)
	n, err := c.Read(buf)
	var ne net.Error
	switch {
	case n > 0:
		return fmt.Sprintf("got %q", buf[:n])
	case errors.As(err, &ne) && ne.Timeout():
		return "connection left open, not closed"
	}
	return ""
}

// fakeTB records a failure instead of failing the test.
type fakeTB struct {
	testing.TB
	failed bool
	msg    string
}

func (f *fakeTB) Helper() {}

func (f *fakeTB) Fatalf(format string, args ...any) {
	f.failed = true
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func (f *fakeTB) Errorf(format string, args ...any) {
	f.failed = true
	f.msg = fmt.Sprintf(format, args...)
}

func (f *fakeTB) Failed() bool { return f.failed }

// runAsTest runs fn in its own goroutine, as a test body, so fakeTB.Fatalf can end it.
func runAsTest(_ *fakeTB, fn func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn()
	}()
	<-done
}

// TestFreePortNeverRepeats asks for many ports in a row, as a mesh test does for its
// nodes' client, cluster, leaf and monitor ports, and wants no port twice.
func TestFreePortNeverRepeats(t *testing.T) {
	seen := map[int]bool{}
	for i := range 500 {
		p := natsproc.FreePort(t)
		if seen[p] {
			t.Fatalf("call %d returned port %d again", i+1, p)
		}
		seen[p] = true
	}
}
