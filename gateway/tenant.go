package gateway

import (
	"context"
	"time"

	"github.com/valyala/fasthttp"

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

// storeCtx bounds one store call by Config.StoreTimeout. It does not derive from the
// request: fasthttp's request context is only cancelled at server shutdown, when
// in-flight requests should finish rather than fail.
func (s *Server) storeCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), s.cfg.StoreTimeout)
}
