package console

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/edgehook/edgehook/console/consoletest"
)

func TestEveryPageSendsSecurityHeaders(t *testing.T) {
	ts := startServer(t, Config{}, fixture())
	portal, op := consoletest.NewClient(t, ts.URL), consoletest.NewClient(t, ts.URL)
	portal.MustSignIn("/portal/", "key", keyManageA, "events")
	op.MustSignIn("/console/", "token", adminToken, "tenants")
	anon := consoletest.NewClient(t, ts.URL)
	checks := []struct {
		c    *consoletest.Client
		path string
	}{
		{anon, "/portal/signin"}, {anon, "/console/signin"}, {anon, "/portal/events"}, {anon, "/portal/nope"},
		{portal, "/portal/events"}, {portal, "/portal/events/evt_a002"}, {portal, "/portal/endpoint"}, {portal, "/portal/console.css"},
		{op, "/console/tenants"}, {op, "/console/dlq"}, {op, "/console/mesh"}, {op, "/console/rates"},
	}
	for _, ck := range checks {
		p := ck.c.Get(ck.path)
		for _, h := range []struct{ name, want string }{
			{"X-Frame-Options", "DENY"}, {"Referrer-Policy", "no-referrer"}, {"Cache-Control", "no-store"},
			{"X-Content-Type-Options", "nosniff"},
		} {
			if got := p.Header.Get(h.name); got != h.want {
				t.Errorf("GET %s: %s = %q, want %q", ck.path, h.name, got, h.want)
			}
		}
		csp := p.Header.Get("Content-Security-Policy")
		if !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "frame-ancestors 'none'") || strings.Contains(csp, "script-src") {
			t.Errorf("GET %s: Content-Security-Policy = %q, want no scripts and no framing", ck.path, csp)
		}
	}
}

func TestSignInCookieIsHttpOnlyStrictAndHoldsNoKey(t *testing.T) {
	for _, secure := range []bool{false, true} {
		t.Run(fmt.Sprintf("SecureCookies=%v", secure), func(t *testing.T) {
			ts := startServer(t, Config{SecureCookies: secure, SessionTTL: 5 * time.Minute}, fixture())
			c := consoletest.NewClient(t, ts.URL)
			p := c.SignIn("/portal/", "key", keyManageA)
			if p.Status != http.StatusSeeOther {
				t.Fatalf("sign-in: %d", p.Status)
			}
			var found bool
			for _, raw := range p.Header.Values("Set-Cookie") {
				ck, err := http.ParseSetCookie(raw)
				if err != nil || ck.Name != "edgehook_portal" {
					continue
				}
				found = true
				if strings.Contains(raw, keyManageA) {
					t.Errorf("the session cookie holds the API key: %s", raw)
				}
				if !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode || ck.Path != "/portal/" || ck.MaxAge != 300 {
					t.Errorf("cookie %q: want HttpOnly, SameSite=Strict, Path=/portal/, Max-Age=300", raw)
				}
				if ck.Secure != secure {
					t.Errorf("cookie %q: Secure = %v, want %v", raw, ck.Secure, secure)
				}
			}
			if !found {
				t.Fatalf("no session cookie in %q", p.Header.Values("Set-Cookie"))
			}
		})
	}
}

