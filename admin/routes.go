package admin

import (
	"crypto/sha256"
	"crypto/subtle"

	"github.com/valyala/fasthttp"

	"github.com/edgehook/edgehook/api"
)

// Route patterns; they double as the "route" metric label.
const (
	patHealthz      = "/healthz"
	patReadyz       = "/readyz"
	patMetrics      = "/metrics"
	patTenants      = "/v1/tenants"
	patTenantByID   = "/v1/tenants/{id}"
	patRotateSecret = "/v1/tenants/{id}/rotate-secret"
)

func (s *Server) buildRoutes() *api.Router {
	get, post, patch := fasthttp.MethodGet, fasthttp.MethodPost, fasthttp.MethodPatch
	return api.NewRouter(
		api.NewRoute(patHealthz, api.Method{Method: get, Handler: api.Healthz}),
		api.NewRoute(patReadyz, api.Method{Method: get, Handler: s.readyz}),
		api.NewRoute(patMetrics, api.Method{Method: get, Handler: s.metricsHandler}),
		api.NewRoute(patTenants, api.Method{Method: post, Handler: s.admin(s.createTenant)}),
		api.NewRoute(patTenantByID, api.Method{Method: get, Handler: s.admin(s.getTenant)}, api.Method{Method: patch, Handler: s.admin(s.patchTenant)}),
		api.NewRoute(patRotateSecret, api.Method{Method: post, Handler: s.admin(s.rotateSecret)}),
	)
}

// serveHTTP routes one request, answers errors in the one JSON shape and counts it.
func (s *Server) serveHTTP(ctx *fasthttp.RequestCtx) {
	r, id := s.routes.Match(ctx.Path())
	api.Serve(ctx, r, id, s.log, s.writeError)
	s.requests.Observe(r.Label(), ctx.Response.StatusCode())
}

// admin wraps h so it runs only for requests bearing the admin token. The comparison
// hashes both sides first, so it takes the same time whatever the token's length.
func (s *Server) admin(h api.HandlerFunc) api.HandlerFunc {
	return func(ctx *fasthttp.RequestCtx, id string) error {
		got := sha256.Sum256(api.Bearer(ctx))
		if subtle.ConstantTimeCompare(got[:], s.token[:]) != 1 {
			return api.ErrAdminUnauthorized
		}
		return h(ctx, id)
	}
}

// readyz serves GET /readyz: 200 while the NATS connection is up and Deps.Ready (if
// set) holds.
func (s *Server) readyz(ctx *fasthttp.RequestCtx, _ string) error {
	switch {
	case !s.deps.NATS.IsConnected():
		return api.NewError(fasthttp.StatusServiceUnavailable, api.CodeUnavailable, "not connected to NATS")
	case s.deps.Ready != nil && !s.deps.Ready():
		return api.NewError(fasthttp.StatusServiceUnavailable, api.CodeUnavailable, "webhook configuration store not ready")
	}
	api.WriteStatus(ctx, "ready")
	return nil
}

// metricsHandler serves GET /metrics from Deps.Gatherer.
func (s *Server) metricsHandler(ctx *fasthttp.RequestCtx, _ string) error {
	s.promh(ctx)
	return nil
}
