package admin

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/edgehook/edgehook/api"
	"github.com/edgehook/edgehook/identity"
	"github.com/edgehook/edgehook/target"
	"github.com/edgehook/edgehook/vault"
	"github.com/edgehook/edgehook/webhook"
)

// CreatedTenant is the body of POST /v1/tenants: the only answer that ever carries the
// tenant's first API key, and one of two that carry a signing secret.
type CreatedTenant struct {
	TenantID      string    `json:"tenantId"`
	APIKey        string    `json:"apiKey"`
	WebhookSecret string    `json:"webhookSecret"`
	TargetURL     string    `json:"targetUrl"`
	Plan          string    `json:"plan"`
	Status        string    `json:"status"`
	CreatedAt     time.Time `json:"createdAt"`
}

// TenantIDPlaceholder in the targetUrl of POST /v1/tenants is replaced by the new
// tenant's id, so a tenant can be pointed at a per-tenant endpoint in one call.
const TenantIDPlaceholder = "{tenantId}"

// newTenantRequest is the body of POST /v1/tenants.
type newTenantRequest struct {
	TargetURL string `json:"targetUrl"`
	Plan      string `json:"plan"`
}

// createTenant serves POST /v1/tenants {"targetUrl","plan"} (see newTenant).
func (s *Server) createTenant(ctx *fasthttp.RequestCtx, _ string) error {
	var req newTenantRequest
	if err := api.DecodeJSON(ctx.PostBody(), &req); err != nil {
		return err
	}
	created, err := s.newTenant(req)
	if err != nil {
		return err
	}
	api.WriteJSON(ctx, fasthttp.StatusCreated, created)
	return nil
}

// newTenant creates a tenant, for the admin API and the operator console. It writes
// the webhook config first and the identity records second, and removes the config if
// the identity write fails, so a failure never leaves a tenant that can authenticate
// but has no config, nor a config nobody owns.
func (s *Server) newTenant(req newTenantRequest) (CreatedTenant, error) {
	tenantID, err := identity.NewTenantID()
	if err != nil {
		return CreatedTenant{}, err
	}
	// A target URL may name the tenant it belongs to before the id exists.
	req.TargetURL = strings.ReplaceAll(req.TargetURL, TenantIDPlaceholder, tenantID)
	if err := validateTargetURL(req.TargetURL, s.cfg.AllowPrivateTargets); err != nil {
		return CreatedTenant{}, err
	}
	if req.Plan == "" {
		req.Plan = identity.DefaultPlan
	}
	if err := validatePlan(req.Plan); err != nil {
		return CreatedTenant{}, err
	}
	apiKey, keyHash, err := identity.NewAPIKey()
	if err != nil {
		return CreatedTenant{}, err
	}
	secret, err := webhook.NewSecret()
	if err != nil {
		return CreatedTenant{}, err
	}
	now := time.Now().UTC()
	t := identity.Tenant{TenantID: tenantID, Status: identity.StatusActive, Plan: req.Plan, CreatedAt: now}

	sctx, cancel := s.storeCtx()
	defer cancel()
	if err := s.configs.PutWebhookConfig(sctx, vault.WebhookConfig{
		TenantID: tenantID, TargetURL: req.TargetURL, Secret: secret, LastUpdated: now,
	}); err != nil {
		s.log.Error("tenant creation failed: webhook config not written", "tenant", tenantID, "error", err)
		return CreatedTenant{}, api.StoreError("webhook config store", err)
	}
	if err := s.deps.Identity.Create(sctx, t, keyHash); err != nil {
		dctx, dcancel := s.storeCtx()
		defer dcancel()
		if derr := s.configs.DeleteWebhookConfig(dctx, tenantID); derr != nil {
			s.log.Error("tenant creation failed and its webhook config could not be removed",
				"tenant", tenantID, "error", err, "cleanup_error", derr)
		} else {
			s.log.Error("tenant creation failed: identity not written; webhook config removed", "tenant", tenantID, "error", err)
		}
		return CreatedTenant{}, api.StoreError("identity store", err)
	}
	s.log.Info("tenant created", "tenant", tenantID, "plan", t.Plan)
	return CreatedTenant{
		TenantID: tenantID, APIKey: apiKey, WebhookSecret: secret.Reveal(), TargetURL: req.TargetURL,
		Plan: t.Plan, Status: t.Status, CreatedAt: now,
	}, nil
}

// getTenant serves GET /v1/tenants/{id} and a tenant's GET /v1/tenant: identity and
// target URL, never a secret.
func (s *Server) getTenant(ctx *fasthttp.RequestCtx, id, _ string) error {
	resp, err := s.tenantView(id)
	if err != nil {
		return err
	}
	api.WriteJSON(ctx, fasthttp.StatusOK, resp)
	return nil
}

