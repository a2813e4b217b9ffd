package console

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"net/url"
	"slices"
	"time"

	"github.com/valyala/fasthttp"
)

// ratesWindow is the span of the delivery-rate charts.
const ratesWindow = time.Hour

// Operator is the operator console. Create it with NewOperator and mount Handler under
// its prefix (default /console/).
type Operator struct {
	*base
	src      OperatorSource
	tokenSum [sha256.Size]byte
}

// NewOperator validates cfg and returns the operator console reading from src, signed
// in with adminToken (the admin API's token).
func NewOperator(cfg Config, adminToken Secret, src OperatorSource) (*Operator, error) {
	if src == nil {
		return nil, errors.New("console: NewOperator needs an OperatorSource")
	}
	if len(adminToken) < 16 {
		return nil, errors.New("console: the admin token must be at least 16 characters")
	}
	cfg, err := cfg.withDefaults("/console/")
	if err != nil {
		return nil, err
	}
	b, err := newBase(cfg, "console", []string{"signin", "tenants", "created", "dlq", "mesh", "rates"})
	if err != nil {
		return nil, err
	}
	return &Operator{base: b, src: src, tokenSum: sha256.Sum256([]byte(adminToken.Reveal()))}, nil
}

// Prefix returns the path the console answers under.
func (o *Operator) Prefix() string { return o.cfg.Prefix }

// Handler returns the console's request handler; it answers 404 outside its prefix.
func (o *Operator) Handler() fasthttp.RequestHandler { return o.serve }

func (o *Operator) tokenOK(t Secret) bool {
	sum := sha256.Sum256([]byte(t.Reveal()))
	return subtle.ConstantTimeCompare(sum[:], o.tokenSum[:]) == 1
}

func (o *Operator) serve(ctx *fasthttp.RequestCtx) {
	setHeaders(ctx)
	seg, ok := o.route(ctx)
	if !ok {
		o.errorPage(ctx, fasthttp.StatusNotFound, false, "", "Not found.")
		return
	}
	switch {
	case len(seg) == 1 && seg[0] == "console.css":
		o.serveCSS(ctx)
		return
	case len(seg) == 1 && seg[0] == "signin":
		o.signIn(ctx)
		return
	case len(seg) == 1 && seg[0] == "signout":
		o.signOut(ctx)
		return
	}
	s := o.currentSession(ctx)
	if s == nil {
		return
	}
	if !o.tokenOK(s.cred) { // the session outlived a token change
		o.sessions.remove(s)
		o.setCookie(ctx, o.cookieName, "", 0)
		o.errorPage(ctx, fasthttp.StatusUnauthorized, false, "", "The admin token changed. Sign in again.")
		return
	}
	switch {
	case len(seg) == 0:
		o.redirect(ctx, "tenants", nil)
	case len(seg) == 1 && seg[0] == "tenants":
		if ctx.IsPost() {
			o.createTenant(ctx, s)
		} else {
			o.tenants(ctx, s)
		}
	case len(seg) == 3 && seg[0] == "tenants" && seg[2] == "status":
		o.setStatus(ctx, s, seg[1])
	case len(seg) == 1 && seg[0] == "dlq":
		o.deadLetters(ctx, s)
	case len(seg) == 2 && seg[0] == "dlq" && seg[1] == "replay":
		o.replay(ctx, s)
	case len(seg) == 1 && seg[0] == "mesh":
		o.mesh(ctx, s)
	case len(seg) == 1 && seg[0] == "rates":
		o.rates(ctx, s)
	default:
		o.errorPage(ctx, fasthttp.StatusNotFound, true, s.csrf, "Not found.")
	}
}

func (o *Operator) signIn(ctx *fasthttp.RequestCtx) {
	if !ctx.IsPost() {
		if !o.checkGet(ctx, "") {
			return
		}
		o.signInForm(ctx, fasthttp.StatusOK, "")
		return
	}
	tok, ok := o.acceptSignIn(ctx, "token")
	if !ok {
		return
	}
	if !o.tokenOK(tok) {
		o.signInForm(ctx, fasthttp.StatusUnauthorized, "That token was not accepted.")
		return
	}
	o.startSession(ctx, tok, "tenants")
}

