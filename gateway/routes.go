package gateway

import (
	"github.com/valyala/fasthttp"

	"github.com/edgehook/edgehook/api"
	"github.com/edgehook/edgehook/identity"
)

// Route patterns; they double as the "route" metric label.
const (
	patHealthz     = "/healthz"
	patReadyz      = "/readyz"
	patMetrics     = "/metrics"
	patEvents      = "/v1/events"
	patEventsBatch = "/v1/events/batch"
	patEvent       = "/v1/events/{id}"
	patAttempts    = "/v1/events/{id}/attempts"
	patReplay      = "/v1/events/{id}/replay"
	patTenant      = "/v1/tenant"
)

// buildRoutes returns the route table, with the scopes each route's API key needs. The
// admin API is not among them: it is its own component, on its own listener; a
// tenant's own endpoint and key requests are relayed to it (relay.go), which checks
// their scopes.
func (s *Server) buildRoutes() *api.Router {
	get, post, patch := fasthttp.MethodGet, fasthttp.MethodPost, fasthttp.MethodPatch
	return api.NewRouter(
		api.NewRoute(patHealthz, api.Method{Method: get, Handler: api.Healthz}),
		api.NewRoute(patReadyz, api.Method{Method: get, Handler: s.readyz}),
		api.NewRoute(patMetrics, api.Method{Method: get, Handler: s.metricsHandler}),
		api.NewRoute(patEvents, api.Method{Method: post, Handler: needs(identity.Send, s.ingest)}),
		api.NewRoute(patEventsBatch, api.Method{Method: post, Handler: needs(identity.Send, s.ingestBatch)}),
		api.NewRoute(patEvent, api.Method{Method: get, Handler: needs(identity.Read, s.getEvent)}),
		api.NewRoute(patAttempts, api.Method{Method: get, Handler: needs(identity.Read, s.getAttempts)}),
		api.NewRoute(patReplay, api.Method{Method: post, Handler: needs(identity.Send|identity.Manage, s.replayEvent)}),
		api.NewRoute(patTenant, api.Method{Method: get, Handler: s.relay}, api.Method{Method: patch, Handler: s.relay}),
		api.NewRoute(patTenantRotateSecret, api.Method{Method: post, Handler: s.relay}),
		api.NewRoute(patTenantKeys, api.Method{Method: get, Handler: s.relay}, api.Method{Method: post, Handler: s.relay}),
		api.NewRoute(patTenantKey, api.Method{Method: fasthttp.MethodDelete, Handler: s.relay}),
		api.NewRoute(patTenantRotateKey, api.Method{Method: post, Handler: s.relay}),
	)
}

// serveHTTP routes one request, answers errors in the one JSON shape and counts it.
func (s *Server) serveHTTP(ctx *fasthttp.RequestCtx) {
	r, id, _ := s.routes.Match(ctx.Path())
	api.Serve(ctx, r, id, s.log, s.writeError)
	s.metrics.observeRequest(r.Label(), ctx.Response.StatusCode())
}
