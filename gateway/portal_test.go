package gateway_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/edgehook/edgehook/console/consoletest"
	"github.com/edgehook/edgehook/gateway"
	"github.com/edgehook/edgehook/identity"
	"github.com/edgehook/edgehook/natsconf"
	"github.com/edgehook/edgehook/status"
)

// setStatus writes an event's status record as a worker would after its attempts.
func (e *env) setStatus(tenantID, eventID, st string, code int) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	rec, err := e.status.Get(ctx, tenantID, eventID)
	if err != nil {
		e.t.Fatal(err)
	}
	rec.Status, rec.Attempts, rec.LastStatusCode, rec.UpdatedAt = st, 1, code, time.Now().UTC()
	m, err := status.AttemptMsg(status.Attempt{TenantID: tenantID, EventID: eventID, N: 1, Attempt: 1, At: rec.UpdatedAt,
		Outcome: status.OutcomeFailed, StatusCode: code, LatencyMs: 12, Error: "HTTP 503", ResponseBody: "upstream down"})
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.js.PublishMsg(ctx, m); err != nil {
		e.t.Fatal(err)
	}
	if err := e.status.Put(ctx, rec); err != nil {
		e.t.Fatal(err)
	}
}

// waitPage reloads path until its body contains want.
func waitPage(t *testing.T, c *consoletest.Client, path, want string) consoletest.Page {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		p := c.Get(path)
		if p.Status == http.StatusOK && strings.Contains(p.Body, want) {
			return p
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s: %d, no %q in\n%s", path, p.Status, want, p.Body)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestPortalShowsATenantItsOwnEventsOnly(t *testing.T) {
	e := start(t, options{})
	a := e.createTenant(`{"targetUrl":"https://alpha.example/hook"}`)
	b := e.createTenant(`{"targetUrl":"https://beta.example/hook"}`)
	var ids []string
	for range 3 {
		id, _ := e.ingest(a.APIKey, `{"type":"order.created","n":1}`)
		ids = append(ids, id)
	}
	secret, _ := e.ingest(b.APIKey, `{"type":"beta.private"}`)
	e.setStatus(a.TenantID, ids[0], status.Failed, 503)

	c := consoletest.NewClient(t, e.base)
	c.MustSignIn("/portal/", "key", a.APIKey, "events")
	list := waitPage(t, c, "/portal/events", ids[2])
	for _, id := range ids {
		if !strings.Contains(list.Body, id) {
			t.Errorf("the events page lacks %s", id)
		}
	}
	if strings.Contains(list.Body, secret) || strings.Contains(list.Body, "beta.private") {
		t.Errorf("tenant a's events page shows tenant b's event")
	}
	if i0, i2 := strings.Index(list.Body, ids[0]), strings.Index(list.Body, ids[2]); i2 > i0 {
		t.Errorf("the newest event is not listed first")
	}
	failed := waitPage(t, c, "/portal/events?status=failed", ids[0])
	if strings.Contains(failed.Body, ids[1]) || strings.Contains(failed.Body, ids[2]) {
		t.Errorf("the failed filter lists queued events")
	}
	if p := c.Get("/portal/events?cursor=bm90LWEtY3Vyc29y"); p.Status != http.StatusBadRequest || !strings.Contains(p.Body, "not valid") {
		t.Errorf("a forged cursor: %d\n%s", p.Status, p.Body)
	}

	if p := c.Get("/portal/events/" + secret); p.Status != http.StatusNotFound || strings.Contains(p.Body, "beta.private") {
		t.Errorf("tenant b's event through tenant a's session: %d\n%s", p.Status, p.Body)
	}
	ev := c.Get("/portal/events/" + ids[0])
	if ev.Status != http.StatusOK || !strings.Contains(ev.Body, "503") || !strings.Contains(ev.Body, "upstream down") || !strings.Contains(ev.Body, "order.created") {
		t.Fatalf("event page: %d\n%s", ev.Status, ev.Body)
	}
	csrf := consoletest.CSRF(t, ev)
	if p := c.Post("/portal/events/"+secret+"/replay", url.Values{"csrf": {csrf}}); p.Status != http.StatusNotFound {
		t.Errorf("replaying tenant b's event: %d", p.Status)
	}
	if p := c.Post("/portal/events/"+ids[1]+"/replay", url.Values{"csrf": {csrf}}); p.Status != http.StatusConflict {
		t.Errorf("replaying a queued event: %d", p.Status)
	}
	if p := c.Post("/portal/events/"+ids[0]+"/replay", url.Values{"csrf": {csrf}}); p.Status != http.StatusSeeOther {
		t.Fatalf("replay: %d\n%s", p.Status, p.Body)
	}
	if n, m := len(e.replayRequests(a.TenantID)), len(e.replayRequests(b.TenantID)); n != 1 || m != 0 {
		t.Errorf("replay requests stored: tenant a %d, tenant b %d; want 1 and 0", n, m)
	}

	// A read-scoped key reads the same pages and may not replay.
	r := e.do("POST", "/v1/tenants/"+a.TenantID+"/keys", testAdminToken, `{"name":"read only","scopes":["read"]}`)
	if r.code != http.StatusCreated {
		t.Fatalf("create a read key: %d %s", r.code, r.body)
	}
	ro := consoletest.NewClient(t, e.base)
	ro.MustSignIn("/portal/", "key", r.json(t)["apiKey"].(string), "events")
	roEv := waitPage(t, ro, "/portal/events/"+ids[0], "503")
	if strings.Contains(roEv.Body, `id="replay"`) {
		t.Errorf("a read-scoped key is offered the replay button")
	}
	if p := ro.Post("/portal/events/"+ids[0]+"/replay", url.Values{"csrf": {consoletest.CSRF(t, roEv)}}); p.Status != http.StatusForbidden {
		t.Errorf("a read-scoped key replays: %d", p.Status)
	}

	ep := c.Get("/portal/endpoint")
	if ep.Status != http.StatusOK || !strings.Contains(ep.Body, "https://alpha.example/hook") || !strings.Contains(ep.Body, "closed") {
		t.Fatalf("endpoint page: %d\n%s", ep.Status, ep.Body)
	}
	if strings.Contains(ep.Body, a.WebhookSecret) || strings.Contains(ep.Body, "beta.example") {
		t.Errorf("the endpoint page shows a secret or another tenant's endpoint")
	}
	rot := c.Post("/portal/endpoint/rotate-secret", url.Values{"csrf": {consoletest.CSRF(t, ep)}})
	if rot.Status != http.StatusOK || !strings.Contains(rot.Body, "whsec_") || strings.Contains(rot.Body, a.WebhookSecret) {
		t.Fatalf("rotation page: %d\n%s", rot.Status, rot.Body)
	}
	if ep := c.Get("/portal/endpoint"); !strings.Contains(ep.Body, "Previous secret expires") || strings.Contains(ep.Body, "whsec_") {
		t.Errorf("after rotation the endpoint page shows:\n%s", ep.Body)
	}
	for _, l := range []string{a.APIKey, a.WebhookSecret} {
		if strings.Contains(e.logs.String(), l) {
			t.Errorf("a credential appears in the logs")
		}
	}

	// Suspension takes effect at the next click.
	if r := e.do("PATCH", "/v1/tenants/"+a.TenantID, testAdminToken, `{"status":"suspended"}`); r.code != http.StatusOK {
		t.Fatalf("suspend: %d %s", r.code, r.body)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		p := c.Get("/portal/events")
		if p.Status == http.StatusUnauthorized {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a suspended tenant still reads its events: %d", p.Status)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if p := consoletest.NewClient(t, e.base).SignIn("/portal/", "key", a.APIKey); p.Status != http.StatusForbidden {
		t.Errorf("a suspended tenant signs in: %d", p.Status)
	}
	if p := consoletest.NewClient(t, e.base).SignIn("/portal/", "key", "ehk_not_a_key"); p.Status != http.StatusUnauthorized {
		t.Errorf("a wrong key signs in: %d", p.Status)
	}
}

func TestPortalIsMountedBesideTheAPI(t *testing.T) {
	e := start(t, options{})
	c := consoletest.NewClient(t, e.base)
	if p := c.Get("/portal"); p.Status != http.StatusMovedPermanently || !strings.HasSuffix(p.Header.Get("Location"), "/portal/") {
		t.Errorf("GET /portal: %d Location %q", p.Status, p.Header.Get("Location"))
	}
	if p := c.Get("/portal/"); p.Status != http.StatusSeeOther || p.Header.Get("Location") != "/portal/signin" {
		t.Errorf("GET /portal/: %d Location %q", p.Status, p.Header.Get("Location"))
	}
	if r := e.do("GET", "/healthz", "", ""); r.code != http.StatusOK {
		t.Errorf("GET /healthz: %d", r.code)
	}
	if r := e.do("GET", "/v1/events/evt_x", "", ""); r.code != http.StatusUnauthorized {
		t.Errorf("the API without a key: %d", r.code)
	}
}

// TestEdgePortalListsTheHubsStatusesLive: an edge gateway's portal lists the tenant's
// events from the hub's status bucket, watched through the hub's JetStream domain
// across the leaf link; through a cut it keeps showing what it had, and after the
// heal it follows the hub again.
func TestEdgePortalListsTheHubsStatusesLive(t *testing.T) {
	e := startEdge(t)
	ctx := context.Background()
	key, tn := e.hubTenant("ten_edge")
	put := func(id, st string) {
		t.Helper()
		now := time.Now().UTC()
		if err := e.hubStat.Put(ctx, status.Record{EventID: id, TenantID: tn.TenantID, Type: "order.created", Status: st, Attempts: 1, CreatedAt: now, UpdatedAt: now}); err != nil {
			t.Fatal(err)
		}
	}
	put("evt_hub1", status.Failed)
	c := consoletest.NewClient(t, e.base)
	e.eventually(10*time.Second, "the edge's identity mirror knows the key", func() bool {
		return c.SignIn("/portal/", "key", key).Status == http.StatusSeeOther
	})
	waitPage(t, c, "/portal/events", "evt_hub1")
	put("evt_hub2", status.Delivered)
	waitPage(t, c, "/portal/events", "evt_hub2")
	if p := c.Get("/portal/events/evt_hub1"); p.Status != http.StatusOK || !strings.Contains(p.Body, "failed") {
		t.Errorf("an event page at the edge: %d\n%s", p.Status, p.Body)
	}

	e.link.Cut()
	if p := c.Get("/portal/events"); p.Status != http.StatusOK || !strings.Contains(p.Body, "evt_hub2") {
		t.Errorf("during the cut the list: %d\n%s", p.Status, p.Body)
	}
	e.link.Heal()
	put("evt_hub3", status.Queued)
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(c.Get("/portal/events").Body, "evt_hub3") {
		if time.Now().After(deadline) {
			t.Fatal("30s after the heal the edge's portal does not list an event the hub recorded")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestPortalShowsTheBreakerOpenWhileEventsAreParked(t *testing.T) {
	e := start(t, options{})
	a := e.createTenant(`{"targetUrl":"https://alpha.example/hook"}`)
	b := e.createTenant(`{"targetUrl":"https://beta.example/hook"}`)
	c := consoletest.NewClient(t, e.base)
	c.MustSignIn("/portal/", "key", a.APIKey, "events")
	if p := c.Get("/portal/endpoint"); !strings.Contains(p.Body, "breaker-closed") {
		t.Fatalf("no parked copies, the breaker shows:\n%s", p.Body)
	}
	// Another tenant's parked copy does not open this tenant's breaker; its own does.
	park := func(tenantID string) {
		t.Helper()
		m := nats.NewMsg(natsconf.ParkedSubject("0123456789abcdef", tenantID, "evt_parked"))
		m.Data = []byte(`{}`)
		if _, err := e.js.PublishMsg(context.Background(), m); err != nil {
			t.Fatal(err)
		}
	}
	park(b.TenantID)
	if p := c.Get("/portal/endpoint"); !strings.Contains(p.Body, "breaker-closed") {
		t.Errorf("another tenant's parked copy opens the breaker:\n%s", p.Body)
	}
	park(a.TenantID)
	if p := c.Get("/portal/endpoint"); !strings.Contains(p.Body, "breaker-open") {
		t.Errorf("with a parked copy the breaker shows:\n%s", p.Body)
	}
}

func TestPortalSaysWhenOlderEventsAreNotListed(t *testing.T) {
	e := start(t, options{cfg: gateway.Config{Portal: gateway.PortalConfig{Index: status.IndexConfig{MaxEvents: 2}}}})
	a := e.createTenant(`{"targetUrl":"https://alpha.example/hook"}`)
	var ids []string
	for range 3 {
		id, _ := e.ingest(a.APIKey, `{"type":"t"}`)
		ids = append(ids, id)
	}
	c := consoletest.NewClient(t, e.base)
	c.MustSignIn("/portal/", "key", a.APIKey, "events")
	p := waitPage(t, c, "/portal/events", "Older events are not listed")
	if !strings.Contains(p.Body, ids[2]) || !strings.Contains(p.Body, ids[1]) || strings.Contains(p.Body, ids[0]) {
		t.Errorf("with room for 2 events the list shows:\n%s", p.Body)
	}
	if ev := c.Get("/portal/events/" + ids[0]); ev.Status != http.StatusOK {
		t.Errorf("an event older than the index is not readable by id: %d", ev.Status)
	}
}

func TestPortalSaysSoWhenNoAdminAPIAnswers(t *testing.T) {
	e := start(t, options{noAdmin: true, cfg: gateway.Config{AdminTimeout: 200 * time.Millisecond}})
	key, hash, err := identity.NewAPIKey()
	if err != nil {
		t.Fatal(err)
	}
	if err := e.identity.Create(context.Background(), identity.Tenant{TenantID: "ten_alone", Status: identity.StatusActive, Plan: "free", CreatedAt: time.Now().UTC()}, hash); err != nil {
		t.Fatal(err)
	}
	c := consoletest.NewClient(t, e.base)
	e.eventually(5*time.Second, "the view knows the key", func() bool { return c.SignIn("/portal/", "key", key).Status == http.StatusSeeOther })
	if p := c.Get("/portal/events"); p.Status != http.StatusOK {
		t.Errorf("the events page needs no admin API: %d", p.Status)
	}
	if p := c.Get("/portal/endpoint"); p.Status != http.StatusServiceUnavailable || !strings.Contains(p.Body, "did not answer in time") {
		t.Errorf("the endpoint page without an admin API: %d\n%s", p.Status, p.Body)
	}
}
