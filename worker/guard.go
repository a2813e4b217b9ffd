package worker

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// ErrTargetNotAllowed is matched (errors.Is) by every refusal of the SSRF guard: a
// target URL that is not http(s), or a host that resolves to an address webhooks may
// not reach.
var ErrTargetNotAllowed = errors.New("target is not allowed")

// TargetError is the SSRF guard's refusal. Its message is safe to show to the tenant
// ("target address is not allowed: private"); it never contains the target URL.
type TargetError struct {
	// What is "address" for a refused resolved address, "URL" for a refused URL.
	What string
	// Reason is the class of the refused address (loopback, private, link-local,
	// multicast, unspecified, cgnat, reserved) or why the URL was refused.
	Reason string
}

// Error returns "target <what> is not allowed: <reason>".
func (e *TargetError) Error() string { return "target " + e.What + " is not allowed: " + e.Reason }

// Is makes a TargetError match ErrTargetNotAllowed.
func (e *TargetError) Is(target error) bool { return target == ErrTargetNotAllowed }

// checkTargetURL refuses target URLs the worker must not call: anything but http and
// https, and URLs without a host.
func checkTargetURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return &TargetError{What: "URL", Reason: "not a valid URL"}
	}
	if s := strings.ToLower(u.Scheme); s != "http" && s != "https" {
		return &TargetError{What: "URL", Reason: "scheme must be http or https"}
	}
	if u.Hostname() == "" {
		return &TargetError{What: "URL", Reason: "no host"}
	}
	return nil
}

// Address ranges the guard refuses besides those netip classifies itself.
var (
	thisNetwork   = netip.MustParsePrefix("0.0.0.0/8")
	sharedCGNAT   = netip.MustParsePrefix("100.64.0.0/10")
	reservedV4    = netip.MustParsePrefix("240.0.0.0/4") // includes 255.255.255.255
	protocolV4    = netip.MustParsePrefix("192.0.0.0/24")
	siteLocalV6   = netip.MustParsePrefix("fec0::/10")
	nat64         = netip.MustParsePrefix("64:ff9b::/96")
	nat64Local    = netip.MustParsePrefix("64:ff9b:1::/48")
	sixToFour     = netip.MustParsePrefix("2002::/16")
	ipv4Compat    = netip.MustParsePrefix("::/96")
	discardOnlyV6 = netip.MustParsePrefix("100::/64")
)

// blockedReason returns why ip may not be a webhook target, or "" when it may.
// IPv4-mapped, NAT64 and 6to4 addresses are judged by the IPv4 address they embed.
func blockedReason(ip netip.Addr) string {
	ip = ip.WithZone("").Unmap()
	switch {
	case !ip.IsValid():
		return "invalid"
	case ip.IsUnspecified() || thisNetwork.Contains(ip):
		return "unspecified"
	case ip.IsLoopback():
		return "loopback"
	case ip.IsPrivate() || siteLocalV6.Contains(ip):
		return "private"
	case ip.IsLinkLocalUnicast():
		return "link-local"
	case ip.IsMulticast():
		return "multicast"
	case sharedCGNAT.Contains(ip):
		return "cgnat"
	case reservedV4.Contains(ip) || protocolV4.Contains(ip) || discardOnlyV6.Contains(ip) || nat64Local.Contains(ip):
		return "reserved"
	case nat64.Contains(ip) || ipv4Compat.Contains(ip):
		b := ip.As16()
		return blockedReason(netip.AddrFrom4([4]byte(b[12:16])))
	case sixToFour.Contains(ip):
		b := ip.As16()
		return blockedReason(netip.AddrFrom4([4]byte(b[2:6])))
	}
	return ""
}

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
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		return nil, 0, fmt.Errorf("target port %q: %w", portStr, err)
	}
	var ips []netip.Addr
	if ip, err := netip.ParseAddr(host); err == nil {
		ips = []netip.Addr{ip}
	} else {
		if !g.allowPrivate && isLocalhostName(host) {
			return nil, 0, &TargetError{What: "address", Reason: "loopback"}
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
			if reason := blockedReason(ip); reason != "" {
				return nil, 0, &TargetError{What: "address", Reason: reason}
			}
		}
	}
	return ips, uint16(port), nil
}

// isLocalhostName reports whether host is "localhost" or a name under it, which
// always means the local machine (RFC 6761), whatever DNS says.
func isLocalhostName(host string) bool {
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	return host == "localhost" || strings.HasSuffix(host, ".localhost")
}
