package gateway

import (
	"github.com/valyala/fasthttp"

	"github.com/edgehook/edgehook/api"
)

// readyz serves GET /readyz: 200 once the identity view has loaded and while the NATS
// connection is up, so a load balancer only sends traffic that can be accepted.
func (s *Server) readyz(ctx *fasthttp.RequestCtx, _ string) error {
	switch {
	case !s.deps.View.Loaded():
		return newAPIError(fasthttp.StatusServiceUnavailable, CodeUnavailable, "identity view not loaded yet")
	case !s.deps.JS.Conn().IsConnected():
		return newAPIError(fasthttp.StatusServiceUnavailable, CodeUnavailable, "not connected to NATS")
	}
	api.WriteStatus(ctx, "ready")
	return nil
}

// metricsHandler serves GET /metrics from Deps.Gatherer in the Prometheus text format.
func (s *Server) metricsHandler(ctx *fasthttp.RequestCtx, _ string) error {
	s.promh(ctx)
	return nil
}
