package worker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/edgehook/edgehook/natsconf"
	"github.com/edgehook/edgehook/status"
	"github.com/edgehook/edgehook/vault"
	"github.com/edgehook/edgehook/webhook"
)

func TestDeliversEveryEventOnceSignedToItsTenant(t *testing.T) {
	e := newEnv(t, nil)
	ep := newEndpoint(t, e.configs)
	tenants := []string{e.tenant(t, ep), e.tenant(t, ep)}
	const perTenant = 150
	type sent struct {
		tenant  string
		payload []byte
	}
	events := map[string]sent{}
	for i := range perTenant {
		for _, tn := range tenants {
			payload := fmt.Appendf(nil, `{"type":"order.created","n":%d,"tenant":%q}`, i, tn)
			events[e.publish(t, tn, payload)] = sent{tn, payload}
		}
	}
	r := e.start(t, e.config())

	waitFor(t, 30*time.Second, "every event delivered", func() bool { return ep.count() >= len(events) })
	for id, s := range events {
		rec := e.waitStatus(t, s.tenant, id, status.Delivered)
		if rec.Attempts != 1 || rec.LastStatusCode != http.StatusNoContent || rec.LastError != "" || rec.Type != "order.created" || rec.CreatedAt.IsZero() {
			t.Errorf("status of %s = %+v, want delivered on attempt 1 with 204", id, rec)
		}
	}
	info := e.waitSettled(t)
	if int(info.Delivered.Consumer) != len(events) {
		t.Errorf("consumer delivered %d messages, want %d (no redeliveries)", info.Delivered.Consumer, len(events))
	}

	seen := map[string]bool{}
	for _, h := range ep.all() {
		s, ok := events[h.id]
		switch {
		case !ok:
			t.Errorf("webhook-id %q is not a published event id", h.id)
			continue
		case seen[h.id]:
			t.Errorf("event %s delivered twice", h.id)
		case h.verifyErr != nil:
			t.Errorf("event %s: signature does not verify: %v", h.id, h.verifyErr)
		case h.tenant != s.tenant:
			t.Errorf("event %s of tenant %s delivered to tenant %s's endpoint", h.id, s.tenant, h.tenant)
		case !bytes.Equal(h.body, s.payload):
			t.Errorf("event %s: body %q, want the payload %q unchanged", h.id, h.body, s.payload)
		case h.contentType != "application/json" || h.userAgent != DefaultUserAgent:
			t.Errorf("event %s: content-type %q user-agent %q", h.id, h.contentType, h.userAgent)
		}
		seen[h.id] = true
	}
	if len(seen) != len(events) || ep.count() != len(events) {
		t.Errorf("endpoint got %d webhooks for %d distinct events, want %d each", ep.count(), len(seen), len(events))
	}
	if got := counterValue(t, r.reg, "edgehook_deliveries_total", "outcome", outcomeDelivered); got != float64(len(events)) {
		t.Errorf("edgehook_deliveries_total{outcome=delivered} = %v, want %d", got, len(events))
	}
}

