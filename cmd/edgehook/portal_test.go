package main

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/edgehook/edgehook/console/consoletest"
	"github.com/edgehook/edgehook/natsconf"
	"github.com/edgehook/edgehook/status"
)

// portalHostileType is an event type with markup in it, which the portal must show as
// text.
const portalHostileType = `<script>window.__pwned=1</script><b onmouseover="window.__pwned=1">order.paid</b>`

// portalShowsInert checks that the page shows text literally, as a person reads it, and
// that none of the markup in it ran or became an element.
func portalShowsInert(t *testing.T, ctx context.Context, text string) {
	t.Helper()
	if body := consoletest.BodyText(t, ctx); !strings.Contains(body, text) {
		t.Errorf("the page does not show %q as text:\n%s", text, body)
	}
	ran := consoletest.Get(t, ctx, "look for markup that ran", chromedp.Evaluate[bool](
		`window.__pwned !== undefined || document.querySelector("main script, main img, main b[onmouseover]") !== null`))
	if ran {
		t.Errorf("markup a tenant controls ran or became an element on %s", text)
	}
}

// portalTenant creates a tenant whose webhooks go to target and waits until the
// gateway knows its key.
func portalTenant(t *testing.T, sys *system, target string) createdTenant {
	t.Helper()
	var c createdTenant
	if code := call(t, "POST", "http://"+sys.admin+"/v1/tenants", sys.adminToken, map[string]string{"targetUrl": target, "plan": "pro"}, &c); code != 201 {
		t.Fatalf("create tenant: %d", code)
	}
	waitUntil(t, 10*time.Second, "the gateway knows the new key", func() bool {
		return call(t, "GET", "http://"+sys.api+"/v1/events/evt_none", c.APIKey, nil, nil) == http.StatusNotFound
	})
	return c
}

func signInToPortal(t *testing.T, ctx context.Context, base, key string) {
	t.Helper()
	consoletest.Run(t, ctx, "sign in",
		chromedp.Navigate(base+"/portal/"),
		consoletest.WaitURL("/portal/signin"),
		chromedp.WaitVisible(chromedp.ID("key")),
		chromedp.SendKeys(chromedp.ID("key"), key),
		consoletest.Navigates(chromedp.Click(chromedp.ID("signin"))),
	)
}

