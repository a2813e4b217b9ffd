// Package target is about webhook targets: which URLs a tenant may set and which
// addresses delivery may reach. ValidateURL judges a URL when it is set (without
// resolving it); CheckURL and Classify are what delivery applies, the latter to every
// address a target's host resolves to.
package target

import (
	"errors"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
)

// MaxURLLen is the longest target URL ValidateURL accepts, in bytes.
const MaxURLLen = 2048

// ErrNotAllowed is matched (errors.Is) by every refusal of this package.
var ErrNotAllowed = errors.New("target is not allowed")

// Error is a refused target URL or address. Its message is safe to show to the
// tenant ("target address is not allowed: private"): it names the part refused and
// why, never the URL itself.
type Error struct {
	// What is "address" for a refused resolved address, "URL" for a refused URL.
	What string
	// Reason is the class of a refused address (see Classify) or why a URL was
	// refused.
	Reason string
}

// Error returns "target <what> is not allowed: <reason>".
func (e *Error) Error() string { return "target " + e.What + " is not allowed: " + e.Reason }

// Is makes an Error match ErrNotAllowed.
func (e *Error) Is(target error) bool { return target == ErrNotAllowed }

func urlError(reason string) error { return &Error{What: "URL", Reason: reason} }

// Address classes, as Classify returns them.
const (
	ClassInvalid     = "invalid"
	ClassUnspecified = "unspecified"
	ClassLoopback    = "loopback"
	ClassPrivate     = "private"
	ClassLinkLocal   = "link-local"
	ClassMulticast   = "multicast"
	ClassCGNAT       = "cgnat"
	ClassReserved    = "reserved"
)

// Address ranges refused besides those netip classifies itself.
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

// Classify returns the class of ip that webhooks may not reach (one of the Class
// constants), or "" when it may be reached. IPv4-mapped, IPv4-compatible, NAT64 and
// 6to4 addresses are judged by the IPv4 address they embed.
func Classify(ip netip.Addr) string {
	ip = ip.WithZone("").Unmap()
	switch {
	case !ip.IsValid():
		return ClassInvalid
	case ip.IsUnspecified() || thisNetwork.Contains(ip):
		return ClassUnspecified
	case ip.IsLoopback():
		return ClassLoopback
	case ip.IsPrivate() || siteLocalV6.Contains(ip):
		return ClassPrivate
	case ip.IsLinkLocalUnicast():
		return ClassLinkLocal
	case ip.IsMulticast():
		return ClassMulticast
	case sharedCGNAT.Contains(ip):
		return ClassCGNAT
	case reservedV4.Contains(ip) || protocolV4.Contains(ip) || discardOnlyV6.Contains(ip) || nat64Local.Contains(ip):
		return ClassReserved
	case nat64.Contains(ip) || ipv4Compat.Contains(ip):
		b := ip.As16()
		return Classify(netip.AddrFrom4([4]byte(b[12:16])))
	case sixToFour.Contains(ip):
		b := ip.As16()
		return Classify(netip.AddrFrom4([4]byte(b[2:6])))
	}
	return ""
}

// IsLocalhostName reports whether host is "localhost" or a name under it, which
// always means the local machine (RFC 6761), whatever DNS says.
func IsLocalhostName(host string) bool {
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	return host == "localhost" || strings.HasSuffix(host, ".localhost")
}

// CheckURL is delivery's check of a stored target URL before anything is resolved:
// an http or https URL with a host and, when it names one, a port in 1-65535.
func CheckURL(raw string) error {
	_, err := parse(raw)
	return err
}

