package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/valyala/fasthttp"

	"github.com/edgehook/edgehook/console"
	"github.com/edgehook/edgehook/identity"
	"github.com/edgehook/edgehook/natsconf"
	"github.com/edgehook/edgehook/status"
)

// Figures of the portal's endpoint page.
const (
	// recentWindow and recentStep shape the endpoint page's success-rate chart.
	recentWindow = time.Hour
	recentStep   = 5 * time.Minute
)

// errNoIndex is the answer of the pages that need the events index when the gateway
// runs none (it is started by Serve).
var errNoIndex = errors.New("gateway: the portal's events index is not running (it starts with Serve)")

// portalSource is the tenant portal's console.PortalSource on the gateway's own code:
// keys resolve through the identity view as the JSON API's do, events and attempts
// come from the status store as GET /v1/events/{id} and /attempts read them, replays
// go through requestReplay, the events list from the status index, and the endpoint
// and its secret through the admin relay, authorized by the tenant's own key.
type portalSource struct{ s *Server }

var _ console.PortalSource = portalSource{}

// Authenticate resolves key through the identity view: unknown is
// console.ErrUnauthenticated, a tenant that is not active console.ErrForbidden.
func (p portalSource) Authenticate(ctx context.Context, key console.Secret) (console.Principal, error) {
	id, err := p.s.deps.View.AuthenticateKey(ctx, []byte(key.Reveal()))
	switch {
	case errors.Is(err, identity.ErrUnknownKey):
		return console.Principal{}, console.ErrUnauthenticated
	case err != nil:
		return console.Principal{}, fmt.Errorf("gateway: identity store: %w", err)
	case !id.Tenant.Active():
		return console.Principal{}, console.ErrForbidden
	}
	pr := console.Principal{TenantID: id.Tenant.TenantID}
	for _, sc := range id.Scopes.List() {
		pr.Scopes = append(pr.Scopes, console.Scope(sc))
	}
	return pr, nil
}

// ListEvents pages the tenant's events from the status index.
func (p portalSource) ListEvents(ctx context.Context, pr console.Principal, f console.EventFilter) (console.EventPage, error) {
	if p.s.index == nil {
		return console.EventPage{}, errNoIndex
	}
	page, err := p.s.index.List(ctx, pr.TenantID, status.IndexQuery{Status: string(f.Status), Type: f.Type, Cursor: f.Cursor, Limit: f.Limit})
	if errors.Is(err, status.ErrIndexInvalid) {
		return console.EventPage{}, &console.InvalidError{Message: "That page link or filter is not valid; start again from the newest events."}
	}
	if err != nil {
		return console.EventPage{}, err
	}
	out := console.EventPage{Next: page.Next, Truncated: page.Truncated, Events: make([]console.EventSummary, len(page.Entries))}
	for i, e := range page.Entries {
		out.Events[i] = console.EventSummary{ID: e.EventID, Type: e.Type, Status: console.EventStatus(e.Status), Attempts: e.Attempts,
			LastStatusCode: e.LastStatusCode, CreatedAt: e.CreatedAt, UpdatedAt: e.UpdatedAt}
	}
	return out, nil
}

// Event reads the tenant's event as GET /v1/events/{id} does. The payload stays nil:
// the gateway may not read EVENTS.
func (p portalSource) Event(ctx context.Context, pr console.Principal, id string) (console.Event, error) {
	sctx, cancel := p.s.storeCtx()
	defer cancel()
	rec, err := p.s.getStatus(sctx, pr.TenantID, id)
	if err != nil {
		return console.Event{}, portalError(err)
	}
	if rec.TenantID != pr.TenantID { // keys are per tenant; this is belt and braces
		return console.Event{}, console.ErrNotFound
	}
	return console.Event{EventSummary: console.EventSummary{ID: rec.EventID, Type: rec.Type, Status: console.EventStatus(rec.Status),
		Attempts: rec.Attempts, LastStatusCode: rec.LastStatusCode, CreatedAt: rec.CreatedAt, UpdatedAt: rec.UpdatedAt},
		LastError: rec.LastError}, nil
}

// Attempts reads the event's attempt log as GET /v1/events/{id}/attempts does.
func (p portalSource) Attempts(ctx context.Context, pr console.Principal, id string) ([]console.Attempt, error) {
	sctx, cancel := p.s.storeCtx()
	defer cancel()
	log, err := p.s.deps.Status.Attempts(sctx, pr.TenantID, id)
	if err != nil {
		return nil, portalError(err)
	}
	out := make([]console.Attempt, 0, len(log))
	for _, a := range log {
		if a.TenantID != pr.TenantID {
			continue
		}
		out = append(out, console.Attempt{N: a.N, At: a.At, StatusCode: a.StatusCode,
			Latency: time.Duration(a.LatencyMs * float64(time.Millisecond)), Error: attemptError(a), ResponseBody: a.ResponseBody})
	}
	return out, nil
}

// attemptError is what the attempt log's error column shows: the error, or for an
// attempt that sent nothing, its outcome.
func attemptError(a status.Attempt) string {
	if a.Error == "" && (a.Outcome == status.OutcomeParked || a.Outcome == status.OutcomeRefused) {
		return a.Outcome
	}
	return a.Error
}

// Replay asks for a replay as POST /v1/events/{id}/replay does.
func (p portalSource) Replay(_ context.Context, pr console.Principal, id string) error {
	err := p.s.requestReplay(pr.TenantID, id)
	if errors.Is(err, errNotReplayable) {
		return fmt.Errorf("%w: %w", console.ErrConflict, err)
	}
	return portalError(err)
}