func TestWrongKeyIsRefused(t *testing.T) {
	ts := startServer(t, Config{}, fixture())
	for _, tc := range []struct {
		name, prefix, field, cred string
		status                    int
	}{
		{"unknown key", "/portal/", "key", "ehk_not_a_key", http.StatusUnauthorized},
		{"empty key", "/portal/", "key", "", http.StatusUnauthorized},
		{"send-only key", "/portal/", "key", keySendA, http.StatusForbidden},
		{"oversized key", "/portal/", "key", strings.Repeat("k", 10_000), http.StatusUnauthorized},
		{"wrong admin token", "/console/", "token", "admin-token-for-console-test", http.StatusUnauthorized},
		{"tenant key as admin token", "/console/", "token", keyManageA, http.StatusUnauthorized},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := consoletest.NewClient(t, ts.URL)
			p := c.SignIn(tc.prefix, tc.field, tc.cred)
			if p.Status != tc.status {
				t.Fatalf("status %d, want %d", p.Status, tc.status)
			}
			if !strings.Contains(p.Body, "not accepted") && !strings.Contains(p.Body, "neither the read nor the manage scope") {
				t.Errorf("the page does not say why:\n%s", p.Body)
			}
			for _, raw := range p.Header.Values("Set-Cookie") {
				if strings.HasPrefix(raw, "edgehook_portal=") || strings.HasPrefix(raw, "edgehook_console=") {
					t.Errorf("a refused sign-in set a session cookie: %s", raw)
				}
			}
			landing := map[string]string{"/portal/": "events", "/console/": "tenants"}[tc.prefix]
			if got := c.Get(tc.prefix + landing); got.Status != http.StatusSeeOther || !strings.HasSuffix(got.Header.Get("Location"), "/signin") {
				t.Errorf("after a refused sign-in GET %s = %d %q, want a redirect to sign in", landing, got.Status, got.Header.Get("Location"))
			}
		})
	}
}

func TestSuspendedTenantCannotSignIn(t *testing.T) {
	src := fixture()
	ts := startServer(t, Config{}, src)
	c := consoletest.NewClient(t, ts.URL)
	c.MustSignIn("/portal/", "key", keyManageA, "events")
	op := consoletest.NewClient(t, ts.URL)
	tenants := op.MustSignIn("/console/", "token", adminToken, "tenants")
	if p := op.Post("/console/tenants/t_alpha/status", url.Values{"csrf": {consoletest.CSRF(t, tenants)}, "status": {"suspended"}}); p.Status != http.StatusSeeOther {
		t.Fatalf("suspend: %d\n%s", p.Status, p.Body)
	}
	if p := c.Get("/portal/events"); p.Status != http.StatusUnauthorized || strings.Contains(p.Body, "evt_a") {
		t.Errorf("a suspended tenant's open session still reads events: %d", p.Status)
	}
	if p := consoletest.NewClient(t, ts.URL).SignIn("/portal/", "key", keyManageA); p.Status != http.StatusForbidden || !strings.Contains(p.Body, "suspended") {
		t.Errorf("a suspended tenant signs in: %d\n%s", p.Status, p.Body)
	}
}

func TestExpiredSessionIsRefused(t *testing.T) {
	ts := startServer(t, Config{SessionTTL: time.Second}, fixture())
	c := consoletest.NewClient(t, ts.URL)
	events := c.MustSignIn("/portal/", "key", keyManageA, "events")
	csrf := consoletest.CSRF(t, events)
	op := consoletest.NewClient(t, ts.URL)
	op.MustSignIn("/console/", "token", adminToken, "tenants")
	raw := c.Cookies("/portal/")
	// The browser drops the cookie at its Max-Age; the server refuses it after the
	// lifetime too, for a client that keeps sending it.
	waitFor(t, 10*time.Second, 100*time.Millisecond, func() error {
		req, _ := http.NewRequest(http.MethodGet, ts.URL+"/portal/events", nil)
		for _, ck := range raw {
			req.AddCookie(ck)
		}
		p := consoletest.NewClient(t, ts.URL).Do(req)
		if p.Status != http.StatusSeeOther {
			return fmt.Errorf("GET /portal/events = %d, still open", p.Status)
		}
		if loc := p.Header.Get("Location"); loc != "/portal/signin?done=expired" {
			return fmt.Errorf("redirected to %q, want the sign-in page saying the session ended", loc)
		}
		return nil
	})
	if p := c.Get("/portal/events"); p.Status != http.StatusSeeOther {
		t.Errorf("the client's own cookie after expiry: %d, want a redirect to sign in", p.Status)
	}
	if p := c.Post("/portal/events/evt_a002/replay", url.Values{"csrf": {csrf}}); p.Status != http.StatusUnauthorized {
		t.Errorf("replay with an expired session: %d, want 401", p.Status)
	}
	if ts.src.status("t_alpha", "evt_a002") != StatusFailed {
		t.Errorf("an expired session replayed an event")
	}
	if p := op.Get("/console/dlq"); p.Status != http.StatusSeeOther {
		t.Errorf("operator console with an expired session: %d, want a redirect to sign in", p.Status)
	}
	if p := c.Get("/portal/signin?done=expired"); !strings.Contains(p.Body, "Your session has ended") {
		t.Errorf("the sign-in page does not say the session ended")
	}
}

