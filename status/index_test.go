package status_test

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/edgehook/edgehook/natsconf"
	"github.com/edgehook/edgehook/natsconf/natstest"
	"github.com/edgehook/edgehook/status"
)

// indexFixture is a real server's status bucket and an index of it, running until the
// test ends.
type indexFixture struct {
	js    jetstream.JetStream
	kv    jetstream.KeyValue
	store *status.Store
	ix    *status.Index
}

func startIndex(t testing.TB, cfg status.IndexConfig) *indexFixture {
	t.Helper()
	return startIndexWith(t, cfg, nil)
}

func startIndexWith(t testing.TB, cfg status.IndexConfig, topo func(*natsconf.Topology)) *indexFixture {
	t.Helper()
	srv := natstest.Start(t, topo)
	js := srv.JetStream(t)
	kv, err := js.KeyValue(context.Background(), natsconf.BucketStatus)
	if err != nil {
		t.Fatal(err)
	}
	ix, err := status.NewIndex(kv, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ix.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("index run: %v", err)
		}
	})
	return &indexFixture{js: js, kv: kv, store: status.NewStore(kv), ix: ix}
}

var base = time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)

func (f *indexFixture) put(t testing.TB, tenant, id, typ, st string, created time.Time) {
	t.Helper()
	rec := status.Record{EventID: id, TenantID: tenant, Type: typ, Status: st, Attempts: 1, LastStatusCode: 200,
		CreatedAt: created, UpdatedAt: created.Add(time.Second)}
	if err := f.store.Put(context.Background(), rec); err != nil {
		t.Fatal(err)
	}
}

// ids lists every page of q and returns the ids in order with the number of pages.
func (f *indexFixture) ids(t testing.TB, tenant string, q status.IndexQuery) ([]string, int) {
	t.Helper()
	var ids []string
	pages := 0
	for {
		p, err := f.ix.List(context.Background(), tenant, q)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, e := range p.Entries {
			ids = append(ids, e.EventID)
		}
		if p.Next == "" {
			return ids, pages
		}
		if pages > 1000 {
			t.Fatal("more than 1000 pages")
		}
		q.Cursor = p.Next
	}
}

