package gateway_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/edgehook/edgehook/gateway"
	"github.com/edgehook/edgehook/natsconf"
)

// batchAnswer is the 202 body of POST /v1/events/batch.
type batchAnswer struct {
	Events []struct {
		EventID  string `json:"eventId"`
		Status   string `json:"status"`
		Replayed bool   `json:"replayed"`
	} `json:"events"`
}

// batchError is a 400 body of POST /v1/events/batch.
type batchError struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
		Details []struct {
			Index   int    `json:"index"`
			Message string `json:"message"`
		} `json:"details"`
	} `json:"error"`
}

// batchBody builds {"events":[...]} from events (raw JSON objects) and keys ("" for
// none), one each.
func batchBody(events []string, keys []string) string {
	var b strings.Builder
	b.WriteString(`{"events":[`)
	for i, ev := range events {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`{"event":`)
		b.WriteString(ev)
		if i < len(keys) && keys[i] != "" {
			b.WriteString(`,"idempotencyKey":`)
			k, _ := json.Marshal(keys[i])
			b.Write(k)
		}
		b.WriteByte('}')
	}
	b.WriteString(`]}`)
	return b.String()
}

// postBatch sends a batch and returns its event ids after a 202.
func (e *env) postBatch(key, body string) (batchAnswer, response) {
	e.t.Helper()
	r := e.do("POST", "/v1/events/batch", key, body)
	if r.code != http.StatusAccepted {
		e.t.Fatalf("batch: %d %s", r.code, r.body)
	}
	var a batchAnswer
	if err := json.Unmarshal(r.body, &a); err != nil {
		e.t.Fatalf("batch answer %s: %v", r.body, err)
	}
	for i, ev := range a.Events {
		if ev.Status != "queued" || !eventIDForm.MatchString(ev.EventID) {
			e.t.Fatalf("batch answer event %d: %+v", i, ev)
		}
	}
	return a, r
}

// storedEvents returns tenantID's messages in EVENTS, oldest first.
func (e *env) storedEvents(tenantID string) []*jetstream.RawStreamMsg {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := e.js.Stream(ctx, natsconf.StreamEvents)
	if err != nil {
		e.t.Fatal(err)
	}
	var out []*jetstream.RawStreamMsg
	subj := natsconf.EventSubject(tenantID)
	for seq := uint64(1); ; {
		m, err := st.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(subj))
		if err != nil {
			break
		}
		out = append(out, m)
		seq = m.Sequence + 1
	}
	return out
}

// TestBatchStoresEveryEventAsSent: a 202 carries one id per event in order, and
// each event is in EVENTS byte for byte with the headers of a single event, and
// has its queued status.
func TestBatchStoresEveryEventAsSent(t *testing.T) {
	e := start(t, options{})
	c := e.createTenant(`{"targetUrl":"http://127.0.0.1:9/hook"}`)
	events := []string{
		`{"type":"order.created","order":{"id":1}}`,
		`{ "type" : "order.paid", "n": [1, 2, 3] }`,
		`{"untyped":true}`,
		`{"type":"caf\u00e9","s":"\ud83d\ude00"}`,
	}
	keys := []string{"k-1", "", "k-3", ""}
	a, _ := e.postBatch(c.APIKey, batchBody(events, keys))
	if len(a.Events) != len(events) {
		t.Fatalf("%d ids for %d events", len(a.Events), len(events))
	}
	stored := e.storedEvents(c.TenantID)
	if len(stored) != len(events) {
		t.Fatalf("EVENTS holds %d events, want %d", len(stored), len(events))
	}
	types := []string{"order.created", "order.paid", "", "caf\u00e9"}
	for i, m := range stored {
		if string(m.Data) != events[i] {
			t.Errorf("event %d stored as %q, want %q", i, m.Data, events[i])
		}
		wantMsgID := ""
		if keys[i] != "" {
			wantMsgID = c.TenantID + ":" + keys[i]
		}
		for h, want := range map[string]string{
			natsconf.HeaderEventID: a.Events[i].EventID, natsconf.HeaderTenant: c.TenantID,
			natsconf.HeaderEventType: types[i], jetstream.MsgIDHeader: wantMsgID,
		} {
			if got := m.Header.Get(h); got != want {
				t.Errorf("event %d header %s = %q, want %q", i, h, got, want)
			}
		}
		if m.Header.Get(natsconf.HeaderIngestTime) == "" {
			t.Errorf("event %d has no ingest time", i)
		}
		st := e.do("GET", "/v1/events/"+a.Events[i].EventID, c.APIKey, "")
		if st.code != http.StatusOK || st.json(t)["status"] != "queued" || st.json(t)["type"] != types[i] {
			t.Errorf("event %d status: %d %s", i, st.code, st.body)
		}
	}
}

