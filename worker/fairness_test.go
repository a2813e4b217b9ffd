package worker

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgehook/edgehook/natsconf"
	"github.com/edgehook/edgehook/status"
)

func TestBreakerOpensProbesAndCloses(t *testing.T) {
	cfg := breakerConfig{threshold: 3, cooldown: time.Second, maxCooldown: 3 * time.Second, probeTimeout: 5 * time.Second}
	var b breaker
	now := time.Unix(1000, 0)
	fail := result{sent: true, statusCode: 503, lastError: "HTTP 503"}
	ok := result{sent: true, statusCode: 200}
	for i := range 2 {
		if to := b.report(cfg, fail, false, now); to != "" {
			t.Fatalf("failure %d moved the breaker to %s", i+1, to)
		}
	}
	// A non-answer (config error, refused target) says nothing about the endpoint.
	b.report(cfg, result{lastError: "webhook config unavailable"}, false, now)
	if to := b.report(cfg, fail, false, now); to != breakerOpen || !b.open {
		t.Fatalf("third consecutive failure: %q, want open", to)
	}
	if b.probeDue(cfg, now.Add(400*time.Millisecond)) {
		t.Fatal("a probe was due before the cooldown ended")
	}
	// After the cooldown exactly one probe is sent; no second one while it is out.
	if !b.probeDue(cfg, now.Add(time.Second)) {
		t.Fatal("no probe due after the cooldown")
	}
	if b.probeDue(cfg, now.Add(1500*time.Millisecond)) {
		t.Fatal("a second probe beside the outstanding one")
	}
	// A failed probe doubles the cooldown, capped.
	if to := b.report(cfg, fail, true, now.Add(2*time.Second)); to != breakerOpen || b.cooldown != 2*time.Second {
		t.Fatalf("failed probe: %q cooldown %s, want open for 2s", to, b.cooldown)
	}
	if b.probeDue(cfg, now.Add(3*time.Second)) || !b.probeDue(cfg, now.Add(4*time.Second)) {
		t.Fatal("the next probe is not due exactly 2s after the failed one")
	}
	// A probe that never reports back counts as failed once the probe timeout passes.
	if b.probeDue(cfg, now.Add(8*time.Second)) {
		t.Fatal("a probe due while the last one is out")
	}
	b.probeDue(cfg, now.Add(9*time.Second))
	if b.cooldown != 3*time.Second || !b.probeAt.IsZero() {
		t.Fatalf("lost probe: cooldown %s, outstanding %v; want the 3s cap and none out", b.cooldown, b.probeAt)
	}
	if !strings.Contains(b.parkedError(), "HTTP 503") {
		t.Errorf("parked error %q does not name the last failure", b.parkedError())
	}
	// An answer closes it, probe or not; a 4xx answer counts as alive too.
	if to := b.report(cfg, ok, false, now.Add(20*time.Second)); to != breakerClosed || !b.idle() {
		t.Fatalf("an answer: %q, idle %v", to, b.idle())
	}
	b.report(cfg, fail, false, now)
	b.report(cfg, result{sent: true, statusCode: 400}, false, now)
	if b.failures != 0 {
		t.Errorf("a 400 answer left %d consecutive failures", b.failures)
	}
}

func TestEndpointIsTheTargetsOrigin(t *testing.T) {
	for _, tc := range []struct{ a, b string }{
		{"https://Example.com/hooks/1", "https://example.com:443/other"},
		{"http://10.0.0.1/x", "http://10.0.0.1:80/y?z"},
		{"http://[::1]:8080/a", "http://[::1]:8080/b"},
	} {
		oa, _ := endpointOrigin(tc.a)
		ob, _ := endpointOrigin(tc.b)
		if oa != ob || endpointKey(oa) != endpointKey(ob) {
			t.Errorf("%s and %s: origins %q, %q: want one endpoint", tc.a, tc.b, oa, ob)
		}
	}
	for _, pair := range [][2]string{
		{"https://example.com/", "http://example.com/"},
		{"https://example.com/", "https://example.com:8443/"},
		{"https://a.example.com/", "https://b.example.com/"},
	} {
		oa, _ := endpointOrigin(pair[0])
		ob, _ := endpointOrigin(pair[1])
		if oa == ob {
			t.Errorf("%s and %s share origin %q", pair[0], pair[1], oa)
		}
	}
	if k := endpointKey("https://example.com:443"); len(k) != 16 || strings.ContainsAny(k, ".*> ") {
		t.Errorf("endpoint key %q is not one 16-character subject token", k)
	}
}

// concurrency tracks how many requests an endpoint serves at once, per tenant.
type concurrency struct {
	mu  sync.Mutex
	now map[string]int
	max map[string]int
}

func (c *concurrency) enter(tenant string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now[tenant]++
	c.max[tenant] = max(c.max[tenant], c.now[tenant])
}

