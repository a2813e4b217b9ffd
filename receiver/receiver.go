// Package receiver is edgehook's verifying webhook ingress: a fasthttp server that
// accepts Standard Webhooks at POST /webhooks/{tenantId}, verifies them against the
// tenant's active signing secrets, and publishes each verified webhook to the RECEIVED
// stream for the consuming side, deduplicated on webhook-id by JetStream.
package receiver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"

	"github.com/edgehook/edgehook/natsconf"
	"github.com/edgehook/edgehook/vault"
	"github.com/edgehook/edgehook/webhook"
)

// Defaults applied by New to zero-valued Config fields.
const (
	DefaultAddr            = "127.0.0.1:8090"
	DefaultMaxBodyBytes    = 1 << 20
	DefaultPublishTimeout  = 5 * time.Second
	DefaultConfigTimeout   = 5 * time.Second
	DefaultReadTimeout     = 10 * time.Second
	DefaultIdleTimeout     = 60 * time.Second
	DefaultShutdownTimeout = 10 * time.Second
	// DefaultConfigReadRate and DefaultConfigReadBurst bound the webhook config reads
	// for tenants the cache does not hold: per second, and at once.
	DefaultConfigReadRate  = 100
	DefaultConfigReadBurst = 100
	// DefaultRejectLogInterval is how often each kind of rejection is logged at most.
	DefaultRejectLogInterval = 10 * time.Second
)

// Errors returned by New and Run.
var (
	// ErrConfig is wrapped by every error New returns for an unusable Config or Deps;
	// the message names the setting.
	ErrConfig = errors.New("receiver: invalid configuration")
	// ErrAlreadyRunning is returned by a second call to Run.
	ErrAlreadyRunning = errors.New("receiver: Run called twice")
)

// Config is the receiver's configuration. Zero fields take the defaults above.
type Config struct {
	// Addr is the host:port to listen on (port 0 picks a free port; see Server.Addr).
	Addr string
	// Tolerance is how far webhook-timestamp may be from the receiver's clock
	// (default webhook.DefaultTolerance, 5 minutes).
	Tolerance time.Duration
	// MaxBodyBytes is the largest webhook body accepted; larger ones get 413.
	MaxBodyBytes int
	// PublishTimeout bounds the wait for the JetStream ack of one verified webhook;
	// past it the sender gets 503 and retries.
	PublishTimeout time.Duration
	// ConfigTimeout bounds one read of a tenant's webhook configuration.
	ConfigTimeout time.Duration
	// ReadTimeout bounds reading one request (headers and body).
	ReadTimeout time.Duration
	// IdleTimeout is how long an idle keep-alive connection is kept open.
	IdleTimeout time.Duration
	// ShutdownTimeout bounds the drain of in-flight requests once Run's context ends.
	ShutdownTimeout time.Duration
	// DuplicateWindow is the RECEIVED stream's duplicate window, within which a
	// webhook-id is stored once (default natsconf.DefaultTopology's). It must be at
	// least twice Tolerance: a webhook can be replayed while its timestamp is within
	// Tolerance either side of the receiver's clock.
	DuplicateWindow time.Duration
	// ConfigReadRate is how many webhook config reads per second the receiver makes
	// for tenants its cache does not hold (default DefaultConfigReadRate), with bursts
	// of ConfigReadBurst (default DefaultConfigReadBurst). Webhooks over the limit are
	// answered 503 with Retry-After without a read, whether the tenant exists or not.
	ConfigReadRate  float64
	ConfigReadBurst int
	// RejectLogInterval is how often each kind of rejected webhook is logged at most
	// (default DefaultRejectLogInterval); each line counts the ones suppressed.
	RejectLogInterval time.Duration
}