// TestBatchWithBadEventsStoresNothing: every bad event is named by its index, and
// none of the batch is stored.
func TestBatchWithBadEventsStoresNothing(t *testing.T) {
	e := start(t, options{cfg: gateway.Config{MaxBodyBytes: 1024}})
	c := e.createTenant(`{"targetUrl":"http://127.0.0.1:9/hook"}`)
	events := []string{
		`{"type":"ok"}`,
		`{"type":"a","type":"b"}`,
		`{"type":"ok"}`,
		"{\"type\":\"ok\",\"s\":\"caf\xe9\"}",
		`[1,2]`,
		`{"type":"` + strings.Repeat("x", 300) + `"}`,
		`{"type":"ok","pad":"` + strings.Repeat("x", 1024) + `"}`,
		`{"type":"ok","s":"\ud800"}`,
		`{"type":"\udfff"}`,
		`{"type":"ok"}`,
	}
	keys := []string{"same", "", "", "", "", "", "", "", "", "same"}
	r := e.do("POST", "/v1/events/batch", c.APIKey, batchBody(events, keys))
	if r.code != http.StatusBadRequest {
		t.Fatalf("%d %s, want 400", r.code, r.body)
	}
	var be batchError
	if err := json.Unmarshal(r.body, &be); err != nil {
		t.Fatal(err)
	}
	want := map[int]string{
		1: `field "type" appears more than once`,
		3: "event is not valid UTF-8 (byte 21)",
		4: `field "event" must be a JSON object`,
		5: `field "type" must be a string of at most 256 bytes without control characters`,
		6: "event exceeds the limit of 1024 bytes",
		7: "event holds an escaped UTF-16 surrogate without its pair (byte 18), which is not a character",
		8: `field "type" is not valid UTF-8 (invalid bytes, or an escaped UTF-16 surrogate without its pair)`,
		9: "idempotencyKey repeats that of event 0",
	}
	if be.Error.Code != "invalid_request" || be.Error.Message != fmt.Sprintf("%d of 10 events are invalid; none was stored", len(want)) {
		t.Errorf("error %s %q", be.Error.Code, be.Error.Message)
	}
	got := map[int]string{}
	for _, d := range be.Error.Details {
		got[d.Index] = d.Message
	}
	for i, msg := range want {
		if got[i] != msg {
			t.Errorf("event %d: %q, want %q", i, got[i], msg)
		}
	}
	if len(got) != len(want) {
		t.Errorf("details %v, want %v", got, want)
	}
	if n := e.subjectCount(c.TenantID); n != 0 {
		t.Fatalf("EVENTS holds %d events of a refused batch", n)
	}
}

