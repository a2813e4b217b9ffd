package console

import (
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/edgehook/edgehook/console/consoletest"
)

// The browser tests drive Debian's headless Chromium with chromedp (consoletest)
// against the consoles on a real HTTP server, and write a screenshot of each page into
// the ignored shots folder (consoletest.ShotsDir).

func TestBrowserTenantReplaysAFailedEvent(t *testing.T) {
	ts := startServer(t, Config{}, fixture())
	ctx := consoletest.NewBrowser(t)

	consoletest.Run(t, ctx, "open the portal",
		chromedp.Navigate(ts.URL+"/portal/"),
		consoletest.WaitURL("/portal/signin"),
		chromedp.WaitVisible(chromedp.ID("key")),
		consoletest.Shot(t, "portal-signin"),
	)
	consoletest.Run(t, ctx, "sign in",
		chromedp.SendKeys(chromedp.ID("key"), keyManageA),
		consoletest.Navigates(chromedp.Click(chromedp.ID("signin"))),
		consoletest.WaitURL("/portal/events"),
		chromedp.WaitVisible(chromedp.CSS("table.events")),
	)
	consoletest.Run(t, ctx, "filter by failed",
		chromedp.SetValue(chromedp.ID("status"), "failed"),
		consoletest.Navigates(chromedp.Click(chromedp.ID("filter"))),
		consoletest.WaitURL("status=failed"),
		chromedp.WaitVisible(chromedp.CSS("table.events")),
		consoletest.Shot(t, "portal-events"),
	)
	statuses := consoletest.Get(t, ctx, "read the statuses", chromedp.Evaluate[[]string](
		`[...document.querySelectorAll("table.events .status")].map(e => e.textContent)`))
	if len(statuses) != 2 || statuses[0] != "failed" || statuses[1] != "failed" {
		t.Fatalf("the failed filter lists %q", statuses)
	}
	id := consoletest.Get(t, ctx, "read the newest failed event", chromedp.Text(chromedp.CSS("table.events a.event-link")))
	consoletest.Run(t, ctx, "open the newest failed event",
		consoletest.Navigates(chromedp.Click(chromedp.CSS("table.events a.event-link"))),
		consoletest.WaitURL("/portal/events/evt_"),
		chromedp.WaitVisible(chromedp.CSS("table.attempts")),
		consoletest.Shot(t, "portal-event"),
	)
	attempts := consoletest.Get(t, ctx, "read the attempt log", chromedp.Evaluate[[]string](
		`[...document.querySelectorAll("table.attempts tbody tr")].map(r => r.innerText)`))
	if len(attempts) != 3 || !strings.Contains(attempts[0], "503") || !strings.Contains(attempts[0], "upstream down for maintenance") || !strings.Contains(attempts[0], "ms") {
		t.Fatalf("attempt log of %s: %q", id, attempts)
	}
	consoletest.Run(t, ctx, "press replay",
		consoletest.Navigates(chromedp.Click(chromedp.ID("replay"))),
		consoletest.WaitURL("done=replayed"),
	)
	status := consoletest.Get(t, ctx, "read the status", chromedp.Text(chromedp.ID("event-status")))
	if status != "delivered" {
		t.Fatalf("after replay %s shows %q, want delivered", id, status)
	}
	if ts.src.status("t_alpha", id) != StatusDelivered {
		t.Fatalf("the source did not receive the replay of %s", id)
	}
	if txt := consoletest.BodyText(t, ctx); !strings.Contains(txt, "Replay queued.") {
		t.Errorf("no confirmation after replay:\n%s", txt)
	}
	consoletest.Run(t, ctx, "the endpoint",
		consoletest.Navigates(chromedp.Click(chromedp.CSS(`a[href="/portal/endpoint"]`))),
		consoletest.WaitURL("/portal/endpoint"),
		chromedp.WaitVisible(chromedp.CSS("figure.chart svg")),
		consoletest.Shot(t, "portal-endpoint"),
	)
	consoletest.Run(t, ctx, "rotate the secret",
		consoletest.Navigates(chromedp.Click(chromedp.ID("rotate"))),
		consoletest.WaitURL("/portal/endpoint/rotate-secret"),
		consoletest.Shot(t, "portal-rotated"),
	)
	secret := consoletest.Get(t, ctx, "read the new secret", chromedp.Text(chromedp.ID("new-secret")))
	expiry := consoletest.Get(t, ctx, "read the old expiry", chromedp.Text(chromedp.ID("old-expiry")))
	if secret != "whsec_rotated0001" || expiry == "" || expiry == "—" {
		t.Errorf("rotation shows secret %q, old expiry %q", secret, expiry)
	}
}

