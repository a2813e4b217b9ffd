package api

import (
	"bytes"
	"log/slog"
	"runtime/debug"
	"strings"

	"github.com/valyala/fasthttp"
)

// HandlerFunc serves one method of a route; id is the route's path parameter, if any.
// A returned error is answered by the server's error writer.
type HandlerFunc func(ctx *fasthttp.RequestCtx, id string) error

// Method pairs an HTTP method with its handler.
type Method struct {
	Method  string
	Handler HandlerFunc
}

// Route is one path pattern and the methods it answers. The pattern doubles as the
// "route" metric label.
type Route struct {
	Pattern string
	methods []Method
	allow   string // value of the Allow header on 405
}

// NewRoute returns the route of pattern answering ms.
func NewRoute(pattern string, ms ...Method) *Route {
	names := make([]string, len(ms))
	for i, m := range ms {
		names[i] = m.Method
	}
	return &Route{Pattern: pattern, methods: ms, allow: strings.Join(names, ", ")}
}

// Handler returns the handler of method, or nil (also for a nil route).
func (r *Route) Handler(method []byte) HandlerFunc {
	if r == nil {
		return nil
	}
	for _, m := range r.methods {
		if string(method) == m.Method {
			return m.Handler
		}
	}
	return nil
}

// Router matches request paths to routes. A pattern is a fixed path or holds up to two
// parameter segments, as in /v1/events/{id}/attempts or /v1/tenants/{id}/keys/{keyId};
// paths with more segments than a pattern, a trailing slash or an empty parameter match
// nothing.
type Router struct {
	exact map[string]*Route
	// below holds, per prefix before a parameter, the router of what follows it.
	below map[string]*Router
	// prefixes lists below's keys, in the order of the routes.
	prefixes []string
}

// NewRouter returns the router of rs.
func NewRouter(rs ...*Route) *Router {
	r := newRouter()
	for _, rt := range rs {
		r.add(rt.Pattern, rt)
	}
	return r
}

func newRouter() *Router { return &Router{exact: map[string]*Route{}, below: map[string]*Router{}} }

// add registers rt under pattern, the part of its pattern this router sees.
func (r *Router) add(pattern string, rt *Route) {
	open := strings.Index(pattern, "/{")
	if open < 0 {
		r.exact[pattern] = rt
		return
	}
	prefix, rest := pattern[:open], pattern[open+2:]
	if end := strings.IndexByte(rest, '}'); end >= 0 {
		rest = rest[end+1:]
	}
	sub := r.below[prefix]
	if sub == nil {
		sub = newRouter()
		r.below[prefix] = sub
		r.prefixes = append(r.prefixes, prefix)
	}
	sub.add(rest, rt)
}

// Match returns the route of path and its parameters (id the first, id2 the second),
// or nil.
func (r *Router) Match(path []byte) (rt *Route, id, id2 string) {
	rt, ids := r.match(path, 0)
	return rt, ids[0], ids[1]
}

func (r *Router) match(path []byte, depth int) (*Route, [2]string) {
	if rt, ok := r.exact[string(path)]; ok {
		return rt, [2]string{}
	}
	if depth >= 2 {
		return nil, [2]string{}
	}
	for _, prefix := range r.prefixes {
		if id, rest, ok := PathID(path, prefix); ok {
			rt, ids := r.below[prefix].match(rest, depth+1)
			if rt == nil {
				return nil, [2]string{}
			}
			copy(ids[1:], ids[:1])
			ids[0] = id
			return rt, ids
		}
	}
	return nil, [2]string{}
}

// RouteUnmatched labels requests that matched no route, so raw paths never become
// label values.
const RouteUnmatched = "unmatched"

// Label is r's metric label: its pattern, or RouteUnmatched for nil.
func (r *Route) Label() string {
	if r == nil {
		return RouteUnmatched
	}
	return r.Pattern
}

// Serve runs r's handler for the request's method with path parameter id: no route is
// 404, a method r does not answer 405 with Allow, a returned error goes to writeError,
// and a panic is logged with its stack and answered 500.
func Serve(ctx *fasthttp.RequestCtx, r *Route, id string, log *slog.Logger, writeError func(*fasthttp.RequestCtx, error, string)) {
	label := r.Label()
	defer func() {
		if p := recover(); p != nil {
			log.Error("handler panic", "route", label, "panic", p, "stack", string(debug.Stack()))
			ctx.Response.Reset()
			writeError(ctx, ErrInternal, label)
		}
	}()
	switch h := r.Handler(ctx.Method()); {
	case r == nil:
		writeError(ctx, ErrRouteNotFound, label)
	case h == nil:
		ctx.Response.Header.Set("Allow", r.allow)
		writeError(ctx, ErrMethodNotAllowed, label)
	default:
		if err := h(ctx, id); err != nil {
			writeError(ctx, err, label)
		}
	}
}

// PathID splits a path below prefix+"/" into its {id} segment and what follows it: rest
// is empty for prefix/{id} and starts with "/" otherwise. ok is false when path is not
// below prefix or the id segment is empty.
func PathID(path []byte, prefix string) (id string, rest []byte, ok bool) {
	below, found := bytes.CutPrefix(path, []byte(prefix+"/"))
	if !found {
		return "", nil, false
	}
	seg := below
	if i := bytes.IndexByte(below, '/'); i >= 0 {
		seg, rest = below[:i], below[i:]
	}
	if len(seg) == 0 {
		return "", nil, false
	}
	return string(seg), rest, true
}
