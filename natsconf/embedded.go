package natsconf

import (
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// StartEmbedded starts an in-process NATS server running spec (the options parsed from
// the same configuration text a nats-server process would get) and waits until it
// accepts connections. The caller shuts it down with Shutdown and WaitForShutdown.
func StartEmbedded(spec ServerSpec) (*server.Server, error) {
	opts, err := spec.Options()
	if err != nil {
		return nil, err
	}
	if err := portFree(spec.Host, spec.Port); err != nil {
		return nil, err
	}
	opts.NoSigs = true
	opts.NoLog = true
	opts.DisableShortFirstPing = true
	s, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("natsconf: embedded server: %w", err)
	}
	go s.Start()
	if !s.ReadyForConnections(30 * time.Second) {
		s.Shutdown()
		return nil, fmt.Errorf("natsconf: embedded server on %s not ready after 30s", hostPort(spec.Host, spec.Port))
	}
	return s, nil
}

// portFree reports a client port another process listens on at once: the server,
// which logs nothing here, would only fail to become ready after 30 seconds. (The
// port may still be taken between this check and the server's listen; that ends in
// the not-ready error.)
func portFree(host string, port int) error {
	if port <= 0 {
		return nil // a random port
	}
	ln, err := net.Listen("tcp", hostPort(host, port))
	if err != nil {
		return fmt.Errorf("natsconf: embedded server: cannot listen on %s (another edgehook up or NATS server there? choose another address): %w", hostPort(host, port), err)
	}
	return ln.Close()
}

// SplitAddr splits a listen address host:port; port 0 becomes -1, a random port.
func SplitAddr(addr string) (string, int, error) {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("nats listen address %q: %w", addr, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < -1 || port > 65535 {
		return "", 0, fmt.Errorf("nats listen port %q: want 0 to 65535", portStr)
	}
	if port == 0 {
		port = -1
	}
	return host, port, nil
}

// IsLoopback reports whether host (a name or an address) is a loopback address.
func IsLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
