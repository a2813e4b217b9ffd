// Package console is edgehook's web console: the tenant portal (mounted by the gateway
// under /portal/) and the operator console (mounted by the admin component under
// /console/). Pages are html/template files and one CSS file embedded in the binary;
// charts are inline SVG drawn on the server, so every page reads without JavaScript
// (the pages carry none, and the Content-Security-Policy forbids scripts).
//
// The console reads and changes data only through PortalSource and OperatorSource,
// which the gateway and admin component implement on the code of their JSON APIs.
// Authorization is the console's own: a read-scoped key can read, only a
// manage-scoped key can replay or rotate, whatever source is wired in.
package console

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/valyala/fasthttp"
)

//go:embed templates/*.html static/*
var assets embed.FS

// Defaults and limits of Config.
const (
	DefaultSessionTTL  = 15 * time.Minute
	MaxSessionTTL      = 12 * time.Hour
	DefaultMaxSessions = 10_000
	DefaultPageSize    = 50
	MaxPageSize        = 200
	// maxCredential bounds a key or token typed into a sign-in form.
	maxCredential = 512
	// maxField bounds any other form or query field.
	maxField = 2048
)

// Config is the part of the settings both consoles share.
type Config struct {
	// Prefix is the path the console is mounted under, starting and ending with "/"
	// (default "/portal/" for the portal, "/console/" for the operator console).
	Prefix string
	// SessionTTL is how long a session lasts after sign-in (default 15m, at most 12h).
	SessionTTL time.Duration
	// MaxSessions bounds the server-side session store (default 10,000).
	MaxSessions int
	// SecureCookies marks cookies Secure even on plain-HTTP requests (set it behind a
	// TLS-terminating proxy); cookies are always Secure on TLS requests.
	SecureCookies bool
	// PageSize is how many rows a list page shows (default 50, at most 200).
	PageSize int
	// Logger receives one line per failed request to a source; nil discards.
	Logger *slog.Logger
}

