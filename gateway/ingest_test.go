package gateway_test

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/edgehook/edgehook/natsconf"
	"github.com/edgehook/edgehook/status"
)

// TestIngestDurable: a 202'd event is in EVENTS with the body and headers the worker
// relies on, and its queued status is readable.
func TestIngestDurable(t *testing.T) {
	e := start(t, options{})
	c := e.createTenant(`{"targetUrl":"http://127.0.0.1:9/hook"}`)
	body := `{"type":"order.created","order":{"id":17,"total":"9.99"}}`
	before := time.Now()
	id, r := e.ingest(c.APIKey, body)
	after := time.Now()
	if r.header.Get("Idempotent-Replayed") != "" {
		t.Errorf("first publish marked as replay")
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := e.js.Stream(ctx, natsconf.StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := st.GetLastMsgForSubject(ctx, natsconf.EventSubject(c.TenantID))
	if err != nil {
		t.Fatalf("the accepted event is not in EVENTS: %v", err)
	}
	if string(msg.Data) != body {
		t.Errorf("stored body %q, want %q", msg.Data, body)
	}
	for h, want := range map[string]string{
		natsconf.HeaderEventID:   id,
		natsconf.HeaderTenant:    c.TenantID,
		natsconf.HeaderEventType: "order.created",
		jetstream.MsgIDHeader:    "",
	} {
		if got := msg.Header.Get(h); got != want {
			t.Errorf("header %s = %q, want %q", h, got, want)
		}
	}
	ns, err := strconv.ParseInt(msg.Header.Get(natsconf.HeaderIngestTime), 10, 64)
	if err != nil || ns < before.UnixNano() || ns > after.UnixNano() {
		t.Errorf("ingest time %q not within the request (%v)", msg.Header.Get(natsconf.HeaderIngestTime), err)
	}

	got := e.do("GET", "/v1/events/"+id, c.APIKey, "")
	if got.code != http.StatusOK {
		t.Fatalf("GET event: %d %s", got.code, got.body)
	}
	m := got.json(t)
	for k, want := range map[string]any{"eventId": id, "status": "queued", "attempts": 0.0, "lastStatusCode": 0.0, "lastError": "", "type": "order.created"} {
		if m[k] != want {
			t.Errorf("%s = %#v, want %#v (body %s)", k, m[k], want, got.body)
		}
	}
	for _, k := range []string{"createdAt", "updatedAt"} {
		if ts, _ := m[k].(string); ts == "" {
			t.Errorf("%s missing in %s", k, got.body)
		}
	}

	// An event without a type field gets an empty type header.
	id2, _ := e.ingest(c.APIKey, `{"n":1}`)
	msg, err = st.GetLastMsgForSubject(ctx, natsconf.EventSubject(c.TenantID))
	if err != nil {
		t.Fatal(err)
	}
	if msg.Header.Get(natsconf.HeaderEventID) != id2 || msg.Header.Get(natsconf.HeaderEventType) != "" {
		t.Errorf("untyped event headers: %v", msg.Header)
	}
}

// TestIdempotency: the same Idempotency-Key twice gives the same event id and one
// stored message; keys are scoped per tenant.
func TestIdempotency(t *testing.T) {
	e := start(t, options{})
	a := e.createTenant(`{"targetUrl":"http://127.0.0.1:9/a"}`)
	b := e.createTenant(`{"targetUrl":"http://127.0.0.1:9/b"}`)

	id1, r1 := e.ingest(a.APIKey, `{"type":"x","n":1}`, "Idempotency-Key", "order-17")
	id2, r2 := e.ingest(a.APIKey, `{"type":"x","n":1}`, "Idempotency-Key", "order-17")
	if id1 != id2 {
		t.Fatalf("same key, different ids: %s %s", id1, id2)
	}
	if r1.header.Get("Idempotent-Replayed") != "" || r2.header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("Idempotent-Replayed: first %q, second %q", r1.header.Get("Idempotent-Replayed"), r2.header.Get("Idempotent-Replayed"))
	}
	if n := e.subjectCount(a.TenantID); n != 1 {
		t.Fatalf("EVENTS holds %d messages for the tenant, want 1", n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := e.js.Stream(ctx, natsconf.StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := st.GetLastMsgForSubject(ctx, natsconf.EventSubject(a.TenantID))
	if err != nil {
		t.Fatal(err)
	}
	if got := msg.Header.Get(jetstream.MsgIDHeader); got != a.TenantID+":order-17" {
		t.Errorf("Nats-Msg-Id = %q", got)
	}
	if msg.Header.Get(natsconf.HeaderEventID) != id1 {
		t.Errorf("stored event id %q, want %q", msg.Header.Get(natsconf.HeaderEventID), id1)
	}

	// A different key is a different event; the same key of another tenant too.
	id3, _ := e.ingest(a.APIKey, `{"n":2}`, "Idempotency-Key", "order-18")
	idB, _ := e.ingest(b.APIKey, `{"n":1}`, "Idempotency-Key", "order-17")
	if id3 == id1 || idB == id1 {
		t.Errorf("ids collide: %s %s %s", id1, id3, idB)
	}
	if n := e.subjectCount(a.TenantID); n != 2 {
		t.Errorf("tenant A has %d messages, want 2", n)
	}
	if n := e.subjectCount(b.TenantID); n != 1 {
		t.Errorf("tenant B has %d messages, want 1", n)
	}
	// A replay after delivery does not reset the event's status to queued.
	rec, err := e.status.Get(ctx, a.TenantID, id1)
	if err != nil || rec.Status != status.Queued {
		t.Fatalf("status record %+v %v", rec, err)
	}
	rec.Status, rec.Attempts = status.Delivered, 1
	if err := e.status.Put(ctx, rec); err != nil {
		t.Fatal(err)
	}
	e.ingest(a.APIKey, `{"type":"x","n":1}`, "Idempotency-Key", "order-17")
	if r := e.do("GET", "/v1/events/"+id1, a.APIKey, ""); r.json(t)["status"] != status.Delivered {
		t.Errorf("after replay: %s", r.body)
	}
	// The replay's queued-status write is refused as already written, silently.
	if strings.Contains(e.logs.String(), "queued status not recorded") {
		t.Errorf("replay logged a status failure:\n%s", e.logs.String())
	}
	// Without a key, every request is a new event.
	x, _ := e.ingest(a.APIKey, `{}`)
	y, _ := e.ingest(a.APIKey, `{}`)
	if x == y {
		t.Errorf("two keyless events share id %s", x)
	}
}

// TestTenantIsolation: a tenant reads its own events, and another tenant's event id is
// answered exactly like an unknown one.
func TestTenantIsolation(t *testing.T) {
	e := start(t, options{})
	a := e.createTenant(`{"targetUrl":"http://127.0.0.1:9/a"}`)
	b := e.createTenant(`{"targetUrl":"http://127.0.0.1:9/b"}`)
	id, _ := e.ingest(a.APIKey, `{"secret":"of A"}`)

	if r := e.do("GET", "/v1/events/"+id, a.APIKey, ""); r.code != http.StatusOK {
		t.Fatalf("owner: %d %s", r.code, r.body)
	}
	other := e.do("GET", "/v1/events/"+id, b.APIKey, "")
	unknown := e.do("GET", "/v1/events/evt_unknown", b.APIKey, "")
	if other.code != http.StatusNotFound {
		t.Fatalf("other tenant: %d %s", other.code, other.body)
	}
	if string(other.body) != string(unknown.body) {
		t.Errorf("other tenant's event %s differs from an unknown one %s", other.body, unknown.body)
	}
}

// TestSuspension: a new key works at once; suspending the tenant at the admin API
// makes its key get 403 within a second, and reactivating restores 202.
func TestSuspension(t *testing.T) {
	e := start(t, options{})
	c := e.createTenant(`{"targetUrl":"http://127.0.0.1:9/hook"}`)
	e.ingest(c.APIKey, `{}`) // immediately after creation

	if r := e.do("PATCH", "/v1/tenants/"+c.TenantID, testAdminToken, `{"status":"suspended"}`); r.code != 200 || r.json(t)["status"] != "suspended" {
		t.Fatalf("suspend: %d %s", r.code, r.body)
	}
	took := e.eventually(time.Second, "suspended key refused", func() bool {
		return e.do("POST", "/v1/events", c.APIKey, `{}`).code == http.StatusForbidden
	})
	t.Logf("suspension effective after %s", took)
	// A suspended tenant may still read its own record.
	if r := e.do("GET", "/v1/tenant", c.APIKey, ""); r.code != 200 || r.json(t)["status"] != "suspended" {
		t.Errorf("GET /v1/tenant while suspended: %d %s", r.code, r.body)
	}

	if r := e.do("PATCH", "/v1/tenants/"+c.TenantID, testAdminToken, `{"status":"active"}`); r.code != 200 {
		t.Fatalf("reactivate: %d %s", r.code, r.body)
	}
	e.eventually(time.Second, "reactivated key accepted", func() bool {
		return e.do("POST", "/v1/events", c.APIKey, `{}`).code == http.StatusAccepted
	})
}