func TestBrowserOperatorReplaysADeadLetter(t *testing.T) {
	ts := startServer(t, Config{}, fixture())
	ctx := consoletest.NewBrowser(t)
	consoletest.Run(t, ctx, "sign in to the console",
		chromedp.Navigate(ts.URL+"/console/"),
		consoletest.WaitURL("/console/signin"),
		consoletest.Shot(t, "console-signin"),
		chromedp.SendKeys(chromedp.ID("token"), adminToken),
		consoletest.Navigates(chromedp.Click(chromedp.ID("signin"))),
		consoletest.WaitURL("/console/tenants"),
		chromedp.WaitVisible(chromedp.CSS("table.tenants")),
		consoletest.Shot(t, "console-tenants"),
	)
	consoletest.Run(t, ctx, "filter the dead letters",
		consoletest.Navigates(chromedp.Click(chromedp.CSS(`a[href="/console/dlq"]`))),
		consoletest.WaitURL("/console/dlq"),
		chromedp.SendKeys(chromedp.ID("tenant"), "t_alpha"),
		chromedp.SendKeys(chromedp.ID("reason"), "max_deliveries"),
		consoletest.Navigates(chromedp.Click(chromedp.ID("filter"))),
		consoletest.WaitURL("reason=max_deliveries"),
		chromedp.WaitVisible(chromedp.CSS("table.dlq")),
	)
	listed := consoletest.Get(t, ctx, "read the list", chromedp.Evaluate[[]string](
		`[...document.querySelectorAll("table.dlq tbody tr td:nth-child(2)")].map(e => e.textContent)`))
	if strings.Join(listed, ",") != "dlq_0003,dlq_0001" {
		t.Fatalf("the filtered dead letters are %q", listed)
	}
	consoletest.Run(t, ctx, "replay one with its row's button",
		consoletest.Navigates(chromedp.Click(chromedp.ID("replay-dlq_0001"))),
		consoletest.WaitURL("/console/dlq/replay"),
	)
	result := consoletest.Get(t, ctx, "read the result", chromedp.Text(chromedp.ID("replay-result")))
	if !strings.Contains(result, "Replayed 1 dead letter.") {
		t.Errorf("the result says %q", result)
	}
	if got := ts.src.replayedDeadLetters(); len(got) != 1 || got[0] != "dlq_0001" {
		t.Fatalf("the source replayed %q, want dlq_0001", got)
	}
	listed = consoletest.Get(t, ctx, "read the list", chromedp.Evaluate[[]string](
		`[...document.querySelectorAll("table.dlq tbody tr td:nth-child(2)")].map(e => e.textContent)`))
	if strings.Join(listed, ",") != "dlq_0003,dlq_0002" {
		t.Errorf("after the replay the list is %q", listed)
	}
	consoletest.Run(t, ctx, "replay a selection",
		chromedp.Click(chromedp.ID("pick-dlq_0003")),
		chromedp.Click(chromedp.ID("pick-dlq_0002")),
		consoletest.Shot(t, "console-dlq"),
		consoletest.Navigates(chromedp.Click(chromedp.ID("replay-selected"))),
		consoletest.WaitURL("/console/dlq/replay"),
	)
	result = consoletest.Get(t, ctx, "read the result", chromedp.Text(chromedp.ID("replay-result")))
	if !strings.Contains(result, "Replayed 2 dead letters.") {
		t.Errorf("the result says %q", result)
	}
	if got := ts.src.replayedDeadLetters(); strings.Join(got, ",") != "dlq_0001,dlq_0003,dlq_0002" {
		t.Fatalf("the source replayed %q", got)
	}
	if txt := consoletest.BodyText(t, ctx); !strings.Contains(txt, "No dead letters match.") {
		t.Errorf("after replaying all, the page shows:\n%s", txt)
	}
	consoletest.Run(t, ctx, "the mesh",
		consoletest.Navigates(chromedp.Click(chromedp.CSS(`a[href="/console/mesh"]`))),
		consoletest.WaitURL("/console/mesh"),
		chromedp.WaitVisible(chromedp.CSS("table.edges")),
		consoletest.Shot(t, "console-mesh"),
	)
	if txt := consoletest.BodyText(t, ctx); !strings.Contains(txt, "edge-b") || !strings.Contains(txt, "1432") {
		t.Errorf("the mesh page:\n%s", txt)
	}
	consoletest.Run(t, ctx, "the rates",
		consoletest.Navigates(chromedp.Click(chromedp.CSS(`a[href="/console/rates"]`))),
		consoletest.WaitURL("/console/rates"),
		chromedp.WaitVisible(chromedp.CSS("figure.chart svg")),
		consoletest.Shot(t, "console-rates"),
	)
	charts := consoletest.Get(t, ctx, "count the charts", chromedp.Evaluate[int](`document.querySelectorAll("figure.chart svg polyline").length`))
	if charts != 3 {
		t.Errorf("the rates page draws %d charts, want 3", charts)
	}
}