// TestPortalShowsAFailedEventTurnDeliveredAfterAReplay runs the whole pipeline under
// `up` (gateway, worker, DLQ processor, embedded NATS with each component's own user)
// and a real endpoint, and drives the portal in headless Chromium: an event fails
// against the endpoint, the tenant finds it with the failed filter, reads its
// attempts, fixes the endpoint, replays it, and watches it turn delivered.
func TestPortalShowsAFailedEventTurnDeliveredAfterAReplay(t *testing.T) {
	sys := startUp(t, map[string]string{
		"EDGEHOOK_RETRY_SCHEDULE":    "50ms,100ms",
		"EDGEHOOK_MAX_DELIVER":       "3",
		"EDGEHOOK_HTTP_TIMEOUT":      "1s",
		"EDGEHOOK_BREAKER_THRESHOLD": "-1",
	})
	target := newSwitchableTarget(t)
	tn := portalTenant(t, sys, target.srv.URL+"/hook")
	target.route(t, "/hook", tn.WebhookSecret)
	var failed, other struct{ EventID string }
	if code := call(t, "POST", "http://"+sys.api+"/v1/events", tn.APIKey, map[string]string{"type": "order.created"}, &failed); code != 202 {
		t.Fatalf("ingest: %d", code)
	}
	if code := call(t, "POST", "http://"+sys.api+"/v1/events", tn.APIKey, map[string]string{"type": portalHostileType}, &other); code != 202 {
		t.Fatalf("ingest: %d", code)
	}
	statusOf := func(id string) string {
		var st struct{ Status string }
		call(t, "GET", "http://"+sys.api+"/v1/events/"+id, tn.APIKey, nil, &st)
		return st.Status
	}
	for _, id := range []string{failed.EventID, other.EventID} {
		waitUntil(t, 30*time.Second, "event "+id+" failed", func() bool { return statusOf(id) == "failed" })
	}

	base := "http://" + sys.api
	ctx := consoletest.NewBrowser(t)
	signInToPortal(t, ctx, base, tn.APIKey)
	consoletest.Run(t, ctx, "the events page",
		consoletest.WaitURL("/portal/events"),
		chromedp.WaitVisible(chromedp.CSS("table.events")),
		consoletest.Shot(t, "e2e-portal-events"),
	)
	portalShowsInert(t, ctx, portalHostileType)
	consoletest.Run(t, ctx, "filter failed",
		chromedp.SetValue(chromedp.ID("status"), "failed"),
		chromedp.SetValue(chromedp.ID("type"), "order.created"),
		consoletest.Navigates(chromedp.Click(chromedp.ID("filter"))),
		consoletest.WaitURL("status=failed"),
		chromedp.WaitVisible(chromedp.CSS("table.events")),
		consoletest.Shot(t, "e2e-portal-failed"),
	)
	listed := consoletest.Get(t, ctx, "read the list", chromedp.Evaluate[[]string](
		`[...document.querySelectorAll("table.events a.event-link")].map(e => e.textContent)`))
	if len(listed) != 1 || listed[0] != failed.EventID {
		t.Fatalf("failed order.created events listed: %q, want %s", listed, failed.EventID)
	}
	consoletest.Run(t, ctx, "open its attempts",
		consoletest.Navigates(chromedp.Click(chromedp.CSS("table.events a.event-link"))),
		consoletest.WaitURL("/portal/events/"+failed.EventID),
		chromedp.WaitVisible(chromedp.CSS("table.attempts")),
		consoletest.Shot(t, "e2e-portal-event-failed"),
	)
	attempts := consoletest.Get(t, ctx, "read the attempts", chromedp.Evaluate[[]string](
		`[...document.querySelectorAll("table.attempts tbody tr")].map(r => r.innerText)`))
	if len(attempts) != 3 {
		t.Fatalf("attempt log: %q, want 3 attempts", attempts)
	}
	for _, a := range attempts {
		if !strings.Contains(a, "503") || !strings.Contains(a, switchableDownBody) {
			t.Errorf("attempt %q does not show the endpoint's 503 and its answer as text", a)
		}
	}
	portalShowsInert(t, ctx, switchableDownBody)

	target.fix()
	consoletest.Run(t, ctx, "replay",
		consoletest.Navigates(chromedp.Click(chromedp.ID("replay"))),
		consoletest.WaitURL("done=replayed"),
	)
	if txt := consoletest.BodyText(t, ctx); !strings.Contains(txt, "Replay queued.") {
		t.Errorf("no confirmation after the replay:\n%s", txt)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		st := consoletest.Get(t, ctx, "read the status", chromedp.Text(chromedp.ID("event-status")))
		if st == "delivered" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the event shows %q 15s after its replay, want delivered", st)
		}
		time.Sleep(100 * time.Millisecond)
		consoletest.Run(t, ctx, "reload", chromedp.Reload(), chromedp.WaitVisible(chromedp.ID("event-status")))
	}
	consoletest.Run(t, ctx, "the delivered event", consoletest.Shot(t, "e2e-portal-event-delivered"))
	if _, delivered, bad := target.got(); len(delivered) != 1 || bad != 0 {
		t.Errorf("the endpoint took %d webhooks after the fix and refused %d signatures; want 1 and 0", len(delivered), bad)
	}
	consoletest.Run(t, ctx, "the list shows it delivered",
		chromedp.Navigate(base+"/portal/events?status=delivered"),
		chromedp.WaitVisible(chromedp.CSS("table.events")),
	)
	listed = consoletest.Get(t, ctx, "read the list", chromedp.Evaluate[[]string](
		`[...document.querySelectorAll("table.events a.event-link")].map(e => e.textContent)`))
	if len(listed) != 1 || listed[0] != failed.EventID {
		t.Errorf("delivered events listed: %q, want %s", listed, failed.EventID)
	}
	consoletest.Run(t, ctx, "the endpoint",
		chromedp.Navigate(base+"/portal/endpoint"),
		chromedp.WaitVisible(chromedp.CSS("figure.chart svg")),
		consoletest.Shot(t, "e2e-portal-endpoint"),
	)
	if txt := consoletest.BodyText(t, ctx); !strings.Contains(txt, target.srv.URL+"/hook") || strings.Contains(txt, tn.WebhookSecret) {
		t.Errorf("the endpoint page:\n%s", txt)
	}
}

