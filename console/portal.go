package console

import (
	"context"
	"errors"
	"net/url"
	"time"

	"github.com/valyala/fasthttp"
)

// sourceTimeout bounds every call to a source made for one request.
const sourceTimeout = 10 * time.Second

// Portal is the tenant portal. Create it with NewPortal and mount Handler under its
// prefix (default /portal/).
type Portal struct {
	*base
	src PortalSource
}

// NewPortal validates cfg and returns the portal reading from src.
func NewPortal(cfg Config, src PortalSource) (*Portal, error) {
	if src == nil {
		return nil, errors.New("console: NewPortal needs a PortalSource")
	}
	cfg, err := cfg.withDefaults("/portal/")
	if err != nil {
		return nil, err
	}
	b, err := newBase(cfg, "portal", []string{"signin", "events", "event", "endpoint", "rotated"})
	if err != nil {
		return nil, err
	}
	return &Portal{base: b, src: src}, nil
}

// Prefix returns the path the portal answers under.
func (p *Portal) Prefix() string { return p.cfg.Prefix }

// Handler returns the portal's request handler; it answers 404 outside its prefix.
func (p *Portal) Handler() fasthttp.RequestHandler { return p.serve }

// signedIn is one request's session with the principal its credential resolves to now.
type signedIn struct {
	s  *session
	pr Principal
}

func (p *Portal) serve(ctx *fasthttp.RequestCtx) {
	setHeaders(ctx)
	seg, ok := p.route(ctx)
	if !ok {
		p.errorPage(ctx, fasthttp.StatusNotFound, false, "", "Not found.")
		return
	}
	switch {
	case len(seg) == 1 && seg[0] == "console.css":
		p.serveCSS(ctx)
		return
	case len(seg) == 1 && seg[0] == "signin":
		p.signIn(ctx)
		return
	case len(seg) == 1 && seg[0] == "signout":
		p.signOut(ctx)
		return
	}
	u := p.principal(ctx)
	if u == nil {
		return
	}
	switch {
	case len(seg) == 0:
		p.redirect(ctx, "events", nil)
	case len(seg) == 1 && seg[0] == "events":
		p.events(ctx, u)
	case len(seg) == 2 && seg[0] == "events":
		p.event(ctx, u, seg[1])
	case len(seg) == 3 && seg[0] == "events" && seg[2] == "replay":
		p.replay(ctx, u, seg[1])
	case len(seg) == 1 && seg[0] == "endpoint":
		p.endpoint(ctx, u)
	case len(seg) == 2 && seg[0] == "endpoint" && seg[1] == "rotate-secret":
		p.rotate(ctx, u)
	default:
		p.errorPage(ctx, fasthttp.StatusNotFound, true, u.s.csrf, "Not found.")
	}
}

func (p *Portal) signIn(ctx *fasthttp.RequestCtx) {
	if !ctx.IsPost() {
		if !p.checkGet(ctx, "") {
			return
		}
		p.signInForm(ctx, fasthttp.StatusOK, "")
		return
	}
	key, ok := p.acceptSignIn(ctx, "key")
	if !ok {
		return
	}
	c, cancel := context.WithTimeout(context.Background(), sourceTimeout)
	defer cancel()
	pr, err := p.src.Authenticate(c, key)
	switch {
	case err == nil && !pr.CanRead():
		p.signInForm(ctx, fasthttp.StatusForbidden, "That key has neither the read nor the manage scope.")
	case err == nil:
		p.startSession(ctx, key, "events")
	case errors.Is(err, ErrUnauthenticated):
		p.signInForm(ctx, fasthttp.StatusUnauthorized, "That key was not accepted.")
	case errors.Is(err, ErrForbidden):
		p.signInForm(ctx, fasthttp.StatusForbidden, "This tenant may not sign in (suspended).")
	default:
		p.log.Error("portal sign-in", "err", err)
		p.signInForm(ctx, fasthttp.StatusServiceUnavailable, "Sign-in is unavailable right now. Try again.")
	}
}

// principal returns the request's session with its credential checked again, so a
// revoked key or suspended tenant loses access at once; or answers and returns nil.
func (p *Portal) principal(ctx *fasthttp.RequestCtx) *signedIn {
	s := p.currentSession(ctx)
	if s == nil {
		return nil
	}
	c, cancel := context.WithTimeout(context.Background(), sourceTimeout)
	defer cancel()
	pr, err := p.src.Authenticate(c, s.cred)
	if err == nil && pr.CanRead() {
		pr.Key = s.cred
		return &signedIn{s: s, pr: pr}
	}
	if err != nil && !errors.Is(err, ErrUnauthenticated) && !errors.Is(err, ErrForbidden) {
		p.sourceError(ctx, s.csrf, "authenticate", err)
		return nil
	}
	p.sessions.remove(s)
	p.setCookie(ctx, p.cookieName, "", 0)
	p.errorPage(ctx, fasthttp.StatusUnauthorized, false, "", "Your key is no longer accepted. Sign in again.")
	return nil
}

func (p *Portal) view(u *signedIn, title string, data any) view {
	return view{Title: title, SignedIn: true, Who: u.pr.TenantID, CSRF: u.s.csrf, Data: data}
}

