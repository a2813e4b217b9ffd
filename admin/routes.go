package admin

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"

	"github.com/valyala/fasthttp"

	"github.com/edgehook/edgehook/api"
	"github.com/edgehook/edgehook/identity"
)

// Route patterns; they double as the "route" metric label.
const (
	patHealthz      = "/healthz"
	patReadyz       = "/readyz"
	patMetrics      = "/metrics"
	patTenants      = "/v1/tenants"
	patTenantByID   = "/v1/tenants/{id}"
	patRotateSecret = "/v1/tenants/{id}/rotate-secret"
	patKeys         = "/v1/tenants/{id}/keys"
	patKey          = "/v1/tenants/{id}/keys/{keyId}"
	patRotateKey    = "/v1/tenants/{id}/keys/{keyId}/rotate"
	// A tenant's own, with a key of its own (see byTenant); the gateway relays them.
	patSelf             = "/v1/tenant"
	patSelfRotateSecret = "/v1/tenant/rotate-secret"
	patSelfKeys         = "/v1/tenant/keys"
	patSelfKey          = "/v1/tenant/keys/{keyId}"
	patSelfRotateKey    = "/v1/tenant/keys/{keyId}/rotate"
)

// keyIDValue is the request's user value holding an admin route's {keyId}.
const keyIDValue = "edgehook.keyId"

// tenantHandler serves a request about tenantID (and its key keyID, on key routes).
type tenantHandler func(ctx *fasthttp.RequestCtx, tenantID, keyID string) error

func (s *Server) buildRoutes() (all, tenant *api.Router) {
	get, post, patch, del := fasthttp.MethodGet, fasthttp.MethodPost, fasthttp.MethodPatch, fasthttp.MethodDelete
	m := func(method string, h api.HandlerFunc) api.Method { return api.Method{Method: method, Handler: h} }
	self := []*api.Route{
		api.NewRoute(patSelf, m(get, s.byTenant(identity.All, false, s.getTenant)), m(patch, s.byTenant(identity.Manage, true, s.patchOwnTenant))),
		api.NewRoute(patSelfRotateSecret, m(post, s.byTenant(identity.Manage, true, s.rotateSecret))),
		api.NewRoute(patSelfKeys, m(get, s.byTenant(identity.Manage, false, s.listKeys)), m(post, s.byTenant(identity.Manage, true, s.createKey))),
		api.NewRoute(patSelfKey, m(del, s.byTenant(identity.Manage, true, s.revokeKey))),
		api.NewRoute(patSelfRotateKey, m(post, s.byTenant(identity.Manage, true, s.rotateKey))),
	}
	admin := []*api.Route{
		api.NewRoute(patHealthz, m(get, api.Healthz)),
		api.NewRoute(patReadyz, m(get, s.readyz)),
		api.NewRoute(patMetrics, m(get, s.metricsHandler)),
		api.NewRoute(patTenants, m(post, s.admin(s.createTenant))),
		api.NewRoute(patTenantByID, m(get, s.byAdmin(s.getTenant)), m(patch, s.admin(s.patchTenant))),
		api.NewRoute(patRotateSecret, m(post, s.byAdmin(s.rotateSecret))),
		api.NewRoute(patKeys, m(get, s.byAdmin(s.listKeys)), m(post, s.byAdmin(s.createKey))),
		api.NewRoute(patKey, m(del, s.byAdmin(s.revokeKey))),
		api.NewRoute(patRotateKey, m(post, s.byAdmin(s.rotateKey))),
	}
	return api.NewRouter(append(admin, self...)...), api.NewRouter(self...)
}

// serveHTTP routes one request on the admin listener, answers errors in the one JSON
// shape and counts it.
func (s *Server) serveHTTP(ctx *fasthttp.RequestCtx) { s.serve(ctx, s.routes) }

// serve routes one request with routes.
func (s *Server) serve(ctx *fasthttp.RequestCtx, routes *api.Router) {
	r, id, keyID := routes.Match(ctx.Path())
	if keyID != "" {
		ctx.SetUserValue(keyIDValue, keyID)
	}
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

// byAdmin serves h for the tenant the path names ({id}, and {keyId} on key routes),
// for requests bearing the admin token.
func (s *Server) byAdmin(h tenantHandler) api.HandlerFunc {
	return s.admin(func(ctx *fasthttp.RequestCtx, id string) error {
		keyID, _ := ctx.UserValue(keyIDValue).(string)
		return h(ctx, id, keyID)
	})
}

// Answers of byTenant.
var (
	errUnknownKey = api.NewError(401, api.CodeUnauthorized, "missing or unknown API key")
	errSuspended  = api.NewError(403, api.CodeForbidden, "tenant is not active")
	errNeedManage = api.NewError(403, api.CodeInsufficientScope, "this API key lacks the manage scope this request needs")
)

// byTenant serves h for the tenant whose API key the request bears, which the admin
// API checks itself in the identity bucket (a gateway that relays the request vouches
// for nothing): a key holding none of need gets 403 insufficient_scope, and a change
// (write) by a tenant that is not active 403. The path's {keyId}, if any, is id.
func (s *Server) byTenant(need identity.Scopes, write bool, h tenantHandler) api.HandlerFunc {
	return func(ctx *fasthttp.RequestCtx, id string) error {
		key := api.Bearer(ctx)
		if len(key) == 0 {
			return errUnknownKey
		}
		sctx, cancel := s.storeCtx()
		p, err := s.deps.Identity.Authenticate(sctx, key)
		cancel()
		switch {
		case errors.Is(err, identity.ErrUnknownKey):
			return errUnknownKey
		case err != nil:
			return api.StoreError("identity store", err)
		case !p.Scopes.Has(need):
			return errNeedManage
		case write && !p.Tenant.Active():
			return errSuspended
		}
		return h(ctx, p.Tenant.TenantID, id)
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