// withDefaults fills zero fields and validates the result, naming the bad setting.
func (c Config) withDefaults() (Config, error) {
	if c.Addr == "" {
		c.Addr = DefaultAddr
	}
	if c.Tolerance == 0 {
		c.Tolerance = webhook.DefaultTolerance
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if c.DuplicateWindow == 0 {
		c.DuplicateWindow = natsconf.DefaultTopology().ReceivedDuplicateWindow
	}
	if c.ConfigReadRate == 0 {
		c.ConfigReadRate = DefaultConfigReadRate
	}
	if c.ConfigReadBurst == 0 {
		c.ConfigReadBurst = DefaultConfigReadBurst
	}
	for _, d := range []struct {
		v   *time.Duration
		def time.Duration
	}{
		{&c.PublishTimeout, DefaultPublishTimeout},
		{&c.ConfigTimeout, DefaultConfigTimeout},
		{&c.ReadTimeout, DefaultReadTimeout},
		{&c.IdleTimeout, DefaultIdleTimeout},
		{&c.ShutdownTimeout, DefaultShutdownTimeout},
		{&c.RejectLogInterval, DefaultRejectLogInterval},
	} {
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		return c, fmt.Errorf("%w: Addr %q is not host:port: %w", ErrConfig, c.Addr, err)
	}
	switch {
	case c.Tolerance < time.Second:
		return c, fmt.Errorf("%w: Tolerance must be at least 1s, got %s", ErrConfig, c.Tolerance)
	case c.MaxBodyBytes < 0:
		return c, fmt.Errorf("%w: MaxBodyBytes must be positive, got %d", ErrConfig, c.MaxBodyBytes)
	case c.PublishTimeout < 0:
		return c, fmt.Errorf("%w: PublishTimeout must be positive, got %s", ErrConfig, c.PublishTimeout)
	case c.ConfigTimeout < 0:
		return c, fmt.Errorf("%w: ConfigTimeout must be positive, got %s", ErrConfig, c.ConfigTimeout)
	case c.ReadTimeout < 0:
		return c, fmt.Errorf("%w: ReadTimeout must be positive, got %s", ErrConfig, c.ReadTimeout)
	case c.IdleTimeout < 0:
		return c, fmt.Errorf("%w: IdleTimeout must be positive, got %s", ErrConfig, c.IdleTimeout)
	case c.ShutdownTimeout < 0:
		return c, fmt.Errorf("%w: ShutdownTimeout must be positive, got %s", ErrConfig, c.ShutdownTimeout)
	case c.DuplicateWindow < 2*c.Tolerance:
		return c, fmt.Errorf("%w: DuplicateWindow %s is under twice Tolerance %s: a webhook replayed within its timestamp tolerance could be stored twice; make DuplicateWindow at least %s or Tolerance at most %s",
			ErrConfig, c.DuplicateWindow, c.Tolerance, 2*c.Tolerance, c.DuplicateWindow/2)
	case !(c.ConfigReadRate > 0): // NaN too
		return c, fmt.Errorf("%w: ConfigReadRate must be positive, got %v", ErrConfig, c.ConfigReadRate)
	case c.ConfigReadBurst < 0:
		return c, fmt.Errorf("%w: ConfigReadBurst must be positive, got %d", ErrConfig, c.ConfigReadBurst)
	case c.RejectLogInterval < 0:
		return c, fmt.Errorf("%w: RejectLogInterval must be positive, got %s", ErrConfig, c.RejectLogInterval)
	}
	return c, nil
}

// Deps are the receiver's collaborators.
type Deps struct {
	// JS publishes verified webhooks to RECEIVED (required).
	JS jetstream.JetStream
	// Configs is the cache the receiver reads tenants' webhook configuration through,
	// once per webhook (required). The receiver limits its reads for tenants the cache
	// does not hold (Config.ConfigReadRate).
	Configs *vault.Cache
	// Logger receives structured logs; nil discards them.
	Logger *slog.Logger
	// Registerer gets the receiver's metrics and Gatherer serves /metrics. Both nil
	// means a private registry for both; exactly one nil is an error.
	Registerer prometheus.Registerer
	Gatherer   prometheus.Gatherer
	// Ready, when set, is an extra readiness condition for /readyz (for example the
	// Vault client holding a valid token).
	Ready func() bool
}

// Server is a running-or-ready receiver. Create it with New and start it with Run.
type Server struct {
	cfg     Config
	js      jetstream.JetStream
	configs *vault.Cache
	// reads limits config reads for tenants the cache does not hold; allowRead takes
	// one of its tokens (made once, as the cache's allow function).
	reads     *tokenBucket
	allowRead func() bool
	ready     func() bool // extra readiness condition; nil means none
	log       *slog.Logger
	// logs samples the lines written for rejected webhooks and failures that anyone
	// can provoke, so no flood of requests writes a line per request.
	logs    *sampler
	metrics *metrics
	errs    errorBodies
	// decoy is a configuration whose one secret no sender knows: webhooks for unknown
	// tenants are verified against it, so they take the same path and get the same
	// answer as a wrong signature for a real tenant.
	decoy vault.WebhookConfig
	msgs  sync.Pool // *outMsg
	// verifiers holds *verifierCache: Signers kept between webhooks.
	verifiers sync.Pool
	handler   fasthttp.RequestHandler
	srv       *fasthttp.Server
	addr      atomic.Pointer[string]
	running   atomic.Bool
}

// New validates cfg and deps and returns a Server ready to Run. It registers the
// receiver's metrics on deps.Registerer.
func New(cfg Config, deps Deps) (*Server, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if deps.JS == nil {
		return nil, fmt.Errorf("%w: Deps.JS is required", ErrConfig)
	}
	if deps.Configs == nil {
		return nil, fmt.Errorf("%w: Deps.Configs is required", ErrConfig)
	}
	switch {
	case deps.Registerer == nil && deps.Gatherer == nil:
		reg := prometheus.NewRegistry()
		deps.Registerer, deps.Gatherer = reg, reg
	case deps.Registerer == nil:
		return nil, fmt.Errorf("%w: Deps.Registerer is required when Deps.Gatherer is set", ErrConfig)
	case deps.Gatherer == nil:
		return nil, fmt.Errorf("%w: Deps.Gatherer is required when Deps.Registerer is set", ErrConfig)
	}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	m, err := newMetrics(deps.Registerer)
	if err != nil {
		return nil, err
	}
	decoy, err := webhook.NewSecret()
	if err != nil {
		return nil, fmt.Errorf("receiver: %w", err)
	}
	s := &Server{
		cfg:     cfg,
		js:      deps.JS,
		configs: deps.Configs,
		reads:   newTokenBucket(cfg.ConfigReadRate, cfg.ConfigReadBurst, time.Now()),
		ready:   deps.Ready,
		log:     deps.Logger.With("component", "receiver"),
		logs:    newSampler(cfg.RejectLogInterval, logKinds),
		metrics: m,
		errs:    newErrorBodies(cfg.MaxBodyBytes),
		decoy:   vault.WebhookConfig{Secret: decoy},
	}
	s.allowRead = func() bool { return s.reads.allow(time.Now()) }
	s.msgs.New = newOutMsg
	s.verifiers.New = newVerifierCache
	s.handler = s.newRouter(deps.Gatherer)
	s.srv = &fasthttp.Server{
		Handler:                      s.handler,
		ErrorHandler:                 s.handleReadError,
		Name:                         "edgehook-receiver",
		MaxRequestBodySize:           cfg.MaxBodyBytes,
		ReadTimeout:                  cfg.ReadTimeout,
		WriteTimeout:                 cfg.ReadTimeout,
		IdleTimeout:                  cfg.IdleTimeout,
		DisablePreParseMultipartForm: true,
		NoDefaultServerHeader:        true,
		Logger:                       fasthttpLogger{s.log, s.logs},
	}
	return s, nil
}

// Run listens on Config.Addr and serves until ctx is done, then stops accepting
// connections and drains in-flight requests for at most Config.ShutdownTimeout. It
// returns nil after a clean shutdown.
func (s *Server) Run(ctx context.Context) error {
	if !s.running.CompareAndSwap(false, true) {
		return ErrAlreadyRunning
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("receiver: listen on %s (Addr): %w", s.cfg.Addr, err)
	}
	addr := ln.Addr().String()
	s.addr.Store(&addr)
	s.log.Info("receiver listening", "addr", addr)

	served := make(chan error, 1)
	go func() { served <- s.srv.Serve(ln) }()
	select {
	case err := <-served:
		return fmt.Errorf("receiver: serve: %w", err)
	case <-ctx.Done():
	}
	drainCtx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	shutdownErr := s.srv.ShutdownWithContext(drainCtx)
	if err := <-served; err != nil {
		return fmt.Errorf("receiver: serve: %w", err)
	}
	s.flushLogs()
	if shutdownErr != nil {
		return fmt.Errorf("receiver: drain after %s (ShutdownTimeout): %w", s.cfg.ShutdownTimeout, shutdownErr)
	}
	s.log.Info("receiver stopped")
	return nil
}

// Handler returns the receiver's request handler (webhooks, health, readiness and
// metrics), for embedding in another fasthttp server. Such a server should set
// MaxRequestBodySize itself; only Run's server answers oversized bodies with the JSON
// 413 error.
func (s *Server) Handler() fasthttp.RequestHandler { return s.handler }

// Addr returns the address Run is listening on (with the actual port when Config.Addr
// asked for port 0), or "" before Run has bound it.
func (s *Server) Addr() string {
	if p := s.addr.Load(); p != nil {
		return *p
	}
	return ""
}

// maxLoggedDetail bounds the fasthttp message logged.
const maxLoggedDetail = 200

// fasthttpLogger routes fasthttp's own messages (connection-level errors, which any
// client can provoke) to slog, sampled like rejections.
type fasthttpLogger struct {
	log  *slog.Logger
	logs *sampler
}

func (l fasthttpLogger) Printf(format string, args ...any) {
	if n, ok := l.logs.allow(logHTTPServer, time.Now()); ok {
		detail := fmt.Sprintf(format, args...)
		if len(detail) > maxLoggedDetail {
			detail = detail[:maxLoggedDetail] + "..." // fasthttp may quote what the client sent
		}
		l.log.Warn("http server", "detail", detail, "suppressed", n)
	}
}
