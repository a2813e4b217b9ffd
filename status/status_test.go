package status_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/edgehook/edgehook/natsconf"
	"github.com/edgehook/edgehook/natsconf/natstest"
	"github.com/edgehook/edgehook/status"
)

func TestQueuedNeverOverwritesALaterState(t *testing.T) {
	srv := natstest.Start(t, nil)
	js := srv.JetStream(t)
	ctx := context.Background()
	kv, err := js.KeyValue(ctx, natsconf.BucketStatus)
	if err != nil {
		t.Fatal(err)
	}
	store := status.NewStore(kv)
	now := time.Now().UTC()
	rec := status.Record{EventID: "evt_1", TenantID: "ten_a", CreatedAt: now, UpdatedAt: now}

	m, err := status.QueuedMsg(rec)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.PublishMsg(ctx, m); err != nil {
		t.Fatalf("first queued write: %v", err)
	}
	got, err := store.Get(ctx, "ten_a", "evt_1")
	if err != nil || got.Status != status.Queued {
		t.Fatalf("after queued: %+v %v", got, err)
	}

	// The worker's write wins over a queued record that arrives late.
	delivered := rec
	delivered.Status, delivered.Attempts, delivered.LastStatusCode = status.Delivered, 1, 200
	if err := store.Put(ctx, delivered); err != nil {
		t.Fatal(err)
	}
	m, _ = status.QueuedMsg(rec)
	_, err = js.PublishMsg(ctx, m)
	if !status.IsAlreadyWritten(err) {
		t.Fatalf("late queued write: %v, want already written", err)
	}
	got, _ = store.Get(ctx, "ten_a", "evt_1")
	if got.Status != status.Delivered || got.Attempts != 1 || got.LastStatusCode != 200 {
		t.Errorf("record after late queued write = %+v", got)
	}

	// Records are scoped by tenant; ids that could address other keys are not found.
	for _, q := range [][2]string{{"ten_b", "evt_1"}, {"ten_a", "*"}, {"ten_a", "evt_1.x"}, {"ten_a.evt_1", ""}, {">", "evt_1"}} {
		if _, err := store.Get(ctx, q[0], q[1]); !errors.Is(err, status.ErrNotFound) {
			t.Errorf("Get(%q, %q) = %v, want ErrNotFound", q[0], q[1], err)
		}
	}
}
