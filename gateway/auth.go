package gateway

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"errors"

	"github.com/valyala/fasthttp"

	"github.com/edgehook/edgehook/identity"
)

// bearer returns the token of an "Authorization: Bearer <token>" header, or nil.
func bearer(ctx *fasthttp.RequestCtx) []byte {
	h := ctx.Request.Header.Peek(fasthttp.HeaderAuthorization)
	const prefix = "bearer "
	if len(h) <= len(prefix) || !bytes.EqualFold(h[:len(prefix)], []byte(prefix)) {
		return nil
	}
	return bytes.TrimSpace(h[len(prefix):])
}

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

// admin wraps h so it runs only for requests bearing the admin token. The comparison
// hashes both sides first, so it takes the same time whatever the token's length.
func (s *Server) admin(h handlerFunc) handlerFunc {
	return func(ctx *fasthttp.RequestCtx, id string) error {
		got := sha256.Sum256(bearer(ctx))
		if subtle.ConstantTimeCompare(got[:], s.adminKey[:]) != 1 {
			return errAdminUnauthorized
		}
		return h(ctx, id)
	}
}