// tenantView reads tenant id from the stores (not the view, so an admin always sees
// the latest write). A tenant without a webhook config shows an empty targetUrl.
func (s *Server) tenantView(id string) (tenantResponse, error) {
	sctx, cancel := s.storeCtx()
	defer cancel()
	t, err := s.deps.Identity.Get(sctx, id)
	if err != nil {
		return tenantResponse{}, api.StoreError("identity store", err)
	}
	wc, err := s.webhookConfig(id)
	if err != nil && !errors.Is(err, vault.ErrNotFound) {
		return tenantResponse{}, err
	}
	resp := tenantResponse{TenantID: t.TenantID, Status: t.Status, Plan: t.Plan, CreatedAt: t.CreatedAt, TargetURL: &wc.TargetURL}
	if n := len(wc.RotationHistory); n > 0 {
		last := wc.RotationHistory[n-1]
		resp.SecretRotatedAt, resp.PreviousSecretExpiresAt = &last.RotatedAt, &last.PreviousExpiresAt
	}
	return resp, nil
}

// tenantPatch is the body of PATCH /v1/tenants/{id}: the fields to change.
type tenantPatch struct {
	Status    *string `json:"status"`
	Plan      *string `json:"plan"`
	TargetURL *string `json:"targetUrl"`
}

// patchTenant serves PATCH /v1/tenants/{id} {"status"?, "plan"?, "targetUrl"?} (see
// updateTenant); the answer has the shape of GET.
func (s *Server) patchTenant(ctx *fasthttp.RequestCtx, id string) error {
	var req tenantPatch
	if err := api.DecodeJSON(ctx.PostBody(), &req); err != nil {
		return err
	}
	if err := s.updateTenant(id, req); err != nil {
		return err
	}
	return s.getTenant(ctx, id, "")
}

// updateTenant changes tenant id, for the admin API and the operator console. Every
// field is validated before anything is written.
func (s *Server) updateTenant(id string, req tenantPatch) error {
	if req.Status == nil && req.Plan == nil && req.TargetURL == nil {
		return api.BadRequest(`set at least one of "status", "plan", "targetUrl"`)
	}
	if req.Status != nil && *req.Status != identity.StatusActive && *req.Status != identity.StatusSuspended {
		return api.BadRequest(`field "status" must be active or suspended`)
	}
	if req.Plan != nil {
		if err := validatePlan(*req.Plan); err != nil {
			return err
		}
	}
	if req.TargetURL != nil {
		if err := validateTargetURL(*req.TargetURL, s.cfg.AllowPrivateTargets); err != nil {
			return err
		}
	}

	sctx, cancel := s.storeCtx()
	defer cancel()
	t, err := s.deps.Identity.Get(sctx, id)
	if err != nil {
		return api.StoreError("identity store", err)
	}
	updated := t
	if req.Status != nil {
		updated.Status = *req.Status
	}
	if req.Plan != nil {
		updated.Plan = *req.Plan
	}
	if updated != t {
		if err := s.deps.Identity.Update(sctx, updated); err != nil {
			return api.StoreError("identity store", err)
		}
	}
	if req.TargetURL != nil {
		if err := s.setTargetURL(id, *req.TargetURL); err != nil {
			return err
		}
	}
	s.log.Info("tenant updated", "tenant", id, "status", updated.Status, "plan", updated.Plan,
		"target_url_changed", req.TargetURL != nil)
	return nil
}

// patchOwnTenant serves a tenant's PATCH /v1/tenant {"targetUrl"} (manage scope): it
// changes its own target URL, nothing else.
func (s *Server) patchOwnTenant(ctx *fasthttp.RequestCtx, tenantID, _ string) error {
	var req struct {
		TargetURL *string `json:"targetUrl"`
	}
	if err := api.DecodeJSON(ctx.PostBody(), &req); err != nil {
		return err
	}
	if req.TargetURL == nil {
		return api.BadRequest(`field "targetUrl" is required`)
	}
	if err := validateTargetURL(*req.TargetURL, s.cfg.AllowPrivateTargets); err != nil {
		return err
	}
	if err := s.setTargetURL(tenantID, *req.TargetURL); err != nil {
		return err
	}
	s.log.Info("tenant target URL changed", "tenant", tenantID, "by", "tenant")
	return s.getTenant(ctx, tenantID, "")
}

// rotateSecretResponse is the body of POST /v1/tenants/{id}/rotate-secret.
type rotateSecretResponse struct {
	TenantID                string    `json:"tenantId"`
	WebhookSecret           string    `json:"webhookSecret"`
	PreviousSecretExpiresAt time.Time `json:"previousSecretExpiresAt"`
}

