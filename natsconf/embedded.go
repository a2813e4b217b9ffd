package natsconf

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// EmbeddedOptions configures an in-process NATS server with JetStream.
type EmbeddedOptions struct {
	// Addr is host:port to listen on; port 0 or -1 picks a free port.
	Addr string
	// StoreDir is the JetStream file store directory.
	StoreDir string
	// Domain is the JetStream domain (empty for none).
	Domain string
	// Users, when set, turns on authentication: each component connects as its own user
	// (see Users and Permissions).
	Users []*server.User
	// NoAuthUser is the user a client without credentials is taken as (for the nats CLI
	// of a local `up`); empty means such clients are refused when Users is set.
	NoAuthUser string
}

// StartEmbedded starts an in-process NATS server with JetStream enabled and waits
// until it accepts connections. The caller shuts it down with Shutdown and
// WaitForShutdown.
func StartEmbedded(o EmbeddedOptions) (*server.Server, error) {
	if o.StoreDir == "" {
		return nil, errors.New("natsconf: embedded server needs a store directory")
	}
	host, portStr, err := net.SplitHostPort(o.Addr)
	if err != nil {
		return nil, fmt.Errorf("natsconf: nats listen address %q: %w", o.Addr, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("natsconf: nats listen port %q: %w", portStr, err)
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	opts := &server.Options{
		ServerName:            "edgehook",
		Host:                  host,
		Port:                  port,
		JetStream:             true,
		JetStreamDomain:       o.Domain,
		StoreDir:              o.StoreDir,
		NoSigs:                true,
		NoLog:                 true,
		MaxPayload:            1 << 20,
		DisableShortFirstPing: true,
		Users:                 o.Users,
		NoAuthUser:            o.NoAuthUser,
	}
	s, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("natsconf: embedded server: %w", err)
	}
	go s.Start()
	if !s.ReadyForConnections(30 * time.Second) {
		s.Shutdown()
		return nil, fmt.Errorf("natsconf: embedded server on %s not ready after 30s", o.Addr)
	}
	return s, nil
}