func TestBrowserWrongKeyAndExpiredSessionAreRefused(t *testing.T) {
	ts := startServer(t, Config{SessionTTL: 2 * time.Second}, fixture())
	ctx := consoletest.NewBrowser(t)
	consoletest.Run(t, ctx, "sign in with a wrong key",
		chromedp.Navigate(ts.URL+"/portal/signin"),
		chromedp.WaitVisible(chromedp.ID("key")),
		chromedp.SendKeys(chromedp.ID("key"), "ehk_wrong_key"),
		consoletest.Navigates(chromedp.Click(chromedp.ID("signin"))),
		chromedp.WaitVisible(chromedp.CSS(".flash")),
		consoletest.Shot(t, "portal-wrong-key"),
	)
	if txt := consoletest.BodyText(t, ctx); !strings.Contains(txt, "That key was not accepted.") || strings.Contains(txt, "evt_a") {
		t.Fatalf("after a wrong key:\n%s", txt)
	}
	consoletest.Run(t, ctx, "then the right key",
		chromedp.Navigate(ts.URL+"/portal/signin"),
		chromedp.WaitVisible(chromedp.ID("key")),
		chromedp.SendKeys(chromedp.ID("key"), keyManageA),
		consoletest.Navigates(chromedp.Click(chromedp.ID("signin"))),
		consoletest.WaitURL("/portal/events"),
		chromedp.WaitVisible(chromedp.CSS("table.events")),
	)
	deadline := time.Now().Add(15 * time.Second)
	for {
		consoletest.Run(t, ctx, "reload the events", chromedp.Navigate(ts.URL+"/portal/events"))
		loc := consoletest.Get(t, ctx, "read the URL", chromedp.Location())
		if strings.Contains(loc, "/portal/signin") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the session still opens the events page after %s", 15*time.Second)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if txt := consoletest.BodyText(t, ctx); strings.Contains(txt, "evt_a") || !strings.Contains(txt, "API key") {
		t.Errorf("after expiry the browser shows:\n%s", txt)
	}
}

// hostile is markup a tenant (or a tenant's endpoint) controls, in every field a page
// shows. Were any of it rendered as markup, an element would appear in the DOM.
const (
	hostileType    = `<script>window.__pwned=1</script>order.created`
	hostilePayload = `{"note":"<img src=x onerror=window.__pwned=1>"}`
	// hostilePayloadShown is the payload as the page indents it.
	hostilePayloadShown = `"note": "<img src=x onerror=window.__pwned=1>"`
	hostileBody         = `</pre><script>window.__pwned=1</script><svg onload="window.__pwned=1"></svg>`
	hostileError        = `<b onmouseover="window.__pwned=1">boom</b>`
	hostileURL          = `https://x.example/"><script>window.__pwned=1</script>`
	hostileQuery        = `"><script>window.__pwned=1</script>`
)