func (c Config) withDefaults(prefix string) (Config, error) {
	if c.Prefix == "" {
		c.Prefix = prefix
	}
	if !strings.HasPrefix(c.Prefix, "/") || !strings.HasSuffix(c.Prefix, "/") {
		return c, fmt.Errorf("console: Prefix %q must start and end with /", c.Prefix)
	}
	if c.SessionTTL == 0 {
		c.SessionTTL = DefaultSessionTTL
	}
	if c.SessionTTL < 0 || c.SessionTTL > MaxSessionTTL {
		return c, fmt.Errorf("console: SessionTTL %s must be between 0 and %s", c.SessionTTL, MaxSessionTTL)
	}
	if c.MaxSessions == 0 {
		c.MaxSessions = DefaultMaxSessions
	}
	if c.MaxSessions < 0 {
		return c, fmt.Errorf("console: MaxSessions %d must be positive", c.MaxSessions)
	}
	if c.PageSize == 0 {
		c.PageSize = DefaultPageSize
	}
	if c.PageSize < 0 || c.PageSize > MaxPageSize {
		return c, fmt.Errorf("console: PageSize %d must be between 1 and %d", c.PageSize, MaxPageSize)
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c, nil
}

// securityHeaders are set on every response. The policy allows no script at all and
// styles only from the console's own CSS file.
var securityHeaders = [][2]string{
	{"Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"},
	{"X-Frame-Options", "DENY"},
	{"Referrer-Policy", "no-referrer"},
	{"Cache-Control", "no-store"},
	{"X-Content-Type-Options", "nosniff"},
}

// base is what the portal and the operator console share: templates, sessions,
// headers and the error pages.
type base struct {
	cfg        Config
	kind       string // "portal" or "console", for cookie names and logs
	pages      map[string]*template.Template
	sessions   *sessionStore
	css        []byte
	cookieName string
	signInName string
	log        *slog.Logger
}

func newBase(cfg Config, kind string, pageNames []string) (*base, error) {
	b := &base{cfg: cfg, kind: kind, pages: make(map[string]*template.Template),
		cookieName: "edgehook_" + kind, signInName: "edgehook_" + kind + "_signin",
		log: cfg.Logger.With("component", kind)}
	var err error
	if b.sessions, err = newSessionStore(cfg.SessionTTL, cfg.MaxSessions); err != nil {
		return nil, fmt.Errorf("console: session key: %w", err)
	}
	if b.css, err = fs.ReadFile(assets, "static/console.css"); err != nil {
		return nil, fmt.Errorf("console: %w", err)
	}
	funcs := template.FuncMap{
		"path":    func(p string) string { return cfg.Prefix + strings.TrimPrefix(p, "/") },
		"time":    formatTime,
		"latency": formatLatency,
		"pct":     func(f float64) string { return fmt.Sprintf("%.0f%%", f*100) },
		"payload": payloadText,
		"span":    formatSpan,
	}
	for _, name := range append(pageNames, "error") {
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(assets,
			"templates/layout.html", "templates/chart.html", "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("console: template %s: %w", name, err)
		}
		b.pages[name] = t
	}
	return b, nil
}

// maxPayloadShown bounds how much of a payload an event page shows.
const maxPayloadShown = 256 << 10

// payloadText returns a payload for display: indented when it is JSON, cut at
// maxPayloadShown bytes with a note.
func payloadText(b []byte) string {
	if len(b) > maxPayloadShown {
		return string(b[:maxPayloadShown]) + "\n… (cut at 256 KiB)"
	}
	var buf bytes.Buffer
	if json.Indent(&buf, b, "", "  ") == nil {
		return buf.String()
	}
	return string(b)
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format("2006-01-02 15:04:05Z")
}

// formatSpan names a chart's window or step in words ("1 hour", "5 minutes").
func formatSpan(d time.Duration) string {
	for _, u := range []struct {
		d    time.Duration
		name string
	}{{time.Hour, "hour"}, {time.Minute, "minute"}, {time.Second, "second"}} {
		if d >= u.d && d%u.d == 0 {
			if n := d / u.d; n != 1 {
				return fmt.Sprintf("%d %ss", n, u.name)
			}
			return u.name
		}
	}
	return d.String()
}

func formatLatency(d time.Duration) string {
	if d < time.Millisecond {
		return fmt.Sprintf("%dµs", d.Microseconds())
	}
	return fmt.Sprintf("%dms", d.Milliseconds())
}

// view is what every page template gets.
type view struct {
	Kind     string // "portal" or "console"
	Title    string
	SignedIn bool
	Who      string // tenant id or "operator"
	CSRF     string
	Flash    string
	Data     any
}

// flashes are the only messages a redirect can ask a page to show (by key), so a link
// cannot put text of its own on a page.
var flashes = map[string]string{
	"replayed":  "Replay queued.",
	"expired":   "Your session has ended. Sign in again.",
	"signedout": "Signed out.",
	"status":    "Tenant status changed.",
}

func setHeaders(ctx *fasthttp.RequestCtx) {
	for _, h := range securityHeaders {
		ctx.Response.Header.Set(h[0], h[1])
	}
}

// render writes page with status.
func (b *base) render(ctx *fasthttp.RequestCtx, status int, page string, v view) {
	v.Kind = b.kind
	if v.Flash == "" {
		v.Flash = flashes[string(ctx.QueryArgs().Peek("done"))]
	}
	var buf bytes.Buffer
	if err := b.pages[page].Execute(&buf, v); err != nil {
		b.log.Error("render page", "page", page, "err", err)
		ctx.Response.Header.SetContentType("text/plain; charset=utf-8")
		ctx.SetStatusCode(fasthttp.StatusInternalServerError)
		ctx.SetBodyString("internal error rendering the page")
		return
	}
	ctx.Response.Header.SetContentType("text/html; charset=utf-8")
	ctx.SetStatusCode(status)
	ctx.SetBody(buf.Bytes())
}

// errorPage renders a page for status with a message a person can act on.
func (b *base) errorPage(ctx *fasthttp.RequestCtx, status int, signedIn bool, csrf, message string) {
	b.render(ctx, status, "error", view{Title: fasthttp.StatusMessage(status), SignedIn: signedIn, CSRF: csrf,
		Data: struct {
			Status  int
			Message string
		}{status, message}})
}

// sourceError maps an error from a source to a page, in one place.
func (b *base) sourceError(ctx *fasthttp.RequestCtx, csrf string, op string, err error) {
	var inv *InvalidError
	switch {
	case errors.As(err, &inv):
		b.errorPage(ctx, fasthttp.StatusBadRequest, true, csrf, inv.Message)
	case errors.Is(err, ErrInvalid):
		b.errorPage(ctx, fasthttp.StatusBadRequest, true, csrf, "The request was not valid.")
	case errors.Is(err, ErrNotFound):
		b.errorPage(ctx, fasthttp.StatusNotFound, true, csrf, "Not found.")
	case errors.Is(err, ErrConflict):
		b.errorPage(ctx, fasthttp.StatusConflict, true, csrf, "That cannot be done in the current state.")
	case errors.Is(err, ErrForbidden):
		b.errorPage(ctx, fasthttp.StatusForbidden, true, csrf, "Not allowed.")
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		b.errorPage(ctx, fasthttp.StatusServiceUnavailable, true, csrf, "The data source did not answer in time. Try again.")
	default:
		b.log.Error("console source", "op", op, "err", err)
		b.errorPage(ctx, fasthttp.StatusInternalServerError, true, csrf, "Something went wrong reading the data. Try again.")
	}
}

// redirect answers 303 to a path under the prefix (with an optional query).
func (b *base) redirect(ctx *fasthttp.RequestCtx, p string, q url.Values) {
	loc := b.cfg.Prefix + strings.TrimPrefix(p, "/")
	if len(q) > 0 {
		loc += "?" + q.Encode()
	}
	ctx.Response.Header.Set("Location", loc)
	ctx.SetStatusCode(fasthttp.StatusSeeOther)
}

func (b *base) setCookie(ctx *fasthttp.RequestCtx, name, value string, maxAge time.Duration) {
	c := fasthttp.AcquireCookie()
	defer fasthttp.ReleaseCookie(c)
	c.SetKey(name)
	c.SetValue(value)
	c.SetPath(b.cfg.Prefix)
	c.SetHTTPOnly(true)
	c.SetSameSite(fasthttp.CookieSameSiteStrictMode)
	c.SetSecure(ctx.IsTLS() || b.cfg.SecureCookies)
	if maxAge > 0 {
		c.SetMaxAge(int(maxAge / time.Second))
	} else {
		c.SetMaxAge(-1)
		c.SetExpire(fasthttp.CookieExpireDelete)
	}
	ctx.Response.Header.SetCookie(c)
}

// signInForm renders the sign-in page with a fresh double-submit token.
func (b *base) signInForm(ctx *fasthttp.RequestCtx, status int, message string) {
	nonce, cookie, err := b.sessions.newSignInToken()
	if err != nil {
		b.errorPage(ctx, fasthttp.StatusInternalServerError, false, "", "Could not start a sign-in. Try again.")
		return
	}
	b.setCookie(ctx, b.signInName, cookie, 10*time.Minute)
	b.render(ctx, status, "signin", view{Title: "Sign in", CSRF: nonce, Flash: message})
}

// acceptSignIn checks the sign-in form's token and returns the credential typed in,
// or renders the refusal and returns false.
func (b *base) acceptSignIn(ctx *fasthttp.RequestCtx, field string) (Secret, bool) {
	if !b.sessions.checkSignInToken(string(ctx.Request.Header.Cookie(b.signInName)), string(ctx.PostArgs().Peek("csrf"))) {
		b.signInForm(ctx, fasthttp.StatusForbidden, "The form expired. Sign in again.")
		return "", false
	}
	cred := string(ctx.PostArgs().Peek(field))
	if cred == "" || len(cred) > maxCredential {
		b.signInForm(ctx, fasthttp.StatusUnauthorized, "That key was not accepted.")
		return "", false
	}
	return Secret(cred), true
}

// startSession stores a session for cred, sets its cookie and goes to landing.
func (b *base) startSession(ctx *fasthttp.RequestCtx, cred Secret, landing string) {
	_, cookie, err := b.sessions.create(cred, time.Now())
	if err != nil {
		b.errorPage(ctx, fasthttp.StatusInternalServerError, false, "", "Could not start a session. Try again.")
		return
	}
	b.setCookie(ctx, b.signInName, "", 0)
	b.setCookie(ctx, b.cookieName, cookie, b.cfg.SessionTTL)
	b.redirect(ctx, landing, nil)
}

// currentSession returns the request's live session, or answers (to the sign-in page
// for a GET, 401 for anything else) and returns nil.
func (b *base) currentSession(ctx *fasthttp.RequestCtx) *session {
	s, known := b.sessions.lookup(string(ctx.Request.Header.Cookie(b.cookieName)), time.Now())
	if s != nil {
		return s
	}
	if known {
		b.setCookie(ctx, b.cookieName, "", 0)
	}
	if ctx.IsGet() || ctx.IsHead() {
		q := url.Values{}
		if known {
			q.Set("done", "expired")
		}
		b.redirect(ctx, "signin", q)
		return nil
	}
	msg := "Sign in first."
	if known {
		msg = flashes["expired"]
	}
	b.errorPage(ctx, fasthttp.StatusUnauthorized, false, "", msg)
	return nil
}

// checkPost refuses a change that is not a POST with the session's CSRF token.
func (b *base) checkPost(ctx *fasthttp.RequestCtx, s *session) bool {
	if !ctx.IsPost() {
		ctx.Response.Header.Set("Allow", "POST")
		b.errorPage(ctx, fasthttp.StatusMethodNotAllowed, true, s.csrf, "Changes are made with the page's buttons (POST).")
		return false
	}
	if !s.checkCSRF(string(ctx.PostArgs().Peek("csrf"))) {
		b.errorPage(ctx, fasthttp.StatusForbidden, true, s.csrf, "The form's security token did not match. Reload the page and try again.")
		return false
	}
	return true
}

// checkGet refuses anything but GET and HEAD on a reading page.
func (b *base) checkGet(ctx *fasthttp.RequestCtx, csrf string) bool {
	if ctx.IsGet() || ctx.IsHead() {
		return true
	}
	ctx.Response.Header.Set("Allow", "GET, HEAD")
	b.errorPage(ctx, fasthttp.StatusMethodNotAllowed, csrf != "", csrf, "This page is read with GET.")
	return false
}

// signOut ends the session and goes to the sign-in page.
func (b *base) signOut(ctx *fasthttp.RequestCtx) {
	s := b.currentSession(ctx)
	if s == nil || !b.checkPost(ctx, s) {
		return
	}
	b.sessions.remove(s)
	b.setCookie(ctx, b.cookieName, "", 0)
	b.redirect(ctx, "signin", url.Values{"done": {"signedout"}})
}

// serveCSS serves the embedded stylesheet.
func (b *base) serveCSS(ctx *fasthttp.RequestCtx) {
	ctx.Response.Header.SetContentType("text/css; charset=utf-8")
	ctx.SetBody(b.css)
}

// route splits the request path below the prefix into segments, or returns false
// when the path is not under the prefix.
func (b *base) route(ctx *fasthttp.RequestCtx) ([]string, bool) {
	p := string(ctx.Path())
	if p+"/" == b.cfg.Prefix {
		return nil, true
	}
	rest, ok := strings.CutPrefix(p, b.cfg.Prefix)
	if !ok {
		return nil, false
	}
	rest = strings.Trim(rest, "/")
	if rest == "" {
		return nil, true
	}
	return strings.Split(rest, "/"), true
}

// field returns a bounded query or form value.
func field(v []byte) (string, bool) {
	if len(v) > maxField {
		return "", false
	}
	return string(v), true
}

// pageQuery builds a list page's query from its filters and cursor, dropping empties.
func pageQuery(kv ...string) string {
	q := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] != "" {
			q.Set(kv[i], kv[i+1])
		}
	}
	if len(q) == 0 {
		return ""
	}
	return "?" + q.Encode()
}