func TestForgedSessionCookieIsRefused(t *testing.T) {
	ts := startServer(t, Config{}, fixture())
	for _, v := range []string{"", "x", "abc.def", "AAAAAAAAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAA", strings.Repeat("z", 2000)} {
		req, _ := http.NewRequest(http.MethodGet, ts.URL+"/portal/events", nil)
		req.AddCookie(&http.Cookie{Name: "edgehook_portal", Value: v})
		p := consoletest.NewClient(t, ts.URL).Do(req)
		if p.Status != http.StatusSeeOther || p.Header.Get("Location") != "/portal/signin" {
			t.Errorf("cookie %.20q: %d %q, want a plain redirect to sign in", v, p.Status, p.Header.Get("Location"))
		}
	}
}

func TestSignOutEndsTheSession(t *testing.T) {
	ts := startServer(t, Config{}, fixture())
	c := consoletest.NewClient(t, ts.URL)
	events := c.MustSignIn("/portal/", "key", keyManageA, "events")
	jarCookies := c.Cookies("/portal/")
	if p := c.Post("/portal/signout", url.Values{"csrf": {consoletest.CSRF(t, events)}}); p.Status != http.StatusSeeOther {
		t.Fatalf("sign out: %d", p.Status)
	}
	// The old cookie, replayed, no longer opens the portal.
	req, _ := http.NewRequest(http.MethodGet, ts.URL+"/portal/events", nil)
	for _, ck := range jarCookies {
		req.AddCookie(ck)
	}
	if p := consoletest.NewClient(t, ts.URL).Do(req); p.Status != http.StatusSeeOther {
		t.Errorf("the signed-out cookie still opens the portal: %d", p.Status)
	}
}

func TestRevokedKeyLosesItsSession(t *testing.T) {
	src := fixture()
	ts := startServer(t, Config{}, src)
	c := consoletest.NewClient(t, ts.URL)
	c.MustSignIn("/portal/", "key", keyReadA, "events")
	src.revokeKey(keyReadA)
	if p := c.Get("/portal/events"); p.Status != http.StatusUnauthorized || strings.Contains(p.Body, "evt_a") {
		t.Errorf("a revoked key's session still reads: %d", p.Status)
	}
}

func TestChangesNeedTheFormsCSRFToken(t *testing.T) {
	src := fixture()
	ts := startServer(t, Config{}, src)
	c := consoletest.NewClient(t, ts.URL)
	events := c.MustSignIn("/portal/", "key", keyManageA, "events")
	other := consoletest.NewClient(t, ts.URL)
	otherCSRF := consoletest.CSRF(t, other.MustSignIn("/portal/", "key", keyManageA, "events"))
	for _, token := range []string{"", "nope", otherCSRF} {
		if p := c.Post("/portal/events/evt_a002/replay", url.Values{"csrf": {token}}); p.Status != http.StatusForbidden {
			t.Errorf("replay with CSRF %q: %d, want 403", token, p.Status)
		}
		if p := c.Post("/portal/endpoint/rotate-secret", url.Values{"csrf": {token}}); p.Status != http.StatusForbidden {
			t.Errorf("rotate with CSRF %q: %d, want 403", token, p.Status)
		}
	}
	if src.status("t_alpha", "evt_a002") != StatusFailed || src.rotations != 0 {
		t.Fatal("a request without the right CSRF token changed something")
	}
	if p := c.Get("/portal/events/evt_a002/replay"); p.Status != http.StatusMethodNotAllowed {
		t.Errorf("GET replay: %d, want 405", p.Status)
	}
	if p := c.Post("/portal/events", url.Values{"csrf": {consoletest.CSRF(t, events)}}); p.Status != http.StatusMethodNotAllowed {
		t.Errorf("POST to a reading page: %d, want 405", p.Status)
	}
	// The sign-in form has its own double-submit token.
	anon := consoletest.NewClient(t, ts.URL)
	if p := anon.Post("/portal/signin", url.Values{"key": {keyManageA}}); p.Status != http.StatusForbidden {
		t.Errorf("sign-in without the form's token: %d, want 403", p.Status)
	}
	if p := c.Post("/portal/events/evt_a002/replay", url.Values{"csrf": {consoletest.CSRF(t, events)}}); p.Status != http.StatusSeeOther {
		t.Errorf("replay with the right token: %d", p.Status)
	}
}

