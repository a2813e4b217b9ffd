package gateway

import (
	"errors"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/edgehook/edgehook/identity"
	"github.com/edgehook/edgehook/vault"
	"github.com/edgehook/edgehook/webhook"
)

// createTenantResponse is the body of POST /v1/tenants: the only answer that ever
// carries the API key, and one of two that carry a signing secret.
type createTenantResponse struct {
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

// createTenant serves POST /v1/tenants {"targetUrl","plan"}. It writes the webhook
// config first and the identity records second, and removes the config if the
// identity write fails, so a failure never leaves a tenant that can authenticate but
// has no config, nor a config nobody owns.
func (s *Server) createTenant(ctx *fasthttp.RequestCtx, _ string) error {
	var req struct {
		TargetURL string `json:"targetUrl"`
		Plan      string `json:"plan"`
	}
	if err := decodeJSON(ctx.PostBody(), &req); err != nil {
		return err
	}
	tenantID, err := identity.NewTenantID()
	if err != nil {
		return err
	}
	// A target URL may name the tenant it belongs to before the id exists.
	req.TargetURL = strings.ReplaceAll(req.TargetURL, TenantIDPlaceholder, tenantID)
	if err := validateTargetURL(req.TargetURL); err != nil {
		return err
	}
	if req.Plan == "" {
		req.Plan = identity.DefaultPlan
	}
	if err := validatePlan(req.Plan); err != nil {
		return err
	}
	apiKey, keyHash, err := identity.NewAPIKey()
	if err != nil {
		return err
	}
	secret, err := webhook.NewSecret()
	if err != nil {
		return err
	}
	now := time.Now().UTC()
	t := identity.Tenant{TenantID: tenantID, Status: identity.StatusActive, Plan: req.Plan, CreatedAt: now}

	sctx, cancel := s.storeCtx()
	defer cancel()
	if err := s.deps.Configs.PutWebhookConfig(sctx, vault.WebhookConfig{
		TenantID: tenantID, TargetURL: req.TargetURL, Secret: secret, LastUpdated: now,
	}); err != nil {
		s.log.Error("tenant creation failed: webhook config not written", "tenant", tenantID, "error", err)
		return storeError("webhook config store", err)
	}
	if err := s.deps.Identity.Create(sctx, t, keyHash); err != nil {
		dctx, dcancel := s.storeCtx()
		defer dcancel()
		if derr := s.deps.Configs.DeleteWebhookConfig(dctx, tenantID); derr != nil {
			s.log.Error("tenant creation failed and its webhook config could not be removed",
				"tenant", tenantID, "error", err, "cleanup_error", derr)
		} else {
			s.log.Error("tenant creation failed: identity not written; webhook config removed", "tenant", tenantID, "error", err)
		}
		return storeError("identity store", err)
	}
	s.log.Info("tenant created", "tenant", tenantID, "plan", t.Plan)
	writeJSON(ctx, fasthttp.StatusCreated, createTenantResponse{
		TenantID: tenantID, APIKey: apiKey, WebhookSecret: secret.Reveal(), TargetURL: req.TargetURL,
		Plan: t.Plan, Status: t.Status, CreatedAt: now,
	})
	return nil
}

// getTenant serves GET /v1/tenants/{id}: identity and target URL, never a secret.
func (s *Server) getTenant(ctx *fasthttp.RequestCtx, id string) error {
	resp, err := s.tenantView(id)
	if err != nil {
		return err
	}
	writeJSON(ctx, fasthttp.StatusOK, resp)
	return nil
}

// tenantView reads tenant id from the stores (not the view, so an admin always sees
// the latest write). A tenant without a webhook config shows an empty targetUrl.
func (s *Server) tenantView(id string) (tenantResponse, error) {
	sctx, cancel := s.storeCtx()
	defer cancel()
	t, err := s.deps.Identity.Get(sctx, id)
	if err != nil {
		return tenantResponse{}, storeError("identity store", err)
	}
	target, err := s.targetURL(id)
	if err != nil && !errors.Is(err, vault.ErrNotFound) {
		return tenantResponse{}, err
	}
	return tenantResponse{TenantID: t.TenantID, Status: t.Status, Plan: t.Plan, CreatedAt: t.CreatedAt, TargetURL: &target}, nil
}

// patchTenant serves PATCH /v1/tenants/{id} {"status"?, "plan"?, "targetUrl"?}. Every
// field is validated before anything is written; the answer has the shape of GET.
func (s *Server) patchTenant(ctx *fasthttp.RequestCtx, id string) error {
	var req struct {
		Status    *string `json:"status"`
		Plan      *string `json:"plan"`
		TargetURL *string `json:"targetUrl"`
	}
	if err := decodeJSON(ctx.PostBody(), &req); err != nil {
		return err
	}
	if req.Status == nil && req.Plan == nil && req.TargetURL == nil {
		return badRequest(`set at least one of "status", "plan", "targetUrl"`)
	}
	if req.Status != nil && *req.Status != identity.StatusActive && *req.Status != identity.StatusSuspended {
		return badRequest(`field "status" must be active or suspended`)
	}
	if req.Plan != nil {
		if err := validatePlan(*req.Plan); err != nil {
			return err
		}
	}
	if req.TargetURL != nil {
		if err := validateTargetURL(*req.TargetURL); err != nil {
			return err
		}
	}

	sctx, cancel := s.storeCtx()
	defer cancel()
	t, err := s.deps.Identity.Get(sctx, id)
	if err != nil {
		return storeError("identity store", err)
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
			return storeError("identity store", err)
		}
	}
	if req.TargetURL != nil {
		if err := s.setTargetURL(id, *req.TargetURL); err != nil {
			return err
		}
	}
	s.log.Info("tenant updated", "tenant", id, "status", updated.Status, "plan", updated.Plan,
		"target_url_changed", req.TargetURL != nil)
	return s.getTenant(ctx, id)
}

// rotateSecretResponse is the body of POST /v1/tenants/{id}/rotate-secret.
type rotateSecretResponse struct {
	TenantID                string    `json:"tenantId"`
	WebhookSecret           string    `json:"webhookSecret"`
	PreviousSecretExpiresAt time.Time `json:"previousSecretExpiresAt"`
}

// rotateSecret serves POST /v1/tenants/{id}/rotate-secret: a new secret becomes
// current; the old one stays valid for Config.RotationWindow so receivers can switch
// over. Previous secrets whose window has closed are dropped.
func (s *Server) rotateSecret(ctx *fasthttp.RequestCtx, id string) error {
	if !identity.ValidTenantID(id) {
		return vault.ErrNotFound
	}
	secret, err := webhook.NewSecret()
	if err != nil {
		return err
	}
	sctx, cancel := s.storeCtx()
	defer cancel()
	wc, err := s.deps.Configs.WebhookConfig(sctx, id)
	if err != nil {
		return storeError("webhook config store", err)
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
	if err := s.deps.Configs.PutWebhookConfig(sctx, wc); err != nil {
		return storeError("webhook config store", err)
	}
	s.log.Info("webhook secret rotated", "tenant", id, "previous_expires_at", expires)
	writeJSON(ctx, fasthttp.StatusOK, rotateSecretResponse{TenantID: id, WebhookSecret: secret.Reveal(), PreviousSecretExpiresAt: expires})
	return nil
}
