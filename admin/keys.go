package admin

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/edgehook/edgehook/api"
	"github.com/edgehook/edgehook/identity"
)

// keyResponse is one API key as answers show it: never the key, but for the answer
// that creates or rotates it.
type keyResponse struct {
	KeyID       string           `json:"keyId"`
	Name        string           `json:"name"`
	Scopes      []identity.Scope `json:"scopes"`
	CreatedAt   time.Time        `json:"createdAt"`
	Fingerprint string           `json:"fingerprint"`
	APIKey      string           `json:"apiKey,omitempty"`
}

func keyAnswer(k identity.Key, apiKey string) keyResponse {
	return keyResponse{KeyID: k.KeyID, Name: k.Name, Scopes: k.Scopes, CreatedAt: k.CreatedAt, Fingerprint: k.Fingerprint(), APIKey: apiKey}
}

// listKeys serves GET .../keys: the tenant's keys, oldest first, without the keys.
func (s *Server) listKeys(ctx *fasthttp.RequestCtx, tenantID, _ string) error {
	sctx, cancel := s.storeCtx()
	defer cancel()
	keys, err := s.deps.Identity.Keys(sctx, tenantID)
	if err != nil {
		return api.StoreError("identity store", err)
	}
	out := struct {
		Keys []keyResponse `json:"keys"`
	}{Keys: make([]keyResponse, 0, len(keys))}
	for _, k := range keys {
		out.Keys = append(out.Keys, keyAnswer(k, ""))
	}
	api.WriteJSON(ctx, fasthttp.StatusOK, out)
	return nil
}

// scopeList is the text of every scope, for messages.
var scopeList = func() string {
	names := make([]string, len(identity.AllScopes))
	for i, sc := range identity.AllScopes {
		names[i] = string(sc)
	}
	return strings.Join(names, ", ")
}()

// createKey serves POST .../keys {"name","scopes":[...]}: 201 with the new key, shown
// only in this answer.
func (s *Server) createKey(ctx *fasthttp.RequestCtx, tenantID, _ string) error {
	var req struct {
		Name   *string          `json:"name"`
		Scopes []identity.Scope `json:"scopes"`
	}
	if err := api.DecodeJSON(ctx.PostBody(), &req); err != nil {
		return err
	}
	if req.Name == nil || !identity.ValidKeyName(*req.Name) {
		return api.BadRequest(fmt.Sprintf(`field "name" must be 1-%d characters without control characters`, identity.MaxKeyNameLen))
	}
	if len(req.Scopes) == 0 {
		return api.BadRequest(`field "scopes" must list at least one of ` + scopeList)
	}
	for _, sc := range req.Scopes {
		if _, err := identity.ParseScopes([]identity.Scope{sc}); err != nil {
			return api.BadRequest(fmt.Sprintf(`field "scopes": unknown scope %q; want %s`, sc, scopeList))
		}
	}
	scopes, err := identity.ParseScopes(req.Scopes)
	if err != nil {
		return err
	}
	apiKey, hash, err := identity.NewAPIKey()
	if err != nil {
		return err
	}
	sctx, cancel := s.storeCtx()
	defer cancel()
	k, err := s.deps.Identity.AddKey(sctx, tenantID, *req.Name, scopes, hash)
	if err != nil {
		return api.StoreError("identity store", err)
	}
	s.log.Info("API key created", "tenant", tenantID, "key_id", k.KeyID, "scopes", scopes.String())
	api.WriteJSON(ctx, fasthttp.StatusCreated, keyAnswer(k, apiKey))
	return nil
}

// rotateKey serves POST .../keys/{keyId}/rotate: a new key with the same id, name and
// scopes, shown only in this answer; the old one is refused from now on.
func (s *Server) rotateKey(ctx *fasthttp.RequestCtx, tenantID, keyID string) error {
	apiKey, hash, err := identity.NewAPIKey()
	if err != nil {
		return err
	}
	sctx, cancel := s.storeCtx()
	defer cancel()
	k, err := s.deps.Identity.RotateKey(sctx, tenantID, keyID, hash)
	if err != nil {
		return api.StoreError("identity store", err)
	}
	s.log.Info("API key rotated", "tenant", tenantID, "key_id", keyID)
	api.WriteJSON(ctx, fasthttp.StatusOK, keyAnswer(k, apiKey))
	return nil
}

// revokeKey serves DELETE .../keys/{keyId}: 204, and the key is refused everywhere as
// soon as the identity watch delivers the delete.
func (s *Server) revokeKey(ctx *fasthttp.RequestCtx, tenantID, keyID string) error {
	sctx, cancel := s.storeCtx()
	defer cancel()
	if _, err := s.deps.Identity.RevokeKey(sctx, tenantID, keyID); err != nil {
		return api.StoreError("identity store", err)
	}
	s.log.Info("API key revoked", "tenant", tenantID, "key_id", keyID)
	ctx.SetStatusCode(fasthttp.StatusNoContent)
	return nil
}

// keyError maps identity's key errors to answers; nil for other errors.
func keyError(err error) *api.Error {
	switch {
	case errors.Is(err, identity.ErrKeyNotFound):
		return api.NewError(404, api.CodeNotFound, "API key not found")
	case errors.Is(err, identity.ErrTooManyKeys):
		return api.BadRequest(fmt.Sprintf("the tenant holds %d API keys, the most it may; revoke one first", identity.MaxKeys))
	case errors.Is(err, identity.ErrBadKeyName), errors.Is(err, identity.ErrBadScope):
		return api.BadRequest(strings.TrimPrefix(err.Error(), "identity: "))
	}
	return nil
}
