package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/edgehook/edgehook/identity"
	"github.com/edgehook/edgehook/status"
)

// eventResponse is the body of GET /v1/events/{id}.
type eventResponse struct {
	EventID        string    `json:"eventId"`
	Status         string    `json:"status"`
	Attempts       int       `json:"attempts"`
	LastStatusCode int       `json:"lastStatusCode"`
	LastError      string    `json:"lastError"`
	Type           string    `json:"type"`
	CreatedAt      time.Time `json:"createdAt"`
	UpdatedAt      time.Time `json:"updatedAt"`
}

// getEvent serves GET /v1/events/{id}: the status of one of the caller's own events.
// Another tenant's event id is indistinguishable from an unknown one (404).
func (s *Server) getEvent(ctx *fasthttp.RequestCtx, id string) error {
	t, err := s.authenticate(ctx)
	if err != nil {
		return err
	}
	sctx, cancel := s.storeCtx()
	defer cancel()
	rec, err := s.getStatus(sctx, t.TenantID, id)
	if err != nil {
		return storeError("status store", err)
	}
	if rec.TenantID != t.TenantID { // keys are per tenant; this is belt and braces
		return status.ErrNotFound
	}
	writeJSON(ctx, fasthttp.StatusOK, eventResponse{
		EventID: rec.EventID, Status: rec.Status, Attempts: rec.Attempts,
		LastStatusCode: rec.LastStatusCode, LastError: rec.LastError, Type: rec.Type,
		CreatedAt: rec.CreatedAt, UpdatedAt: rec.UpdatedAt,
	})
	return nil
}

// tenantResponse is the body of GET /v1/tenant and of the admin GET/PATCH
// /v1/tenants/{id}. It never holds a secret.
type tenantResponse struct {
	TenantID  string    `json:"tenantId"`
	Status    string    `json:"status"`
	Plan      string    `json:"plan"`
	CreatedAt time.Time `json:"createdAt"`
	TargetURL *string   `json:"targetUrl,omitempty"`
}

// getOwnTenant serves GET /v1/tenant: the caller's identity record, plus its target
// URL when the gateway has a webhook config store.
func (s *Server) getOwnTenant(ctx *fasthttp.RequestCtx, _ string) error {
	t, err := s.authenticate(ctx)
	if err != nil {
		return err
	}
	resp := tenantResponse{TenantID: t.TenantID, Status: t.Status, Plan: t.Plan, CreatedAt: t.CreatedAt}
	if s.deps.Configs != nil {
		u, err := s.targetURL(t.TenantID)
		if err != nil {
			return err
		}
		resp.TargetURL = &u
	}
	writeJSON(ctx, fasthttp.StatusOK, resp)
	return nil
}

// patchOwnTenant serves PATCH /v1/tenant {"targetUrl"}: an active tenant changes its
// own target URL. Without a config store the gateway cannot, and says where to go.
func (s *Server) patchOwnTenant(ctx *fasthttp.RequestCtx, _ string) error {
	t, err := s.authenticateActive(ctx)
	if err != nil {
		return err
	}
	if s.deps.Configs == nil {
		return errTenantConfigViaAPI
	}
	var req struct {
		TargetURL *string `json:"targetUrl"`
	}
	if err := decodeJSON(ctx.PostBody(), &req); err != nil {
		return err
	}
	if req.TargetURL == nil {
		return badRequest(`field "targetUrl" is required`)
	}
	if err := validateTargetURL(*req.TargetURL); err != nil {
		return err
	}
	if err := s.setTargetURL(t.TenantID, *req.TargetURL); err != nil {
		return err
	}
	s.log.Info("tenant target URL changed", "tenant", t.TenantID, "by", "tenant")
	u := *req.TargetURL
	writeJSON(ctx, fasthttp.StatusOK, tenantResponse{TenantID: t.TenantID, Status: t.Status, Plan: t.Plan, CreatedAt: t.CreatedAt, TargetURL: &u})
	return nil
}

// targetURL reads tenantID's target URL from the config store.
func (s *Server) targetURL(tenantID string) (string, error) {
	sctx, cancel := s.storeCtx()
	defer cancel()
	wc, err := s.deps.Configs.WebhookConfig(sctx, tenantID)
	if err != nil {
		return "", storeError("webhook config store", err)
	}
	return wc.TargetURL, nil
}

// setTargetURL replaces tenantID's target URL, keeping its secrets.
func (s *Server) setTargetURL(tenantID, target string) error {
	sctx, cancel := s.storeCtx()
	defer cancel()
	wc, err := s.deps.Configs.WebhookConfig(sctx, tenantID)
	if err != nil {
		return storeError("webhook config store", err)
	}
	wc.TargetURL = target
	wc.LastUpdated = time.Now().UTC()
	if err := s.deps.Configs.PutWebhookConfig(sctx, wc); err != nil {
		return storeError("webhook config store", err)
	}
	return nil
}

// storeCtx bounds one store call by Config.StoreTimeout. It does not derive from the
// request: fasthttp's request context is only cancelled at server shutdown, when
// in-flight requests should finish rather than fail.
func (s *Server) storeCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), s.cfg.StoreTimeout)
}

// decodeJSON decodes body, a single JSON object, into v, rejecting unknown fields with
// a message that names them.
func decodeJSON(body []byte, v any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return errEmptyBody
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &te) && te.Field != "":
			return badRequest(fmt.Sprintf("field %q must be a %s", te.Field, te.Type.Kind()))
		case errors.As(err, &te):
			return errNotObject
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			return badRequest("unknown field " + strings.TrimPrefix(err.Error(), "json: unknown field "))
		}
		return newAPIError(fasthttp.StatusBadRequest, CodeInvalidJSON, "request body is not valid JSON: "+strings.TrimPrefix(err.Error(), "json: "))
	}
	if _, err := dec.Token(); err != io.EOF {
		return newAPIError(fasthttp.StatusBadRequest, CodeInvalidJSON, "request body must hold exactly one JSON object")
	}
	return nil
}

// validateTargetURL accepts absolute http(s) URLs with a host.
func validateTargetURL(raw string) error {
	bad := badRequest(`field "targetUrl" must be an absolute http or https URL with a host and no credentials`)
	if raw == "" || len(raw) > 2048 {
		return bad
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" || u.User != nil {
		return bad
	}
	return nil
}

// validatePlan maps identity's plan check to an answer naming the field.
func validatePlan(plan string) error {
	if identity.ValidatePlan(plan) != nil {
		return badRequest(fmt.Sprintf(`field "plan" must be one of %s`, strings.Join(identity.Plans, ", ")))
	}
	return nil
}
