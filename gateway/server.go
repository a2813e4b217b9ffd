// Package gateway is edgehook's HTTP front door: a fasthttp server that authenticates
// tenants by API key against an in-memory identity view, accepts events and answers 202
// only once JetStream has stored them and lets tenants read their own event status,
// through the JSON API and the tenant portal under /portal/ (portal.go). It holds no
// Vault token and cannot write identity: the admin API (package admin) is its own
// component.
package gateway

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"
	"github.com/valyala/fastjson"

	"github.com/edgehook/edgehook/api"
	"github.com/edgehook/edgehook/natsconf"
	"github.com/edgehook/edgehook/natsconf/jsack"
	"github.com/edgehook/edgehook/status"
)

// bodySlack is how far above MaxBodyBytes fasthttp still reads a body, so a client a
// little over the limit gets the gateway's own 413 on a connection that stays open.
const bodySlack = 64 << 10

// Server is the gateway. Create it with New, then call Run (or Serve).
type Server struct {
	cfg      Config
	deps     Deps
	log      *slog.Logger
	pub      jetstream.JetStream
	acks     *jsack.Acks // of single-event ingest
	metrics  *metrics
	parsers  fastjson.ParserPool
	outs     sync.Pool // *outgoing (ingest.go)
	routes   *api.Router
	http     *fasthttp.Server
	promh    fasthttp.RequestHandler
	tooLarge *apiError
	// subjectPrefix and queuedBucket are where events and their queued records go:
	// events.* and the status bucket, or at an edge the edge's own (see edge.go).
	subjectPrefix string
	queuedBucket  string
	link          *hubLink // nil but at an edge
	// portal serves /portal; index is the portal's events index, started by Serve
	// (nil before).
	portal fasthttp.RequestHandler
	index  *status.Index

	bound api.Bound
}

// New validates cfg and deps, registers the metrics and returns a Server that is not
// yet listening.
func New(cfg Config, deps Deps) (*Server, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := deps.validate(cfg.Edge != ""); err != nil {
		return nil, err
	}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	pub, err := newPublisher(deps.JS, cfg.PublishTimeout)
	if err != nil {
		return nil, err
	}
	m, err := newMetrics(deps.Registerer)
	if err != nil {
		return nil, err
	}
	ak, err := jsack.New(pub.Conn())
	if err != nil {
		return nil, err
	}
	s := &Server{
		cfg:     cfg,
		deps:    deps,
		log:     deps.Logger.With("component", "gateway"),
		pub:     pub,
		acks:    ak,
		metrics: m,
		promh:   fasthttpadaptor.NewFastHTTPHandler(promhttp.HandlerFor(deps.Gatherer, promhttp.HandlerOpts{})),
	}
	s.tooLarge = newAPIError(fasthttp.StatusRequestEntityTooLarge, CodePayloadTooLarge,
		fmt.Sprintf("request body exceeds the limit of %d bytes", cfg.MaxBodyBytes))
	s.subjectPrefix, s.queuedBucket = natsconf.EventsSubjectPrefix, natsconf.BucketStatus
	if cfg.Edge != "" {
		s.subjectPrefix, s.queuedBucket = natsconf.EdgeSubjectPrefix(cfg.Edge), natsconf.EdgeQueuedBucket(cfg.Edge)
		if s.link, err = newHubLink(s, deps.Registerer); err != nil {
			return nil, err
		}
	}
	s.outs.New = newOutgoing
	s.routes = s.buildRoutes()
	if s.portal, err = s.newPortal(); err != nil {
		return nil, err
	}
	s.http = &fasthttp.Server{
		Handler:              s.Handler(),
		ErrorHandler:         s.handleRequestError,
		Name:                 "edgehook-gateway",
		MaxRequestBodySize:   max(cfg.MaxBodyBytes, MaxBatchBytes) + bodySlack,
		ReadTimeout:          30 * time.Second,
		WriteTimeout:         30 * time.Second,
		IdleTimeout:          2 * time.Minute,
		NoDefaultContentType: true,
		CloseOnShutdown:      true,
		Logger:               api.FastHTTPLogger{Log: s.log},
	}
	return s, nil
}

// newPublisher derives a JetStream context on js's connection (same domain or API
// prefix) whose async publishes fail after timeout instead of waiting forever, so a
// request never waits longer than the configured publish timeout.
func newPublisher(js jetstream.JetStream, timeout time.Duration) (jetstream.JetStream, error) {
	pub, err := natsconf.Publisher(js, timeout)
	if err != nil {
		return nil, fmt.Errorf("gateway: publisher: %w", err)
	}
	return pub, nil
}

// Handler returns the gateway's request handler, for serving it with a fasthttp.Server
// of the caller's choosing (tests, benchmarks). Run and Serve add what a bare handler
// cannot: the body-size cap with its JSON 413 for bodies far over the limit, timeouts
// and the bounded drain.
func (s *Server) Handler() fasthttp.RequestHandler { return s.serve }

// Run listens on Config.Addr and serves until ctx is cancelled, then stops accepting,
// lets in-flight requests finish for at most Config.DrainTimeout and returns.
func (s *Server) Run(ctx context.Context) error {
	ln, err := api.Listen(ctx, s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("gateway: listen on %s: %w", s.cfg.Addr, err)
	}
	return s.Serve(ctx, ln)
}

// Serve serves on ln (which it closes) until ctx is cancelled, with the same bounded
// drain as Run.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	stopIndex, err := s.runIndex(ctx)
	if err != nil {
		_ = ln.Close()
		return err
	}
	defer stopIndex()
	s.bound.Set(ln.Addr().String())
	s.log.Info("gateway listening", "addr", s.bound.Addr(), "edge", s.cfg.Edge)

	if s.link != nil {
		lctx, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { s.link.run(lctx); close(done) }()
		defer func() { stop(); <-done }()
	}
	if err := api.ServeUntil(ctx, s.http, ln, s.cfg.DrainTimeout); err != nil {
		return fmt.Errorf("gateway: %w", err)
	}
	s.log.Info("gateway stopped")
	return nil
}

// Addr returns the address the server listens on once Run or Serve has bound it
// (useful with port 0), or "" before.
func (s *Server) Addr() string { return s.bound.Addr() }

// handleRequestError answers requests fasthttp could not read: a JSON 413 for a body
// over the limit, 408 for a read timeout, 400 otherwise. fasthttp closes the
// connection afterwards.
func (s *Server) handleRequestError(ctx *fasthttp.RequestCtx, err error) {
	route, _, _ := s.routes.Match(ctx.Path())
	label := route.Label()
	s.writeError(ctx, api.ErrorForRequest(err, s.tooLargeFor(ctx)), label)
	s.metrics.observeRequest(label, ctx.Response.StatusCode())
}

// tooLargeFor is the 413 of a body over the limit of the request's route.
func (s *Server) tooLargeFor(ctx *fasthttp.RequestCtx) *apiError {
	if string(ctx.Path()) == patEventsBatch {
		return errBatchTooLarge
	}
	return s.tooLarge
}
