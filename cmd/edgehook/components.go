package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/edgehook/edgehook/admin"
	"github.com/edgehook/edgehook/console"
	"github.com/edgehook/edgehook/gateway"
	"github.com/edgehook/edgehook/identity"
	"github.com/edgehook/edgehook/natsconf"
	"github.com/edgehook/edgehook/receiver"
	"github.com/edgehook/edgehook/status"
	"github.com/edgehook/edgehook/vault"
	"github.com/edgehook/edgehook/worker"
	"github.com/edgehook/edgehook/worker/dlq"
)

// gatewayOptions are the settings of the gateway, in `gateway` and `up`.
type gatewayOptions struct {
	edge         string
	httpAddr     string
	maxBodyBytes int
	portal       gateway.PortalConfig
}

func (o *gatewayOptions) register(s *settings) {
	s.String(&o.edge, "edge", "EDGEHOOK_EDGE", "", "name of the edge this gateway serves, connected to that edge's leaf node (empty: a gateway at the hub)")
	s.String(&o.httpAddr, "http-addr", "EDGEHOOK_HTTP_ADDR", "127.0.0.1:8080", "gateway listen address")
	s.Int(&o.maxBodyBytes, "max-body-bytes", "EDGEHOOK_MAX_BODY_BYTES", 256<<10, "largest accepted event body")
	s.Duration(&o.portal.SessionTTL, "portal-session-ttl", "EDGEHOOK_PORTAL_SESSION_TTL", console.DefaultSessionTTL, "how long a tenant portal session lasts after sign-in (at most 12h)")
	s.Bool(&o.portal.SecureCookies, "portal-secure-cookies", "EDGEHOOK_PORTAL_SECURE_COOKIES", false, "mark portal cookies Secure on plain HTTP too (behind a TLS-terminating proxy; always Secure over TLS)")
	s.Int(&o.portal.Index.MaxTenants, "portal-index-tenants", "EDGEHOOK_PORTAL_INDEX_TENANTS", status.DefaultIndexMaxTenants, "tenants whose events the portal keeps indexed in memory at once")
	s.Int(&o.portal.Index.MaxEvents, "portal-index-events", "EDGEHOOK_PORTAL_INDEX_EVENTS", status.DefaultIndexMaxEvents, "newest events per tenant the portal lists (older ones stay readable by id)")
	s.Duration(&o.portal.Index.IdleTimeout, "portal-index-idle", "EDGEHOOK_PORTAL_INDEX_IDLE", status.DefaultIndexIdleTimeout, "how long a tenant's events index lives without a portal read")
}

// adminOptions are the settings of the admin API, in `admin` and `up`.
type adminOptions struct {
	addr           string
	token          string
	rotationWindow time.Duration
	// allowPrivate lets target URLs name private and loopback addresses; `up` sets it
	// from the worker's EDGEHOOK_ALLOW_PRIVATE_TARGETS.
	allowPrivate bool
	// The operator console's session lifetime and Secure cookies.
	consoleTTL    time.Duration
	secureCookies bool
}

func (o *adminOptions) register(s *settings) {
	s.String(&o.addr, "admin-addr", "EDGEHOOK_ADMIN_ADDR", admin.DefaultAddr, "admin API listen address (keep it off the public network)")
	s.Secret(&o.token, "admin-token", "EDGEHOOK_ADMIN_TOKEN", fmt.Sprintf("admin API bearer token, at least %d characters (up generates one if unset)", admin.MinTokenLen))
	s.Duration(&o.rotationWindow, "rotation-window", "EDGEHOOK_ROTATION_WINDOW", admin.DefaultRotationWindow, "how long a rotated-out signing secret stays valid")
	s.Duration(&o.consoleTTL, "console-session-ttl", "EDGEHOOK_CONSOLE_SESSION_TTL", console.DefaultSessionTTL,
		fmt.Sprintf("how long an operator console session (at /console/ on the admin address) lasts, at most %s", console.MaxSessionTTL))
	s.Bool(&o.secureCookies, "console-secure-cookies", "EDGEHOOK_CONSOLE_SECURE_COOKIES", false, "mark the operator console's cookies Secure on plain HTTP too (behind a TLS-terminating proxy)")
}

// stack runs a process's components together: the first to fail stops the others,
// and the NATS connections close only after every component has returned, so a
// draining worker can still ack and nak.
type stack struct {
	ctx    context.Context
	cancel context.CancelFunc
	g      *errgroup.Group
	nats   natsOptions
	log    *slog.Logger
	conns  []*nats.Conn
	// configsReady reports whether webhook configuration can be read (the Vault
	// client holds a valid token); always true for the dev store. configsReason says
	// why not ("" when ready), e.g. that Vault locked the AppRole role id out.
	configsReady  func() bool
	configsReason func() string
}