func (c *concurrency) leave(tenant string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now[tenant]--
}

func (c *concurrency) peak(tenant string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.max[tenant]
}

func TestTenantCapLetsOthersThroughWithoutSpendingAttempts(t *testing.T) {
	e := newEnv(t, nil)
	ep := newEndpoint(t, e.configs)
	busy, other := e.tenant(t, ep), e.tenant(t, ep)
	conc := &concurrency{now: map[string]int{}, max: map[string]int{}}
	ep.setAnswer(func(w http.ResponseWriter, _ *http.Request, h hit) {
		conc.enter(h.tenant)
		defer conc.leave(h.tenant)
		if h.tenant == busy {
			time.Sleep(150 * time.Millisecond)
		}
		w.WriteHeader(http.StatusOK)
	})
	var busyIDs, otherIDs []string
	for range 40 {
		busyIDs = append(busyIDs, e.publish(t, busy, []byte(`{}`)))
	}
	for range 20 {
		otherIDs = append(otherIDs, e.publish(t, other, []byte(`{}`)))
	}
	cfg := e.config()
	cfg.Concurrency, cfg.TenantConcurrency = 16, 4
	start := time.Now()
	r := e.start(t, cfg)

	// The other tenant, published after the busy one's backlog, is not stuck behind it:
	// 40 busy events at 4 at a time take 1.5s; the other tenant's take milliseconds.
	for _, id := range otherIDs {
		e.waitStatus(t, other, id, status.Delivered)
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("the other tenant's events took %s behind the busy tenant's backlog", took)
	}
	for _, id := range busyIDs {
		if rec := e.waitStatus(t, busy, id, status.Delivered); rec.Attempts != 1 {
			t.Errorf("event %s delivered on attempt %d: waiting for the cap spent attempts", id, rec.Attempts)
		}
	}
	if p := conc.peak(busy); p != 4 {
		t.Errorf("busy tenant peaked at %d concurrent requests, want its cap 4", p)
	}
	if info := e.waitSettled(t); info.NumRedelivered != 0 {
		t.Errorf("%d events redelivered", info.NumRedelivered)
	}
	if got := counterValue(t, r.reg, "edgehook_tenant_cap_waits_total", "", ""); got < 1 {
		t.Errorf("edgehook_tenant_cap_waits_total = %v, want events counted as waiting", got)
	}
}

func TestBreakerParksAFailingEndpointAndRecovers(t *testing.T) {
	e := newEnv(t, func(topo *natsconf.Topology) {
		topo.MaxDeliver = 20
		topo.RetrySchedule = []time.Duration{100 * time.Millisecond}
	})
	ep := newEndpoint(t, e.configs)
	tn := e.tenant(t, ep)
	var healthy atomic.Bool
	ep.setAnswer(func(w http.ResponseWriter, _ *http.Request, _ hit) {
		if healthy.Load() {
			w.WriteHeader(http.StatusOK)
			return
		}
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprint(w, "down for maintenance")
	})
	const events = 30
	ids := make([]string, events)
	for i := range ids {
		ids[i] = e.publish(t, tn, []byte(`{}`))
	}
	cfg := e.config()
	cfg.Concurrency, cfg.TenantConcurrency = 8, 2
	cfg.BreakerThreshold, cfg.BreakerCooldown, cfg.BreakerMaxCooldown = 3, 400*time.Millisecond, 400*time.Millisecond
	r := e.start(t, cfg)

	// Parked events wait without requests: over 1.5s of retries every 100ms for 30
	// events, the endpoint sees the attempts that opened the breaker plus about one
	// probe per 400ms cooldown, not hundreds.
	waitFor(t, 10*time.Second, "the breaker to open", func() bool {
		return counterValue(t, r.reg, "edgehook_breaker_transitions_total", "state", breakerOpen) >= 1
	})
	time.Sleep(1500 * time.Millisecond)
	if n := ep.count(); n > 3+2+6 {
		t.Errorf("the failing endpoint got %d requests in 1.5s; parked events must not be sent", n)
	}
	if got := counterValue(t, r.reg, "edgehook_deliveries_total", "outcome", outcomeParked); got < events {
		t.Errorf("edgehook_deliveries_total{outcome=parked} = %v, want at least one per event", got)
	}
	if got := gaugeValue(t, r.reg, "edgehook_endpoints_parked"); got != 1 {
		t.Errorf("edgehook_endpoints_parked = %v, want 1", got)
	}
	// A parked event's status and attempt log say so, with the endpoint's last answer.
	var parked status.Record
	waitFor(t, 5*time.Second, "a parked status", func() bool {
		for _, id := range ids {
			if rec, err := e.status.Get(context.Background(), tn, id); err == nil && strings.Contains(rec.LastError, "endpoint parked") {
				parked = rec
				return true
			}
		}
		return false
	})
	if parked.Status != status.Retrying || !strings.Contains(parked.LastError, "HTTP 503") {
		t.Errorf("parked event status %+v, want retrying with the parked reason and the last failure", parked)
	}
	log, err := e.status.Attempts(context.Background(), tn, parked.EventID)
	if err != nil || len(log) == 0 {
		t.Fatalf("attempt log of a parked event: %v %v", log, err)
	}
	if last := log[len(log)-1]; last.Outcome != status.OutcomeParked || last.StatusCode != 0 || last.LatencyMs != 0 {
		t.Errorf("last attempt of a parked event %+v, want parked without a request", last)
	}

	// The endpoint recovers: the next probe closes the breaker and everything is
	// delivered, each event once.
	healthy.Store(true)
	for _, id := range ids {
		e.waitStatus(t, tn, id, status.Delivered)
	}
	e.waitSettled(t)
	for _, id := range ids {
		ok := 0
		for _, h := range ep.hitsFor(id) {
			if h.verifyErr != nil {
				t.Errorf("event %s: bad signature", id)
			}
			ok++
		}
		if ok == 0 {
			t.Errorf("event %s never reached the endpoint", id)
		}
	}
	if got := counterValue(t, r.reg, "edgehook_breaker_transitions_total", "state", breakerClosed); got < 1 {
		t.Errorf("breaker never closed: %v", got)
	}
	if got := gaugeValue(t, r.reg, "edgehook_endpoints_parked"); got != 0 {
		t.Errorf("edgehook_endpoints_parked = %v after recovery, want 0", got)
	}
}

