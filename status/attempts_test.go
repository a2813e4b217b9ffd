package status_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/edgehook/edgehook/natsconf"
	"github.com/edgehook/edgehook/natsconf/natstest"
	"github.com/edgehook/edgehook/status"
)

func TestAttemptLogIsReadBackInOrderPerEvent(t *testing.T) {
	srv := natstest.Start(t, nil)
	js := srv.JetStream(t)
	ctx := context.Background()
	kv, err := js.KeyValue(ctx, natsconf.BucketStatus)
	if err != nil {
		t.Fatal(err)
	}
	store := status.NewStore(kv)
	now := time.Now().UTC().Truncate(time.Millisecond)

	// Attempts 1, 2 and 4 recorded (3 died with its worker), then the status record,
	// published the way the worker does: asynchronously, acks awaited together.
	long := strings.Repeat("x", status.MaxResponseBody+500)
	for _, n := range []int{1, 2, 4} {
		m, err := status.AttemptMsg(status.Attempt{
			TenantID: "ten_a", EventID: "evt_1", N: n, Attempt: n, Seq: 7, At: now.Add(time.Duration(n) * time.Second),
			Outcome: status.OutcomeRetry, StatusCode: 500, LatencyMs: 1.5, Error: "HTTP 500", ResponseBody: long,
		})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := js.PublishMsgAsync(m); err != nil {
			t.Fatal(err)
		}
	}
	// Another event and another tenant with the same event id stay apart.
	for _, k := range [][2]string{{"ten_a", "evt_2"}, {"ten_b", "evt_1"}} {
		m, _ := status.AttemptMsg(status.Attempt{TenantID: k[0], EventID: k[1], N: 3, Attempt: 3, At: now, Outcome: status.OutcomeDelivered})
		if _, err := js.PublishMsgAsync(m); err != nil {
			t.Fatal(err)
		}
	}
	rec, err := status.PutMsg(status.Record{EventID: "evt_1", TenantID: "ten_a", Status: status.Retrying, Attempts: 4, TotalAttempts: 4, Seq: 7})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.PublishMsgAsync(rec); err != nil {
		t.Fatal(err)
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(5 * time.Second):
		t.Fatal("acks did not arrive")
	}

	got, err := store.Attempts(ctx, "ten_a", "evt_1")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0].N != 1 || got[1].N != 2 || got[2].N != 4 {
		t.Fatalf("attempts = %+v, want entries 1, 2 and 4", got)
	}
	a := got[2]
	if a.StatusCode != 500 || a.Error != "HTTP 500" || !a.At.Equal(now.Add(4*time.Second)) || a.Seq != 7 || a.LatencyMs != 1.5 {
		t.Errorf("attempt 4 = %+v", a)
	}
	if len(a.ResponseBody) != status.MaxResponseBody {
		t.Errorf("response body kept %d bytes, want %d", len(a.ResponseBody), status.MaxResponseBody)
	}
	if _, err := store.Attempts(ctx, "ten_b", "evt_9"); !errors.Is(err, status.ErrNotFound) {
		t.Errorf("attempts of an unknown event: %v, want ErrNotFound", err)
	}
	if r, err := store.AttemptRange(ctx, "ten_a", "evt_1", 2, 3); err != nil || len(r) != 1 || r[0].N != 2 {
		t.Errorf("AttemptRange(2, 3) = %+v, %v; want entry 2 only", r, err)
	}
	if _, err := status.AttemptMsg(status.Attempt{TenantID: "ten_a", EventID: "evt_1"}); err == nil {
		t.Error("an attempt without an index was accepted")
	}
}

func TestUpdateNeverOverwritesAnUnseenState(t *testing.T) {
	srv := natstest.Start(t, nil)
	js := srv.JetStream(t)
	ctx := context.Background()
	kv, err := js.KeyValue(ctx, natsconf.BucketStatus)
	if err != nil {
		t.Fatal(err)
	}
	store := status.NewStore(kv)
	rec := status.Record{EventID: "evt_1", TenantID: "ten_a", Status: status.Failed, Attempts: 3}
	if err := store.Update(ctx, rec, 0); err != nil {
		t.Fatalf("create: %v", err)
	}
	if err := store.Update(ctx, rec, 0); !errors.Is(err, status.ErrConflict) {
		t.Fatalf("second create: %v, want ErrConflict", err)
	}
	_, rev, err := store.Entry(ctx, "ten_a", "evt_1")
	if err != nil {
		t.Fatal(err)
	}
	// A worker writes in between; the stale revision loses.
	delivered := rec
	delivered.Status = status.Delivered
	if err := store.Put(ctx, delivered); err != nil {
		t.Fatal(err)
	}
	queued := rec
	queued.Status = status.Queued
	if err := store.Update(ctx, queued, rev); !errors.Is(err, status.ErrConflict) {
		t.Fatalf("update at a stale revision: %v, want ErrConflict", err)
	}
	got, rev2, _ := store.Entry(ctx, "ten_a", "evt_1")
	if got.Status != status.Delivered {
		t.Fatalf("status %s after a stale update, want delivered", got.Status)
	}
	if err := store.Update(ctx, queued, rev2); err != nil {
		t.Fatalf("update at the current revision: %v", err)
	}
	if got, _ := store.Get(ctx, "ten_a", "evt_1"); got.Status != status.Queued {
		t.Errorf("status %s, want queued", got.Status)
	}
}

