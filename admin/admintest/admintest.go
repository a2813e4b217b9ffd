// Package admintest runs a real admin API for tests: on 127.0.0.1, over the caller's
// NATS connection, with a file-backed webhook configuration store (vault.DevStore) in
// t.TempDir(), stopped when the test ends.
package admintest

import (
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/edgehook/edgehook/admin"
	"github.com/edgehook/edgehook/api/apitest"
	"github.com/edgehook/edgehook/identity"
	"github.com/edgehook/edgehook/natsconf"
	"github.com/edgehook/edgehook/vault"
)

// Token is the admin token of every admin API Start runs.
const Token = "admin-token-for-tests-0123456789"

// Options tweak the admin API Start runs; the zero value is a working one.
type Options struct {
	// Config is the admin API's configuration; Addr and Token are set by Start.
	Config admin.Config
	// Configs, when set, wraps the file-backed store (a fault injector).
	Configs func(vault.ConfigStore) vault.ConfigStore
	// Identity, when set, replaces the identity store on nc's bucket.
	Identity *identity.Store
	// Logger receives the admin API's logs (default: discarded).
	Logger *slog.Logger
	// RefusePrivateTargets keeps Config.AllowPrivateTargets as given. Without it the
	// admin API accepts loopback targets, where every test endpoint listens.
	RefusePrivateTargets bool
}

// Server is a running admin API.
type Server struct {
	// URL is its base URL, http://127.0.0.1:port.
	URL string
	// Configs is the webhook configuration store it writes.
	Configs *vault.DevStore
	// Identity is the identity store on the caller's bucket.
	Identity *identity.Store
	// Gatherer is what its /metrics serves.
	Gatherer prometheus.Gatherer
}

// Start runs an admin API on nc until the test ends.
func Start(t testing.TB, nc *nats.Conn, o Options) *Server {
	t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	kv, err := js.KeyValue(ctx, natsconf.BucketIdentity)
	if err != nil {
		t.Fatal(err)
	}
	dev, err := vault.OpenDevStore(filepath.Join(t.TempDir(), "dev-secrets.json"))
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Configs: dev, Identity: identity.NewStore(kv)}
	deps := admin.Deps{Identity: s.Identity, Configs: dev, NATS: nc, Logger: o.Logger}
	if o.Identity != nil {
		deps.Identity = o.Identity
	}
	if o.Configs != nil {
		deps.Configs = o.Configs(dev)
	}
	reg := prometheus.NewRegistry()
	deps.Registerer, deps.Gatherer, s.Gatherer = reg, reg, reg
	cfg := o.Config
	cfg.Addr, cfg.Token = "127.0.0.1:0", Token
	if !o.RefusePrivateTargets {
		cfg.AllowPrivateTargets = true
	}
	srv, err := admin.New(cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(runCtx, ln) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("admin Serve: %v", err)
		}
	})
	s.URL = "http://" + ln.Addr().String()
	return s
}

// CreateTenant creates a tenant with body through the admin API at s, failing the test
// unless it is answered 201.
func (s *Server) CreateTenant(t testing.TB, c *http.Client, body string) admin.CreatedTenant {
	t.Helper()
	r := apitest.Do(t, c, "POST", s.URL+"/v1/tenants", Token, body)
	if r.Code != http.StatusCreated {
		t.Fatalf("create tenant: %d %s", r.Code, r.Body)
	}
	var created admin.CreatedTenant
	if err := json.Unmarshal(r.Body, &created); err != nil {
		t.Fatalf("create tenant: %v in %s", err, r.Body)
	}
	return created
}