func TestAttemptLogRecordsEveryAttempt(t *testing.T) {
	e := newEnv(t, nil)
	ep := newEndpoint(t, e.configs)
	tn := e.tenant(t, ep)
	long := strings.Repeat("e", 3000)
	ep.setAnswer(func(w http.ResponseWriter, _ *http.Request, h hit) {
		switch h.n {
		case 1:
			w.WriteHeader(http.StatusInternalServerError)
			fmt.Fprint(w, long)
		case 2:
			w.Header().Set("Retry-After", "0")
			w.WriteHeader(http.StatusTooManyRequests)
			fmt.Fprint(w, `{"error":"slow down"}`)
		default:
			w.WriteHeader(http.StatusOK)
			fmt.Fprint(w, `{"ok":true}`)
		}
	})
	before := time.Now().UTC()
	id := e.publish(t, tn, []byte(`{}`))
	e.start(t, e.config())
	rec := e.waitStatus(t, tn, id, status.Delivered)
	if rec.TotalAttempts != 3 || rec.Seq == 0 {
		t.Errorf("status %+v, want 3 attempts logged and the stream sequence", rec)
	}
	log, err := e.status.Attempts(context.Background(), tn, id)
	if err != nil {
		t.Fatal(err)
	}
	if len(log) != 3 {
		t.Fatalf("attempt log has %d entries, want 3: %+v", len(log), log)
	}
	want := []struct {
		outcome string
		code    int
		errText string
		body    string
	}{
		{status.OutcomeRetry, 500, "HTTP 500", long[:status.MaxResponseBody]},
		{status.OutcomeRetry, 429, "HTTP 429", `{"error":"slow down"}`},
		{status.OutcomeDelivered, 200, "", `{"ok":true}`},
	}
	for i, a := range log {
		w := want[i]
		if a.N != i+1 || a.Attempt != i+1 || a.Outcome != w.outcome || a.StatusCode != w.code || a.Error != w.errText || a.ResponseBody != w.body {
			t.Errorf("attempt %d = n %d attempt %d %s %d %q body %d bytes; want %s %d %q body %d bytes",
				i+1, a.N, a.Attempt, a.Outcome, a.StatusCode, a.Error, len(a.ResponseBody), w.outcome, w.code, w.errText, len(w.body))
		}
		if a.At.Before(before) || a.LatencyMs <= 0 || a.Seq != rec.Seq || a.TenantID != tn || a.EventID != id {
			t.Errorf("attempt %d: at %s latency %vms seq %d", i+1, a.At, a.LatencyMs, a.Seq)
		}
		if i > 0 && a.At.Before(log[i-1].At) {
			t.Errorf("attempt %d is older than attempt %d", i+1, i)
		}
	}
}

func TestRunRejectsABackOffOffTheSchedule(t *testing.T) {
	e := newEnv(t, nil)
	cfg := e.config()
	cfg.RetrySchedule = []time.Duration{time.Minute, time.Hour}
	w, err := New(cfg, Deps{JS: e.js, Configs: e.configs})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = w.Run(ctx)
	if err == nil || !strings.Contains(err.Error(), "EDGEHOOK_RETRY_SCHEDULE") || !strings.Contains(err.Error(), "1m0s,1h0m0s") {
		t.Errorf("Run with a schedule the consumer does not follow = %v, want an error naming EDGEHOOK_RETRY_SCHEDULE", err)
	}
}
