package gateway

import (
	"errors"

	"github.com/valyala/fasthttp"

	"github.com/edgehook/edgehook/api"
	"github.com/edgehook/edgehook/identity"
)

// bearer returns the token of an "Authorization: Bearer <token>" header, or nil.
func bearer(ctx *fasthttp.RequestCtx) []byte { return api.Bearer(ctx) }

// scopeKey is the request's user value that holds the scopes its route needs (see
// needs). A constant string key and a one-byte value make setting it allocation-free.
const scopeKey = "edgehook.scopes"

// needs marks h's requests as needing an API key that holds one of scopes; authenticate
// checks it. Routes not marked need any scope.
func needs(scopes identity.Scopes, h api.HandlerFunc) api.HandlerFunc {
	return func(ctx *fasthttp.RequestCtx, id string) error {
		ctx.SetUserValue(scopeKey, scopes)
		return h(ctx, id)
	}
}

// scopeErrors holds the 403 answer for each set of scopes a route may need.
var scopeErrors = func() (errs [identity.All + 1]*apiError) {
	for need := range errs {
		errs[need] = newAPIError(403, CodeInsufficientScope,
			"this API key lacks the "+identity.Scopes(need).String()+" scope this request needs")
	}
	return errs
}()

// authenticate returns the tenant owning the request's API key, once it has checked
// the key holds a scope the route needs (403 insufficient_scope otherwise). A missing
// and an unknown key get the same error, so the answer reveals nothing about which
// keys exist. It does not check the tenant's status.
func (s *Server) authenticate(ctx *fasthttp.RequestCtx) (identity.Tenant, error) {
	key := bearer(ctx)
	if len(key) == 0 {
		return identity.Tenant{}, errUnauthorized
	}
	// The view answers known keys from memory; only an unseen key costs a bucket read,
	// which the JetStream client bounds with its default timeout.
	p, err := s.deps.View.AuthenticateKey(ctx, key)
	switch {
	case errors.Is(err, identity.ErrUnknownKey):
		return identity.Tenant{}, errUnauthorized
	case err != nil:
		return identity.Tenant{}, storeError("identity store", err)
	}
	need := identity.All
	if v, ok := ctx.UserValue(scopeKey).(identity.Scopes); ok {
		need = v
	}
	if !p.Scopes.Has(need) {
		return identity.Tenant{}, scopeErrors[need&identity.All]
	}
	return p.Tenant, nil
}

// authenticateActive is authenticate for requests that change something: a tenant that
// is not active gets 403.
func (s *Server) authenticateActive(ctx *fasthttp.RequestCtx) (identity.Tenant, error) {
	t, err := s.authenticate(ctx)
	if err != nil {
		return t, err
	}
	if !t.Active() {
		return t, errSuspended
	}
	return t, nil
}