func hostileSource() *memSource {
	src := fixture()
	now := time.Now()
	src.addEvent("t_alpha", Event{EventSummary: EventSummary{ID: "evt_hostile", Type: hostileType, Status: StatusFailed,
		Attempts: 1, LastStatusCode: 500, CreatedAt: now, UpdatedAt: now}, Payload: []byte(hostilePayload), LastError: hostileError},
		Attempt{N: 1, At: now, StatusCode: 500, Latency: 40 * time.Millisecond, Error: hostileError, ResponseBody: hostileBody})
	ep := src.endpoints["t_alpha"]
	ep.TargetURL = hostileURL
	src.endpoints["t_alpha"] = ep
	src.tenants = append(src.tenants, Tenant{ID: "t_hostile", TargetURL: hostileURL, Plan: hostileType, Status: TenantActive, CreatedAt: now})
	src.deadLetters = append([]DeadLetter{{ID: "dlq_hostile", TenantID: "t_hostile", EventID: "evt_hostile", Type: hostileType,
		Reason: "max_deliveries", Attempts: 8, LastError: hostileError, At: now}}, src.deadLetters...)
	return src
}

func TestBrowserRendersTenantMarkupInert(t *testing.T) {
	ts := startServer(t, Config{}, hostileSource())
	ctx := consoletest.NewBrowser(t)
	consoletest.Run(t, ctx, "sign in to both",
		chromedp.Navigate(ts.URL+"/portal/signin"),
		chromedp.WaitVisible(chromedp.ID("key")),
		chromedp.SendKeys(chromedp.ID("key"), keyManageA),
		consoletest.Navigates(chromedp.Click(chromedp.ID("signin"))),
		consoletest.WaitURL("/portal/events"),
		chromedp.Navigate(ts.URL+"/console/signin"),
		chromedp.WaitVisible(chromedp.ID("token")),
		chromedp.SendKeys(chromedp.ID("token"), adminToken),
		consoletest.Navigates(chromedp.Click(chromedp.ID("signin"))),
		consoletest.WaitURL("/console/tenants"),
	)
	pages := []struct {
		path     string
		literals []string
	}{
		{"/portal/events", []string{hostileType}},
		{"/portal/events?type=" + urlQuery(hostileQuery), []string{"No events match."}},
		{"/portal/events/evt_hostile", []string{hostileType, hostilePayloadShown, hostileBody, hostileError}},
		{"/portal/endpoint", []string{hostileURL}},
		{"/console/tenants", []string{hostileURL, hostileType}},
		{"/console/tenants?q=" + urlQuery(hostileQuery), []string{"t_hostile", hostileURL}},
		{"/console/dlq", []string{hostileType, hostileError}},
	}
	for _, p := range pages {
		consoletest.Run(t, ctx, "open "+p.path, chromedp.Navigate(ts.URL+p.path), chromedp.WaitReady(chromedp.CSS("main")))
		pwned := consoletest.Get(t, ctx, "read __pwned", chromedp.Evaluate[string](`typeof window.__pwned`))
		injected := consoletest.Get(t, ctx, "count injected elements", chromedp.Evaluate[int](
			`document.querySelectorAll("script, img, iframe, b, [onerror], [onload], [onmouseover]").length`))
		text := consoletest.Get(t, ctx, "read the page", chromedp.Evaluate[string](`document.querySelector("main").innerText`))
		if pwned != "undefined" {
			t.Errorf("%s: window.__pwned is %s", p.path, pwned)
		}
		if injected != 0 {
			t.Errorf("%s: %d elements or handlers came from tenant text", p.path, injected)
		}
		for _, lit := range p.literals {
			if !strings.Contains(text, lit) {
				t.Errorf("%s does not show %q literally:\n%s", p.path, lit, text)
			}
		}
		if strings.Contains(p.path, "?") {
			typed := consoletest.Get(t, ctx, "read the reflected filter", chromedp.Evaluate[string](`document.querySelector("form.filters input:not([type=hidden])").value`))
			if typed != hostileQuery {
				t.Errorf("%s: the filter box holds %q, want the query as typed", p.path, typed)
			}
		}
	}
	consoletest.Run(t, ctx, "screenshot the hostile event", chromedp.Navigate(ts.URL+"/portal/events/evt_hostile"), chromedp.WaitReady(chromedp.CSS("main")), consoletest.Shot(t, "portal-event-escaped"))
}

func urlQuery(s string) string {
	return strings.NewReplacer("%", "%25", "&", "%26", "#", "%23", "+", "%2B", " ", "%20", `"`, "%22", "<", "%3C", ">", "%3E").Replace(s)
}