// tenantAnswer is the part of the admin API's GET /v1/tenant answer the portal shows.
type tenantAnswer struct {
	TargetURL               string    `json:"targetUrl"`
	CreatedAt               time.Time `json:"createdAt"`
	SecretRotatedAt         time.Time `json:"secretRotatedAt"`
	PreviousSecretExpiresAt time.Time `json:"previousSecretExpiresAt"`
}

// Endpoint shows the tenant's target URL and secret rotation (from the admin API,
// through the relay, with the session's key), its breaker and its recent deliveries.
//
// The breaker state is read from where the worker keeps its effect: while an
// endpoint's breaker is open the worker parks its events on the PARKED stream
// (parked.<endpoint>.<tenantId>.<eventId>, see worker/park.go), so the breaker shows
// "open" while the tenant has parked copies, and "closed" otherwise. (A copy parked
// for a retry far off counts too: either way deliveries wait.) The chart counts,
// per five minutes of the last hour, the events created and those whose latest update
// left them delivered or failed, from the status index.
func (p portalSource) Endpoint(ctx context.Context, pr console.Principal) (console.Endpoint, error) {
	var t tenantAnswer
	if err := p.admin(pr, fasthttp.MethodGet, patTenant, &t); err != nil {
		return console.Endpoint{}, err
	}
	ep := console.Endpoint{TargetURL: t.TargetURL, SecretRotatedAt: t.SecretRotatedAt, PreviousExpiresAt: t.PreviousSecretExpiresAt}
	if ep.SecretRotatedAt.IsZero() {
		ep.SecretRotatedAt = t.CreatedAt // never rotated: the secret is the tenant's first
	}
	var err error
	if ep.Breaker, err = p.breaker(ctx, pr.TenantID); err != nil {
		return console.Endpoint{}, err
	}
	if p.s.index == nil {
		return console.Endpoint{}, errNoIndex
	}
	steps, err := p.s.index.Outcomes(ctx, pr.TenantID, time.Now(), recentWindow, recentStep)
	if err != nil {
		return console.Endpoint{}, err
	}
	for _, st := range steps {
		ep.Recent = append(ep.Recent, console.RatePoint{At: st.At, Ingested: st.Created, Delivered: st.Delivered, Failed: st.Failed})
	}
	return ep, nil
}

// breaker is "open" while the tenant has parked copies on PARKED (stream info with a
// subject filter: the gateway may not read the copies themselves).
func (p portalSource) breaker(ctx context.Context, tenantID string) (console.BreakerState, error) {
	js, timeout := p.s.deps.JS, p.s.cfg.StoreTimeout
	if p.s.deps.Hub != nil {
		js, timeout = p.s.deps.Hub, p.s.cfg.HubTimeout // an edge's parked copies are the hub's
	}
	sctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	st, err := js.Stream(sctx, natsconf.StreamParked)
	if err != nil {
		return "", fmt.Errorf("gateway: parked stream: %w", err)
	}
	info, err := st.Info(sctx, jetstream.WithSubjectFilter(natsconf.ParkedSubjectPrefix+"*."+tenantID+".*"))
	if err != nil {
		return "", fmt.Errorf("gateway: parked stream info: %w", err)
	}
	if len(info.State.Subjects) > 0 {
		return console.BreakerOpen, nil
	}
	return console.BreakerClosed, nil
}

// rotateAnswer is the admin API's answer to POST /v1/tenant/rotate-secret.
type rotateAnswer struct {
	WebhookSecret           string    `json:"webhookSecret"`
	PreviousSecretExpiresAt time.Time `json:"previousSecretExpiresAt"`
}

// RotateSecret rotates the signing secret through the relay, with the session's key.
func (p portalSource) RotateSecret(_ context.Context, pr console.Principal) (console.RotatedSecret, error) {
	var r rotateAnswer
	if err := p.admin(pr, fasthttp.MethodPost, patTenantRotateSecret, &r); err != nil {
		return console.RotatedSecret{}, err
	}
	if r.WebhookSecret == "" {
		return console.RotatedSecret{}, errors.New("gateway: the admin API's rotation answer holds no secret")
	}
	return console.RotatedSecret{Secret: console.Secret(r.WebhookSecret), OldExpiresAt: r.PreviousSecretExpiresAt}, nil
}

// admin relays one of the tenant's own requests to the admin API with the session's
// key and decodes a 2xx answer into out; other answers map to the console's errors.
func (p portalSource) admin(pr console.Principal, method, path string, out any) error {
	a, err := p.s.relayToAdmin(method, path, "Bearer "+pr.Key.Reveal(), nil)
	if errors.Is(err, errAdminUnavailable) {
		// The page says the data source did not answer in time, which is what happened.
		return fmt.Errorf("gateway: no admin API answered %s %s: %w", method, path, context.DeadlineExceeded)
	}
	if err != nil {
		return fmt.Errorf("gateway: admin API: %w", err)
	}
	switch {
	case a.code == fasthttp.StatusUnauthorized:
		return console.ErrUnauthenticated
	case a.code == fasthttp.StatusForbidden:
		return console.ErrForbidden
	case a.code == fasthttp.StatusNotFound:
		return console.ErrNotFound
	case a.code < 200 || a.code > 299:
		return fmt.Errorf("gateway: admin API answered %s %s with %d", method, path, a.code)
	}
	if err := json.Unmarshal(a.body, out); err != nil {
		return fmt.Errorf("gateway: admin API answer to %s %s: %w", method, path, err)
	}
	return nil
}

// portalError maps the errors of the gateway's stores to the console's.
func portalError(err error) error {
	if errors.Is(err, status.ErrNotFound) {
		return fmt.Errorf("%w: %w", console.ErrNotFound, err)
	}
	return err
}
