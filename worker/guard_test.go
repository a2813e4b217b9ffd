package worker

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// stubNet is a resolver and dialer that never touch the network: it records every
// name looked up and every address dialed.
type stubNet struct {
	mu      sync.Mutex
	names   map[string][]netip.Addr
	lookups []string
	dials   []string
}

func (s *stubNet) lookup(_ context.Context, host string) ([]netip.Addr, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lookups = append(s.lookups, host)
	ips, ok := s.names[host]
	if !ok {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	return ips, nil
}

var errStubDial = errors.New("stub dialer: no network in this test")

func (s *stubNet) dial(_ context.Context, _, addr string) (net.Conn, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dials = append(s.dials, addr)
	return nil, errStubDial
}

func (s *stubNet) dialed() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.dials...)
}

// guardedClient is the worker's real HTTP client with the guard's network stubbed.
func guardedClient(allowPrivate bool) (*fasthttp.Client, *stubNet) {
	stub := &stubNet{names: map[string][]netip.Addr{
		"public.example":   {netip.MustParseAddr("203.0.113.7")},
		"internal.example": {netip.MustParseAddr("10.1.2.3")},
		// A name with one public and one private address: refused as a whole, so
		// the connection cannot land on the private one.
		"rebind.example":   {netip.MustParseAddr("203.0.113.7"), netip.MustParseAddr("192.168.1.10")},
		"metadata.example": {netip.MustParseAddr("::ffff:169.254.169.254")},
	}}
	g := newDialGuard(allowPrivate, time.Second)
	g.lookup, g.dial = stub.lookup, stub.dial
	cfg, _ := Config{Concurrency: 4, HTTPTimeout: 2 * time.Second}.withDefaults()
	return newHTTPClient(cfg, g), stub
}

func TestGuardRefusesPrivateTargetsBeforeDialing(t *testing.T) {
	for _, tc := range []struct{ url, reason string }{
		{"http://127.0.0.1:8090/hooks", "loopback"},
		{"http://[::1]/", "loopback"},
		{"http://10.0.0.1/", "private"},
		{"http://169.254.169.254/latest/meta-data/", "link-local"},
		{"http://localhost/", "loopback"},
		{"http://api.localhost:8080/", "loopback"},
		{"https://internal.example/hook", "private"},
		{"http://rebind.example/", "private"},
		{"http://metadata.example/", "link-local"},
		{"http://0.0.0.0:80/", "unspecified"},
		{"http://[fd00::1]/", "private"},
		{"http://100.64.0.1/", "cgnat"},
	} {
		t.Run(tc.url, func(t *testing.T) {
			c, stub := guardedClient(false)
			err := post(c, tc.url)
			if !errors.Is(err, ErrTargetNotAllowed) {
				t.Fatalf("POST %s: %v, want ErrTargetNotAllowed", tc.url, err)
			}
			if want := "target address is not allowed: " + tc.reason; err.Error() != want {
				t.Errorf("error %q, want %q", err, want)
			}
			if d := stub.dialed(); len(d) != 0 {
				t.Errorf("dialed %v before refusing", d)
			}
		})
	}
}

func TestGuardDialsTheCheckedAddress(t *testing.T) {
	c, stub := guardedClient(false)
	err := post(c, "https://public.example:8443/hook")
	if !errors.Is(err, errStubDial) {
		t.Fatalf("POST to a public target: %v, want the stub dialer's error", err)
	}
	// The checked IP is dialed, not the name: no second resolution can swap it.
	if d := stub.dialed(); len(d) != 1 || d[0] != "203.0.113.7:8443" {
		t.Errorf("dialed %v, want [203.0.113.7:8443]", d)
	}

	c, stub = guardedClient(true)
	if err := post(c, "http://10.0.0.1:8080/"); !errors.Is(err, errStubDial) {
		t.Fatalf("POST with private targets allowed: %v", err)
	}
	if d := stub.dialed(); len(d) != 1 || d[0] != "10.0.0.1:8080" {
		t.Errorf("dialed %v with private targets allowed, want [10.0.0.1:8080]", d)
	}
}

func TestGuardRealDialerNeverConnectsToRefusedTarget(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan struct{}, 1)
	go func() {
		if c, err := ln.Accept(); err == nil {
			accepted <- struct{}{}
			c.Close()
		}
	}()
	g := newDialGuard(false, time.Second)
	conn, err := g.DialTimeout(ln.Addr().String(), time.Second)
	if conn != nil {
		conn.Close()
	}
	if !errors.Is(err, ErrTargetNotAllowed) {
		t.Fatalf("dial %s: %v, want ErrTargetNotAllowed", ln.Addr(), err)
	}
	// Prove the listener works and that our connection is the first it sees.
	probe, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	probe.Close()
	<-accepted
	select {
	case <-accepted:
		t.Fatal("the refused target was connected to")
	default:
	}
}