func newStack(ctx context.Context, no natsOptions, log *slog.Logger) *stack {
	ctx, cancel := context.WithCancel(ctx)
	g, ctx := errgroup.WithContext(ctx)
	return &stack{ctx: ctx, cancel: cancel, g: g, nats: no, log: log,
		configsReady: func() bool { return true }, configsReason: func() string { return "" }}
}

// connect opens a connection for one component.
func (s *stack) connect(name string) (*nats.Conn, jetstream.JetStream, error) {
	nc, js, err := s.nats.connect(name, s.log)
	if err != nil {
		return nil, nil, err
	}
	s.conns = append(s.conns, nc)
	return nc, js, nil
}

// wait returns the first component error (nil when all stopped because ctx ended),
// then closes the connections.
func (s *stack) wait() error {
	err := s.g.Wait()
	s.cancel()
	for _, nc := range s.conns {
		nc.Close()
	}
	return err
}

// abort stops whatever was started and returns err, unless a component already
// running had failed first: its failure cancelled the start that returned err (which
// then says only "context canceled"), so that failure is the one returned.
func (s *stack) abort(err error) error {
	s.cancel()
	if first := s.wait(); first != nil && errors.Is(err, context.Canceled) {
		return first
	}
	return err
}

// startVault runs the Vault client's login and token renewal, and makes readiness
// (and the reason given when not ready) follow it.
func (s *stack) startVault(c *vault.Client) {
	s.configsReady, s.configsReason = c.Ready, c.NotReadyReason
	s.g.Go(func() error { return c.Run(s.ctx) })
}

// notReadyReason is what a component's /readyz says when it is not ready: why webhook
// configuration cannot be read, when that is the cause, else fallback.
func (s *stack) notReadyReason(fallback string) string {
	if r := s.configsReason(); r != "" {
		return "webhook configuration cannot be read: " + r
	}
	return fallback
}

// startConfigReader opens the Vault client of a component that only reads webhook
// configuration (worker, receiver), runs its login and renewal, and returns the
// per-tenant cache the component reads through.
func (s *stack) startConfigReader(vo vaultOptions, reg prometheus.Registerer) (*vault.Cache, error) {
	client, err := vo.client(s.log, false)
	if err != nil {
		return nil, err
	}
	s.startVault(client)
	return vault.NewCache(client, vault.CacheConfig{TTL: vo.cacheTTL}, reg), nil
}

// startGateway connects the gateway and its identity view and runs both. The gateway
// holds no Vault token and no identity writer.
func (s *stack) startGateway(o gatewayOptions, reg prometheus.Registerer, gather prometheus.Gatherer) (*gateway.Server, error) {
	ctx, log := s.ctx, s.log
	_, js, err := s.connect(string(natsconf.Gateway))
	if err != nil {
		return nil, err
	}
	idKV, err := js.KeyValue(ctx, natsconf.BucketIdentity)
	if err != nil {
		return nil, fmt.Errorf("identity bucket (run `%s`): %w", setupCommand(o.edge), err)
	}
	view := identity.NewView(idKV, log)
	deps := gateway.Deps{
		JS:         js,
		View:       view,
		Logger:     log, // gateway.New adds component=gateway
		Registerer: reg,
		Gatherer:   gather,
	}
	cfg := gateway.Config{Addr: o.httpAddr, MaxBodyBytes: o.maxBodyBytes, Edge: o.edge, Portal: o.portal}
	if o.edge != "" {
		// Everything ingest needs is on the edge's leaf node; the hub's statuses are
		// bound when the hub first answers, so the gateway starts while it does not.
		if err := deps.BindEdge(ctx, o.edge); err != nil {
			return nil, fmt.Errorf("%w (run `%s`)", err, setupCommand(o.edge))
		}
	} else {
		stKV, err := js.KeyValue(ctx, natsconf.BucketStatus)
		if err != nil {
			return nil, fmt.Errorf("status bucket (run `edgehook setup nats`): %w", err)
		}
		deps.Status = status.NewStore(stKV)
	}
	srv, err := gateway.New(cfg, deps)
	if err != nil {
		return nil, usageError{err}
	}
	s.g.Go(func() error { return view.Run(ctx) })
	s.g.Go(func() error { return srv.Run(ctx) })
	return srv, nil
}

