package worker

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"time"

	"github.com/edgehook/edgehook/target"
)

// ErrTargetNotAllowed is matched (errors.Is) by every refusal of the SSRF guard: a
// target URL that is not http(s), or a host that resolves to an address webhooks may
// not reach. It is target.ErrNotAllowed.
var ErrTargetNotAllowed = target.ErrNotAllowed

// TargetError is the SSRF guard's refusal, a target.Error: its message is safe to
// show to the tenant ("target address is not allowed: private") and never contains
// the target URL.
type TargetError = target.Error

// checkTargetURL refuses target URLs the worker must not call: anything but http and
// https, URLs without a host, and ports outside 1-65535.
func checkTargetURL(raw string) error { return target.CheckURL(raw) }

// dialGuard is the HTTP client's dial function. It resolves the host once, refuses the
// connection if any resolved address is not allowed (before anything is dialed), and
// dials the checked addresses themselves, so a second DNS answer cannot redirect the
// connection (no DNS rebinding).
type dialGuard struct {
	allowPrivate   bool
	connectTimeout time.Duration
	// lookup resolves a host name; dial opens a TCP connection to an ip:port.
	lookup func(ctx context.Context, host string) ([]netip.Addr, error)
	dial   func(ctx context.Context, network, addr string) (net.Conn, error)
}

// newDialGuard returns a guard using the system resolver and a plain TCP dialer.
func newDialGuard(allowPrivate bool, connectTimeout time.Duration) *dialGuard {
	var d net.Dialer
	return &dialGuard{
		allowPrivate:   allowPrivate,
		connectTimeout: connectTimeout,
		lookup: func(ctx context.Context, host string) ([]netip.Addr, error) {
			return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		},
		dial: d.DialContext,
	}
}

// DialTimeout implements fasthttp.DialFuncWithTimeout for addr "host:port". The time
// allowed for resolving and connecting is the shorter of the connect timeout and the
// request's remaining time.
func (g *dialGuard) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	if timeout <= 0 || timeout > g.connectTimeout {
		timeout = g.connectTimeout
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return g.DialContext(ctx, addr)
}

// DialContext resolves and checks addr's host, then dials the checked addresses in
// order until one connects.
func (g *dialGuard) DialContext(ctx context.Context, addr string) (net.Conn, error) {
	ips, port, err := g.resolve(ctx, addr)
	if err != nil {
		return nil, err
	}
	var firstErr error
	for _, ip := range ips {
		conn, err := g.dial(ctx, "tcp", netip.AddrPortFrom(ip, port).String())
		if err == nil {
			return conn, nil
		}
		if firstErr == nil {
			firstErr = err
		}
		if ctx.Err() != nil {
			break
		}
	}
	return nil, firstErr
}

// resolve returns the addresses of addr's host, all of them allowed, and its port.
func (g *dialGuard) resolve(ctx context.Context, addr string) ([]netip.Addr, uint16, error) {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, 0, fmt.Errorf("target address %q: %w", addr, err)
	}
	if err := target.CheckPort(portStr); err != nil {
		return nil, 0, err
	}
	port, _ := strconv.ParseUint(portStr, 10, 16) // CheckPort has checked it
	var ips []netip.Addr
	if ip, err := netip.ParseAddr(host); err == nil {
		ips = []netip.Addr{ip}
	} else {
		if !g.allowPrivate && target.IsLocalhostName(host) {
			return nil, 0, &TargetError{What: "address", Reason: target.ClassLoopback}
		}
		ips, err = g.lookup(ctx, host)
		if err != nil {
			return nil, 0, fmt.Errorf("resolve %s: %w", host, err)
		}
		if len(ips) == 0 {
			return nil, 0, fmt.Errorf("resolve %s: no addresses", host)
		}
	}
	if !g.allowPrivate {
		for _, ip := range ips {
			if reason := target.Classify(ip); reason != "" {
				return nil, 0, &TargetError{What: "address", Reason: reason}
			}
		}
	}
	return ips, uint16(port), nil
}