func TestReadKeyCannotReplayOrRotate(t *testing.T) {
	src := fixture()
	ts := startServer(t, Config{}, src)
	c := consoletest.NewClient(t, ts.URL)
	events := c.MustSignIn("/portal/", "key", keyReadA, "events")
	csrf := consoletest.CSRF(t, events)
	detail := c.Get("/portal/events/evt_a002")
	if strings.Contains(detail.Body, `id="replay"`) {
		t.Error("a read key is offered the replay button")
	}
	if p := c.Post("/portal/events/evt_a002/replay", url.Values{"csrf": {csrf}}); p.Status != http.StatusForbidden || !strings.Contains(p.Body, "manage-scoped") {
		t.Errorf("replay with a read key: %d", p.Status)
	}
	if p := c.Post("/portal/endpoint/rotate-secret", url.Values{"csrf": {csrf}}); p.Status != http.StatusForbidden {
		t.Errorf("rotate with a read key: %d", p.Status)
	}
	if src.status("t_alpha", "evt_a002") != StatusFailed || src.rotations != 0 {
		t.Error("a read key changed something")
	}
}

func TestTenantSeesOnlyItsOwnData(t *testing.T) {
	ts := startServer(t, Config{}, fixture())
	b := consoletest.NewClient(t, ts.URL)
	list := b.MustSignIn("/portal/", "key", keyManageB, "events")
	if strings.Contains(list.Body, "evt_a") || !strings.Contains(list.Body, "evt_beta_secret") {
		t.Errorf("tenant b's list:\n%s", list.Body)
	}
	a := consoletest.NewClient(t, ts.URL)
	events := a.MustSignIn("/portal/", "key", keyManageA, "events")
	if strings.Contains(events.Body, "evt_beta_secret") {
		t.Error("tenant a's list shows tenant b's event")
	}
	for _, path := range []string{"/portal/events/evt_beta_secret"} {
		if p := a.Get(path); p.Status != http.StatusNotFound || strings.Contains(p.Body, "beta.private") {
			t.Errorf("tenant a GET %s: %d", path, p.Status)
		}
	}
	if p := a.Post("/portal/events/evt_beta_secret/replay", url.Values{"csrf": {consoletest.CSRF(t, events)}}); p.Status != http.StatusNotFound {
		t.Errorf("tenant a replays tenant b's event: %d", p.Status)
	}
	if ep := a.Get("/portal/endpoint"); strings.Contains(ep.Body, "beta.example") {
		t.Error("tenant a sees tenant b's endpoint")
	}
}

func TestEventsFilterAndPaging(t *testing.T) {
	ts := startServer(t, Config{PageSize: 3}, fixture())
	c := consoletest.NewClient(t, ts.URL)
	c.MustSignIn("/portal/", "key", keyManageA, "events")
	p := c.Get("/portal/events?status=failed")
	if n := strings.Count(p.Body, `class="event-link"`); n != 2 {
		t.Errorf("failed filter shows %d events, want 2", n)
	}
	if strings.Contains(p.Body, ">delivered</span>") {
		t.Error("the failed filter shows a delivered event")
	}
	seen := map[string]bool{}
	next := "/portal/events"
	for pages := 0; next != "" && pages < 10; pages++ {
		p := c.Get(next)
		for _, id := range eventIDs(p.Body) {
			if seen[id] {
				t.Errorf("event %s on two pages", id)
			}
			seen[id] = true
		}
		next = ""
		if i := strings.Index(p.Body, `id="older"`); i >= 0 {
			start := strings.LastIndex(p.Body[:i], `href="`) + len(`href="`)
			next = strings.ReplaceAll(p.Body[start:strings.Index(p.Body[start:], `"`)+start], "&amp;", "&")
		}
	}
	if len(seen) != 12 {
		t.Errorf("paging through all events saw %d, want 12", len(seen))
	}
	if p := c.Get("/portal/events?status=bogus"); p.Status != http.StatusBadRequest || !strings.Contains(p.Body, "Unknown status") {
		t.Errorf("unknown status: %d", p.Status)
	}
	if p := c.Get("/portal/events?cursor=nonsense"); p.Status != http.StatusBadRequest {
		t.Errorf("bad cursor: %d", p.Status)
	}
}

