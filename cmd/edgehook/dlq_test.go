package main

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/edgehook/edgehook/natsconf"
	"github.com/edgehook/edgehook/natsconf/natstest"
	"github.com/edgehook/edgehook/status"
	"github.com/edgehook/edgehook/worker/dlq"
)

// deadLetterFixture stores an event on EVENTS, its dead letter on DLQ and its status
// record, as the worker and the DLQ processor leave them; it returns the event's seq.
func deadLetterFixture(t *testing.T, js jetstream.JetStream, st *status.Store, tenantID, eventID, finalStatus string) uint64 {
	t.Helper()
	ctx := context.Background()
	m := nats.NewMsg(natsconf.EventSubject(tenantID))
	m.Header.Set(natsconf.HeaderEventID, eventID)
	m.Header.Set(natsconf.HeaderTenant, tenantID)
	m.Header.Set(natsconf.HeaderEventType, "order.created")
	m.Header.Set(natsconf.HeaderIngestTime, strconv.FormatInt(time.Now().UnixNano(), 10))
	m.Data = []byte(`{"event":"` + eventID + `"}`)
	ack, err := js.PublishMsg(ctx, m)
	if err != nil {
		t.Fatal(err)
	}
	d := dlq.DeadLetter{TenantID: tenantID, EventID: eventID, Type: "order.created", Attempts: 2, LastStatusCode: 500,
		LastError: "HTTP 500", Reason: dlq.ReasonMaxDeliveries, StreamSeq: ack.Sequence, Payload: m.Data}
	if _, err := js.PublishMsg(ctx, d.Msg()); err != nil {
		t.Fatal(err)
	}
	rec := status.Record{EventID: eventID, TenantID: tenantID, Status: finalStatus, Attempts: 2, TotalAttempts: 2, Seq: ack.Sequence}
	if finalStatus == status.Delivered {
		rec.Seq = ack.Sequence + 1000 // a later replay was delivered: this dead letter is history
	}
	if err := st.Put(ctx, rec); err != nil {
		t.Fatal(err)
	}
	return ack.Sequence
}

// replays returns the replayed messages on EVENTS, by event id.
func replays(t *testing.T, js jetstream.JetStream) map[string]int {
	t.Helper()
	ctx := context.Background()
	s, err := js.Stream(ctx, natsconf.StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for seq := uint64(1); ; {
		m, err := s.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(natsconf.EventsSubjectPrefix+"*"))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		if n, _ := strconv.Atoi(m.Header.Get(natsconf.HeaderReplay)); n > 0 {
			out[m.Header.Get(natsconf.HeaderEventID)] = n
		}
		seq = m.Sequence + 1
	}
}

func TestDLQReplayCommand(t *testing.T) {
	srv := natstest.Start(t, nil)
	js := srv.JetStream(t)
	kv, err := js.KeyValue(context.Background(), natsconf.BucketStatus)
	if err != nil {
		t.Fatal(err)
	}
	st := status.NewStore(kv)
	deadLetterFixture(t, js, st, "ten_a", "evt_a1", status.Failed)
	deadLetterFixture(t, js, st, "ten_a", "evt_a2", status.Failed)
	deadLetterFixture(t, js, st, "ten_a", "evt_a3", status.Delivered)
	deadLetterFixture(t, js, st, "ten_b", "evt_b1", status.Failed)
	env := map[string]string{"EDGEHOOK_NATS_URL": srv.URL}

	// Nothing chosen: nothing replayed, and the message says how to choose.
	_, _, err = runArgs(t, env, "dlq", "replay")
	if err == nil || exitCode(err) != 2 || !strings.Contains(err.Error(), "--all") {
		t.Fatalf("dlq replay without a selection: %v, want a usage error naming --all", err)
	}
	for _, bad := range [][]string{{"--since", "yesterday"}, {"--tenant", "ten_a.>"}} {
		if _, _, err := runArgs(t, env, append([]string{"dlq", "replay"}, bad...)...); exitCode(err) != 2 {
			t.Errorf("dlq replay %v: %v, want a usage error", bad, err)
		}
	}

	out, stderr, err := runArgs(t, env, "dlq", "replay", "--tenant", "ten_a", "--dry-run")
	if err != nil {
		t.Fatalf("dry run: %v\n%s", err, stderr)
	}
	if !strings.Contains(out, "dead letters matched: 3 (3 events)") || !strings.Contains(out, "would replay: 2") ||
		!strings.Contains(out, "skipped (replayed since, or in flight): 1") {
		t.Errorf("dry run summary:\n%s", out)
	}
	if n := len(replays(t, js)); n != 0 {
		t.Fatalf("a dry run replayed %d events", n)
	}

	out, stderr, err = runArgs(t, env, "dlq", "replay", "--tenant", "ten_a", "--since", "1h")
	if err != nil {
		t.Fatalf("replay: %v\n%s", err, stderr)
	}
	if !strings.Contains(out, "replayed: 2") || !strings.Contains(out, "failed: 0") {
		t.Errorf("replay summary:\n%s", out)
	}
	if !strings.Contains(stderr, "] 3/3") || !strings.Contains(stderr, "[##############################]") {
		t.Errorf("no finished progress bar on stderr:\n%q", stderr)
	}
	if got := replays(t, js); len(got) != 2 || got["evt_a1"] != 1 || got["evt_a2"] != 1 {
		t.Errorf("replayed events %v, want evt_a1 and evt_a2 once each", got)
	}
	if rec, _ := st.Get(context.Background(), "ten_a", "evt_a1"); rec.Status != status.Queued || rec.Replays != 1 || rec.Attempts != 0 {
		t.Errorf("status after replay %+v, want queued, replay 1, attempts 0", rec)
	}

	// --all replays the other tenant; ten_a's dead letters are superseded now.
	out, _, err = runArgs(t, env, "dlq", "replay", "--all")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "replayed: 1") || !strings.Contains(out, "skipped (replayed since, or in flight): 3") {
		t.Errorf("--all summary:\n%s", out)
	}
	if got := replays(t, js); len(got) != 3 || got["evt_b1"] != 1 {
		t.Errorf("replayed events %v, want evt_b1 added", got)
	}
}