// startAdmin connects the admin API as the NATS user admin and runs it on o.addr,
// writing webhook configuration to store.
func (s *stack) startAdmin(o adminOptions, store vault.ConfigStore, reg prometheus.Registerer, gather prometheus.Gatherer) (*admin.Server, error) {
	nc, js, err := s.connect(string(natsconf.Admin))
	if err != nil {
		return nil, err
	}
	idKV, err := js.KeyValue(s.ctx, natsconf.BucketIdentity)
	if err != nil {
		return nil, fmt.Errorf("identity bucket (run `edgehook setup nats`): %w", err)
	}
	srv, err := admin.New(admin.Config{
		Addr: o.addr, Token: o.token, RotationWindow: o.rotationWindow, AllowPrivateTargets: o.allowPrivate,
		ConsoleSessionTTL: o.consoleTTL, ConsoleSecureCookies: o.secureCookies,
	}, admin.Deps{
		Identity: identity.NewStore(idKV), Configs: store, NATS: nc, JS: js, Ready: s.configsReady,
		Logger: s.log, Registerer: reg, Gatherer: gather,
	})
	if err != nil {
		if errors.Is(err, admin.ErrInvalidConfig) && len(o.token) < admin.MinTokenLen {
			return nil, usageError{fmt.Errorf("EDGEHOOK_ADMIN_TOKEN: want at least %d characters", admin.MinTokenLen)}
		}
		return nil, usageError{err}
	}
	s.g.Go(func() error { return srv.Run(s.ctx) })
	return srv, nil
}

// setupCommand is the command that creates the JetStream assets of a gateway at edge
// ("" for the hub).
func setupCommand(edge string) string {
	if edge != "" {
		return "edgehook setup nats --edge " + edge
	}
	return "edgehook setup nats"
}

// startWorker connects a worker and runs it; it returns the worker's readiness.
func (s *stack) startWorker(cfg worker.Config, configs *vault.Cache, reg prometheus.Registerer) (func() bool, error) {
	ctx, log := s.ctx, s.log
	nc, js, err := s.connect(string(natsconf.Worker))
	if err != nil {
		return nil, err
	}
	if _, err := js.KeyValue(ctx, natsconf.BucketStatus); err != nil {
		return nil, fmt.Errorf("status bucket (run `edgehook setup nats`): %w", err)
	}
	w, err := worker.New(cfg, worker.Deps{JS: js, Configs: configs, Logger: log.With("component", "worker"), Registerer: reg})
	if err != nil {
		return nil, usageError{err}
	}
	// A changed target or secret resets the breakers of the tenant's parked events.
	if err := followConfigChanges(nc, configs, log, w.ConfigChanged); err != nil {
		return nil, fmt.Errorf("follow config changes: %w", err)
	}
	s.g.Go(func() error { return w.Run(ctx) })
	return func() bool { return w.Ready() && nc.IsConnected() && s.configsReady() }, nil
}

// startDLQ connects the DLQ processor as its own NATS user and runs it; it returns the
// processor's readiness. It needs no Vault.
func (s *stack) startDLQ(reg prometheus.Registerer) (func() bool, error) {
	ctx, log := s.ctx, s.log
	nc, js, err := s.connect(string(natsconf.DLQ))
	if err != nil {
		return nil, err
	}
	stKV, err := js.KeyValue(ctx, natsconf.BucketStatus)
	if err != nil {
		return nil, fmt.Errorf("status bucket (run `edgehook setup nats`): %w", err)
	}
	p, err := dlq.New(dlq.Config{}, dlq.Deps{JS: js, Status: status.NewStore(stKV), Logger: log.With("component", "dlq"), Registerer: reg})
	if err != nil {
		return nil, usageError{err}
	}
	s.g.Go(func() error { return p.Run(ctx) })
	return func() bool { return p.Ready() && nc.IsConnected() }, nil
}

// startReceiver connects a receiver and runs it.
func (s *stack) startReceiver(cfg receiver.Config, configs *vault.Cache, reg prometheus.Registerer, gather prometheus.Gatherer) error {
	nc, js, err := s.connect(string(natsconf.Receiver))
	if err != nil {
		return err
	}
	if err := followConfigChanges(nc, configs, s.log, nil); err != nil {
		return fmt.Errorf("follow config changes: %w", err)
	}
	srv, err := receiver.New(cfg, receiver.Deps{
		JS: js, Configs: configs, Logger: s.log, // receiver.New adds component=receiver
		Registerer: reg, Gatherer: gather, Ready: s.configsReady,
	})
	if err != nil {
		return usageError{err}
	}
	s.g.Go(func() error { return srv.Run(s.ctx) })
	return nil
}