// TestBatchCommitFailureStoresNothing: when JetStream refuses the commit (here the
// stream would overflow its limit with discard-new, and then atomic publish is
// turned off), the answer is 503 with Retry-After and no event of the batch is
// stored, not even those that would have fitted.
func TestBatchCommitFailureStoresNothing(t *testing.T) {
	e := start(t, options{})
	c := e.createTenant(`{"targetUrl":"http://127.0.0.1:9/hook"}`)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := e.js.Stream(ctx, natsconf.StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	cfg := st.CachedInfo().Config
	cfg.MaxMsgs, cfg.Discard = 3, jetstream.DiscardNew
	if _, err := e.js.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	five := batchBody([]string{`{"n":1}`, `{"n":2}`, `{"n":3}`, `{"n":4}`, `{"n":5}`}, nil)
	r := e.do("POST", "/v1/events/batch", c.APIKey, five)
	if r.code != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "" {
		t.Fatalf("batch over the stream's limit: %d %s (Retry-After %q), want 503 with Retry-After", r.code, r.body, r.header.Get("Retry-After"))
	}
	if code, msg := r.errorBody(t); code != "unavailable" || msg != "event store is unavailable; retry later" {
		t.Errorf("error %s %q", code, msg)
	}
	if n := e.subjectCount(c.TenantID); n != 0 {
		t.Fatalf("EVENTS holds %d events of a batch whose commit failed", n)
	}
	// A batch that fits is stored whole.
	a, _ := e.postBatch(c.APIKey, batchBody([]string{`{"n":1}`, `{"n":2}`, `{"n":3}`}, nil))
	if n := e.subjectCount(c.TenantID); n != 3 || len(a.Events) != 3 {
		t.Fatalf("EVENTS holds %d events after a batch of 3 that fits", n)
	}

	cfg.MaxMsgs, cfg.Discard, cfg.AllowAtomicPublish = -1, jetstream.DiscardOld, false
	if _, err := e.js.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	if r := e.do("POST", "/v1/events/batch", c.APIKey, five); r.code != http.StatusServiceUnavailable {
		t.Fatalf("batch without atomic publish: %d %s, want 503", r.code, r.body)
	}
	if n := e.subjectCount(c.TenantID); n != 3 {
		t.Fatalf("EVENTS holds %d events, want the 3 of the earlier batch", n)
	}
	if !strings.Contains(e.logs.String(), "event batch publish failed") {
		t.Errorf("the failed commit was not logged")
	}
}

// TestBatchIdempotencyPerEvent: each event's idempotencyKey works as the
// Idempotency-Key of a single event: a batch sent again gets the same ids for its
// keyed events, marked replayed, and stores none of them twice; its unkeyed events
// are new events. A key first used by a single event is the same event in a batch.
func TestBatchIdempotencyPerEvent(t *testing.T) {
	e := start(t, options{})
	a := e.createTenant(`{"targetUrl":"http://127.0.0.1:9/a"}`)
	b := e.createTenant(`{"targetUrl":"http://127.0.0.1:9/b"}`)
	events := []string{`{"n":1}`, `{"n":2}`, `{"n":3}`}
	keys := []string{"k1", "k2", ""}
	first, _ := e.postBatch(a.APIKey, batchBody(events, keys))
	again, _ := e.postBatch(a.APIKey, batchBody(events, keys))
	for i := range 2 {
		if again.Events[i].EventID != first.Events[i].EventID || !again.Events[i].Replayed || first.Events[i].Replayed {
			t.Errorf("keyed event %d: first %+v, again %+v; want the same id, replayed the second time", i, first.Events[i], again.Events[i])
		}
	}
	if again.Events[2].EventID == first.Events[2].EventID || again.Events[2].Replayed {
		t.Errorf("unkeyed event: first %+v, again %+v; want a new event", first.Events[2], again.Events[2])
	}
	if n := e.subjectCount(a.TenantID); n != 4 {
		t.Fatalf("EVENTS holds %d events, want 4 (2 keyed once, 2 unkeyed)", n)
	}

	// Old and new keys mixed: the old is replayed, the new and the unkeyed stored.
	mixed, _ := e.postBatch(a.APIKey, batchBody([]string{`{"n":1}`, `{"n":4}`, `{"n":5}`}, []string{"k1", "k4", ""}))
	if mixed.Events[0].EventID != first.Events[0].EventID || !mixed.Events[0].Replayed || mixed.Events[1].Replayed || mixed.Events[2].Replayed {
		t.Errorf("mixed batch answered %+v", mixed.Events)
	}
	if n := e.subjectCount(a.TenantID); n != 6 {
		t.Fatalf("EVENTS holds %d events after the mixed batch, want 6", n)
	}
	if r := e.do("GET", "/v1/events/"+mixed.Events[1].EventID, a.APIKey, ""); r.code != http.StatusOK || r.json(t)["status"] != "queued" {
		t.Errorf("new keyed event of the mixed batch: %d %s", r.code, r.body)
	}

	// A key of a single event, then in a batch, is one event.
	single, _ := e.ingest(a.APIKey, `{"n":6}`, gateway.HeaderIdempotencyKey, "k6")
	fromBatch, _ := e.postBatch(a.APIKey, batchBody([]string{`{"n":6}`}, []string{"k6"}))
	if fromBatch.Events[0].EventID != single || !fromBatch.Events[0].Replayed {
		t.Errorf("key k6 of a single event got %+v in a batch, want %s replayed", fromBatch.Events[0], single)
	}
	// Keys are per tenant.
	other, _ := e.postBatch(b.APIKey, batchBody(events[:1], keys[:1]))
	if other.Events[0].EventID == first.Events[0].EventID || other.Events[0].Replayed {
		t.Errorf("another tenant's k1 = %+v, want its own new event", other.Events[0])
	}
	if n := e.subjectCount(a.TenantID); n != 7 {
		t.Errorf("EVENTS holds %d events of tenant a, want 7", n)
	}
}

// TestBatchLimits: 1,000 events pass; 1,001 events, a body over 1 MiB, an empty or
// malformed batch are refused with a message naming the limit or the fault.
func TestBatchLimits(t *testing.T) {
	e := start(t, options{})
	c := e.createTenant(`{"targetUrl":"http://127.0.0.1:9/hook"}`)
	many := func(n int) string {
		evs := make([]string, n)
		for i := range evs {
			evs[i] = `{"type":"bulk","i":` + fmt.Sprint(i) + `}`
		}
		return batchBody(evs, nil)
	}
	a, _ := e.postBatch(c.APIKey, many(gateway.MaxBatchEvents))
	if len(a.Events) != gateway.MaxBatchEvents {
		t.Fatalf("%d ids for 1000 events", len(a.Events))
	}
	if n := e.subjectCount(c.TenantID); n != gateway.MaxBatchEvents {
		t.Fatalf("EVENTS holds %d events, want 1000", n)
	}
	big := batchBody([]string{`{"pad":"` + strings.Repeat("x", gateway.MaxBatchBytes) + `"}`}, nil)
	for _, tc := range []struct {
		name, body string
		status     int
		code, msg  string
	}{
		{"1001 events", many(gateway.MaxBatchEvents + 1), 400, "invalid_request", "a batch holds at most 1000 events; this one has 1001"},
		{"over 1 MiB", big, 413, "payload_too_large", "batch body exceeds the limit of 1048576 bytes"},
		{"empty body", "", 400, "invalid_json", "request body is empty; send a JSON object"},
		{"not JSON", `{"events":[`, 400, "invalid_json", ""},
		{"an array", `[{"event":{}}]`, 400, "invalid_json", `request body must be a JSON object {"events":[...]}`},
		{"no events", `{}`, 400, "invalid_request", `field "events" is missing; send {"events":[{"event":{...},"idempotencyKey":"..."}]}`},
		{"events twice", `{"events":[{"event":{}}],"events":[]}`, 400, "invalid_request", `field "events" appears more than once`},
		{"unknown field", `{"events":[{"event":{}}],"evnts":[]}`, 400, "invalid_request", `unknown field "evnts" in the batch; it holds only "events"`},
		{"events not an array", `{"events":{}}`, 400, "invalid_request", `field "events" must be an array`},
		{"no event", `{"events":[]}`, 400, "invalid_request", `field "events" is empty; a batch holds 1 to 1000 events`},
		{"lone surrogate in an idempotencyKey", `{"events":[{"event":{},"idempotencyKey":"\ud800"}]}`, 400, "invalid_json",
			"request body holds an escaped UTF-16 surrogate without its pair (byte 41), which is not a character"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do("POST", "/v1/events/batch", c.APIKey, tc.body)
			if r.code != tc.status {
				t.Fatalf("%d %.300s, want %d", r.code, r.body, tc.status)
			}
			var be batchError
			if err := json.Unmarshal(r.body, &be); err != nil {
				t.Fatal(err)
			}
			if be.Error.Code != tc.code || tc.msg != "" && be.Error.Message != tc.msg {
				t.Errorf("error %s %q, want %s %q", be.Error.Code, be.Error.Message, tc.code, tc.msg)
			}
		})
	}
	for _, tc := range []struct{ item, msg string }{
		{`{"event":{},"idempotencyKey":""}`, "idempotencyKey must be a string of 1-255 printable ASCII characters"},
		{`{"event":{},"idempotencyKey":7}`, "idempotencyKey must be a string of 1-255 printable ASCII characters"},
		{`{"event":{},"event":{}}`, `field "event" appears more than once`},
		{`{"idempotencyKey":"k"}`, `field "event" is missing`},
		{`{"event":{},"payload":{}}`, `unknown field "payload"; an item holds only "event" and "idempotencyKey"`},
		{`"x"`, `must be an object {"event":{...},"idempotencyKey":"..."}`},
	} {
		r := e.do("POST", "/v1/events/batch", c.APIKey, `{"events":[{"event":{}},`+tc.item+`]}`)
		var be batchError
		if err := json.Unmarshal(r.body, &be); err != nil || r.code != 400 || len(be.Error.Details) != 1 ||
			be.Error.Details[0].Index != 1 || be.Error.Details[0].Message != tc.msg {
			t.Errorf("item %s: %d %s, want 400 naming index 1: %s", tc.item, r.code, r.body, tc.msg)
		}
	}
	if n := e.subjectCount(c.TenantID); n != gateway.MaxBatchEvents {
		t.Errorf("EVENTS holds %d events, want only the 1000 of the accepted batch", n)
	}
}