func waitIndex(t testing.TB, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestIndexListsNewestFirstFilteredAndPaged(t *testing.T) {
	f := startIndex(t, status.IndexConfig{})
	// Written out of order; two share a CreatedAt (ties go by id, the larger first).
	f.put(t, "ten_a", "evt_3", "order.paid", status.Failed, base.Add(3*time.Second))
	f.put(t, "ten_a", "evt_1", "order.created", status.Delivered, base.Add(1*time.Second))
	f.put(t, "ten_a", "evt_5", "order.created", status.Failed, base.Add(5*time.Second))
	f.put(t, "ten_a", "evt_2", "order.created", status.Queued, base.Add(2*time.Second))
	f.put(t, "ten_a", "evt_4", "order.created", status.Delivered, base.Add(5*time.Second))
	f.put(t, "ten_b", "evt_9", "order.created", status.Failed, base.Add(9*time.Second))
	// An attempt entry of evt_5 is in the same bucket but is not an event.
	m, err := status.AttemptMsg(status.Attempt{TenantID: "ten_a", EventID: "evt_5", N: 1, Attempt: 1, At: base, Outcome: status.OutcomeFailed})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.js.PublishMsg(context.Background(), m); err != nil {
		t.Fatal(err)
	}

	all, pages := f.ids(t, "ten_a", status.IndexQuery{Limit: 2})
	if want := []string{"evt_5", "evt_4", "evt_3", "evt_2", "evt_1"}; !slices.Equal(all, want) || pages != 3 {
		t.Fatalf("pages of 2: %q in %d pages, want %q in 3", all, pages, want)
	}
	failed, _ := f.ids(t, "ten_a", status.IndexQuery{Status: status.Failed, Limit: 1})
	if !slices.Equal(failed, []string{"evt_5", "evt_3"}) {
		t.Errorf("failed: %q", failed)
	}
	created, _ := f.ids(t, "ten_a", status.IndexQuery{Type: "order.created", Status: status.Delivered, Limit: 10})
	if !slices.Equal(created, []string{"evt_4", "evt_1"}) {
		t.Errorf("delivered order.created: %q", created)
	}
	other, _ := f.ids(t, "ten_b", status.IndexQuery{Limit: 10})
	if !slices.Equal(other, []string{"evt_9"}) {
		t.Errorf("tenant b sees %q", other)
	}
	if n := f.ix.Tenants(); n != 2 {
		t.Errorf("%d tenants indexed, want 2", n)
	}
}

func TestIndexStaysLive(t *testing.T) {
	f := startIndex(t, status.IndexConfig{})
	f.put(t, "ten_a", "evt_1", "t", status.Queued, base)
	f.put(t, "ten_a", "evt_2", "t", status.Queued, base.Add(time.Second))
	if got, _ := f.ids(t, "ten_a", status.IndexQuery{Limit: 10}); !slices.Equal(got, []string{"evt_2", "evt_1"}) {
		t.Fatalf("initial: %q", got)
	}
	// A page cursor stays valid while new events arrive: it names a position.
	first, err := f.ix.List(context.Background(), "ten_a", status.IndexQuery{Limit: 1})
	if err != nil {
		t.Fatal(err)
	}
	f.put(t, "ten_a", "evt_3", "t", status.Queued, base.Add(2*time.Second))
	f.put(t, "ten_a", "evt_1", "t", status.Failed, base)
	waitIndex(t, "new event and status change", func() error {
		p, err := f.ix.List(context.Background(), "ten_a", status.IndexQuery{Status: status.Failed, Limit: 10})
		if err != nil {
			return err
		}
		all, _ := f.ids(t, "ten_a", status.IndexQuery{Limit: 10})
		if len(p.Entries) != 1 || p.Entries[0].EventID != "evt_1" || !slices.Equal(all, []string{"evt_3", "evt_2", "evt_1"}) {
			return fmt.Errorf("failed %v, all %q", p.Entries, all)
		}
		return nil
	})
	second, err := f.ix.List(context.Background(), "ten_a", status.IndexQuery{Limit: 1, Cursor: first.Next})
	if err != nil {
		t.Fatal(err)
	}
	if len(second.Entries) != 1 || second.Entries[0].EventID != "evt_1" {
		t.Errorf("the page after evt_2 is %v, want evt_1", second.Entries)
	}
	if err := f.kv.Delete(context.Background(), status.Key("ten_a", "evt_2")); err != nil {
		t.Fatal(err)
	}
	if err := f.kv.Purge(context.Background(), status.Key("ten_a", "evt_3")); err != nil {
		t.Fatal(err)
	}
	waitIndex(t, "delete and purge", func() error {
		if all, _ := f.ids(t, "ten_a", status.IndexQuery{Limit: 10}); !slices.Equal(all, []string{"evt_1"}) {
			return fmt.Errorf("after delete and purge: %q", all)
		}
		return nil
	})
}

func TestIndexKeepsTheNewestMaxEventsAndSaysSo(t *testing.T) {
	f := startIndex(t, status.IndexConfig{MaxEvents: 3})
	// More than twice the bound, written newest first: the load trims as it goes.
	for i := 7; i >= 0; i-- {
		f.put(t, "ten_a", fmt.Sprintf("evt_%d", i), "t", status.Delivered, base.Add(time.Duration(i)*time.Second))
	}
	p, err := f.ix.List(context.Background(), "ten_a", status.IndexQuery{Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Entries) != 3 || p.Entries[0].EventID != "evt_7" || p.Entries[2].EventID != "evt_5" || !p.Truncated {
		t.Fatalf("loaded: %v truncated=%v", p.Entries, p.Truncated)
	}
	f.put(t, "ten_a", "evt_8", "t", status.Delivered, base.Add(8*time.Second))
	f.put(t, "ten_a", "evt_old", "t", status.Delivered, base.Add(-time.Hour))
	waitIndex(t, "newest three", func() error {
		got, _ := f.ids(t, "ten_a", status.IndexQuery{Limit: 10})
		if !slices.Equal(got, []string{"evt_8", "evt_7", "evt_6"}) {
			return fmt.Errorf("listed %q", got)
		}
		return nil
	})
}

func TestIndexRefusesBadQueries(t *testing.T) {
	f := startIndex(t, status.IndexConfig{})
	f.put(t, "ten_a", "evt_1", "t", status.Delivered, base)
	for _, q := range []status.IndexQuery{
		{Limit: 10, Cursor: "not base64!"},
		{Limit: 10, Cursor: b64("1.12.")},              // no id
		{Limit: 10, Cursor: b64("2.12.evt_1")},         // another version
		{Limit: 10, Cursor: b64("1.abc.evt_1")},        // no time
		{Limit: 10, Cursor: b64("1.12.evt.1.*")},       // an id with dots and a wildcard
		{Limit: 10, Cursor: string(make([]byte, 300))}, // long
		{Limit: 10, Status: "lost"},
		{Limit: 0},
		{Limit: status.MaxIndexPage + 1},
	} {
		if _, err := f.ix.List(context.Background(), "ten_a", q); !errors.Is(err, status.ErrIndexInvalid) {
			t.Errorf("%+v: %v, want ErrIndexInvalid", q, err)
		}
	}
	if _, err := f.ix.List(context.Background(), "ten.*", status.IndexQuery{Limit: 1}); !errors.Is(err, status.ErrIndexInvalid) {
		t.Errorf("a wildcard tenant: %v", err)
	}
}

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

func TestIndexDropsTheLeastRecentlyUsedAndIdleTenants(t *testing.T) {
	f := startIndex(t, status.IndexConfig{MaxTenants: 2, IdleTimeout: 300 * time.Millisecond})
	for _, ten := range []string{"ten_a", "ten_b", "ten_c"} {
		f.put(t, ten, "evt_1", "t", status.Delivered, base)
		if _, err := f.ix.List(context.Background(), ten, status.IndexQuery{Limit: 1}); err != nil {
			t.Fatal(err)
		}
		if n := f.ix.Tenants(); n > 2 {
			t.Fatalf("%d tenants indexed, at most 2 allowed", n)
		}
	}
	waitIndex(t, "idle tenants dropped", func() error {
		if n := f.ix.Tenants(); n != 0 {
			return fmt.Errorf("%d tenants still indexed", n)
		}
		return nil
	})
	// A dropped tenant's index starts again, current.
	f.put(t, "ten_a", "evt_2", "t", status.Delivered, base.Add(time.Second))
	if got, _ := f.ids(t, "ten_a", status.IndexQuery{Limit: 10}); !slices.Equal(got, []string{"evt_2", "evt_1"}) {
		t.Errorf("restarted index lists %q", got)
	}
}

func TestIndexCountsOutcomesPerStep(t *testing.T) {
	f := startIndex(t, status.IndexConfig{})
	now := time.Now().UTC()
	f.put(t, "ten_a", "evt_1", "t", status.Delivered, now.Add(-90*time.Minute)) // outside the hour
	f.put(t, "ten_a", "evt_2", "t", status.Delivered, now.Add(-30*time.Minute))
	f.put(t, "ten_a", "evt_3", "t", status.Failed, now.Add(-30*time.Minute))
	f.put(t, "ten_a", "evt_4", "t", status.Retrying, now.Add(-time.Minute))
	steps, err := f.ix.Outcomes(context.Background(), "ten_a", now, time.Hour, 5*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	var created, delivered, failed int
	for _, s := range steps {
		created, delivered, failed = created+s.Created, delivered+s.Delivered, failed+s.Failed
	}
	if len(steps) != 12 || created != 3 || delivered != 1 || failed != 1 {
		t.Errorf("%d steps, %d created, %d delivered, %d failed; want 12, 3, 1, 1", len(steps), created, delivered, failed)
	}
}

func TestIndexDropsRecordsTheBucketsTTLExpired(t *testing.T) {
	f := startIndexWith(t, status.IndexConfig{IdleTimeout: 400 * time.Millisecond}, func(topo *natsconf.Topology) {
		topo.Retention, topo.DuplicateWindow, topo.ReceivedDuplicateWindow = 2*time.Second, time.Second, time.Second
		topo.RetrySchedule, topo.MaxDeliver, topo.HTTPTimeout = []time.Duration{10 * time.Millisecond}, 2, 100*time.Millisecond
	})
	f.put(t, "ten_a", "evt_1", "t", status.Delivered, base)
	if got, _ := f.ids(t, "ten_a", status.IndexQuery{Limit: 10}); !slices.Equal(got, []string{"evt_1"}) {
		t.Fatalf("before expiry: %q", got)
	}
	waitIndex(t, "expired record dropped", func() error {
		if got, _ := f.ids(t, "ten_a", status.IndexQuery{Limit: 10}); len(got) != 0 {
			return fmt.Errorf("still listed: %q", got)
		}
		return nil
	})
	waitIndex(t, "the bucket expired it too", func() error {
		if _, err := f.store.Get(context.Background(), "ten_a", "evt_1"); !errors.Is(err, status.ErrNotFound) {
			return fmt.Errorf("the bucket still holds the record: %v", err)
		}
		return nil
	})
}
