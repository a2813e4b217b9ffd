package gateway

import (
	"bytes"
	"context"
	"fmt"
	"time"

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

// runIndex binds the status bucket and runs the portal's events index until ctx is
// done; stop waits for it to end.
func (s *Server) runIndex(ctx context.Context) (stop func(), err error) {
	bctx, cancel := context.WithTimeout(ctx, s.cfg.StoreTimeout)
	defer cancel()
	kv, err := s.deps.JS.KeyValue(bctx, natsconf.BucketStatus)
	if err != nil {
		return nil, fmt.Errorf("gateway: status bucket for the portal's index: %w", err)
	}
	ix, err := status.NewIndex(kv, s.cfg.Portal.Index, s.log)
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

// newPortal returns the handler of everything under /portal: the tenant portal on
// the gateway's own code at the hub, and at an edge a page that sends tenants to the
// hub's gateways (an edge's statuses live at the hub; its gateway reads single
// records from there, but does not keep a live index of them across the WAN).
func (s *Server) newPortal() (fasthttp.RequestHandler, error) {
	if s.cfg.Edge != "" {
		return edgePortalPage, nil
	}
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

// edgePortalBody is the page an edge gateway answers under /portal.
const edgePortalBody = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>edgehook portal</title></head>
<body><main><h1>The portal is served by the hub</h1>
<p>This is an edge gateway: it accepts events and answers the JSON API, but the tenant
portal is served by the hub's gateways, where event statuses live. Open /portal/ on a
hub gateway.</p></main></body></html>
`

func edgePortalPage(ctx *fasthttp.RequestCtx) {
	ctx.Response.Header.Set("Content-Security-Policy", "default-src 'none'")
	ctx.Response.Header.Set("Cache-Control", "no-store")
	ctx.Response.Header.SetContentType("text/html; charset=utf-8")
	ctx.SetStatusCode(fasthttp.StatusNotFound)
	ctx.SetBodyString(edgePortalBody)
}
