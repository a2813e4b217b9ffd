// Package natstest starts real, embedded NATS JetStream servers for tests, on a random
// loopback port with a t.TempDir() store, cleaned up by the test.
package natstest

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/edgehook/edgehook/natsconf"
)

// Server is a running embedded JetStream server with edgehook's topology applied.
type Server struct {
	*server.Server
	// URL is the client URL of the server.
	URL string
	// Topology is what Setup applied.
	Topology natsconf.Topology
}

// Start runs an embedded server, applies natsconf.Setup with the topology returned by
// natsconf.DefaultTopology as modified by edit (may be nil), and registers cleanup.
func Start(t testing.TB, edit func(*natsconf.Topology)) *Server {
	t.Helper()
	s, err := natsconf.StartEmbedded(natsconf.ServerSpec{Name: "natstest", Host: "127.0.0.1", Port: -1, StoreDir: t.TempDir()})
	if err != nil {
		t.Fatalf("natstest: %v", err)
	}
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	topo := natsconf.DefaultTopology()
	if edit != nil {
		edit(&topo)
	}
	srv := &Server{Server: s, URL: s.ClientURL(), Topology: topo}
	js := srv.JetStream(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := natsconf.Setup(ctx, js, topo); err != nil {
		t.Fatalf("natstest: setup: %v", err)
	}
	return srv
}

// Connect opens a client connection that is closed when the test ends.
func (s *Server) Connect(t testing.TB) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(s.URL, nats.MaxReconnects(-1))
	if err != nil {
		t.Fatalf("natstest: connect: %v", err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// JetStream opens a connection and returns its JetStream context.
func (s *Server) JetStream(t testing.TB) jetstream.JetStream {
	t.Helper()
	js, err := jetstream.New(s.Connect(t))
	if err != nil {
		t.Fatalf("natstest: jetstream: %v", err)
	}
	return js
}

// Embedded starts an embedded server running spec (natsconf.StartEmbedded), stopped
// when the test ends, and returns its client URL.
func Embedded(t testing.TB, spec natsconf.ServerSpec) string {
	t.Helper()
	return EmbeddedServer(t, spec).ClientURL()
}

// EmbeddedServer is Embedded for a test that needs the server itself (to connect to
// it in-process).
func EmbeddedServer(t testing.TB, spec natsconf.ServerSpec) *server.Server {
	t.Helper()
	s, err := natsconf.StartEmbedded(spec)
	if err != nil {
		t.Fatalf("natstest: %v", err)
	}
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	return s
}

// ConnectAs opens a connection to url as user with password (closed when the test
// ends) and returns its JetStream context.
func ConnectAs(t testing.TB, url, user, password string) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(url, nats.UserInfo(user, password), nats.MaxReconnects(-1))
	if err != nil {
		t.Fatalf("natstest: connect as %s: %v", user, err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("natstest: jetstream: %v", err)
	}
	return js
}
