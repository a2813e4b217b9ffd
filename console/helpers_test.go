package console

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// testServer is both consoles on one real fasthttp server on 127.0.0.1, as the gateway
// and admin component will mount them (on their own listeners, in production).
type testServer struct {
	URL      string
	src      *memSource
	portal   *Portal
	operator *Operator
	logs     *syncBuffer
}

// syncBuffer collects the consoles' log lines for assertions.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startServer serves a portal and an operator console on src; cfg applies to both.
func startServer(t testing.TB, cfg Config, src *memSource) *testServer {
	t.Helper()
	logs := &syncBuffer{}
	cfg.Logger = slog.New(slog.NewJSONHandler(logs, nil))
	portal, err := NewPortal(cfg, src)
	if err != nil {
		t.Fatal(err)
	}
	operator, err := NewOperator(cfg, adminToken, src)
	if err != nil {
		t.Fatal(err)
	}
	ph, oh := portal.Handler(), operator.Handler()
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		if strings.HasPrefix(string(ctx.Path()), "/console") {
			oh(ctx)
			return
		}
		ph(ctx)
	}, ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.ShutdownWithContext(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-errc; err != nil && !errors.Is(err, net.ErrClosed) {
			t.Errorf("serve: %v", err)
		}
	})
	return &testServer{URL: "http://" + ln.Addr().String(), src: src, portal: portal, operator: operator, logs: logs}
}

// client is a browser-like HTTP client with its own cookie jar that does not follow
// redirects, so tests see each answer.
type client struct {
	t    testing.TB
	base string
	hc   *http.Client
}

func newClient(t testing.TB, base string) *client {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &client{t: t, base: base, hc: &http.Client{Jar: jar, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// page is one answer.
type page struct {
	Status int
	Header http.Header
	Body   string
}

func (c *client) do(req *http.Request) page {
	c.t.Helper()
	resp, err := c.hc.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	return page{Status: resp.StatusCode, Header: resp.Header, Body: string(b)}
}

func (c *client) get(path string) page {
	c.t.Helper()
	req, err := http.NewRequest(http.MethodGet, c.base+path, nil)
	if err != nil {
		c.t.Fatal(err)
	}
	return c.do(req)
}

func (c *client) post(path string, form url.Values) page {
	c.t.Helper()
	req, err := http.NewRequest(http.MethodPost, c.base+path, strings.NewReader(form.Encode()))
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return c.do(req)
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// csrfOf returns the CSRF token of the first form on a page.
func csrfOf(t testing.TB, p page) string {
	t.Helper()
	m := csrfField.FindStringSubmatch(p.Body)
	if m == nil {
		t.Fatalf("no CSRF field on the page (status %d):\n%s", p.Status, p.Body)
	}
	return m[1]
}

// signIn signs in to the console under prefix ("/portal/" or "/console/") with cred
// and returns the sign-in answer.
func (c *client) signIn(prefix, field, cred string) page {
	c.t.Helper()
	form := c.get(prefix + "signin")
	return c.post(prefix+"signin", url.Values{"csrf": {csrfOf(c.t, form)}, field: {cred}})
}

// mustSignIn signs in and fails the test unless it succeeded; it returns a page of the
// console (for its CSRF token).
func (c *client) mustSignIn(prefix, field, cred, landing string) page {
	c.t.Helper()
	p := c.signIn(prefix, field, cred)
	if p.Status != http.StatusSeeOther || p.Header.Get("Location") != prefix+landing {
		c.t.Fatalf("sign-in: status %d, Location %q, want 303 to %s", p.Status, p.Header.Get("Location"), prefix+landing)
	}
	l := c.get(prefix + landing)
	if l.Status != http.StatusOK {
		c.t.Fatalf("GET %s after sign-in: %d\n%s", landing, l.Status, l.Body)
	}
	return l
}

// waitFor polls cond every interval until it returns nil or timeout passes.
func waitFor(t testing.TB, timeout, interval time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %v", timeout, err)
		}
		time.Sleep(interval)
	}
}