func TestTheRecordsLastAttemptCompletesTheLog(t *testing.T) {
	srv := natstest.Start(t, nil)
	js := srv.JetStream(t)
	ctx := context.Background()
	kv, err := js.KeyValue(ctx, natsconf.BucketStatus)
	if err != nil {
		t.Fatal(err)
	}
	store := status.NewStore(kv)
	rec, err := status.NewRecorder(js, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Now().UTC()
	attempt := func(n int, outcome string) status.Attempt {
		return status.Attempt{TenantID: "ten_a", EventID: "evt_1", N: n, Attempt: n, At: at.Add(time.Duration(n) * time.Second), Outcome: outcome}
	}
	// Two failed attempts logged, then a delivery that only writes the record.
	if err := rec.Record(ctx, status.Record{EventID: "evt_1", TenantID: "ten_a", Status: status.Retrying, Attempts: 2, TotalAttempts: 2},
		attempt(1, status.OutcomeRetry), attempt(2, status.OutcomeRetry)); err != nil {
		t.Fatal(err)
	}
	last := attempt(3, status.OutcomeDelivered)
	if err := rec.Record(ctx, status.Record{EventID: "evt_1", TenantID: "ten_a", Status: status.Delivered, Attempts: 3, TotalAttempts: 3, LastAttempt: &last}); err != nil {
		t.Fatal(err)
	}
	got, err := store.Attempts(ctx, "ten_a", "evt_1")
	if err != nil || len(got) != 3 || got[2].N != 3 || got[2].Outcome != status.OutcomeDelivered {
		t.Fatalf("attempts = %+v (%v), want 1, 2 and the delivery from the record", got, err)
	}
	if _, err := kv.Get(ctx, status.AttemptKey("ten_a", "evt_1", 3)); err == nil {
		t.Error("the delivery was written to the log too: two writes on the hot path")
	}
	// Once logged (by a replay), it is not listed twice.
	m, _ := status.AttemptMsg(last)
	if _, err := js.PublishMsg(ctx, m); err != nil {
		t.Fatal(err)
	}
	if got, _ := store.Attempts(ctx, "ten_a", "evt_1"); len(got) != 3 {
		t.Errorf("attempts after logging the last one: %d entries, want 3", len(got))
	}
}

func TestRecordEndsAtTheSoonerOfItsTimeoutAndTheCallersDeadline(t *testing.T) {
	srv := natstest.Start(t, nil)
	js := srv.JetStream(t)
	ctx := context.Background()
	// Without the status bucket no stream answers: the write retries until its bound.
	if err := js.DeleteKeyValue(ctx, natsconf.BucketStatus); err != nil {
		t.Fatal(err)
	}
	rec := status.Record{EventID: "evt_1", TenantID: "ten_a", Status: status.Delivered, Attempts: 1}
	for _, tc := range []struct {
		name     string
		timeout  time.Duration
		deadline time.Duration // of the caller's context; 0: none
	}{
		{"the recorder's timeout", 300 * time.Millisecond, 0},
		{"the caller's deadline", 5 * time.Second, 300 * time.Millisecond},
	} {
		r, err := status.NewRecorder(js, tc.timeout)
		if err != nil {
			t.Fatal(err)
		}
		cctx, cancel := ctx, context.CancelFunc(func() {})
		if tc.deadline > 0 {
			cctx, cancel = context.WithTimeout(ctx, tc.deadline)
		}
		start := time.Now()
		err = r.Record(cctx, rec)
		took := time.Since(start)
		cancel()
		if !errors.Is(err, jetstream.ErrNoStreamResponse) {
			t.Errorf("%s: error %v, want one matching %v", tc.name, err, jetstream.ErrNoStreamResponse)
		}
		if took < 250*time.Millisecond || took > 2*time.Second {
			t.Errorf("%s: the write gave up after %s, want about 300ms", tc.name, took)
		}
	}
	// A caller that has given up already writes nothing.
	done, cancel := context.WithCancel(ctx)
	cancel()
	r, _ := status.NewRecorder(js, time.Second)
	if err := r.Record(done, rec); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled caller: error %v, want context.Canceled", err)
	}
}