func (o *Operator) view(s *session, title string, data any) view {
	return view{Title: title, SignedIn: true, Who: "operator", CSRF: s.csrf, Data: data}
}

// tenantsView is the tenants page.
type tenantsView struct {
	Query     string
	Tenants   []Tenant
	NewestURL string
	OlderURL  string
	Paged     bool
}

func (o *Operator) tenants(ctx *fasthttp.RequestCtx, s *session) {
	if !o.checkGet(ctx, s.csrf) {
		return
	}
	q, ok1 := field(ctx.QueryArgs().Peek("q"))
	cursor, ok2 := field(ctx.QueryArgs().Peek("cursor"))
	if !ok1 || !ok2 {
		o.errorPage(ctx, fasthttp.StatusBadRequest, true, s.csrf, "The search is too long.")
		return
	}
	c, cancel := context.WithTimeout(context.Background(), sourceTimeout)
	defer cancel()
	page, err := o.src.ListTenants(c, TenantFilter{Query: q, Cursor: cursor, Limit: o.cfg.PageSize})
	if err != nil {
		o.sourceError(ctx, s.csrf, "list tenants", err)
		return
	}
	v := tenantsView{Query: q, Tenants: page.Tenants, Paged: cursor != "", NewestURL: "tenants" + pageQuery("q", q)}
	if page.Next != "" {
		v.OlderURL = "tenants" + pageQuery("q", q, "cursor", page.Next)
	}
	o.render(ctx, fasthttp.StatusOK, "tenants", o.view(s, "Tenants", v))
}

func (o *Operator) createTenant(ctx *fasthttp.RequestCtx, s *session) {
	if !o.checkPost(ctx, s) {
		return
	}
	target, ok1 := field(ctx.PostArgs().Peek("targetUrl"))
	plan, ok2 := field(ctx.PostArgs().Peek("plan"))
	if !ok1 || !ok2 || target == "" {
		o.errorPage(ctx, fasthttp.StatusBadRequest, true, s.csrf, "Give a target URL (at most 2048 characters).")
		return
	}
	c, cancel := context.WithTimeout(context.Background(), sourceTimeout)
	defer cancel()
	ct, err := o.src.CreateTenant(c, NewTenant{TargetURL: target, Plan: plan})
	if err != nil {
		o.sourceError(ctx, s.csrf, "create tenant", err)
		return
	}
	o.log.Info("tenant created from the console", "tenant", ct.Tenant.ID)
	o.render(ctx, fasthttp.StatusCreated, "created", o.view(s, "Tenant created", ct))
}

func (o *Operator) setStatus(ctx *fasthttp.RequestCtx, s *session, id string) {
	if !o.checkPost(ctx, s) {
		return
	}
	st := TenantStatus(ctx.PostArgs().Peek("status"))
	if st != TenantActive && st != TenantSuspended {
		o.errorPage(ctx, fasthttp.StatusBadRequest, true, s.csrf, "The status must be active or suspended.")
		return
	}
	c, cancel := context.WithTimeout(context.Background(), sourceTimeout)
	defer cancel()
	if err := o.src.SetStatus(c, id, st); err != nil {
		o.sourceError(ctx, s.csrf, "set status", err)
		return
	}
	o.log.Info("tenant status set from the console", "tenant", id, "status", string(st))
	o.redirect(ctx, "tenants", url.Values{"q": {id}, "done": {"status"}})
}

// dlqView is the dead letters page.
type dlqView struct {
	Filter      DeadLetterFilter
	DeadLetters []DeadLetter
	NewestURL   string
	OlderURL    string
	Paged       bool
	Result      *ReplayResult
}

