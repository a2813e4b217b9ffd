package worker

import (
	"context"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/edgehook/edgehook/natsconf"
	"github.com/edgehook/edgehook/status"
)

// parkedCount returns how many parked copies PARKED holds on parked.>.
func (e *env) parkedCount(t testing.TB) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := e.js.Stream(ctx, natsconf.StreamParked)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(natsconf.ParkedSubjectPrefix+">"))
	if err != nil {
		t.Fatal(err)
	}
	var n uint64
	for _, c := range info.State.Subjects {
		n += c
	}
	return n
}

// TestLongRetryWaitsOutsideTheConsumer: a retry further off than MaxNakDelay leaves the
// delivery consumer as a parked copy carrying the attempt count, the server brings it
// back when due, and the event is delivered on its second attempt with nothing left
// pending meanwhile.
func TestLongRetryWaitsOutsideTheConsumer(t *testing.T) {
	e := newEnv(t, func(topo *natsconf.Topology) { topo.RetrySchedule = []time.Duration{3 * time.Second} })
	ep := newEndpoint(t, e.configs)
	tn := e.tenant(t, ep)
	var calls atomic.Int32
	ep.setAnswer(func(w http.ResponseWriter, _ *http.Request, _ hit) {
		if calls.Add(1) == 1 {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	id := e.publish(t, tn, []byte(`{"n":1}`))
	cfg := e.config()
	cfg.MaxNakDelay = 500 * time.Millisecond
	r := e.start(t, cfg)

	waitFor(t, 5*time.Second, "a parked copy", func() bool { return e.parkedCount(t) == 1 })
	ctx := context.Background()
	s, err := e.js.Stream(ctx, natsconf.StreamParked)
	if err != nil {
		t.Fatal(err)
	}
	m, err := s.GetMsg(ctx, 1, jetstream.WithGetMsgSubject(natsconf.ParkedSubjectPrefix+">"))
	if err != nil {
		t.Fatal(err)
	}
	if m.Header.Get(natsconf.HeaderEventID) != id || m.Header.Get(natsconf.HeaderAttempts) != "1" || m.Header.Get(natsconf.HeaderParkedFrom) == "" {
		t.Errorf("parked copy headers %v: want the event id, 1 attempt spent and the message it was parked from", m.Header)
	}
	// The worker acks the message after the copy is stored and the attempt recorded: the
	// consumer is empty from then until the copy comes back.
	waitFor(t, 5*time.Second, "the consumer empty while the copy is parked", func() bool {
		info := e.consumerInfo(t)
		return e.parkedCount(t) == 1 && info.NumAckPending == 0 && info.NumPending == 0
	})
	rec := e.waitStatus(t, tn, id, status.Delivered)
	if rec.Attempts != 2 || calls.Load() != 2 {
		t.Errorf("delivered on attempt %d after %d requests, want 2 and 2", rec.Attempts, calls.Load())
	}
	hits := ep.hitsFor(id)
	if len(hits) != 2 || hits[0].id != hits[1].id {
		t.Errorf("endpoint saw %d attempts, want 2 with one webhook-id", len(hits))
	}
	if got := counterValue(t, r.reg, "edgehook_events_parked_total", "", ""); got != 1 {
		t.Errorf("edgehook_events_parked_total = %v, want 1", got)
	}
	if n := histogramCount(t, r.reg, "edgehook_retry_lateness_seconds"); n < 1 {
		t.Errorf("edgehook_retry_lateness_seconds counted %d retries, want the one that came back", n)
	}
}

// TestParkedEventsComeBackWhenTheEndpointAnswers: while an endpoint is parked its events
// wait as parked copies without requests; when it answers again (the probe), every one
// comes back at once, long before its schedule, and each is delivered once. The copies
// the schedule brings back later are stale and dropped.
func TestParkedEventsComeBackWhenTheEndpointAnswers(t *testing.T) {
	e := newEnv(t, func(topo *natsconf.Topology) {
		topo.MaxDeliver = 4
		topo.RetrySchedule = []time.Duration{20 * time.Millisecond, 3 * time.Second}
	})
	ep := newEndpoint(t, e.configs)
	tn := e.tenant(t, ep)
	var (
		healthy atomic.Bool
		mu      sync.Mutex
		okBy    = map[string]int{} // webhook-id -> 2xx answers
	)
	ep.setAnswer(func(w http.ResponseWriter, _ *http.Request, h hit) {
		if healthy.Load() {
			mu.Lock()
			okBy[h.id]++
			mu.Unlock()
			w.WriteHeader(http.StatusOK)
			return
		}
		w.WriteHeader(http.StatusServiceUnavailable)
	})
	const events = 20
	var ids []string
	for i := range events {
		ids = append(ids, e.publish(t, tn, []byte(`{"n":`+strconv.Itoa(i)+`}`)))
	}
	cfg := e.config()
	cfg.BreakerThreshold, cfg.BreakerCooldown, cfg.BreakerMaxCooldown = 3, 300*time.Millisecond, 300*time.Millisecond
	r := e.start(t, cfg)
	waitFor(t, 10*time.Second, "every event parked", func() bool { return e.parkedCount(t) == events })
	// A parked event's ack follows its copy's store ack; the server counts it a moment
	// later.
	waitFor(t, 5*time.Second, "no event pending on the consumer with the endpoint parked", func() bool {
		return e.consumerInfo(t).NumAckPending == 0
	})
	requests := ep.count()
	time.Sleep(time.Second) // probes only: one per 300ms cooldown
	if n := ep.count() - requests; n > 5 {
		t.Errorf("the parked endpoint got %d requests in 1s; want only probes", n)
	}

	healthy.Store(true)
	back := time.Now()
	for _, id := range ids {
		e.waitStatus(t, tn, id, status.Delivered)
	}
	if took := time.Since(back); took > 2500*time.Millisecond {
		t.Errorf("parked events took %s to be delivered after the endpoint answered, want well before their 3s schedule", took)
	}
	// The schedules fire later: those copies are stale and deliver nothing again.
	waitFor(t, 10*time.Second, "the stale copies dropped", func() bool {
		return counterValue(t, r.reg, "edgehook_parked_copies_stale_total", "", "") >= events-1
	})
	mu.Lock()
	for _, id := range ids {
		if okBy[id] != 1 {
			t.Errorf("event %s delivered %d times, want once", id, okBy[id])
		}
	}
	mu.Unlock()
	if got := gaugeValue(t, r.reg, "edgehook_endpoints_parked"); got != 0 {
		t.Errorf("edgehook_endpoints_parked = %v after recovery, want 0", got)
	}
	if got := counterValue(t, r.reg, "edgehook_events_unparked_total", "", ""); got < events-1 {
		t.Errorf("edgehook_events_unparked_total = %v, want the parked events brought back", got)
	}
}

// TestTwoReturnsOfOneParkedCopyDeliverOnce: a parked copy brought back early while its
// schedule fires too comes back twice at once; the first to claim the event's status
// is delivered, the other is stale and dropped.
func TestTwoReturnsOfOneParkedCopyDeliverOnce(t *testing.T) {
	for round := range 5 {
		e := newEnv(t, nil)
		ep := newEndpoint(t, e.configs)
		tn := e.tenant(t, ep)
		ctx := context.Background()
		id := "evt_twice" + strconv.Itoa(round)
		// Sequence 1 stands for the message the copy was parked from (not an event: the
		// worker terminates it); the two returns come after it.
		if _, err := e.js.Publish(ctx, natsconf.EventSubject(tn), []byte(`{}`)); err != nil {
			t.Fatal(err)
		}
		const parkedFrom = 1
		now := time.Now().UTC()
		if err := e.status.Put(ctx, status.Record{EventID: id, TenantID: tn, Status: status.Retrying, Attempts: 1, Seq: parkedFrom, CreatedAt: now, UpdatedAt: now}); err != nil {
			t.Fatal(err)
		}
		for range 2 {
			m := eventMsg(tn, id, []byte(`{}`), now)
			m.Header.Set(natsconf.HeaderAttempts, "1")
			m.Header.Set(natsconf.HeaderParkedFrom, strconv.Itoa(parkedFrom))
			if _, err := e.js.PublishMsg(ctx, m); err != nil {
				t.Fatal(err)
			}
		}
		r := e.start(t, e.config())
		e.waitStatus(t, tn, id, status.Delivered)
		waitFor(t, 5*time.Second, "the second return dropped", func() bool {
			return counterValue(t, r.reg, "edgehook_parked_copies_stale_total", "", "") == 1
		})
		if n := len(ep.hitsFor(id)); n != 1 {
			t.Fatalf("round %d: the endpoint got the event %d times, want once", round, n)
		}
		r.stop(t, 10*time.Second)
	}
}

// TestBringBacksOfOneEndpointDoNotPileUp: asked again and again to bring an endpoint's
// parked events back while a bring-back of them runs (a breaker that keeps closing), the
// worker scans the parked copies at most twice, not once per request.
func TestBringBacksOfOneEndpointDoNotPileUp(t *testing.T) {
	e := newEnv(t, func(topo *natsconf.Topology) {
		topo.MaxDeliver = 4
		topo.RetrySchedule = []time.Duration{20 * time.Millisecond, time.Hour}
	})
	ep := newEndpoint(t, e.configs)
	tn := e.tenant(t, ep)
	var healthy atomic.Bool
	ep.setAnswer(func(w http.ResponseWriter, _ *http.Request, _ hit) {
		if healthy.Load() {
			w.WriteHeader(http.StatusOK)
			return
		}
		w.WriteHeader(http.StatusServiceUnavailable)
	})
	const events = 300
	var ids []string
	for i := range events {
		ids = append(ids, e.publish(t, tn, []byte(`{"n":`+strconv.Itoa(i)+`}`)))
	}
	cfg := e.config()
	// A breaker that stays open through the test: no probe brings anything back.
	cfg.BreakerThreshold, cfg.BreakerCooldown, cfg.BreakerMaxCooldown = 3, time.Hour, time.Hour
	r := e.start(t, cfg)
	waitFor(t, 10*time.Second, "every event parked", func() bool { return e.parkedCount(t) == events })

	// The endpoint answers again: its breaker closes (as its probe's answer would close
	// it) and the bring-back is asked for many times over.
	healthy.Store(true)
	eps := r.w.endpoints.tenantParkedAt(tn)
	if len(eps) != 1 {
		t.Fatalf("the tenant is parked at %d endpoints, want 1", len(eps))
	}
	r.w.endpoints.close(eps[0])
	const asks = 10
	for range asks {
		r.w.unparkInBackground(natsconf.ParkedFilter(eps[0]), "test")
	}
	for _, id := range ids {
		e.waitStatus(t, tn, id, status.Delivered)
	}
	waitFor(t, 10*time.Second, "the bring-backs ended", func() bool {
		r.w.backgroundMu.Lock()
		defer r.w.backgroundMu.Unlock()
		return len(r.w.unparking) == 0
	})
	got := counterValue(t, r.reg, "edgehook_events_unparked_total", "", "")
	if got < events || got > 2*events {
		t.Errorf("edgehook_events_unparked_total = %v after %d requests for %d parked events, want %d to %d (one scan, and at most one more)", got, asks, events, events, 2*events)
	}
}