func eventIDs(body string) []string {
	var ids []string
	for _, part := range strings.Split(body, `class="event-link">`)[1:] {
		ids = append(ids, part[:strings.Index(part, "<")])
	}
	return ids
}

func TestReplayTurnsTheEventDelivered(t *testing.T) {
	ts := startServer(t, Config{}, fixture())
	c := consoletest.NewClient(t, ts.URL)
	c.MustSignIn("/portal/", "key", keyManageA, "events")
	detail := c.Get("/portal/events/evt_a002")
	for _, want := range []string{"503", "101ms", "upstream down for maintenance", `id="replay"`} {
		if !strings.Contains(detail.Body, want) {
			t.Errorf("the attempt log lacks %q", want)
		}
	}
	p := c.Post("/portal/events/evt_a002/replay", url.Values{"csrf": {consoletest.CSRF(t, detail)}})
	if p.Status != http.StatusSeeOther || p.Header.Get("Location") != "/portal/events/evt_a002?done=replayed" {
		t.Fatalf("replay: %d %q", p.Status, p.Header.Get("Location"))
	}
	after := c.Get(p.Header.Get("Location"))
	if !strings.Contains(after.Body, `id="event-status">delivered<`) || !strings.Contains(after.Body, "Replay queued.") {
		t.Errorf("after replay:\n%s", after.Body)
	}
	queued := c.Get("/portal/events/evt_a004")
	if strings.Contains(queued.Body, `id="replay"`) {
		t.Error("a queued event is offered replay")
	}
	if p := c.Post("/portal/events/evt_a004/replay", url.Values{"csrf": {consoletest.CSRF(t, queued)}}); p.Status != http.StatusConflict {
		t.Errorf("replay of a queued event: %d, want 409", p.Status)
	}
}

func TestRotationShowsTheSecretOnceAndNeverLogsIt(t *testing.T) {
	ts := startServer(t, Config{}, fixture())
	c := consoletest.NewClient(t, ts.URL)
	c.MustSignIn("/portal/", "key", keyManageA, "events")
	ep := c.Get("/portal/endpoint")
	for _, want := range []string{"https://hooks.alpha.example/receive", "closed", "<svg", "deliveries succeeded"} {
		if !strings.Contains(ep.Body, want) {
			t.Errorf("endpoint page lacks %q", want)
		}
	}
	r := c.Post("/portal/endpoint/rotate-secret", url.Values{"csrf": {consoletest.CSRF(t, ep)}})
	if r.Status != http.StatusOK || !strings.Contains(r.Body, "whsec_rotated0001") || !strings.Contains(r.Body, "Old secret expires") {
		t.Fatalf("rotation page: %d\n%s", r.Status, r.Body)
	}
	again := c.Get("/portal/endpoint")
	if strings.Contains(again.Body, "whsec_rotated0001") || !strings.Contains(again.Body, "Previous secret expires") {
		t.Error("the endpoint page shows the new secret or not the old one's expiry")
	}
	logs := ts.logs.String()
	for _, secret := range []string{"whsec_rotated0001", keyManageA} {
		if strings.Contains(logs, secret) {
			t.Errorf("a secret reached the logs: %s", logs)
		}
	}
}

func TestSecretPrintsRedacted(t *testing.T) {
	s := Secret("ehk_value")
	for _, out := range []string{fmt.Sprint(s), fmt.Sprintf("%v %s %+v %#v", s, s, s, s), fmt.Sprint(struct{ K Secret }{s})} {
		if strings.Contains(out, "ehk_value") {
			t.Errorf("formatted secret: %q", out)
		}
	}
}