func TestCheckTargetURL(t *testing.T) {
	for url, want := range map[string]string{
		"https://hooks.example.com/x":  "",
		"HTTP://hooks.example.com":     "",
		"ftp://hooks.example.com/":     "scheme must be http or https",
		"file:///etc/passwd":           "scheme must be http or https",
		"hooks.example.com/x":          "scheme must be http or https",
		"http:///nohost":               "no host",
		"http://exa mple.com/\x7f":     "not a valid URL",
		"gopher://127.0.0.1:70/_hello": "scheme must be http or https",
		// Out-of-range ports are refused with the port named, before any dial.
		"http://hooks.example.com:99999/": "port 99999 is out of range 1-65535",
		"http://hooks.example.com:0/":     "port 0 is out of range 1-65535",
	} {
		err := checkTargetURL(url)
		switch {
		case want == "" && err != nil:
			t.Errorf("checkTargetURL(%q) = %v, want nil", url, err)
		case want != "" && (!errors.Is(err, ErrTargetNotAllowed) || !strings.HasSuffix(err.Error(), want)):
			t.Errorf("checkTargetURL(%q) = %v, want ErrTargetNotAllowed: %s", url, err, want)
		}
	}
}

// TestTenantCacheRemembersEachURLsOwnVerdict: a delivery goroutine's remembered
// verdict on a tenant's target URL is checkTargetURL's, also after the tenant's URL
// changes and while more tenants than the cache holds take turns, and a URL checked
// again costs no allocation (no parse).
func TestTenantCacheRemembersEachURLsOwnVerdict(t *testing.T) {
	urls := []string{"ftp://hooks.example.com/", "http:///nohost", "http://hooks.example.com:0/", "http://exa mple.com/\x7f", "https://hooks.example.com/x"}
	var c tenantCache
	check := func(tenant, url string) {
		t.Helper()
		got, want := c.checkURL(tenant, url), checkTargetURL(url)
		if (got == nil) != (want == nil) || (got != nil && got.Error() != want.Error()) {
			t.Errorf("remembered check of %s's %q = %v, want %v", tenant, url, got, want)
		}
	}
	for range 3 { // one tenant whose URL keeps changing
		for _, url := range urls {
			check("t0", url)
		}
	}
	for round := range 3 { // more tenants than the cache holds
		for i := range 2 * maxCachedTenants {
			check("t"+strconv.Itoa(i), urls[(i+round)%len(urls)])
		}
	}
	bad := urls[0]
	c.checkURL("t0", bad)
	if n := testing.AllocsPerRun(100, func() { _ = c.checkURL("t0", bad) }); n != 0 {
		t.Errorf("a URL checked again allocates %.0f times, want 0", n)
	}
	if err := c.checkURL("t0", bad); !errors.Is(err, ErrTargetNotAllowed) {
		t.Errorf("remembered check of %q = %v, want ErrTargetNotAllowed", bad, err)
	}
}

// TestGuardRefusesOutOfRangePortsBeforeDialing: a port the URL check has not seen
// (the dialer is also reached through redirects and proxies) is refused by the
// guard itself with a message naming it, never a raw parse error.
func TestGuardRefusesOutOfRangePortsBeforeDialing(t *testing.T) {
	for port, want := range map[string]string{
		"99999":                       "port 99999 is out of range 1-65535",
		"0":                           "port 0 is out of range 1-65535",
		"65536":                       "port 65536 is out of range 1-65535",
		"123456789012345678901234567": "port 123456789012345678901234567 is out of range 1-65535",
		"8o":                          `port "8o" is not a number in 1-65535`,
	} {
		g := newDialGuard(false, time.Second)
		stub := &stubNet{names: map[string][]netip.Addr{"public.example": {netip.MustParseAddr("203.0.113.7")}}}
		g.lookup, g.dial = stub.lookup, stub.dial
		_, err := g.DialTimeout("public.example:"+port, time.Second)
		if !errors.Is(err, ErrTargetNotAllowed) {
			t.Fatalf("dial port %s: %v, want ErrTargetNotAllowed", port, err)
		}
		if want := "target URL is not allowed: " + want; err.Error() != want {
			t.Errorf("dial port %s: %q, want %q", port, err, want)
		}
		if d := stub.dialed(); len(d) != 0 {
			t.Errorf("dialed %v", d)
		}
	}
}
