package receiver

import (
	"encoding/json"
	"fmt"

	"github.com/valyala/fasthttp"
)

// apiError is one JSON error answer: {"error":{"code","message"}} with its status.
// Bodies are encoded once, so answering an error allocates nothing.
type apiError struct {
	status int
	code   string
	body   string
}

func newAPIError(status int, code, message string) apiError {
	var v struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	v.Error.Code, v.Error.Message = code, message
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // two strings always encode
	}
	return apiError{status: status, code: code, body: string(b)}
}

// retryAfterSeconds is sent with every 503 so the sender retries soon.
const retryAfterSeconds = "2"

// errorBodies are the receiver's error answers. None of them depends on the tenant or
// echoes request data, so they cannot reveal a secret or whether a tenant exists.
type errorBodies struct {
	missingHeaders, badID, badTimestamp, staleTimestamp, futureTimestamp, badSignature apiError
	configUnavailable, throttled, publishUnavailable, notReady                         apiError
	notFound, methodNotAllowed, tooLarge, headersTooLarge, timeout, badRequest         apiError
}

func newErrorBodies(maxBody int) errorBodies {
	return errorBodies{
		missingHeaders: newAPIError(fasthttp.StatusUnauthorized, "missing_headers",
			"webhook-id, webhook-timestamp and webhook-signature headers are required"),
		badID: newAPIError(fasthttp.StatusUnauthorized, "invalid_headers",
			fmt.Sprintf("webhook-id must be 1 to %d visible ASCII characters", maxIDLen)),
		badTimestamp: newAPIError(fasthttp.StatusUnauthorized, "invalid_timestamp",
			"webhook-timestamp must be a unix time in seconds"),
		staleTimestamp: newAPIError(fasthttp.StatusUnauthorized, "invalid_timestamp",
			"webhook-timestamp is too old"),
		futureTimestamp: newAPIError(fasthttp.StatusUnauthorized, "invalid_timestamp",
			"webhook-timestamp is too far in the future"),
		badSignature: newAPIError(fasthttp.StatusUnauthorized, "invalid_signature",
			"no signature in webhook-signature matches"),
		configUnavailable: newAPIError(fasthttp.StatusServiceUnavailable, "unavailable",
			"webhook configuration is unavailable; retry later"),
		throttled: newAPIError(fasthttp.StatusServiceUnavailable, "unavailable",
			"the receiver is busy; retry later"),
		publishUnavailable: newAPIError(fasthttp.StatusServiceUnavailable, "unavailable",
			"the webhook could not be stored; retry later"),
		notReady: newAPIError(fasthttp.StatusServiceUnavailable, "not_ready",
			"not connected to NATS, or webhook configuration unreachable"),
		notFound: newAPIError(fasthttp.StatusNotFound, "not_found",
			"no such route"),
		methodNotAllowed: newAPIError(fasthttp.StatusMethodNotAllowed, "method_not_allowed",
			"method not allowed on this route"),
		tooLarge: newAPIError(fasthttp.StatusRequestEntityTooLarge, "payload_too_large",
			fmt.Sprintf("request body exceeds %d bytes", maxBody)),
		headersTooLarge: newAPIError(fasthttp.StatusRequestHeaderFieldsTooLarge, "headers_too_large",
			"request headers are too large"),
		timeout: newAPIError(fasthttp.StatusRequestTimeout, "request_timeout",
			"the request was not received in time"),
		badRequest: newAPIError(fasthttp.StatusBadRequest, "bad_request",
			"malformed HTTP request"),
	}
}

// writeError answers ctx with e.
func writeError(ctx *fasthttp.RequestCtx, e apiError) {
	ctx.Response.Header.SetContentType(contentTypeJSON)
	if e.status == fasthttp.StatusServiceUnavailable {
		ctx.Response.Header.Set("Retry-After", retryAfterSeconds)
	}
	ctx.SetStatusCode(e.status)
	ctx.SetBodyString(e.body)
}

const contentTypeJSON = "application/json"