// ValidateURL judges a target URL when a tenant sets it: an absolute http or https
// URL of at most MaxURLLen bytes, with a host, without credentials, with a port in
// 1-65535 when it names one. Unless allowPrivate, a host that is an IP address of a
// class Classify refuses, or a localhost name, is refused too. It never resolves the
// host: delivery checks the addresses a name resolves to. Every refusal is an *Error.
func ValidateURL(raw string, allowPrivate bool) error {
	if len(raw) > MaxURLLen {
		return urlError("longer than " + strconv.Itoa(MaxURLLen) + " bytes")
	}
	if strings.TrimSpace(raw) != raw {
		return urlError("leading or trailing white space")
	}
	u, err := parse(raw)
	if err != nil {
		return err
	}
	if u.User != nil {
		return urlError("credentials in the URL (user:password@) are not allowed")
	}
	host := u.Hostname()
	ip, ipErr := netip.ParseAddr(host)
	if ipErr != nil && looksNumeric(host) {
		return urlError("host " + strconv.Quote(host) + " is neither a name nor an IP address in standard form")
	}
	if allowPrivate {
		return nil
	}
	if ipErr == nil {
		if class := Classify(ip); class != "" {
			return urlError("host is a " + class + " address")
		}
		return nil
	}
	if IsLocalhostName(host) {
		return urlError("host is a " + ClassLoopback + " name (localhost)")
	}
	return nil
}

// parse parses raw and applies CheckURL's rules.
func parse(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		if p, ok := invalidPort(raw); ok {
			return nil, urlError("port " + strconv.Quote(p) + " is not a number in 1-65535")
		}
		return nil, urlError("not a valid URL")
	}
	if s := strings.ToLower(u.Scheme); s != "http" && s != "https" {
		return nil, urlError("scheme must be http or https")
	}
	if u.Opaque != "" {
		return nil, urlError("not an absolute URL with a host (want http://host/...)")
	}
	if u.Hostname() == "" {
		return nil, urlError("no host")
	}
	if strings.HasSuffix(u.Host, ":") {
		return nil, urlError("empty port after the host")
	}
	if p := u.Port(); p != "" {
		if err := CheckPort(p); err != nil {
			return nil, err
		}
	}
	return u, nil
}

// CheckPort refuses a port that is not a decimal number in 1-65535, naming it.
func CheckPort(p string) error {
	n, err := strconv.ParseUint(p, 10, 64)
	switch {
	case err == nil && n >= 1 && n <= 65535:
		return nil
	case err == nil || errors.Is(err, strconv.ErrRange) && strings.Trim(p, "0123456789") == "":
		return urlError("port " + p + " is out of range 1-65535")
	}
	return urlError("port " + strconv.Quote(p) + " is not a number in 1-65535")
}

// invalidPort returns the port of raw's authority when url.Parse refused it for its
// port, so the message can name it.
func invalidPort(raw string) (string, bool) {
	_, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return "", false
	}
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		rest = rest[:i]
	}
	if i := strings.LastIndexByte(rest, '@'); i >= 0 {
		rest = rest[i+1:]
	}
	if i := strings.LastIndexByte(rest, ']'); i >= 0 {
		rest = rest[i+1:]
	}
	_, port, ok := strings.Cut(rest, ":")
	if !ok || port == "" || len(port) > 32 {
		return "", false
	}
	if _, err := strconv.ParseUint(port, 10, 64); err == nil {
		return "", false // a number: not what url.Parse refused
	}
	return port, true
}

// looksNumeric reports whether host, which is not an IP address in standard form,
// has a last label that is a number (decimal, octal or 0x hex): a form such as
// "127.1", "2130706433" or "0x7f.0.0.1" that some resolvers read as an IPv4 address
// and no DNS name uses (top-level labels are never numeric).
func looksNumeric(host string) bool {
	host = strings.TrimSuffix(host, ".")
	last := host[strings.LastIndexByte(host, '.')+1:]
	if last == "" {
		return false
	}
	if l := strings.ToLower(last); strings.HasPrefix(l, "0x") {
		last = l[2:]
		if last == "" {
			return true
		}
		for _, c := range last {
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
				return false
			}
		}
		return true
	}
	for _, c := range last {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
