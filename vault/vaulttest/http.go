package vaulttest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// maxBody bounds a request body, as Vault's max_request_size does (32 MiB there).
const maxBody = 1 << 20

// request is one API call after authentication.
type request struct {
	op    string // the capability it needs: read, list, create, update, delete, patch
	path  string // logical path, without /v1/
	body  map[string]any
	query url.Values
	tok   *token // nil on unauthenticated paths
}

// response is what a handler answers; a nil body with 204 writes no body.
type response struct {
	status int
	body   any
}

// route is how one path is served.
type route struct {
	handler func(*request) response
	// unauth marks paths served without a token (logins, sys/health).
	unauth bool
	// exists, when set, turns an update (POST/PUT) into a create when the target does
	// not exist yet, as Vault's existence checks do.
	exists func() bool
	// sudo marks root-protected paths that also need the sudo capability.
	sudo bool
}

// ServeHTTP serves Vault's HTTP API under /v1/.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path, ok := strings.CutPrefix(r.URL.Path, "/v1/")
	if !ok {
		writeResponse(w, notFound())
		return
	}
	op, ok := operation(r)
	if !ok {
		writeResponse(w, errorResponse(http.StatusMethodNotAllowed, "unsupported operation"))
		return
	}
	body, err := readBody(r)
	if err != nil {
		writeResponse(w, errorResponse(http.StatusBadRequest, "error parsing JSON"))
		return
	}
	tokenID := r.Header.Get("X-Vault-Token")
	if tokenID == "" {
		tokenID, _ = strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	}
	writeResponse(w, s.handle(op, path, body, r.URL.Query(), tokenID))
}

// handle authenticates, authorizes and serves one request under the server lock.
func (s *Server) handle(op, path string, body map[string]any, query url.Values, tokenID string) response {
	s.mu.Lock()
	defer s.mu.Unlock()
	if path == "sys/health" && op == capRead {
		return s.health()
	}
	if s.sealed {
		return errorResponse(http.StatusServiceUnavailable, "Vault is sealed")
	}
	if op == capList && !strings.HasSuffix(path, "/") {
		path += "/" // Vault lists (and checks policies on) the directory form
	}
	rt := s.route(op, path)
	req := &request{op: op, path: path, body: body, query: query}
	revokeAfter := false
	if rt == nil || !rt.unauth {
		tok := s.validToken(tokenID)
		if tok == nil {
			return permissionDenied()
		}
		if op == capUpdate && rt != nil && rt.exists != nil && !rt.exists() {
			req.op = capCreate
		}
		if !s.aclFor(tok).allowed(path, req.op, rt != nil && rt.sudo) {
			return permissionDenied()
		}
		revokeAfter = s.useToken(tok)
		req.tok = tok
	}
	if rt == nil {
		return errorResponse(http.StatusNotFound, fmt.Sprintf("no handler for route %q. route entry not found.", path))
	}
	resp := rt.handler(req)
	if revokeAfter {
		s.revokeToken(req.tok)
	}
	return resp
}

// route finds the handler for path, or nil when none exists.
func (s *Server) route(op, path string) *route {
	switch {
	case path == "sys" || strings.HasPrefix(path, "sys/"):
		return s.routeSys(op, strings.TrimPrefix(strings.TrimPrefix(path, "sys"), "/"))
	case strings.HasPrefix(path, "auth/"):
		return s.routeAuth(op, strings.TrimPrefix(path, "auth/"))
	}
	return s.routeKV(op, path)
}

// operation maps an HTTP request to the capability it needs, as Vault does.
func operation(r *http.Request) (string, bool) {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		if l := r.URL.Query().Get("list"); l == "true" || l == "1" {
			return capList, true
		}
		return capRead, true
	case "LIST":
		return capList, true
	case http.MethodPost, http.MethodPut:
		return capUpdate, true
	case http.MethodDelete:
		return capDelete, true
	case http.MethodPatch:
		return capPatch, true
	}
	return "", false
}

// readBody decodes a JSON object body (numbers kept as json.Number); an empty body is
// an empty object.
func readBody(r *http.Request) (map[string]any, error) {
	b, err := io.ReadAll(io.LimitReader(r.Body, maxBody))
	if err != nil {
		return nil, err
	}
	body := map[string]any{}
	if len(bytes.TrimSpace(b)) == 0 {
		return body, nil
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&body); err != nil {
		return nil, err
	}
	if body == nil {
		body = map[string]any{}
	}
	return body, nil
}