func TestOperatorConsole(t *testing.T) {
	src := fixture()
	ts := startServer(t, Config{}, src)
	c := consoletest.NewClient(t, ts.URL)
	tenants := c.MustSignIn("/console/", "token", adminToken, "tenants")
	if !strings.Contains(tenants.Body, "t_alpha") || !strings.Contains(tenants.Body, "t_beta") {
		t.Errorf("tenants page:\n%s", tenants.Body)
	}
	if p := c.Get("/console/tenants?q=beta"); strings.Contains(p.Body, "t_alpha") || !strings.Contains(p.Body, "t_beta") {
		t.Error("search for beta")
	}
	csrf := consoletest.CSRF(t, tenants)
	created := c.Post("/console/tenants", url.Values{"csrf": {csrf}, "targetUrl": {"https://new.example/hook"}, "plan": {"pro"}})
	if created.Status != http.StatusCreated || !strings.Contains(created.Body, "ehk_created001") || !strings.Contains(created.Body, "whsec_created001") {
		t.Fatalf("create: %d\n%s", created.Status, created.Body)
	}
	if p := c.Get("/console/tenants"); strings.Contains(p.Body, "ehk_created001") || !strings.Contains(p.Body, "t_new001") {
		t.Error("the tenants list shows the new key, or not the new tenant")
	}
	if p := c.Post("/console/tenants", url.Values{"csrf": {csrf}, "targetUrl": {"ftp://x"}}); p.Status != http.StatusBadRequest || !strings.Contains(p.Body, "must be http or https") {
		t.Errorf("bad target URL: %d", p.Status)
	}
	if p := c.Post("/console/tenants/t_nope/status", url.Values{"csrf": {csrf}, "status": {"suspended"}}); p.Status != http.StatusNotFound {
		t.Errorf("suspend unknown tenant: %d", p.Status)
	}
	if p := c.Post("/console/tenants/t_beta/status", url.Values{"csrf": {csrf}, "status": {"deleted"}}); p.Status != http.StatusBadRequest {
		t.Errorf("unknown status: %d", p.Status)
	}

	dlq := c.Get("/console/dlq?reason=max_deliveries&tenant=t_alpha")
	if strings.Contains(dlq.Body, "dlq_0002") || !strings.Contains(dlq.Body, "dlq_0001") || !strings.Contains(dlq.Body, "dlq_0003") {
		t.Errorf("dlq filter:\n%s", dlq.Body)
	}
	res := c.Post("/console/dlq/replay", url.Values{"csrf": {csrf}, "id": {"dlq_0001", "dlq_0003", "dlq_gone"}})
	if res.Status != http.StatusOK || !strings.Contains(res.Body, "Replayed 2 dead letters.") || !strings.Contains(res.Body, "dlq_gone: no such dead letter") {
		t.Errorf("replay selection: %d\n%s", res.Status, res.Body)
	}
	if got := src.replayedDeadLetters(); len(got) != 2 {
		t.Errorf("replayed %v", got)
	}
	if p := c.Post("/console/dlq/replay", url.Values{"csrf": {csrf}}); p.Status != http.StatusBadRequest {
		t.Errorf("replay of nothing: %d", p.Status)
	}
	if p := c.Post("/console/dlq/replay", url.Values{"id": {"dlq_0002"}}); p.Status != http.StatusForbidden {
		t.Errorf("replay without CSRF: %d", p.Status)
	}

	mesh := c.Get("/console/mesh")
	for _, want := range []string{"hub-1", "leader", "edge-b", "link-down", "1432", "deliver", "120"} {
		if !strings.Contains(mesh.Body, want) {
			t.Errorf("mesh page lacks %q", want)
		}
	}
	rates := c.Get("/console/rates")
	if n := strings.Count(rates.Body, "<polyline"); n != 3 || !strings.Contains(rates.Body, "Deliveries failed") {
		t.Errorf("rates page has %d line charts", n)
	}
	// A tenant's portal session is no operator session.
	tenant := consoletest.NewClient(t, ts.URL)
	tenant.MustSignIn("/portal/", "key", keyManageA, "events")
	if p := tenant.Get("/console/tenants"); p.Status != http.StatusSeeOther {
		t.Errorf("a portal session opens the operator console: %d", p.Status)
	}
}

