package main

import (
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/edgehook/edgehook/console/consoletest"
)

// TestOperatorReplaysADeadLetterFromTheConsole runs the whole pipeline of `edgehook
// up` (gateway, worker, DLQ processor, admin, embedded NATS) with a target that fails
// and a two-attempt retry policy, so an event dead-letters at once. An operator signs
// in to the console with the admin token, finds the dead letter by its tenant, fixes
// the target and replays it from the console; the target then gets the event, signed,
// with the webhook-id of its failed attempts. A wrong token and an expired session are
// refused.
func TestOperatorReplaysADeadLetterFromTheConsole(t *testing.T) {
	const sessionTTL = 4 * time.Second
	sys := startUp(t, map[string]string{
		"EDGEHOOK_RETRY_SCHEDULE":      "50ms",
		"EDGEHOOK_MAX_DELIVER":         "2",
		"EDGEHOOK_HTTP_TIMEOUT":        "2s",
		"EDGEHOOK_BREAKER_THRESHOLD":   "100", // the breaker stays out of this test
		"EDGEHOOK_CONSOLE_SESSION_TTL": sessionTTL.String(),
	})
	target := newSwitchableTarget(t)
	var tn createdTenant
	if code := call(t, "POST", "http://"+sys.admin+"/v1/tenants", sys.adminToken, map[string]string{"targetUrl": target.srv.URL + "/hooks"}, &tn); code != 201 {
		t.Fatalf("create tenant: %d", code)
	}
	target.route(t, "/hooks", tn.WebhookSecret)
	other := sys.createTenant(t) // a second tenant, whose dead letter the filter hides
	target.route(t, "/other", other.WebhookSecret)

	send := func(key string) string {
		var ack struct{ EventID string }
		if code := call(t, "POST", "http://"+sys.api+"/v1/events", key, map[string]any{"type": "order.created", "data": map[string]int{"orderId": 7}}, &ack); code != 202 {
			t.Fatalf("ingest: %d", code)
		}
		return ack.EventID
	}
	status := func(key, id string) string {
		var st struct{ Status string }
		call(t, "GET", "http://"+sys.api+"/v1/events/"+id, key, nil, &st)
		return st.Status
	}
	id := send(tn.APIKey)
	waitUntil(t, 20*time.Second, "event "+id+" failed", func() bool { return status(tn.APIKey, id) == "failed" })
	if code := call(t, "PATCH", "http://"+sys.admin+"/v1/tenants/"+other.TenantID, sys.adminToken, map[string]string{"targetUrl": target.srv.URL + "/other"}, nil); code != 200 {
		t.Fatalf("point the other tenant at the failing target: %d", code)
	}
	otherID := send(other.APIKey)
	waitUntil(t, 20*time.Second, "event "+otherID+" failed", func() bool { return status(other.APIKey, otherID) == "failed" })

	ctx := consoletest.NewBrowser(t)
	base := "http://" + sys.admin + "/console/"
	consoletest.Run(t, ctx, "sign in with a wrong token",
		chromedp.Navigate(base),
		consoletest.WaitURL("/console/signin"),
		chromedp.WaitVisible(chromedp.ID("token")),
		chromedp.SendKeys(chromedp.ID("token"), "not-the-admin-token"),
		consoletest.Navigates(chromedp.Click(chromedp.ID("signin"))),
		chromedp.WaitVisible(chromedp.CSS(".flash")),
		consoletest.Shot(t, "e2e-console-wrong-token"),
	)
	if txt := consoletest.BodyText(t, ctx); !strings.Contains(txt, "That token was not accepted.") || strings.Contains(txt, tn.TenantID) {
		t.Fatalf("after a wrong token:\n%s", txt)
	}
	consoletest.Run(t, ctx, "sign in with the admin token",
		chromedp.SendKeys(chromedp.ID("token"), sys.adminToken),
		consoletest.Navigates(chromedp.Click(chromedp.ID("signin"))),
		consoletest.WaitURL("/console/tenants"),
		chromedp.WaitVisible(chromedp.CSS("table.tenants")),
		consoletest.Shot(t, "e2e-console-tenants"),
	)
	signedIn := time.Now()
	if txt := consoletest.BodyText(t, ctx); !strings.Contains(txt, tn.TenantID) || !strings.Contains(txt, other.TenantID) {
		t.Fatalf("the tenants page does not list both tenants:\n%s", txt)
	}
	consoletest.Run(t, ctx, "find the dead letter by its tenant",
		consoletest.Navigates(chromedp.Click(chromedp.CSS(`a[href="/console/dlq"]`))),
		consoletest.WaitURL("/console/dlq"),
		chromedp.SendKeys(chromedp.ID("tenant"), tn.TenantID),
		consoletest.Navigates(chromedp.Click(chromedp.ID("filter"))),
		consoletest.WaitURL("tenant="+tn.TenantID),
		chromedp.WaitVisible(chromedp.CSS("table.dlq")),
		consoletest.Shot(t, "e2e-console-dlq"),
	)
	rows := consoletest.Get(t, ctx, "read the dead letters", chromedp.Evaluate[[]string](
		`[...document.querySelectorAll("table.dlq tbody tr")].map(r => r.innerText)`))
	if len(rows) != 1 || !strings.Contains(rows[0], id) || !strings.Contains(rows[0], "max deliveries") || !strings.Contains(rows[0], "503") {
		t.Fatalf("filtered by %s the dead letters are %q", tn.TenantID, rows)
	}

	target.fix()
	consoletest.Run(t, ctx, "replay it",
		consoletest.Navigates(chromedp.Click(chromedp.CSS("table.dlq tbody tr button[id^=replay-]"))),
		consoletest.WaitURL("/console/dlq/replay"),
		chromedp.WaitVisible(chromedp.ID("replay-result")),
		consoletest.Shot(t, "e2e-console-replayed"),
	)
	if res := consoletest.Get(t, ctx, "read the result", chromedp.Text(chromedp.ID("replay-result"))); !strings.Contains(res, "Replayed 1 dead letter.") {
		t.Fatalf("the replay result says %q", res)
	}
	waitUntil(t, 20*time.Second, "event "+id+" delivered after the replay", func() bool { return status(tn.APIKey, id) == "delivered" })
	failed, delivered, badSigs := target.got()
	if len(delivered) != 1 || delivered[0] != id || badSigs != 0 {
		t.Fatalf("the target got %v signed and %d badly signed, want %s once", delivered, badSigs, id)
	}
	for _, f := range failed {
		if f != id && f != otherID {
			t.Errorf("a failed attempt carried webhook-id %s, neither event's", f)
		}
	}
	if !strings.Contains(strings.Join(failed, ","), id) {
		t.Errorf("the failed attempts %v did not carry %s: the replay changed the webhook-id", failed, id)
	}
	if status(other.APIKey, otherID) != "failed" {
		t.Error("the other tenant's dead letter was replayed too")
	}
	consoletest.Run(t, ctx, "the mesh",
		consoletest.Navigates(chromedp.Click(chromedp.CSS(`a[href="/console/mesh"]`))),
		consoletest.WaitURL("/console/mesh"),
		chromedp.WaitVisible(chromedp.CSS("table.consumers")),
		consoletest.Shot(t, "e2e-console-mesh"),
	)
	if rows := consoletest.Get(t, ctx, "read the consumers", chromedp.Evaluate[[]string](
		`[...document.querySelectorAll("table.consumers tbody tr")].map(r => r.innerText)`)); len(rows) != 2 ||
		!strings.HasPrefix(rows[0], "EVENTS\tdeliver") || !strings.HasPrefix(rows[1], "DLQ\tdlq") {
		t.Errorf("the mesh page's consumers: %q", rows)
	}
	consoletest.Run(t, ctx, "the rates",
		consoletest.Navigates(chromedp.Click(chromedp.CSS(`a[href="/console/rates"]`))),
		consoletest.WaitURL("/console/rates"),
		chromedp.WaitVisible(chromedp.CSS("figure.chart")),
		consoletest.Shot(t, "e2e-console-rates"),
	)

	// The session ends after its TTL: the next page is the sign-in page. (The browser
	// drops the cookie then; the admin package's tests show the server refuses it too.)
	time.Sleep(time.Until(signedIn.Add(sessionTTL)))
	deadline := time.Now().Add(10 * time.Second)
	for {
		consoletest.Run(t, ctx, "reload the dead letters", chromedp.Navigate(base+"dlq"))
		if loc := consoletest.Get(t, ctx, "read the URL", chromedp.Location()); strings.Contains(loc, "/console/signin") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the session still opens the console %s after its TTL", 10*time.Second)
		}
		time.Sleep(200 * time.Millisecond)
	}
	consoletest.Run(t, ctx, "the expired session", consoletest.Shot(t, "e2e-console-expired"))
	if txt := consoletest.BodyText(t, ctx); !strings.Contains(txt, "Admin token") || strings.Contains(txt, tn.TenantID) {
		t.Errorf("after expiry the browser shows:\n%s", txt)
	}
}