func TestSignsWithEveryActiveSecretDuringRotation(t *testing.T) {
	e := newEnv(t, nil)
	ep := newEndpoint(t, e.configs)
	tn := e.tenant(t, ep)
	cfg, _ := e.configs.WebhookConfig(context.Background(), tn)
	current, previous, expired := cfg.Secret, mustSecret(t), mustSecret(t)
	cfg.Previous = []vault.PreviousSecret{
		{Secret: previous, ExpiresAt: time.Now().Add(time.Hour)},
		{Secret: expired, ExpiresAt: time.Now().Add(-time.Minute)},
	}
	e.configs.put(cfg)
	id := e.publish(t, tn, []byte(`{"rotated":true}`))
	e.start(t, e.config())
	e.waitStatus(t, tn, id, status.Delivered)

	h := ep.hitsFor(id)[0]
	sigs := strings.Fields(h.signature)
	if len(sigs) != 2 {
		t.Fatalf("webhook-signature has %d signatures, want 2 (current and unexpired previous): %q", len(sigs), h.signature)
	}
	verify := func(sig string, s webhook.Secret) error {
		return webhook.Verify(h.id, h.timestamp, sig, h.body, time.Now(), webhook.DefaultTolerance, s)
	}
	if err := verify(sigs[0], current); err != nil {
		t.Errorf("first signature does not verify with the current secret: %v", err)
	}
	if err := verify(sigs[1], previous); err != nil {
		t.Errorf("second signature does not verify with the previous secret: %v", err)
	}
	if err := verify(sigs[0], previous); !errors.Is(err, webhook.ErrNoMatch) {
		t.Errorf("first signature verified with the previous secret: %v", err)
	}
	if err := verify(h.signature, expired); !errors.Is(err, webhook.ErrNoMatch) {
		t.Errorf("the expired secret still signs: %v", err)
	}
}