// rotateSecret serves POST /v1/tenants/{id}/rotate-secret (and a tenant's POST
// /v1/tenant/rotate-secret, manage scope): a new secret becomes
// current; the old one stays valid for Config.RotationWindow so receivers can switch
// over. Previous secrets whose window has closed are dropped.
func (s *Server) rotateSecret(ctx *fasthttp.RequestCtx, id, _ string) error {
	if !identity.ValidTenantID(id) {
		return vault.ErrNotFound
	}
	secret, err := webhook.NewSecret()
	if err != nil {
		return err
	}
	sctx, cancel := s.storeCtx()
	defer cancel()
	wc, err := s.configs.WebhookConfig(sctx, id)
	if err != nil {
		return api.StoreError("webhook config store", err)
	}
	now := time.Now().UTC()
	expires := now.Add(s.cfg.RotationWindow)
	previous := make([]vault.PreviousSecret, 0, len(wc.Previous)+1)
	for _, p := range wc.Previous {
		if now.Before(p.ExpiresAt) {
			previous = append(previous, p)
		}
	}
	wc.Previous = append(previous, vault.PreviousSecret{Secret: wc.Secret, ExpiresAt: expires})
	wc.RotationHistory = append(wc.RotationHistory, vault.Rotation{RotatedAt: now, PreviousExpiresAt: expires})
	wc.Secret = secret
	wc.LastUpdated = now
	if err := s.configs.PutWebhookConfig(sctx, wc); err != nil {
		return api.StoreError("webhook config store", err)
	}
	s.log.Info("webhook secret rotated", "tenant", id, "previous_expires_at", expires)
	api.WriteJSON(ctx, fasthttp.StatusOK, rotateSecretResponse{TenantID: id, WebhookSecret: secret.Reveal(), PreviousSecretExpiresAt: expires})
	return nil
}

// tenantResponse is the body of GET and PATCH /v1/tenants/{id}. It never holds a
// secret.
type tenantResponse struct {
	TenantID  string    `json:"tenantId"`
	Status    string    `json:"status"`
	Plan      string    `json:"plan"`
	CreatedAt time.Time `json:"createdAt"`
	TargetURL *string   `json:"targetUrl,omitempty"`
	// SecretRotatedAt and PreviousSecretExpiresAt are the latest rotation of the
	// signing secret (absent before the first); the tenant portal shows them.
	SecretRotatedAt         *time.Time `json:"secretRotatedAt,omitempty"`
	PreviousSecretExpiresAt *time.Time `json:"previousSecretExpiresAt,omitempty"`
}

// webhookConfig reads tenantID's webhook configuration from the config store, for the
// target URL and rotation times of an answer (never its secrets).
func (s *Server) webhookConfig(tenantID string) (vault.WebhookConfig, error) {
	sctx, cancel := s.storeCtx()
	defer cancel()
	wc, err := s.configs.WebhookConfig(sctx, tenantID)
	if err != nil {
		return vault.WebhookConfig{}, api.StoreError("webhook config store", err)
	}
	return wc, nil
}

// setTargetURL replaces tenantID's target URL, keeping its secrets.
func (s *Server) setTargetURL(tenantID, target string) error {
	sctx, cancel := s.storeCtx()
	defer cancel()
	wc, err := s.configs.WebhookConfig(sctx, tenantID)
	if err != nil {
		return api.StoreError("webhook config store", err)
	}
	wc.TargetURL = target
	wc.LastUpdated = time.Now().UTC()
	if err := s.configs.PutWebhookConfig(sctx, wc); err != nil {
		return api.StoreError("webhook config store", err)
	}
	return nil
}

// validateTargetURL is the one check of every target URL the admin API stores
// (target.ValidateURL): an absolute http(s) URL with a host, no credentials and a port
// in range; unless allowPrivate (Config.AllowPrivateTargets), no private, loopback or
// localhost host. The refusal names what is wrong, never the URL.
func validateTargetURL(raw string, allowPrivate bool) error {
	if raw == "" {
		return api.BadRequest(`field "targetUrl" is required: an absolute http or https URL`)
	}
	if err := target.ValidateURL(raw, allowPrivate); err != nil {
		var te *target.Error
		if errors.As(err, &te) {
			return api.BadRequest(`field "targetUrl" is not allowed: ` + te.Reason)
		}
		return api.BadRequest(`field "targetUrl" is not allowed`)
	}
	return nil
}

// validatePlan maps identity's plan check to an answer naming the field.
func validatePlan(plan string) error {
	if identity.ValidatePlan(plan) != nil {
		return api.BadRequest(fmt.Sprintf(`field "plan" must be one of %s`, strings.Join(identity.Plans, ", ")))
	}
	return nil
}