func writeResponse(w http.ResponseWriter, resp response) {
	w.Header().Set("Cache-Control", "no-store")
	if resp.body == nil {
		w.WriteHeader(resp.status)
		return
	}
	b, err := json.Marshal(resp.body)
	if err != nil {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusInternalServerError)
		fmt.Fprintf(w, `{"errors":[%q]}`, err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(resp.status)
	w.Write(append(b, '\n'))
}

// envelope is Vault's response wrapper around data or auth.
func envelope(data any, auth any, mountType string) map[string]any {
	return map[string]any{
		"request_id":     randomUUID(),
		"lease_id":       "",
		"renewable":      false,
		"lease_duration": 0,
		"data":           data,
		"wrap_info":      nil,
		"warnings":       nil,
		"auth":           auth,
		"mount_type":     mountType,
	}
}

func dataResponse(data any, mountType string) response {
	return response{status: http.StatusOK, body: envelope(data, nil, mountType)}
}

func noContent() response { return response{status: http.StatusNoContent} }

func errorResponse(status int, msgs ...string) response {
	if msgs == nil {
		msgs = []string{}
	}
	return response{status: status, body: map[string]any{"errors": msgs}}
}

// notFound is Vault's answer for a missing secret: 404 {"errors":[]}.
func notFound() response { return errorResponse(http.StatusNotFound) }

// permissionDenied is Vault's answer for a missing, invalid, expired or revoked token
// and for a request its policies do not allow.
func permissionDenied() response { return errorResponse(http.StatusForbidden, "permission denied") }

func badRequest(format string, args ...any) response {
	return errorResponse(http.StatusBadRequest, fmt.Sprintf(format, args...))
}

func unsupported() response {
	return errorResponse(http.StatusMethodNotAllowed, "unsupported operation")
}

// Parameter decoding, accepting the forms Vault accepts.

func paramString(body map[string]any, key string) (string, error) {
	v, ok := body[key]
	if !ok || v == nil {
		return "", nil
	}
	switch v := v.(type) {
	case string:
		return v, nil
	case json.Number:
		return v.String(), nil
	}
	return "", fmt.Errorf("%s: expected a string", key)
}

// paramStrings accepts a JSON array of strings or a comma-separated string.
func paramStrings(body map[string]any, key string) ([]string, bool, error) {
	v, ok := body[key]
	if !ok || v == nil {
		return nil, false, nil
	}
	var out []string
	switch v := v.(type) {
	case string:
		for p := range strings.SplitSeq(v, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
	case []any:
		for _, e := range v {
			s, ok := e.(string)
			if !ok {
				return nil, true, fmt.Errorf("%s: expected a list of strings", key)
			}
			if s = strings.TrimSpace(s); s != "" {
				out = append(out, s)
			}
		}
	default:
		return nil, true, fmt.Errorf("%s: expected a list of strings", key)
	}
	return out, true, nil
}

// paramDuration accepts seconds as a number or numeric string, or a Go-style duration
// string with an optional "d" (days) unit.
func paramDuration(body map[string]any, key string) (time.Duration, bool, error) {
	v, ok := body[key]
	if !ok || v == nil {
		return 0, false, nil
	}
	var s string
	switch v := v.(type) {
	case json.Number:
		s = v.String()
	case string:
		s = strings.TrimSpace(v)
	default:
		return 0, true, fmt.Errorf("%s: expected a duration", key)
	}
	if s == "" {
		return 0, true, nil
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.Duration(n) * time.Second, true, nil
	}
	if days, ok := strings.CutSuffix(s, "d"); ok {
		if n, err := strconv.ParseInt(days, 10, 64); err == nil {
			return time.Duration(n) * 24 * time.Hour, true, nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, true, fmt.Errorf("%s: invalid duration %q", key, s)
	}
	return d, true, nil
}

func paramInt(body map[string]any, key string) (int, bool, error) {
	v, ok := body[key]
	if !ok || v == nil {
		return 0, false, nil
	}
	var s string
	switch v := v.(type) {
	case json.Number:
		s = v.String()
	case string:
		s = v
	default:
		return 0, true, fmt.Errorf("%s: expected an integer", key)
	}
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil {
		return 0, true, fmt.Errorf("%s: expected an integer", key)
	}
	return n, true, nil
}

func paramBool(body map[string]any, key string) (bool, bool, error) {
	v, ok := body[key]
	if !ok || v == nil {
		return false, false, nil
	}
	switch v := v.(type) {
	case bool:
		return v, true, nil
	case string:
		b, err := strconv.ParseBool(v)
		if err != nil {
			return false, true, fmt.Errorf("%s: expected a boolean", key)
		}
		return b, true, nil
	}
	return false, true, fmt.Errorf("%s: expected a boolean", key)
}

// seconds renders a duration as Vault's integer seconds.
func seconds(d time.Duration) int64 { return int64(d / time.Second) }

// timeString renders a time as Vault does (RFC 3339 with nanoseconds, UTC); the zero
// time is "".
func timeString(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}