func TestSessionStoreIsBounded(t *testing.T) {
	ts := startServer(t, Config{MaxSessions: 3}, fixture())
	var clients []*consoletest.Client
	for range 5 {
		c := consoletest.NewClient(t, ts.URL)
		c.MustSignIn("/portal/", "key", keyReadA, "events")
		clients = append(clients, c)
	}
	if n := ts.portal.sessions.len(); n != 3 {
		t.Errorf("the store holds %d sessions, want 3", n)
	}
	for i, c := range clients {
		open := c.Get("/portal/events").Status == http.StatusOK
		if open != (i >= 2) {
			t.Errorf("session %d open = %v; the oldest should be dropped first", i, open)
		}
	}
	// Refused sign-ins add nothing.
	for range 20 {
		consoletest.NewClient(t, ts.URL).SignIn("/portal/", "key", "ehk_wrong")
	}
	if n := ts.portal.sessions.len(); n != 3 {
		t.Errorf("refused sign-ins grew the store to %d", n)
	}
}

func TestConfigIsValidated(t *testing.T) {
	src := fixture()
	for _, cfg := range []Config{{Prefix: "portal"}, {SessionTTL: -time.Second}, {SessionTTL: 48 * time.Hour}, {MaxSessions: -1}, {PageSize: 1000}} {
		if _, err := NewPortal(cfg, src); err == nil {
			t.Errorf("NewPortal(%+v) accepted", cfg)
		}
	}
	if _, err := NewPortal(Config{}, nil); err == nil {
		t.Error("NewPortal without a source accepted")
	}
	if _, err := NewOperator(Config{}, "short", src); err == nil {
		t.Error("NewOperator with a short token accepted")
	}
}

func TestPayloadAndSpanFormatting(t *testing.T) {
	if got := payloadText([]byte(`{"a":[1,2]}`)); got != "{\n  \"a\": [\n    1,\n    2\n  ]\n}" {
		t.Errorf("JSON payload shown as %q", got)
	}
	if got := payloadText([]byte("not json <b>")); got != "not json <b>" {
		t.Errorf("text payload shown as %q", got)
	}
	big := payloadText([]byte(strings.Repeat("x", maxPayloadShown+10)))
	if len(big) > maxPayloadShown+64 || !strings.HasSuffix(big, "(cut at 256 KiB)") {
		t.Errorf("a large payload is shown with %d bytes", len(big))
	}
	for d, want := range map[time.Duration]string{time.Hour: "hour", 2 * time.Hour: "2 hours", time.Minute: "minute", 5 * time.Minute: "5 minutes", 90 * time.Second: "90 seconds"} {
		if got := formatSpan(d); got != want {
			t.Errorf("formatSpan(%s) = %q, want %q", d, got, want)
		}
	}
}

func TestOperatorListsArePaged(t *testing.T) {
	ts := startServer(t, Config{PageSize: 1}, fixture())
	c := consoletest.NewClient(t, ts.URL)
	tenants := c.MustSignIn("/console/", "token", adminToken, "tenants")
	if !strings.Contains(tenants.Body, `href="/console/tenants?cursor=1"`) {
		t.Errorf("the first page of 1 tenant links to a next page:\n%s", tenants.Body)
	}
	first := c.Get("/console/dlq?reason=max_deliveries")
	if strings.Contains(first.Body, "dlq_0001") || !strings.Contains(first.Body, "dlq_0003") {
		t.Fatalf("first page of the filtered dead letters:\n%s", first.Body)
	}
	older := c.Get("/console/dlq?reason=max_deliveries&cursor=1")
	if !strings.Contains(first.Body, `href="/console/dlq?cursor=1&amp;reason=max_deliveries"`) {
		t.Errorf("the first page's Older link keeps the filter:\n%s", first.Body)
	}
	if strings.Contains(older.Body, "dlq_0003") || !strings.Contains(older.Body, "dlq_0001") || strings.Contains(older.Body, "dlq_0002") {
		t.Errorf("second page:\n%s", older.Body)
	}
	if !strings.Contains(older.Body, `href="/console/dlq?reason=max_deliveries"`) {
		t.Error("the second page does not link back to the newest")
	}
}