// TestBatchAuth: the batch route authenticates as POST /v1/events does.
func TestBatchAuth(t *testing.T) {
	e := start(t, options{})
	c := e.createTenant(`{"targetUrl":"http://127.0.0.1:9/hook"}`)
	body := batchBody([]string{`{}`}, nil)
	for _, tc := range []struct {
		name, token string
		headers     []string
		status      int
		code        string
	}{
		{"no key", "", nil, 401, "unauthorized"},
		{"unknown key", "ehk_nope", nil, 401, "unauthorized"},
		{"Idempotency-Key header", c.APIKey, []string{gateway.HeaderIdempotencyKey, "k"}, 400, "invalid_request"},
	} {
		r := e.do("POST", "/v1/events/batch", tc.token, body, tc.headers...)
		if code, _ := r.errorBody(t); r.code != tc.status || code != tc.code {
			t.Errorf("%s: %d %s, want %d %s", tc.name, r.code, r.body, tc.status, tc.code)
		}
	}
	if r := e.do("GET", "/v1/events/batch", c.APIKey, ""); r.code != http.StatusMethodNotAllowed || r.header.Get("Allow") != "POST" {
		t.Errorf("GET /v1/events/batch: %d Allow %q", r.code, r.header.Get("Allow"))
	}
	if r := e.do("PATCH", "/v1/tenants/"+c.TenantID, testAdminToken, `{"status":"suspended"}`); r.code != 200 {
		t.Fatalf("suspend: %d %s", r.code, r.body)
	}
	e.eventually(time.Second, "suspended tenant's batch refused", func() bool {
		return e.do("POST", "/v1/events/batch", c.APIKey, body).code == http.StatusForbidden
	})
	if n := e.subjectCount(c.TenantID); n != 0 {
		t.Errorf("EVENTS holds %d events", n)
	}
}
