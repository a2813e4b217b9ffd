package gateway

import (
	"bytes"
	"runtime/debug"
	"strings"

	"github.com/valyala/fasthttp"
)

// Route patterns; they double as the "route" metric label.
const (
	patHealthz      = "/healthz"
	patReadyz       = "/readyz"
	patMetrics      = "/metrics"
	patEvents       = "/v1/events"
	patEventsBatch  = "/v1/events/batch"
	patEvent        = "/v1/events/{id}"
	patAttempts     = "/v1/events/{id}/attempts"
	patReplay       = "/v1/events/{id}/replay"
	patTenant       = "/v1/tenant"
	patTenants      = "/v1/tenants"
	patTenantByID   = "/v1/tenants/{id}"
	patRotateSecret = "/v1/tenants/{id}/rotate-secret"
)

// handlerFunc serves one method of a route; id is the {id} path parameter, if any.
// A returned error is answered by writeError.
type handlerFunc func(ctx *fasthttp.RequestCtx, id string) error

type methodHandler struct {
	method string
	h      handlerFunc
}

// route is one path pattern and the methods it answers.
type route struct {
	pattern  string
	handlers []methodHandler
	allow    string // value of the Allow header on 405
}

func newRoute(pattern string, hs ...methodHandler) *route {
	methods := make([]string, len(hs))
	for i, h := range hs {
		methods[i] = h.method
	}
	return &route{pattern: pattern, handlers: hs, allow: strings.Join(methods, ", ")}
}

func (r *route) handler(method []byte) handlerFunc {
	for _, h := range r.handlers {
		if string(method) == h.method {
			return h.h
		}
	}
	return nil
}

// buildRoutes returns the route table; the admin routes exist only when an admin
// token is configured, so without one they are unknown routes (404).
func (s *Server) buildRoutes() map[string]*route {
	rs := []*route{
		newRoute(patHealthz, methodHandler{fasthttp.MethodGet, s.healthz}),
		newRoute(patReadyz, methodHandler{fasthttp.MethodGet, s.readyz}),
		newRoute(patMetrics, methodHandler{fasthttp.MethodGet, s.metricsHandler}),
		newRoute(patEvents, methodHandler{fasthttp.MethodPost, s.ingest}),
		newRoute(patEventsBatch, methodHandler{fasthttp.MethodPost, s.ingestBatch}),
		newRoute(patEvent, methodHandler{fasthttp.MethodGet, s.getEvent}),
		newRoute(patAttempts, methodHandler{fasthttp.MethodGet, s.getAttempts}),
		newRoute(patReplay, methodHandler{fasthttp.MethodPost, s.replayEvent}),
		newRoute(patTenant, methodHandler{fasthttp.MethodGet, s.getOwnTenant}, methodHandler{fasthttp.MethodPatch, s.patchOwnTenant}),
	}
	if s.cfg.AdminToken != "" {
		rs = append(rs,
			newRoute(patTenants, methodHandler{fasthttp.MethodPost, s.admin(s.createTenant)}),
			newRoute(patTenantByID, methodHandler{fasthttp.MethodGet, s.admin(s.getTenant)}, methodHandler{fasthttp.MethodPatch, s.admin(s.patchTenant)}),
			newRoute(patRotateSecret, methodHandler{fasthttp.MethodPost, s.admin(s.rotateSecret)}),
		)
	}
	m := make(map[string]*route, len(rs))
	for _, r := range rs {
		m[r.pattern] = r
	}
	return m
}

// match finds the route for path and its {id} parameter; nil when no route matches.
// Paths with more segments than a pattern (e.g. /v1/events/{id}/x/y) do not match.
func (s *Server) match(path []byte) (*route, string) {
	switch string(path) {
	case patHealthz, patReadyz, patMetrics, patEvents, patEventsBatch, patTenant, patTenants:
		return s.routes[string(path)], ""
	}
	if rest, ok := bytes.CutPrefix(path, []byte(patEvents+"/")); ok {
		id, sub, hasSub := bytes.Cut(rest, []byte("/"))
		if !validSegment(id) {
			return nil, ""
		}
		switch {
		case !hasSub:
			return s.routes[patEvent], string(id)
		case string(sub) == "attempts":
			return s.routes[patAttempts], string(id)
		case string(sub) == "replay":
			return s.routes[patReplay], string(id)
		}
		return nil, ""
	}
	if rest, ok := bytes.CutPrefix(path, []byte(patTenants+"/")); ok {
		id, sub, _ := bytes.Cut(rest, []byte("/"))
		if !validSegment(id) {
			return nil, ""
		}
		switch string(sub) {
		case "":
			if !bytes.HasSuffix(rest, []byte("/")) {
				return s.routes[patTenantByID], string(id)
			}
		case "rotate-secret":
			return s.routes[patRotateSecret], string(id)
		}
	}
	return nil, ""
}

func validSegment(b []byte) bool { return len(b) > 0 && bytes.IndexByte(b, '/') < 0 }

// serveHTTP routes one request, answers errors in the one JSON shape and counts it.
func (s *Server) serveHTTP(ctx *fasthttp.RequestCtx) {
	r, id := s.match(ctx.Path())
	label := routeUnmatched
	if r != nil {
		label = r.pattern
	}
	defer func() {
		if p := recover(); p != nil {
			s.log.Error("handler panic", "route", label, "panic", p, "stack", string(debug.Stack()))
			ctx.Response.Reset()
			s.writeError(ctx, newAPIError(fasthttp.StatusInternalServerError, CodeInternal, "internal error"), label)
		}
		s.metrics.observeRequest(label, ctx.Response.StatusCode())
	}()
	switch h := r.handlerOrNil(ctx.Method()); {
	case r == nil:
		s.writeError(ctx, errRouteNotFound, label)
	case h == nil:
		ctx.Response.Header.Set("Allow", r.allow)
		s.writeError(ctx, errMethodNotAllowed, label)
	default:
		if err := h(ctx, id); err != nil {
			s.writeError(ctx, err, label)
		}
	}
}

func (r *route) handlerOrNil(method []byte) handlerFunc {
	if r == nil {
		return nil
	}
	return r.handler(method)
}
