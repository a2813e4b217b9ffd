package gateway

import (
	"errors"

	"github.com/valyala/fasthttp"

	"github.com/edgehook/edgehook/api"
	"github.com/edgehook/edgehook/identity"
)

// bearer returns the token of an "Authorization: Bearer <token>" header, or nil.
func bearer(ctx *fasthttp.RequestCtx) []byte { return api.Bearer(ctx) }

// authenticate returns the tenant owning the request's API key. A missing and an
// unknown key get the same error, so the answer reveals nothing about which keys exist.
// It does not check the tenant's status.
func (s *Server) authenticate(ctx *fasthttp.RequestCtx) (identity.Tenant, error) {
	key := bearer(ctx)
	if len(key) == 0 {
		return identity.Tenant{}, errUnauthorized
	}
	// The view answers known keys from memory; only an unseen key costs a bucket read,
	// which the JetStream client bounds with its default timeout.
	t, err := s.deps.View.Authenticate(ctx, key)
	switch {
	case errors.Is(err, identity.ErrUnknownKey):
		return identity.Tenant{}, errUnauthorized
	case err != nil:
		return identity.Tenant{}, storeError("identity store", err)
	}
	return t, nil
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