func TestRetriesFailedAttemptsUntilDelivered(t *testing.T) {
	e := newEnv(t, nil)
	ep := newEndpoint(t, e.configs)
	tn := e.tenant(t, ep)
	seen := make(chan status.Record, 3)
	ep.setAnswer(func(w http.ResponseWriter, _ *http.Request, h hit) {
		rec, err := e.status.Get(context.Background(), h.tenant, h.id)
		if err != nil {
			t.Errorf("status at attempt %d: %v", h.n, err)
		}
		seen <- rec
		if h.n <= 2 {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	id := e.publish(t, tn, []byte(`{"retry":true}`))
	e.start(t, e.config())

	final := e.waitStatus(t, tn, id, status.Delivered)
	if final.Attempts != 3 || final.LastStatusCode != 200 || final.LastError != "" {
		t.Errorf("final status %+v, want delivered on attempt 3 with 200 and no error", final)
	}
	wantBefore := []struct {
		status   string
		attempts int
		code     int
	}{{status.Queued, 0, 0}, {status.Retrying, 1, 500}, {status.Retrying, 2, 500}}
	for i, want := range wantBefore {
		got := <-seen
		if got.Status != want.status || got.Attempts != want.attempts || got.LastStatusCode != want.code {
			t.Errorf("status seen by attempt %d = %s/%d/%d, want %s/%d/%d", i+1,
				got.Status, got.Attempts, got.LastStatusCode, want.status, want.attempts, want.code)
		}
		if i > 0 && got.LastError != "HTTP 500" {
			t.Errorf("lastError at attempt %d = %q, want %q", i+1, got.LastError, "HTTP 500")
		}
	}
	hits := ep.hitsFor(id)
	if len(hits) != 3 {
		t.Fatalf("endpoint got %d attempts, want 3", len(hits))
	}
	for _, h := range hits {
		if h.verifyErr != nil {
			t.Errorf("attempt %d does not verify: %v", h.n, h.verifyErr)
		}
	}
	e.waitSettled(t)
}

func TestHonoursRetryAfterOn429(t *testing.T) {
	e := newEnv(t, nil)
	ep := newEndpoint(t, e.configs)
	tn := e.tenant(t, ep)
	ep.setAnswer(func(w http.ResponseWriter, _ *http.Request, h hit) {
		if h.n == 1 {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	id := e.publish(t, tn, []byte(`{}`))
	e.start(t, e.config()) // schedule says 20ms; Retry-After says 1s

	rec := e.waitStatus(t, tn, id, status.Delivered)
	hits := ep.hitsFor(id)
	if len(hits) != 2 || rec.Attempts != 2 {
		t.Fatalf("got %d attempts, status attempts %d; want 2", len(hits), rec.Attempts)
	}
	if gap := hits[1].at.Sub(hits[0].at); gap < time.Second {
		t.Errorf("second attempt came %s after the 429, want at least Retry-After 1s", gap)
	}
}

func TestGoneTerminatesAtOnce(t *testing.T) {
	e := newEnv(t, nil)
	ep := newEndpoint(t, e.configs)
	tn := e.tenant(t, ep)
	ep.setAnswer(func(w http.ResponseWriter, _ *http.Request, _ hit) { w.WriteHeader(http.StatusGone) })
	terminated := e.subscribeAdvisory(t, "MSG_TERMINATED")
	id := e.publish(t, tn, []byte(`{}`))
	r := e.start(t, e.config())

	rec := e.waitStatus(t, tn, id, status.Failed)
	if rec.Attempts != 1 || rec.LastStatusCode != http.StatusGone || !strings.Contains(rec.LastError, "410") {
		t.Errorf("status %+v, want failed on attempt 1 with 410", rec)
	}
	if _, err := terminated.NextMsg(10 * time.Second); err != nil {
		t.Errorf("no MSG_TERMINATED advisory: %v", err)
	}
	info := e.waitSettled(t)
	if info.NumRedelivered != 0 || len(ep.hitsFor(id)) != 1 {
		t.Errorf("after 410: %d redelivered, %d attempts; want 0 and 1", info.NumRedelivered, len(ep.hitsFor(id)))
	}
	if got := counterValue(t, r.reg, "edgehook_deliveries_total", "outcome", outcomeFailed); got != 1 {
		t.Errorf("edgehook_deliveries_total{outcome=failed} = %v, want 1", got)
	}
}

func TestGivesUpAfterMaxDeliver(t *testing.T) {
	e := newEnv(t, func(topo *natsconf.Topology) { topo.MaxDeliver = 3 })
	ep := newEndpoint(t, e.configs)
	tn := e.tenant(t, ep)
	ep.setAnswer(func(w http.ResponseWriter, _ *http.Request, _ hit) { w.WriteHeader(http.StatusBadGateway) })
	exhausted := e.subscribeAdvisory(t, "MAX_DELIVERIES")
	id := e.publish(t, tn, []byte(`{}`))
	r := e.start(t, e.config())

	rec := e.waitStatus(t, tn, id, status.Failed)
	if rec.Attempts != 3 || rec.LastStatusCode != http.StatusBadGateway || rec.LastError != "HTTP 502" {
		t.Errorf("status %+v, want failed after 3 attempts with 502", rec)
	}
	if _, err := exhausted.NextMsg(10 * time.Second); err != nil {
		t.Errorf("no MAX_DELIVERIES advisory: %v", err)
	}
	e.waitSettled(t) // the server drops the event from the consumer once exhausted
	if n := len(ep.hitsFor(id)); n != 3 {
		t.Errorf("endpoint got %d attempts, want 3", n)
	}
	if got := counterValue(t, r.reg, "edgehook_deliveries_total", "outcome", outcomeRetry); got != 2 {
		t.Errorf("edgehook_deliveries_total{outcome=retry} = %v, want 2", got)
	}
}

func TestDoesNotFollowRedirects(t *testing.T) {
	e := newEnv(t, func(topo *natsconf.Topology) { topo.MaxDeliver = 2 })
	ep := newEndpoint(t, e.configs)
	tn := e.tenant(t, ep)
	other := newEndpoint(t, e.configs)
	ep.setAnswer(func(w http.ResponseWriter, r *http.Request, _ hit) {
		http.Redirect(w, r, other.url(tn), http.StatusFound)
	})
	id := e.publish(t, tn, []byte(`{}`))
	e.start(t, e.config())

	rec := e.waitStatus(t, tn, id, status.Failed)
	if rec.LastStatusCode != http.StatusFound || !strings.Contains(rec.LastError, "redirect") {
		t.Errorf("status %+v, want failed with 302 and a redirect error", rec)
	}
	if n := len(ep.hitsFor(id)); n != 2 {
		t.Errorf("redirecting endpoint got %d attempts, want 2", n)
	}
	if n := other.count(); n != 0 {
		t.Errorf("redirect target was hit %d times, want 0", n)
	}
}

func TestRefusesLoopbackTargetsUnlessAllowed(t *testing.T) {
	e := newEnv(t, func(topo *natsconf.Topology) { topo.MaxDeliver = 2 })
	ep := newEndpoint(t, e.configs)
	loop := e.tenant(t, ep)
	ftp := e.tenant(t, ep)
	cfg, _ := e.configs.WebhookConfig(context.Background(), ftp)
	cfg.TargetURL = "ftp://example.com/hooks"
	e.configs.put(cfg)
	loopID := e.publish(t, loop, []byte(`{}`))
	ftpID := e.publish(t, ftp, []byte(`{}`))
	wc := e.config()
	wc.AllowPrivateTargets = false
	r := e.start(t, wc)

	rec := e.waitStatus(t, loop, loopID, status.Failed)
	if rec.LastError != "target address is not allowed: loopback" || rec.Attempts != 2 || rec.LastStatusCode != 0 {
		t.Errorf("loopback target status %+v, want failed after 2 refused attempts", rec)
	}
	rec = e.waitStatus(t, ftp, ftpID, status.Failed)
	if rec.LastError != "target URL is not allowed: scheme must be http or https" {
		t.Errorf("ftp target status %+v, want a refused scheme", rec)
	}
	if n := ep.count(); n != 0 {
		t.Errorf("the loopback endpoint was reached %d times", n)
	}
	if got := counterValue(t, r.reg, "edgehook_deliveries_total", "outcome", outcomeRefused); got != 2 {
		t.Errorf("edgehook_deliveries_total{outcome=refused} = %v, want 2 (one per event before the last attempt)", got)
	}
}

func TestTenantWithoutConfigFailsAtOnce(t *testing.T) {
	e := newEnv(t, nil)
	id := e.publish(t, "tnoconfig", []byte(`{}`))
	e.start(t, e.config())
	rec := e.waitStatus(t, "tnoconfig", id, status.Failed)
	if rec.LastError != "tenant has no webhook config" || rec.Attempts != 1 {
		t.Errorf("status %+v, want failed on attempt 1: tenant has no webhook config", rec)
	}
	if info := e.waitSettled(t); info.NumRedelivered != 0 {
		t.Errorf("%d redelivered after a terminal failure", info.NumRedelivered)
	}
}

func TestConfigReadErrorIsRetriedNeverSentUnsigned(t *testing.T) {
	e := newEnv(t, nil)
	ep := newEndpoint(t, e.configs)
	tn := e.tenant(t, ep)
	failures := 1
	e.configs.fail = func(string) error {
		if failures > 0 {
			failures--
			return errors.New("vault: 503 sealed")
		}
		return nil
	}
	firstSeen := make(chan status.Record, 1)
	ep.setAnswer(func(w http.ResponseWriter, _ *http.Request, h hit) {
		if h.n == 1 {
			rec, _ := e.status.Get(context.Background(), h.tenant, h.id)
			firstSeen <- rec
		}
		w.WriteHeader(http.StatusOK)
	})
	id := e.publish(t, tn, []byte(`{}`))
	e.start(t, e.config())

	rec := e.waitStatus(t, tn, id, status.Delivered)
	if rec.Attempts != 2 {
		t.Errorf("delivered on attempt %d, want 2", rec.Attempts)
	}
	first := <-firstSeen
	if first.Status != status.Retrying || first.LastError != "webhook config unavailable" {
		t.Errorf("status before the successful attempt %+v, want retrying: webhook config unavailable", first)
	}
	if hits := ep.hitsFor(id); len(hits) != 1 || hits[0].verifyErr != nil {
		t.Errorf("endpoint got %d webhooks (want 1, signed)", len(hits))
	}
}

func TestTerminatesMessagesThatAreNotEvents(t *testing.T) {
	e := newEnv(t, nil)
	ep := newEndpoint(t, e.configs)
	victim := e.tenant(t, ep)
	nc := e.srv.Connect(t)
	ctx := context.Background()
	if err := nc.Publish(natsconf.EventSubject("tnoheaders"), []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	// An event claiming another tenant than its subject must not reach that tenant.
	forged := eventMsg(victim, "evt_forged", []byte(`{}`), time.Now())
	forged.Subject = natsconf.EventSubject("tother")
	if err := nc.PublishMsg(forged); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "both messages stored", func() bool {
		s, err := e.js.Stream(ctx, natsconf.StreamEvents)
		return err == nil && s.CachedInfo().State.Msgs == 2
	})
	e.start(t, e.config())

	info := e.waitSettled(t)
	if info.Delivered.Consumer != 2 || info.NumRedelivered != 0 {
		t.Errorf("consumer delivered %d, redelivered %d; want 2 and 0", info.Delivered.Consumer, info.NumRedelivered)
	}
	if n := ep.count(); n != 0 {
		t.Errorf("endpoint got %d webhooks from non-events", n)
	}
	if _, err := e.status.Get(ctx, victim, "evt_forged"); !errors.Is(err, status.ErrNotFound) {
		t.Errorf("status of the forged event: %v, want none", err)
	}
}

func TestRunRejectsConsumerMismatch(t *testing.T) {
	e := newEnv(t, nil)
	for name, edit := range map[string]func(*Config){
		"HTTPTimeout": func(c *Config) { c.HTTPTimeout = e.srv.Topology.AckWait() },
		"MaxDeliver":  func(c *Config) { c.MaxDeliver = e.srv.Topology.MaxDeliver + 1 },
	} {
		t.Run(name, func(t *testing.T) {
			cfg := e.config()
			edit(&cfg)
			w, err := New(cfg, Deps{JS: e.js, Configs: e.configs})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err = w.Run(ctx)
			if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), name) {
				t.Errorf("Run = %v, want ErrInvalidConfig naming %s", err, name)
			}
		})
	}
}

func TestRunReturnsWhenConsumerDeleted(t *testing.T) {
	e := newEnv(t, nil)
	w, err := New(e.config(), Deps{JS: e.js, Configs: e.configs})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- w.Run(context.Background()) }()
	waitFor(t, 10*time.Second, "worker ready", w.Ready)
	if err := e.js.DeleteConsumer(context.Background(), natsconf.StreamEvents, natsconf.ConsumerDeliver); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, ErrConsumingStopped) {
			t.Errorf("Run = %v, want ErrConsumingStopped", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Run kept going after its consumer was deleted")
	}
	if w.Ready() {
		t.Error("Ready after Run returned")
	}
}

func mustSecret(t testing.TB) webhook.Secret {
	t.Helper()
	s, err := webhook.NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestTimedOutAttemptIsRetried(t *testing.T) {
	e := newEnv(t, nil)
	ep := newEndpoint(t, e.configs)
	tn := e.tenant(t, ep)
	seen := make(chan status.Record, 1)
	ep.setAnswer(func(w http.ResponseWriter, r *http.Request, h hit) {
		if h.n == 1 {
			select { // hang past the worker's timeout
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
			return
		}
		rec, _ := e.status.Get(context.Background(), h.tenant, h.id)
		seen <- rec
		w.WriteHeader(http.StatusOK)
	})
	id := e.publish(t, tn, []byte(`{}`))
	cfg := e.config()
	cfg.HTTPTimeout = 300 * time.Millisecond
	e.start(t, cfg)

	rec := e.waitStatus(t, tn, id, status.Delivered)
	before := <-seen
	if before.Status != status.Retrying || before.LastError != "timeout after 300ms" || before.LastStatusCode != 0 {
		t.Errorf("status after the hung attempt %+v, want retrying: timeout after 300ms", before)
	}
	if rec.Attempts != 2 {
		t.Errorf("delivered on attempt %d, want 2", rec.Attempts)
	}
}
