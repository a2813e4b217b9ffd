package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/valyala/fasthttp"

	"github.com/edgehook/edgehook/identity"
	"github.com/edgehook/edgehook/status"
	"github.com/edgehook/edgehook/vault"
)

// Error codes of the JSON error body {"error":{"code":...,"message":...}}.
const (
	CodeUnauthorized     = "unauthorized"
	CodeForbidden        = "forbidden"
	CodeInvalidJSON      = "invalid_json"
	CodeInvalidRequest   = "invalid_request"
	CodePayloadTooLarge  = "payload_too_large"
	CodeNotFound         = "not_found"
	CodeMethodNotAllowed = "method_not_allowed"
	CodeUnavailable      = "unavailable"
	CodeTimeout          = "timeout"
	CodeInternal         = "internal"
)

// apiError is an error with the HTTP status and JSON body the client gets. Handlers
// return it (or a store error that errorResponse maps to one).
type apiError struct {
	Status  int    `json:"-"`
	Code    string `json:"code"`
	Message string `json:"message"`
	// Details lists the faults of the items of a batch, each by its index.
	Details []errorDetail `json:"details,omitempty"`
}

// errorDetail is one fault of a batch item: the index of the item (0-based) and what
// is wrong with it.
type errorDetail struct {
	Index   int    `json:"index"`
	Message string `json:"message"`
}

func (e *apiError) Error() string { return e.Code + ": " + e.Message }

func newAPIError(statusCode int, code, msg string) *apiError {
	return &apiError{Status: statusCode, Code: code, Message: msg}
}

func badRequest(msg string) *apiError { return newAPIError(400, CodeInvalidRequest, msg) }

// Errors with a fixed body.
var (
	// errUnauthorized is the one answer for a missing, malformed or unknown API key,
	// so a client cannot tell which it was.
	errUnauthorized       = newAPIError(401, CodeUnauthorized, "missing or unknown API key")
	errAdminUnauthorized  = newAPIError(401, CodeUnauthorized, "missing or invalid admin token")
	errSuspended          = newAPIError(403, CodeForbidden, "tenant is not active")
	errRouteNotFound      = newAPIError(404, CodeNotFound, "no such route")
	errMethodNotAllowed   = newAPIError(405, CodeMethodNotAllowed, "method not allowed on this route")
	errEmptyBody          = newAPIError(400, CodeInvalidJSON, "request body is empty; send a JSON object")
	errNotObject          = newAPIError(400, CodeInvalidJSON, "request body must be a JSON object")
	errControlChar        = newAPIError(400, CodeInvalidJSON, "request body is not valid JSON: a string holds an unescaped control character")
	errBadType            = badRequest(`field "type" must be a string of at most 256 bytes without control characters`)
	errBadIdempotencyKey  = badRequest("Idempotency-Key must be 1-255 printable ASCII characters")
	errDuplicateType      = badRequest(`field "type" appears more than once`)
	errTypeNotUTF8        = badRequest(`field "type" is not valid UTF-8 (invalid bytes, or an escaped UTF-16 surrogate without its pair)`)
	errTenantConfigViaAPI = newAPIError(404, CodeNotFound, "webhook configuration is not managed by this gateway; change it through the admin API (PATCH /v1/tenants/{id})")
)

// unavailableError marks a failure of a dependency (JetStream, a store) that the client
// may retry; it maps to 503 with Retry-After.
type unavailableError struct {
	what string
	err  error
}

func (e *unavailableError) Error() string { return e.what + " unavailable: " + e.err.Error() }
func (e *unavailableError) Unwrap() error { return e.err }

// storeError wraps err from a store call: failures that a retry may cure become
// unavailableError, everything else passes through to errorResponse.
func storeError(what string, err error) error {
	if transient(err) {
		return &unavailableError{what: what, err: err}
	}
	return err
}

// transient reports whether err is a timeout, a lost connection or a missing
// JetStream asset: the kind of failure that a later retry may not see.
func transient(err error) bool {
	for _, target := range []error{
		context.DeadlineExceeded, context.Canceled,
		nats.ErrTimeout, nats.ErrNoResponders, nats.ErrConnectionClosed, nats.ErrDisconnected,
		nats.ErrConnectionReconnecting, nats.ErrConnectionDraining,
		jetstream.ErrNoStreamResponse, jetstream.ErrAsyncPublishTimeout, jetstream.ErrTooManyStalledMsgs,
		jetstream.ErrStreamNotFound, jetstream.ErrBucketNotFound, jetstream.ErrJetStreamNotEnabled,
		jetstream.ErrJetStreamNotEnabledForAccount,
	} {
		if errors.Is(err, target) {
			return true
		}
	}
	var ne net.Error
	return errors.As(err, &ne)
}

// errorResponse maps any handler error to the status and body the client gets. It is
// the only place that decides how an error looks on the wire.
func (s *Server) errorResponse(err error, route string) *apiError {
	var ae *apiError
	var ue *unavailableError
	switch {
	case errors.As(err, &ae):
		return ae
	case errors.As(err, &ue):
		return newAPIError(503, CodeUnavailable, ue.what+" is unavailable; retry later")
	case errors.Is(err, identity.ErrNotFound):
		return newAPIError(404, CodeNotFound, "tenant not found")
	case errors.Is(err, status.ErrNotFound):
		return newAPIError(404, CodeNotFound, "event not found")
	case errors.Is(err, vault.ErrNotFound):
		return newAPIError(404, CodeNotFound, "webhook configuration not found")
	case errors.Is(err, identity.ErrBadPlan), errors.Is(err, identity.ErrBadStatus), errors.Is(err, identity.ErrBadTenantID):
		return badRequest(strings.TrimPrefix(err.Error(), "identity: "))
	case transient(err):
		s.log.Warn("dependency unavailable", "route", route, "error", err)
		return newAPIError(503, CodeUnavailable, "a backing service is unavailable; retry later")
	}
	s.log.Error("internal error", "route", route, "error", err)
	return newAPIError(500, CodeInternal, "internal error")
}

// writeError answers with err's status and JSON error body (and Retry-After on 503).
func (s *Server) writeError(ctx *fasthttp.RequestCtx, err error, route string) {
	ae := s.errorResponse(err, route)
	if ae.Status == fasthttp.StatusServiceUnavailable {
		ctx.Response.Header.Set("Retry-After", "1")
	}
	if ae.Status == fasthttp.StatusUnauthorized {
		ctx.Response.Header.Set("WWW-Authenticate", "Bearer")
	}
	writeJSON(ctx, ae.Status, struct {
		Error *apiError `json:"error"`
	}{ae})
}

// writeJSON answers with status and v encoded as JSON.
func writeJSON(ctx *fasthttp.RequestCtx, statusCode int, v any) {
	ctx.SetStatusCode(statusCode)
	ctx.SetContentType("application/json")
	ctx.ResetBody()
	if err := json.NewEncoder(ctx).Encode(v); err != nil {
		// Only reachable with a type json cannot encode: a programming error.
		ctx.ResetBody()
		ctx.SetStatusCode(fasthttp.StatusInternalServerError)
		ctx.SetBodyString(`{"error":{"code":"internal","message":"internal error"}}`)
	}
}
