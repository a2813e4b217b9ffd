package worker

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/edgehook/edgehook/status"
	"github.com/edgehook/edgehook/vault"
)

// TestWorkerDeliversFromTheConfigCache: behind a vault.Cache, a tenant's second event
// is delivered with the cached config (a cache hit, no read upstream), and once the
// entry is stale the next event reads through and goes to the tenant's new target.
func TestWorkerDeliversFromTheConfigCache(t *testing.T) {
	e := newEnv(t, nil)
	old, moved := newEndpoint(t, e.configs), newEndpoint(t, e.configs)
	reads := 0
	e.configs.fail = func(string) error { reads++; return nil } // under configs.mu
	const ttl = 300 * time.Millisecond
	cacheReg := prometheus.NewRegistry()
	e.reader = vault.NewCache(e.configs, vault.CacheConfig{TTL: ttl}, cacheReg)
	tn := e.tenant(t, old)
	e.start(t, e.config())
	readsNow := func() int {
		e.configs.mu.Lock()
		defer e.configs.mu.Unlock()
		return reads
	}

	first := e.publish(t, tn, []byte(`{"n":1}`))
	e.waitStatus(t, tn, first, status.Delivered)
	second := e.publish(t, tn, []byte(`{"n":2}`))
	e.waitStatus(t, tn, second, status.Delivered)
	if len(old.hitsFor(first)) != 1 || len(old.hitsFor(second)) != 1 {
		t.Fatalf("endpoint got %d and %d deliveries of the two events, want 1 each", len(old.hitsFor(first)), len(old.hitsFor(second)))
	}
	if n := readsNow(); n != 1 {
		t.Errorf("config read upstream %d times for two events within the TTL, want 1", n)
	}
	if h := onlyMetric(t, cacheReg, "edgehook_config_cache_hits_total").GetCounter().GetValue(); h < 1 {
		t.Errorf("cache hits %v, want the second event's", h)
	}

	cfg, _ := e.configs.WebhookConfig(t.Context(), tn)
	cfg.TargetURL = moved.url(tn)
	e.configs.put(cfg)
	time.Sleep(ttl) // the cached entry goes stale
	third := e.publish(t, tn, []byte(`{"n":3}`))
	e.waitStatus(t, tn, third, status.Delivered)
	if len(moved.hitsFor(third)) != 1 || len(old.hitsFor(third)) != 0 {
		t.Errorf("after the TTL the event went to the old target %d times and the new one %d times, want the new one once",
			len(old.hitsFor(third)), len(moved.hitsFor(third)))
	}
	if h := moved.hitsFor(third); len(h) == 1 && h[0].verifyErr != nil {
		t.Errorf("delivery to the new target does not verify: %v", h[0].verifyErr)
	}
}