// eventsView is the events list page.
type eventsView struct {
	Filter    EventFilter
	Statuses  []EventStatus
	Events    []EventSummary
	NewestURL string
	OlderURL  string
	Paged     bool
	Truncated bool
}

func (p *Portal) events(ctx *fasthttp.RequestCtx, u *signedIn) {
	if !p.checkGet(ctx, u.s.csrf) {
		return
	}
	q := ctx.QueryArgs()
	status, ok1 := field(q.Peek("status"))
	typ, ok2 := field(q.Peek("type"))
	cursor, ok3 := field(q.Peek("cursor"))
	if !ok1 || !ok2 || !ok3 {
		p.errorPage(ctx, fasthttp.StatusBadRequest, true, u.s.csrf, "A filter is too long.")
		return
	}
	f := EventFilter{Status: EventStatus(status), Type: typ, Cursor: cursor, Limit: p.cfg.PageSize}
	if f.Status != "" && !validStatus(f.Status) {
		p.errorPage(ctx, fasthttp.StatusBadRequest, true, u.s.csrf, "Unknown status; choose queued, retrying, delivered or failed.")
		return
	}
	c, cancel := context.WithTimeout(context.Background(), sourceTimeout)
	defer cancel()
	page, err := p.src.ListEvents(c, u.pr, f)
	if err != nil {
		p.sourceError(ctx, u.s.csrf, "list events", err)
		return
	}
	v := eventsView{Filter: f, Statuses: EventStatuses, Events: page.Events, Paged: cursor != "", Truncated: page.Truncated}
	v.NewestURL = "events" + pageQuery("status", status, "type", typ)
	if page.Next != "" {
		v.OlderURL = "events" + pageQuery("status", status, "type", typ, "cursor", page.Next)
	}
	p.render(ctx, fasthttp.StatusOK, "events", p.view(u, "Events", v))
}

func validStatus(s EventStatus) bool {
	for _, v := range EventStatuses {
		if s == v {
			return true
		}
	}
	return false
}

// eventView is the event detail page.
type eventView struct {
	Event     Event
	Attempts  []Attempt
	CanReplay bool
}

func (p *Portal) event(ctx *fasthttp.RequestCtx, u *signedIn, id string) {
	if !p.checkGet(ctx, u.s.csrf) {
		return
	}
	c, cancel := context.WithTimeout(context.Background(), sourceTimeout)
	defer cancel()
	ev, err := p.src.Event(c, u.pr, id)
	if err != nil {
		p.sourceError(ctx, u.s.csrf, "event", err)
		return
	}
	at, err := p.src.Attempts(c, u.pr, id)
	if err != nil {
		p.sourceError(ctx, u.s.csrf, "attempts", err)
		return
	}
	v := eventView{Event: ev, Attempts: at, CanReplay: u.pr.CanManage() && ev.Status.Replayable()}
	p.render(ctx, fasthttp.StatusOK, "event", p.view(u, "Event "+ev.ID, v))
}

// requireManage refuses a change to a key without the manage scope.
func (p *Portal) requireManage(ctx *fasthttp.RequestCtx, u *signedIn) bool {
	if u.pr.CanManage() {
		return true
	}
	p.errorPage(ctx, fasthttp.StatusForbidden, true, u.s.csrf, "This key has the read scope only; replaying and rotating need a manage-scoped key.")
	return false
}

func (p *Portal) replay(ctx *fasthttp.RequestCtx, u *signedIn, id string) {
	if !p.checkPost(ctx, u.s) || !p.requireManage(ctx, u) {
		return
	}
	c, cancel := context.WithTimeout(context.Background(), sourceTimeout)
	defer cancel()
	if err := p.src.Replay(c, u.pr, id); err != nil {
		p.sourceError(ctx, u.s.csrf, "replay", err)
		return
	}
	p.redirect(ctx, "events/"+url.PathEscape(id), url.Values{"done": {"replayed"}})
}

// endpointView is the endpoint page.
type endpointView struct {
	Endpoint  Endpoint
	Chart     chart
	CanRotate bool
}

func (p *Portal) endpoint(ctx *fasthttp.RequestCtx, u *signedIn) {
	if !p.checkGet(ctx, u.s.csrf) {
		return
	}
	c, cancel := context.WithTimeout(context.Background(), sourceTimeout)
	defer cancel()
	ep, err := p.src.Endpoint(c, u.pr)
	if err != nil {
		p.sourceError(ctx, u.s.csrf, "endpoint", err)
		return
	}
	v := endpointView{Endpoint: ep, Chart: successChart(ep.Recent), CanRotate: u.pr.CanManage()}
	p.render(ctx, fasthttp.StatusOK, "endpoint", p.view(u, "Endpoint", v))
}

func (p *Portal) rotate(ctx *fasthttp.RequestCtx, u *signedIn) {
	if !p.checkPost(ctx, u.s) || !p.requireManage(ctx, u) {
		return
	}
	c, cancel := context.WithTimeout(context.Background(), sourceTimeout)
	defer cancel()
	r, err := p.src.RotateSecret(c, u.pr)
	if err != nil {
		p.sourceError(ctx, u.s.csrf, "rotate secret", err)
		return
	}
	p.log.Info("webhook secret rotated from the portal", "tenant", u.pr.TenantID)
	p.render(ctx, fasthttp.StatusOK, "rotated", p.view(u, "New signing secret", r))
}
