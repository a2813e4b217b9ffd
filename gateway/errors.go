package gateway

import (
	"errors"

	"github.com/valyala/fasthttp"

	"github.com/edgehook/edgehook/api"
	"github.com/edgehook/edgehook/identity"
	"github.com/edgehook/edgehook/status"
)

// Error codes of the JSON error body {"error":{"code":...,"message":...}} (package api
// holds the shape every edgehook API shares).
const (
	CodeUnauthorized      = api.CodeUnauthorized
	CodeForbidden         = api.CodeForbidden
	CodeInsufficientScope = api.CodeInsufficientScope
	CodeInvalidJSON       = api.CodeInvalidJSON
	CodeInvalidRequest    = api.CodeInvalidRequest
	CodePayloadTooLarge   = api.CodePayloadTooLarge
	CodeNotFound          = api.CodeNotFound
	CodeMethodNotAllowed  = api.CodeMethodNotAllowed
	CodeUnavailable       = api.CodeUnavailable
	CodeTimeout           = api.CodeTimeout
	CodeInternal          = api.CodeInternal
)

// apiError is an error with the HTTP status and JSON body the client gets. Handlers
// return it (or a store error that errorResponse maps to one).
type apiError = api.Error

// errorDetail is one fault of a batch item.
type errorDetail = api.ErrorDetail

func newAPIError(statusCode int, code, msg string) *apiError {
	return api.NewError(statusCode, code, msg)
}

func badRequest(msg string) *apiError { return api.BadRequest(msg) }

// Errors with a fixed body.
var (
	// errUnauthorized is the one answer for a missing, malformed or unknown API key,
	// so a client cannot tell which it was.
	errUnauthorized      = newAPIError(401, CodeUnauthorized, "missing or unknown API key")
	errSuspended         = newAPIError(403, CodeForbidden, "tenant is not active")
	errEmptyBody         = api.ErrEmptyBody
	errNotObject         = api.ErrNotObject
	errControlChar       = newAPIError(400, CodeInvalidJSON, "request body is not valid JSON: a string holds an unescaped control character")
	errBadType           = badRequest(`field "type" must be a string of at most 256 bytes without control characters`)
	errBadIdempotencyKey = badRequest("Idempotency-Key must be 1-255 printable ASCII characters")
	errDuplicateType     = badRequest(`field "type" appears more than once`)
	errTypeNotUTF8       = badRequest(`field "type" is not valid UTF-8 (invalid bytes, or an escaped UTF-16 surrogate without its pair)`)
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

// transient reports whether err is the kind of failure a later retry may not see.
func transient(err error) bool { return api.Transient(err) }

// errorResponse maps any handler error to the status and body the client gets. It is
// the only place that decides how an error looks on the wire.
func (s *Server) errorResponse(err error, route string) *apiError {
	var ue *unavailableError
	switch {
	case errors.As(err, &ue):
		return api.Response(&api.Unavailable{What: ue.what, Err: ue.err}, s.log, route)
	case errors.Is(err, identity.ErrNotFound):
		return newAPIError(404, CodeNotFound, "tenant not found")
	case errors.Is(err, status.ErrNotFound):
		return newAPIError(404, CodeNotFound, "event not found")
	}
	return api.Response(err, s.log, route)
}

// writeError answers with err's status and JSON error body (and Retry-After on 503).
func (s *Server) writeError(ctx *fasthttp.RequestCtx, err error, route string) {
	api.WriteError(ctx, s.errorResponse(err, route))
}

// writeJSON answers with status and v encoded as JSON.
func writeJSON(ctx *fasthttp.RequestCtx, statusCode int, v any) { api.WriteJSON(ctx, statusCode, v) }
