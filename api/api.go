// Package api holds the conventions every edgehook JSON API follows, so the gateway
// and the admin API answer alike: the error shape {"error":{"code","message"}} and the
// status codes behind it, strict JSON request bodies, bearer tokens, route tables and
// the request counter they share.
package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/valyala/fasthttp"
)

// Bearer returns the token of an "Authorization: Bearer <token>" header, or nil.
func Bearer(ctx *fasthttp.RequestCtx) []byte {
	h := ctx.Request.Header.Peek(fasthttp.HeaderAuthorization)
	const prefix = "bearer "
	if len(h) <= len(prefix) || !bytes.EqualFold(h[:len(prefix)], []byte(prefix)) {
		return nil
	}
	return bytes.TrimSpace(h[len(prefix):])
}

// DecodeJSON decodes body, a single JSON object, into v, rejecting unknown fields with
// a message that names them.
func DecodeJSON(body []byte, v any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return ErrEmptyBody
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &te) && te.Field != "":
			return BadRequest(fmt.Sprintf("field %q must be a %s", te.Field, te.Type.Kind()))
		case errors.As(err, &te):
			return ErrNotObject
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			return BadRequest("unknown field " + strings.TrimPrefix(err.Error(), "json: unknown field "))
		}
		return NewError(fasthttp.StatusBadRequest, CodeInvalidJSON, "request body is not valid JSON: "+strings.TrimPrefix(err.Error(), "json: "))
	}
	if _, err := dec.Token(); err != io.EOF {
		return NewError(fasthttp.StatusBadRequest, CodeInvalidJSON, "request body must hold exactly one JSON object")
	}
	return nil
}

// WriteJSON answers with status and v encoded as JSON.
func WriteJSON(ctx *fasthttp.RequestCtx, statusCode int, v any) {
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

// WriteError answers with ae's status and the JSON error body, with Retry-After on a
// 503 and WWW-Authenticate on a 401.
func WriteError(ctx *fasthttp.RequestCtx, ae *Error) {
	if ae.Status == fasthttp.StatusServiceUnavailable {
		ctx.Response.Header.Set("Retry-After", "1")
	}
	if ae.Status == fasthttp.StatusUnauthorized {
		ctx.Response.Header.Set("WWW-Authenticate", "Bearer")
	}
	WriteJSON(ctx, ae.Status, struct {
		Error *Error `json:"error"`
	}{ae})
}

// WriteStatus answers 200 with {"status":s}, the body of /healthz and /readyz.
func WriteStatus(ctx *fasthttp.RequestCtx, s string) {
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.SetContentType("application/json")
	ctx.SetBodyString(`{"status":"` + s + `"}`)
}
