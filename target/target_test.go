package target_test

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/edgehook/edgehook/target"
)

// TestClassify covers every refused class and the public addresses next to them.
func TestClassify(t *testing.T) {
	for ip, want := range map[string]string{
		"8.8.8.8":                "",
		"203.0.113.7":            "",
		"2606:4700::1111":        "",
		"64:ff9b::808:808":       "", // NAT64 of 8.8.8.8
		"2002:808:808::1":        "", // 6to4 of 8.8.8.8
		"127.0.0.1":              target.ClassLoopback,
		"127.255.255.254":        target.ClassLoopback,
		"::1":                    target.ClassLoopback,
		"::ffff:127.0.0.1":       target.ClassLoopback,
		"::127.0.0.1":            target.ClassLoopback, // IPv4-compatible
		"10.0.0.1":               target.ClassPrivate,
		"172.16.0.1":             target.ClassPrivate,
		"172.31.255.255":         target.ClassPrivate,
		"192.168.0.1":            target.ClassPrivate,
		"fc00::1":                target.ClassPrivate,
		"fd12:3456::1":           target.ClassPrivate,
		"fec0::1":                target.ClassPrivate,
		"::ffff:10.0.0.1":        target.ClassPrivate,
		"64:ff9b::a00:1":         target.ClassPrivate, // NAT64 of 10.0.0.1
		"2002:c0a8:101::1":       target.ClassPrivate, // 6to4 of 192.168.1.1
		"169.254.169.254":        target.ClassLinkLocal,
		"fe80::1":                target.ClassLinkLocal,
		"fe80::1%eth0":           target.ClassLinkLocal,
		"::ffff:169.254.169.254": target.ClassLinkLocal,
		"224.0.0.1":              target.ClassMulticast,
		"239.255.255.250":        target.ClassMulticast,
		"ff02::1":                target.ClassMulticast,
		"ff05::2":                target.ClassMulticast,
		"0.0.0.0":                target.ClassUnspecified,
		"0.1.2.3":                target.ClassUnspecified,
		"::":                     target.ClassUnspecified,
		"100.64.0.1":             target.ClassCGNAT,
		"100.127.255.255":        target.ClassCGNAT,
		"100.128.0.1":            "",
		"172.32.0.1":             "",
		"255.255.255.255":        target.ClassReserved,
		"240.0.0.1":              target.ClassReserved,
		"192.0.0.8":              target.ClassReserved,
		"100::1":                 target.ClassReserved, // discard-only
		"64:ff9b:1::1":           target.ClassReserved, // local-use NAT64
	} {
		if got := target.Classify(netip.MustParseAddr(ip)); got != want {
			t.Errorf("Classify(%s) = %q, want %q", ip, got, want)
		}
	}
	if got := target.Classify(netip.Addr{}); got != target.ClassInvalid {
		t.Errorf("Classify(zero Addr) = %q, want %q", got, target.ClassInvalid)
	}
}

