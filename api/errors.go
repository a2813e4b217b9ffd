package api

import (
	"context"
	"errors"
	"log/slog"
	"net"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/valyala/fasthttp"
)

// Error codes of the JSON error body {"error":{"code":...,"message":...}}.
const (
	CodeUnauthorized      = "unauthorized"
	CodeForbidden         = "forbidden"
	CodeInsufficientScope = "insufficient_scope"
	CodeInvalidJSON       = "invalid_json"
	CodeInvalidRequest    = "invalid_request"
	CodePayloadTooLarge   = "payload_too_large"
	CodeNotFound          = "not_found"
	CodeMethodNotAllowed  = "method_not_allowed"
	CodeUnavailable       = "unavailable"
	CodeTimeout           = "timeout"
	CodeInternal          = "internal"
)

// Error is an error with the HTTP status and JSON body the client gets. Handlers
// return it (or an error a server maps to one).
type Error struct {
	Status  int    `json:"-"`
	Code    string `json:"code"`
	Message string `json:"message"`
	// Details lists the faults of the items of a batch, each by its index.
	Details []ErrorDetail `json:"details,omitempty"`
}

// ErrorDetail is one fault of a batch item: the index of the item (0-based) and what
// is wrong with it.
type ErrorDetail struct {
	Index   int    `json:"index"`
	Message string `json:"message"`
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// NewError returns an Error answered with statusCode, code and msg.
func NewError(statusCode int, code, msg string) *Error {
	return &Error{Status: statusCode, Code: code, Message: msg}
}

// BadRequest is a 400 invalid_request answering msg.
func BadRequest(msg string) *Error { return NewError(400, CodeInvalidRequest, msg) }

// Errors with a fixed body.
var (
	ErrRouteNotFound      = NewError(404, CodeNotFound, "no such route")
	ErrMethodNotAllowed   = NewError(405, CodeMethodNotAllowed, "method not allowed on this route")
	ErrEmptyBody          = NewError(400, CodeInvalidJSON, "request body is empty; send a JSON object")
	ErrNotObject          = NewError(400, CodeInvalidJSON, "request body must be a JSON object")
	ErrAdminUnauthorized  = NewError(401, CodeUnauthorized, "missing or invalid admin token")
	ErrInternal           = NewError(500, CodeInternal, "internal error")
	errBackingUnavailable = NewError(503, CodeUnavailable, "a backing service is unavailable; retry later")
)

// Unavailable marks a failure of a dependency (JetStream, a store) that the client may
// retry; it maps to 503 with Retry-After. What names the dependency in the answer.
type Unavailable struct {
	What string
	Err  error
}

func (e *Unavailable) Error() string { return e.What + " unavailable: " + e.Err.Error() }
func (e *Unavailable) Unwrap() error { return e.Err }

// StoreError wraps err from a store call: failures that a retry may cure become
// *Unavailable naming what, everything else passes through unchanged.
func StoreError(what string, err error) error {
	if Transient(err) {
		return &Unavailable{What: what, Err: err}
	}
	return err
}

// Transient reports whether err is a timeout, a lost connection or a missing
// JetStream asset: the kind of failure that a later retry may not see.
func Transient(err error) bool {
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

// Response maps the errors every API shares to what the client gets: an *Error as it
// is, an *Unavailable or a transient failure as 503, anything else as a logged 500
// whose detail stays in the log. Servers map their own domain errors first.
func Response(err error, log *slog.Logger, route string) *Error {
	var ae *Error
	var ue *Unavailable
	switch {
	case errors.As(err, &ae):
		return ae
	case errors.As(err, &ue):
		return NewError(503, CodeUnavailable, ue.What+" is unavailable; retry later")
	case Transient(err):
		log.Warn("dependency unavailable", "route", route, "error", err)
		return errBackingUnavailable
	}
	log.Error("internal error", "route", route, "error", err)
	return ErrInternal
}

// ErrorForRequest answers a request fasthttp could not read: tooLarge for a body over
// the limit, 408 for a read timeout, 400 otherwise.
func ErrorForRequest(err error, tooLarge *Error) *Error {
	var ne net.Error
	switch {
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		return tooLarge
	case errors.As(err, &ne) && ne.Timeout():
		return NewError(fasthttp.StatusRequestTimeout, CodeTimeout, "timed out reading the request")
	}
	return BadRequest("malformed HTTP request")
}
