package worker

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/edgehook/edgehook/natsconf"
	"github.com/edgehook/edgehook/status"
	"github.com/edgehook/edgehook/vault"
)

func TestShutdownNaksSlowDeliveriesAndLosesNothing(t *testing.T) {
	e := newEnv(t, nil)
	ep := newEndpoint(t, e.configs)
	tn := e.tenant(t, ep)
	release := make(chan struct{})
	t.Cleanup(func() { close(release) }) // runs before the endpoint closes
	hang := func(w http.ResponseWriter, r *http.Request, _ hit) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	ep.setAnswer(hang)
	const events = 20
	ids := make([]string, events)
	for i := range ids {
		ids[i] = e.publish(t, tn, []byte(`{"slow":true}`))
	}
	cfg := e.config()
	cfg.Concurrency, cfg.TenantConcurrency = 4, 4
	cfg.DrainTimeout = 300 * time.Millisecond
	// Abandoned attempts hang for up to 10s, so any event back sooner was given back
	// by the shutdown itself.
	cfg.HTTPTimeout = 10 * time.Second
	first := e.start(t, cfg)
	// Four slots busy; the iterator has pulled more that wait in its buffer.
	waitFor(t, 10*time.Second, "every delivery slot busy", func() bool { return ep.count() == cfg.Concurrency })

	took := first.stop(t, 10*time.Second)
	if took < cfg.DrainTimeout || took > cfg.DrainTimeout+time.Second {
		t.Errorf("Run returned %s after cancel, want just over DrainTimeout %s", took, cfg.DrainTimeout)
	}
	hung := map[string]bool{}
	for _, h := range ep.all() {
		hung[h.id] = true
	}

	// A new worker gets everything at once: the hung events were naked, the buffered
	// ones given back, none waits for the ack wait to expire.
	ep.setAnswer(nil)
	start := time.Now()
	e.start(t, e.config())
	for _, id := range ids {
		rec := e.waitStatus(t, tn, id, status.Delivered)
		if hung[id] && rec.Attempts < 2 {
			t.Errorf("event %s hung during shutdown but was delivered on attempt %d", id, rec.Attempts)
		}
	}
	e.waitSettled(t)
	if took := time.Since(start); took >= 5*time.Second {
		t.Errorf("redelivery took %s: shutdown did not give every event back", took)
	}
	for _, id := range ids {
		want := 1
		if hung[id] {
			want = 2 // the abandoned attempt and the delivery
		}
		if n := len(ep.hitsFor(id)); n != want {
			t.Errorf("event %s reached the endpoint %d times, want %d", id, n, want)
		}
	}
}

func TestShutdownLetsInFlightDeliveriesFinish(t *testing.T) {
	e := newEnv(t, nil)
	ep := newEndpoint(t, e.configs)
	tn := e.tenant(t, ep)
	arrived := make(chan struct{}, 1)
	ep.setAnswer(func(w http.ResponseWriter, _ *http.Request, _ hit) {
		arrived <- struct{}{}
		time.Sleep(300 * time.Millisecond)
		w.WriteHeader(http.StatusOK)
	})
	id := e.publish(t, tn, []byte(`{}`))
	r := e.start(t, e.config())
	<-arrived

	if took := r.stop(t, 10*time.Second); took >= e.config().DrainTimeout {
		t.Errorf("Run took %s to return; the delivery needed 300ms", took)
	}
	rec, err := e.status.Get(context.Background(), tn, id)
	if err != nil || rec.Status != status.Delivered || rec.Attempts != 1 {
		t.Errorf("status after shutdown %+v (%v), want delivered on attempt 1", rec, err)
	}
	info := e.waitSettled(t)
	if info.NumRedelivered != 0 || len(ep.hitsFor(id)) != 1 {
		t.Errorf("redelivered %d, endpoint hits %d; want 0 and 1", info.NumRedelivered, len(ep.hitsFor(id)))
	}
}

// slowConfigs delays every read, as a struggling Vault would.
type slowConfigs struct {
	vault.ConfigReader
	delay time.Duration
}

func (s slowConfigs) WebhookConfig(ctx context.Context, tenantID string) (vault.WebhookConfig, error) {
	time.Sleep(s.delay)
	return s.ConfigReader.WebhookConfig(ctx, tenantID)
}

func TestLongHandlingIsNotRedeliveredMidFlight(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	// A consumer with a 1s ack wait; handling one event takes ~2s (slow config read
	// plus a slow endpoint), so only InProgress keeps it from a second delivery.
	cc := e.srv.Topology.DeliverConsumer()
	cc.AckWait, cc.BackOff = time.Second, []time.Duration{time.Second}
	if _, err := e.js.UpdateConsumer(ctx, natsconf.StreamEvents, cc); err != nil {
		t.Fatal(err)
	}
	ep := newEndpoint(t, e.configs)
	tn := e.tenant(t, ep)
	ep.setAnswer(func(w http.ResponseWriter, _ *http.Request, _ hit) {
		time.Sleep(700 * time.Millisecond)
		w.WriteHeader(http.StatusOK)
	})
	id := e.publish(t, tn, []byte(`{}`))
	cfg := e.config()
	cfg.HTTPTimeout = 900 * time.Millisecond
	w, err := New(cfg, Deps{JS: e.js, Configs: slowConfigs{e.configs, 1200 * time.Millisecond}, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- w.Run(runCtx) }()
	defer func() { cancel(); <-done }()

	rec := e.waitStatus(t, tn, id, status.Delivered)
	info := e.waitSettled(t)
	if rec.Attempts != 1 || info.NumRedelivered != 0 || info.Delivered.Consumer != 1 || len(ep.hitsFor(id)) != 1 {
		t.Errorf("attempts %d, redelivered %d, consumer deliveries %d, endpoint hits %d; want 1, 0, 1, 1",
			rec.Attempts, info.NumRedelivered, info.Delivered.Consumer, len(ep.hitsFor(id)))
	}
}
