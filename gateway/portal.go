package gateway

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/valyala/fasthttp"

	"github.com/edgehook/edgehook/console"
	"github.com/edgehook/edgehook/natsconf"
	"github.com/edgehook/edgehook/status"
)

// PortalPrefix is where the gateway serves the tenant portal.
const PortalPrefix = "/portal/"

// PortalConfig is the tenant portal's part of the gateway's configuration.
type PortalConfig struct {
	// SessionTTL is how long a portal session lasts after sign-in (default 15m, at
	// most 12h).
	SessionTTL time.Duration
	// SecureCookies marks the portal's cookies Secure on plain-HTTP requests too (set
	// it behind a TLS-terminating proxy); they are always Secure over TLS.
	SecureCookies bool
	// Index bounds the events index the portal lists from (tenants indexed at once,
	// events per tenant, idle time); zero fields take status.IndexConfig's defaults.
	Index status.IndexConfig
}

// runIndex runs the portal's events index until ctx is done; stop waits for it to
// end. At the hub it binds the status bucket first; an edge gateway binds the hub's
// when a portal page first needs it (and again until the hub answers), so it starts
// while the hub is away.
func (s *Server) runIndex(ctx context.Context) (stop func(), err error) {
	var ix *status.Index
	if s.deps.Hub != nil {
		hub := s.deps.Hub
		ix, err = status.NewLazyIndex(func(ctx context.Context) (jetstream.KeyValue, error) {
			hctx, cancel := context.WithTimeout(ctx, s.cfg.HubTimeout)
			defer cancel()
			return hub.KeyValue(hctx, natsconf.BucketStatus)
		}, s.cfg.Portal.Index, s.log)
	} else {
		bctx, cancel := context.WithTimeout(ctx, s.cfg.StoreTimeout)
		defer cancel()
		kv, kerr := s.deps.JS.KeyValue(bctx, natsconf.BucketStatus)
		if kerr != nil {
			return nil, fmt.Errorf("gateway: status bucket for the portal's index: %w", kerr)
		}
		ix, err = status.NewIndex(kv, s.cfg.Portal.Index, s.log)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: Portal.Index: %w", ErrInvalidConfig, err)
	}
	s.index = ix
	ictx, cancelIndex := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- ix.Run(ictx) }()
	return func() {
		cancelIndex()
		if err := <-done; err != nil {
			s.log.Error("portal index", "error", err)
		}
	}, nil
}

// newPortal returns the tenant portal on the gateway's own code. At an edge it reads
// what lives at the hub (statuses, attempt logs, parked copies) through the hub's
// JetStream domain, as the JSON API does, and shows the edge's own queued record of
// an event the hub has not seen yet.
func (s *Server) newPortal() (fasthttp.RequestHandler, error) {
	p, err := console.NewPortal(console.Config{
		Prefix: PortalPrefix, SessionTTL: s.cfg.Portal.SessionTTL, SecureCookies: s.cfg.Portal.SecureCookies, Logger: s.log,
	}, portalSource{s})
	if err != nil {
		return nil, fmt.Errorf("%w: Portal: %w", ErrInvalidConfig, err)
	}
	return p.Handler(), nil
}

var portalPath = []byte(PortalPrefix[:len(PortalPrefix)-1])

// serve is the gateway's handler: the portal under /portal, the JSON API elsewhere.
func (s *Server) serve(ctx *fasthttp.RequestCtx) {
	if p := ctx.Path(); bytes.HasPrefix(p, portalPath) {
		if len(p) == len(portalPath) {
			ctx.Redirect(PortalPrefix, fasthttp.StatusMovedPermanently)
			return
		}
		s.portal(ctx)
		return
	}
	s.serveHTTP(ctx)
}