func (o *Operator) deadLetters(ctx *fasthttp.RequestCtx, s *session) {
	if !o.checkGet(ctx, s.csrf) {
		return
	}
	o.renderDeadLetters(ctx, s, nil)
}

func (o *Operator) renderDeadLetters(ctx *fasthttp.RequestCtx, s *session, res *ReplayResult) {
	q := ctx.QueryArgs()
	tenant, ok1 := field(q.Peek("tenant"))
	reason, ok2 := field(q.Peek("reason"))
	cursor, ok3 := field(q.Peek("cursor"))
	if !ok1 || !ok2 || !ok3 {
		o.errorPage(ctx, fasthttp.StatusBadRequest, true, s.csrf, "A filter is too long.")
		return
	}
	f := DeadLetterFilter{TenantID: tenant, Reason: reason, Cursor: cursor, Limit: o.cfg.PageSize}
	c, cancel := context.WithTimeout(context.Background(), sourceTimeout)
	defer cancel()
	page, err := o.src.DeadLetters(c, f)
	if err != nil {
		o.sourceError(ctx, s.csrf, "dead letters", err)
		return
	}
	v := dlqView{Filter: f, DeadLetters: page.DeadLetters, Paged: cursor != "", Result: res,
		NewestURL: "dlq" + pageQuery("tenant", tenant, "reason", reason)}
	if page.Next != "" {
		v.OlderURL = "dlq" + pageQuery("tenant", tenant, "reason", reason, "cursor", page.Next)
	}
	o.render(ctx, fasthttp.StatusOK, "dlq", o.view(s, "Dead letters", v))
}

func (o *Operator) replay(ctx *fasthttp.RequestCtx, s *session) {
	if !o.checkPost(ctx, s) {
		return
	}
	var ids []string
	for _, v := range ctx.PostArgs().PeekMulti("id") {
		id, ok := field(v)
		if !ok || id == "" {
			o.errorPage(ctx, fasthttp.StatusBadRequest, true, s.csrf, "A dead-letter id is not valid.")
			return
		}
		if !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 || len(ids) > MaxPageSize {
		o.errorPage(ctx, fasthttp.StatusBadRequest, true, s.csrf, "Select between 1 and 200 dead letters to replay.")
		return
	}
	c, cancel := context.WithTimeout(context.Background(), sourceTimeout)
	defer cancel()
	res, err := o.src.ReplayDeadLetters(c, ids)
	if err != nil {
		o.sourceError(ctx, s.csrf, "replay dead letters", err)
		return
	}
	o.log.Info("dead letters replayed from the console", "replayed", len(res.Replayed), "failed", len(res.Failed))
	o.renderDeadLetters(ctx, s, &res)
}

// meshView is the mesh page.
type meshView struct{ Mesh Mesh }

func (o *Operator) mesh(ctx *fasthttp.RequestCtx, s *session) {
	if !o.checkGet(ctx, s.csrf) {
		return
	}
	c, cancel := context.WithTimeout(context.Background(), sourceTimeout)
	defer cancel()
	m, err := o.src.Mesh(c)
	if err != nil {
		o.sourceError(ctx, s.csrf, "mesh", err)
		return
	}
	o.render(ctx, fasthttp.StatusOK, "mesh", o.view(s, "Mesh", meshView{Mesh: m}))
}

// ratesView is the delivery-rates page.
type ratesView struct {
	Rates  Rates
	Charts []chart
}

func (o *Operator) rates(ctx *fasthttp.RequestCtx, s *session) {
	if !o.checkGet(ctx, s.csrf) {
		return
	}
	c, cancel := context.WithTimeout(context.Background(), sourceTimeout)
	defer cancel()
	r, err := o.src.Rates(c, ratesWindow)
	if err != nil {
		o.sourceError(ctx, s.csrf, "rates", err)
		return
	}
	v := ratesView{Rates: r, Charts: rateCharts(r)}
	o.render(ctx, fasthttp.StatusOK, "rates", o.view(s, "Delivery rates", v))
}