// TestPortalRefusesAWrongKeyAndAnExpiredSession: under `up`, a key that is not one is
// refused at sign-in, and a session past EDGEHOOK_PORTAL_SESSION_TTL sends the
// browser back to the sign-in page.
func TestPortalRefusesAWrongKeyAndAnExpiredSession(t *testing.T) {
	sys := startUp(t, map[string]string{"EDGEHOOK_PORTAL_SESSION_TTL": "2s"})
	tn := portalTenant(t, sys, "http://example.invalid/")
	base := "http://" + sys.api
	ctx := consoletest.NewBrowser(t)
	signInToPortal(t, ctx, base, "ehk_this_is_not_a_key")
	consoletest.Run(t, ctx, "the refusal",
		chromedp.WaitVisible(chromedp.CSS(".flash")),
		consoletest.Shot(t, "e2e-portal-wrong-key"),
	)
	if txt := consoletest.BodyText(t, ctx); !strings.Contains(txt, "That key was not accepted.") {
		t.Fatalf("after a wrong key:\n%s", txt)
	}
	signInToPortal(t, ctx, base, tn.APIKey)
	consoletest.Run(t, ctx, "signed in", consoletest.WaitURL("/portal/events"), chromedp.WaitVisible(chromedp.CSS("main")))
	deadline := time.Now().Add(15 * time.Second)
	for {
		consoletest.Run(t, ctx, "reload the events", chromedp.Navigate(base+"/portal/events"), chromedp.WaitReady(chromedp.CSS("main")))
		loc := consoletest.Get(t, ctx, "read the URL", chromedp.Location())
		if strings.Contains(loc, "/portal/signin") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the session still opens the events page after 15s")
		}
		time.Sleep(200 * time.Millisecond)
	}
	consoletest.Run(t, ctx, "expired", consoletest.Shot(t, "e2e-portal-expired"))
	// The cookie's Max-Age is the TTL too, so the browser may drop it first; either
	// way the events are gone and the sign-in form is back.
	if txt := consoletest.BodyText(t, ctx); !strings.Contains(txt, "API key") || strings.Contains(txt, "Filter") {
		t.Errorf("after expiry the browser shows:\n%s", txt)
	}
}

// meshTestEdgePortals checks, on a running mesh (real nats-server processes, each
// edge's `edgehook gateway` as its own NATS user), that every edge's portal lists the
// tenant's events from the hub's status bucket, watched through the hub's JetStream
// domain across the leaf link: a record written at the hub appears at each edge.
func meshTestEdgePortals(t *testing.T, ms *meshTestSystem, tenantID, apiKey string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	kv, err := ms.js.KeyValue(ctx, natsconf.BucketStatus)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	rec := status.Record{EventID: "evt_mesh_portal", TenantID: tenantID, Type: "mesh.portal", Status: status.Delivered, Attempts: 1, CreatedAt: now, UpdatedAt: now}
	if err := status.NewStore(kv).Put(ctx, rec); err != nil {
		t.Fatal(err)
	}
	for _, name := range meshTestEdgeNames(ms.edges) {
		c := consoletest.NewClient(t, "http://"+ms.edges[name].addr)
		c.MustSignIn("/portal/", "key", apiKey, "events")
		waitUntil(t, 15*time.Second, "edge "+name+"'s portal lists the hub's record", func() bool {
			p := c.Get("/portal/events")
			return p.Status == http.StatusOK && strings.Contains(p.Body, rec.EventID)
		})
	}
}
