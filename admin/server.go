// Package admin is edgehook's admin API, a component of its own: a fasthttp server on
// its own listener (by default 127.0.0.1:8081, never the public one) that creates and
// changes tenants. It is the only component that writes the identity bucket (as the
// NATS user admin) and webhook configuration (in Vault, with the admin policy), and it
// announces every configuration change so workers and receivers drop cached copies.
// Every request but the health and metrics endpoints needs the admin token. The same
// listener serves the operator console under /console/ (signed in with the admin
// token), on the same code and NATS user.
package admin

import (
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"

	"github.com/edgehook/edgehook/api"
	"github.com/edgehook/edgehook/console"
	"github.com/edgehook/edgehook/natsconf"
	"github.com/edgehook/edgehook/vault"
)

// serverLabel is the value of the "server" label on the shared HTTP request counter.
const serverLabel = "admin"

// Server is the admin API. Create it with New, then call Run (or Serve).
type Server struct {
	cfg      Config
	deps     Deps
	log      *slog.Logger
	configs  vault.ConfigStore // Deps.Configs, announcing every write
	routes   *api.Router       // the admin listener's
	relayed  *api.Router       // a tenant's own routes, the only ones the relay serves
	token    [sha256.Size]byte
	requests *api.Requests
	http     *fasthttp.Server
	promh    fasthttp.RequestHandler
	tooLarge *api.Error
	console  *console.Operator
	rates    *rateSampler

	bound api.Bound
}

// New validates cfg and deps, registers the metrics and returns a Server that is not
// yet listening.
func New(cfg Config, deps Deps) (*Server, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := deps.validate(); err != nil {
		return nil, err
	}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	requests, err := api.NewRequests(deps.Registerer, serverLabel)
	if err != nil {
		return nil, err
	}
	log := deps.Logger.With("component", "admin")
	s := &Server{
		cfg:      cfg,
		deps:     deps,
		log:      log,
		configs:  Announcing(deps.Configs, deps.NATS, log),
		token:    sha256.Sum256([]byte(cfg.Token)),
		requests: requests,
		promh:    fasthttpadaptor.NewFastHTTPHandler(promhttp.HandlerFor(deps.Gatherer, promhttp.HandlerOpts{})),
		tooLarge: api.NewError(fasthttp.StatusRequestEntityTooLarge, api.CodePayloadTooLarge,
			fmt.Sprintf("request body exceeds the limit of %d bytes", cfg.MaxBodyBytes)),
	}
	s.routes, s.relayed = s.buildRoutes()
	if err := s.mountConsole(); err != nil {
		return nil, err
	}
	s.http = &fasthttp.Server{
		Handler:              s.Handler(),
		ErrorHandler:         s.handleRequestError,
		Name:                 "edgehook-admin",
		MaxRequestBodySize:   cfg.MaxBodyBytes,
		ReadTimeout:          30 * time.Second,
		WriteTimeout:         30 * time.Second,
		IdleTimeout:          2 * time.Minute,
		NoDefaultContentType: true,
		CloseOnShutdown:      true,
		Logger:               api.FastHTTPLogger{Log: log},
	}
	return s, nil
}

// Handler returns the admin API's request handler, the operator console included
// (under /console/), for serving it with a fasthttp.Server of the caller's choosing.
func (s *Server) Handler() fasthttp.RequestHandler { return s.serveWithConsole }

// Run listens on Config.Addr and serves until ctx is cancelled, then stops accepting,
// lets in-flight requests finish for at most Config.DrainTimeout and returns.
func (s *Server) Run(ctx context.Context) error {
	ln, err := api.Listen(ctx, s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("admin: listen on %s: %w", s.cfg.Addr, err)
	}
	return s.Serve(ctx, ln)
}

// Serve serves on ln (which it closes), and answers the tenant requests gateways relay
// over NATS, until ctx is cancelled, with the same bounded drain as Run.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	s.bound.Set(ln.Addr().String())
	stopRelay, err := s.startRelay()
	if err != nil {
		ln.Close()
		return err
	}
	s.log.Info("admin API listening", "addr", s.bound.Addr(), "relay", natsconf.AdminTenantSubject, "console", s.console.Prefix())
	sampling := make(chan struct{})
	sctx, stopSampling := context.WithCancel(ctx)
	go func() { defer close(sampling); s.rates.run(sctx) }()
	err = api.ServeUntil(ctx, s.http, ln, s.cfg.DrainTimeout)
	stopSampling()
	<-sampling
	stopRelay()
	if err != nil {
		return fmt.Errorf("admin: %w", err)
	}
	s.log.Info("admin API stopped")
	return nil
}

// Addr returns the address the server listens on once Run or Serve has bound it, or
// "" before.
func (s *Server) Addr() string { return s.bound.Addr() }

// handleRequestError answers requests fasthttp could not read.
func (s *Server) handleRequestError(ctx *fasthttp.RequestCtx, err error) {
	r, _, _ := s.routes.Match(ctx.Path())
	s.writeError(ctx, api.ErrorForRequest(err, s.tooLarge), r.Label())
	s.requests.Observe(r.Label(), ctx.Response.StatusCode())
}

// storeCtx bounds one store call by Config.StoreTimeout. It does not derive from the
// request: fasthttp's request context is only cancelled at server shutdown, when
// in-flight requests should finish rather than fail.
func (s *Server) storeCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), s.cfg.StoreTimeout)
}