// TestValidateURL: every rule of a target URL being set, with the reason the tenant
// reads, with private targets refused and allowed.
func TestValidateURL(t *testing.T) {
	const anyPrivate = "" // accepted when private targets are allowed
	long := "https://hooks.example.com/" + strings.Repeat("a", target.MaxURLLen-len("https://hooks.example.com/"))
	for _, tc := range []struct {
		url string
		// want is the reason with private targets refused ("" accepted); allowed is the
		// reason with them allowed.
		want, allowed string
	}{
		{"https://hooks.example.com/x", "", ""},
		{"HTTP://Hooks.Example.com:8443/a?b=c", "", ""},
		{"http://203.0.113.7:1/", "", ""},
		{"http://[2606:4700::1111]:65535/", "", ""},
		{long, "", ""},
		{long + "a", "longer than 2048 bytes", "longer than 2048 bytes"},
		{" https://hooks.example.com/", "leading or trailing white space", "leading or trailing white space"},

		{"ftp://hooks.example.com/", "scheme must be http or https", "scheme must be http or https"},
		{"file:///etc/passwd", "scheme must be http or https", "scheme must be http or https"},
		{"hooks.example.com/x", "scheme must be http or https", "scheme must be http or https"},
		{"/relative/path", "scheme must be http or https", "scheme must be http or https"},
		{"http:hooks.example.com", "not an absolute URL with a host (want http://host/...)", "not an absolute URL with a host (want http://host/...)"},
		{"http:///nohost", "no host", "no host"},
		{"http://:8080/", "no host", "no host"},
		{"http://exa mple.com/", "not a valid URL", "not a valid URL"},
		{"https://user:s3cr3t@hooks.example.com/", "credentials in the URL (user:password@) are not allowed", "credentials in the URL (user:password@) are not allowed"},
		{"https://tok3n@hooks.example.com/", "credentials in the URL (user:password@) are not allowed", "credentials in the URL (user:password@) are not allowed"},

		{"https://hooks.example.com:99999/", "port 99999 is out of range 1-65535", "port 99999 is out of range 1-65535"},
		{"https://hooks.example.com:0/", "port 0 is out of range 1-65535", "port 0 is out of range 1-65535"},
		{"https://hooks.example.com:65536/", "port 65536 is out of range 1-65535", "port 65536 is out of range 1-65535"},
		{"http://[2606:4700::1111]:99999/", "port 99999 is out of range 1-65535", "port 99999 is out of range 1-65535"},
		{"https://hooks.example.com:http/", `port "http" is not a number in 1-65535`, `port "http" is not a number in 1-65535`},
		{"https://hooks.example.com:-1/", `port "-1" is not a number in 1-65535`, `port "-1" is not a number in 1-65535`},
		{"https://hooks.example.com:/", "empty port after the host", "empty port after the host"},

		{"http://127.0.0.1:8090/hooks", "host is a loopback address", anyPrivate},
		{"http://[::1]/", "host is a loopback address", anyPrivate},
		{"http://[::ffff:127.0.0.1]/", "host is a loopback address", anyPrivate},
		{"http://localhost:8080/", "host is a loopback name (localhost)", anyPrivate},
		{"http://LOCALHOST./", "host is a loopback name (localhost)", anyPrivate},
		{"http://api.localhost/", "host is a loopback name (localhost)", anyPrivate},
		{"http://10.1.2.3/", "host is a private address", anyPrivate},
		{"http://192.168.1.10/", "host is a private address", anyPrivate},
		{"http://[fd00::1]/", "host is a private address", anyPrivate},
		{"http://[64:ff9b::a00:1]/", "host is a private address", anyPrivate},
		{"http://169.254.169.254/latest/meta-data/", "host is a link-local address", anyPrivate},
		{"http://[fe80::1%25eth0]/", "host is a link-local address", anyPrivate},
		{"http://100.64.0.1/", "host is a cgnat address", anyPrivate},
		{"http://0.0.0.0/", "host is a unspecified address", anyPrivate},
		{"http://[::]/", "host is a unspecified address", anyPrivate},
		{"http://224.0.0.1/", "host is a multicast address", anyPrivate},
		{"http://[ff02::1]/", "host is a multicast address", anyPrivate},
		{"http://240.0.0.1/", "host is a reserved address", anyPrivate},
		{"http://255.255.255.255/", "host is a reserved address", anyPrivate},

		// Forms some resolvers read as IPv4 addresses are never names.
		{"http://127.1/", `host "127.1" is neither a name nor an IP address in standard form`, `host "127.1" is neither a name nor an IP address in standard form`},
		{"http://2130706433/", `host "2130706433" is neither a name nor an IP address in standard form`, `host "2130706433" is neither a name nor an IP address in standard form`},
		{"http://0x7f.0.0.1/", `host "0x7f.0.0.1" is neither a name nor an IP address in standard form`, `host "0x7f.0.0.1" is neither a name nor an IP address in standard form`},
		{"http://hooks.0x1/", `host "hooks.0x1" is neither a name nor an IP address in standard form`, `host "hooks.0x1" is neither a name nor an IP address in standard form`},
		// A name is not resolved when it is set: delivery checks what it resolves to.
		{"http://internal.example/", "", ""},
		{"http://0x.example/", "", ""},
	} {
		for _, allow := range []bool{false, true} {
			want := tc.want
			if allow {
				want = tc.allowed
			}
			err := target.ValidateURL(tc.url, allow)
			if want == "" {
				if err != nil {
					t.Errorf("ValidateURL(%.60q, allowPrivate=%v) = %v, want nil", tc.url, allow, err)
				}
				continue
			}
			var te *target.Error
			if !errors.Is(err, target.ErrNotAllowed) || !errors.As(err, &te) {
				t.Errorf("ValidateURL(%.60q, allowPrivate=%v) = %v, want a target.Error", tc.url, allow, err)
				continue
			}
			if got := err.Error(); got != "target URL is not allowed: "+want {
				t.Errorf("ValidateURL(%.60q, allowPrivate=%v) = %q, want reason %q", tc.url, allow, got, want)
			}
			if strings.Contains(err.Error(), "s3cr3t") || strings.Contains(err.Error(), "tok3n") || strings.Contains(err.Error(), "example.com") || len(err.Error()) > 200 {
				t.Errorf("ValidateURL(%.60q): message %q shows part of the URL", tc.url, err)
			}
		}
	}
}

// TestCheckURL is delivery's check: the URL rules without the address classes, which
// delivery applies to resolved addresses instead.
func TestCheckURL(t *testing.T) {
	for url, want := range map[string]string{
		"https://hooks.example.com/x":     "",
		"HTTP://hooks.example.com":        "",
		"http://127.0.0.1:8090/":          "",
		"https://u:p@hooks.example.com":   "", // stored before ValidateURL existed; delivery still sends
		"ftp://hooks.example.com/":        "scheme must be http or https",
		"file:///etc/passwd":              "scheme must be http or https",
		"hooks.example.com/x":             "scheme must be http or https",
		"http:///nohost":                  "no host",
		"http://exa mple.com/\x7f":        "not a valid URL",
		"gopher://127.0.0.1:70/_hello":    "scheme must be http or https",
		"http://hooks.example.com:99999/": "port 99999 is out of range 1-65535",
		"http://hooks.example.com:0/":     "port 0 is out of range 1-65535",
	} {
		err := target.CheckURL(url)
		switch {
		case want == "" && err != nil:
			t.Errorf("CheckURL(%q) = %v, want nil", url, err)
		case want != "" && (!errors.Is(err, target.ErrNotAllowed) || err.Error() != "target URL is not allowed: "+want):
			t.Errorf("CheckURL(%q) = %v, want %q", url, err, want)
		}
	}
}

func TestIsLocalhostName(t *testing.T) {
	for host, want := range map[string]bool{
		"localhost": true, "LocalHost.": true, "a.b.localhost": true,
		"localhost.example": false, "notlocalhost": false, "": false,
	} {
		if got := target.IsLocalhostName(host); got != want {
			t.Errorf("IsLocalhostName(%q) = %v, want %v", host, got, want)
		}
	}
}
