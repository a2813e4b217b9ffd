package gateway_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/edgehook/edgehook/natsconf"
	"github.com/edgehook/edgehook/status"
)

// record stores an attempt and the matching status record, as a worker does.
func (e *env) record(rec status.Record, a status.Attempt) {
	e.t.Helper()
	r, err := status.NewRecorder(e.js, 5*time.Second)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := r.Record(context.Background(), rec, a); err != nil {
		e.t.Fatal(err)
	}
}

func TestAttemptsAreServedToTheOwnerOnly(t *testing.T) {
	e := start(t, options{})
	owner := e.createTenant(`{"targetUrl":"https://example.com/hooks"}`)
	other := e.createTenant(`{"targetUrl":"https://example.com/hooks"}`)
	id, _ := e.ingest(owner.APIKey, `{"type":"order.created"}`)

	// Before any attempt the log is empty, not missing.
	r := e.do("GET", "/v1/events/"+id+"/attempts", owner.APIKey, "")
	if r.code != http.StatusOK || string(r.body) != `{"eventId":"`+id+`","attempts":[]}`+"\n" {
		t.Fatalf("attempts before delivery: %d %s", r.code, r.body)
	}

	at := time.Now().UTC().Truncate(time.Millisecond)
	base := status.Record{EventID: id, TenantID: owner.TenantID, Type: "order.created", Seq: 1, CreatedAt: at, UpdatedAt: at}
	first, second := base, base
	first.Status, first.Attempts, first.TotalAttempts, first.LastStatusCode, first.LastError = status.Retrying, 1, 1, 503, "HTTP 503"
	e.record(first, status.Attempt{TenantID: owner.TenantID, EventID: id, N: 1, Attempt: 1, Seq: 1, At: at,
		Outcome: status.OutcomeRetry, StatusCode: 503, LatencyMs: 12.5, Error: "HTTP 503", ResponseBody: "maintenance"})
	second.Status, second.Attempts, second.TotalAttempts, second.LastStatusCode = status.Delivered, 2, 2, 200
	e.record(second, status.Attempt{TenantID: owner.TenantID, EventID: id, N: 2, Attempt: 2, Seq: 1, At: at.Add(5 * time.Second),
		Outcome: status.OutcomeDelivered, StatusCode: 200, LatencyMs: 3, ResponseBody: `{"ok":true}`})

	r = e.do("GET", "/v1/events/"+id+"/attempts", owner.APIKey, "")
	if r.code != http.StatusOK {
		t.Fatalf("attempts: %d %s", r.code, r.body)
	}
	var got struct {
		EventID  string `json:"eventId"`
		Attempts []struct {
			Attempt      int       `json:"attempt"`
			Replay       int       `json:"replay"`
			At           time.Time `json:"at"`
			Outcome      string    `json:"outcome"`
			StatusCode   int       `json:"statusCode"`
			LatencyMs    float64   `json:"latencyMs"`
			Error        string    `json:"error"`
			ResponseBody string    `json:"responseBody"`
		} `json:"attempts"`
	}
	dec := json.NewDecoder(strings.NewReader(string(r.body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&got); err != nil {
		t.Fatalf("attempts body %s: %v", r.body, err)
	}
	if got.EventID != id || len(got.Attempts) != 2 {
		t.Fatalf("attempts body %s", r.body)
	}
	a1, a2 := got.Attempts[0], got.Attempts[1]
	if a1.Attempt != 1 || a1.Outcome != "retry" || a1.StatusCode != 503 || a1.Error != "HTTP 503" || a1.LatencyMs != 12.5 ||
		a1.ResponseBody != "maintenance" || !a1.At.Equal(at) {
		t.Errorf("first attempt %+v", a1)
	}
	if a2.Attempt != 2 || a2.Outcome != "delivered" || a2.StatusCode != 200 || a2.ResponseBody != `{"ok":true}` {
		t.Errorf("second attempt %+v", a2)
	}
	if r := e.do("GET", "/v1/events/"+id+"/attempts", other.APIKey, ""); r.code != http.StatusNotFound {
		t.Errorf("another tenant reading the attempts: %d %s, want 404", r.code, r.body)
	}
	if r := e.do("GET", "/v1/events/"+id+"/attempts", "", ""); r.code != http.StatusUnauthorized {
		t.Errorf("no key: %d, want 401", r.code)
	}
}

func TestReplayQueuesARequestForFailedAndDeliveredEventsOnly(t *testing.T) {
	e := start(t, options{})
	owner := e.createTenant(`{"targetUrl":"https://example.com/hooks"}`)
	other := e.createTenant(`{"targetUrl":"https://example.com/hooks"}`)
	id, _ := e.ingest(owner.APIKey, `{"type":"order.created"}`)

	// Queued: nothing to replay yet.
	r := e.do("POST", "/v1/events/"+id+"/replay", owner.APIKey, "")
	if r.code != http.StatusConflict {
		t.Fatalf("replay of a queued event: %d %s, want 409", r.code, r.body)
	}
	if code, msg := r.errorBody(t); code != "conflict" || msg != "event is queued; only failed or delivered events can be replayed" {
		t.Errorf("409 body %s", r.body)
	}

	now := time.Now().UTC()
	rec := status.Record{EventID: id, TenantID: owner.TenantID, Status: status.Failed, Attempts: 8, TotalAttempts: 8, Seq: 1, CreatedAt: now, UpdatedAt: now}
	if err := e.status.Put(context.Background(), rec); err != nil {
		t.Fatal(err)
	}
	if r := e.do("POST", "/v1/events/"+id+"/replay", other.APIKey, ""); r.code != http.StatusNotFound {
		t.Errorf("another tenant replaying: %d %s, want 404", r.code, r.body)
	}
	// A client retrying its request queues one replay request.
	for range 2 {
		r = e.do("POST", "/v1/events/"+id+"/replay", owner.APIKey, "")
		if r.code != http.StatusAccepted || string(r.body) != `{"eventId":"`+id+`","replayRequested":true}`+"\n" {
			t.Fatalf("replay of a failed event: %d %s", r.code, r.body)
		}
	}
	requests := e.replayRequests(owner.TenantID)
	if len(requests) != 1 {
		t.Fatalf("%d replay requests stored, want 1", len(requests))
	}
	if h := requests[0].Header; h.Get(natsconf.HeaderTenant) != owner.TenantID || h.Get(natsconf.HeaderEventID) != id {
		t.Errorf("replay request headers %v", h)
	}
	// Once the event has moved on (delivered by the replay), it can be replayed again.
	rec.Status = status.Delivered
	if err := e.status.Put(context.Background(), rec); err != nil {
		t.Fatal(err)
	}
	if r := e.do("POST", "/v1/events/"+id+"/replay", owner.APIKey, ""); r.code != http.StatusAccepted {
		t.Fatalf("replay of a delivered event: %d %s", r.code, r.body)
	}
	if n := len(e.replayRequests(owner.TenantID)); n != 2 {
		t.Errorf("%d replay requests after a second replay, want 2", n)
	}
}

// replayRequests returns the replay requests tenantID queued on DLQ.
func (e *env) replayRequests(tenantID string) []*jetstream.RawStreamMsg {
	e.t.Helper()
	ctx := context.Background()
	s, err := e.js.Stream(ctx, natsconf.StreamDLQ)
	if err != nil {
		e.t.Fatal(err)
	}
	var out []*jetstream.RawStreamMsg
	for seq := uint64(1); ; {
		m, err := s.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(natsconf.ReplaySubject(tenantID)))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return out
		}
		if err != nil {
			e.t.Fatal(err)
		}
		out = append(out, m)
		seq = m.Sequence + 1
	}
}
