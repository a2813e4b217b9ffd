package vault

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// countingReader is an upstream ConfigReader that counts reads per tenant and can be
// made to fail or to block until released.
type countingReader struct {
	mu      sync.Mutex
	configs map[string]WebhookConfig
	err     error
	reads   map[string]int
	gate    chan struct{} // when non-nil, reads wait for it to close
	ctxErrs []error       // ctx.Err() seen by each read after the gate
}

func newCountingReader(cfgs ...WebhookConfig) *countingReader {
	r := &countingReader{configs: map[string]WebhookConfig{}, reads: map[string]int{}}
	for _, c := range cfgs {
		r.configs[c.TenantID] = c
	}
	return r
}

func (r *countingReader) WebhookConfig(ctx context.Context, tenantID string) (WebhookConfig, error) {
	// The answer is what upstream holds when the read starts.
	r.mu.Lock()
	r.reads[tenantID]++
	gate := r.gate
	c, ok := r.configs[tenantID]
	err := r.err
	r.mu.Unlock()
	if gate != nil {
		<-gate
	}
	r.mu.Lock()
	r.ctxErrs = append(r.ctxErrs, ctx.Err())
	r.mu.Unlock()
	if err != nil {
		return WebhookConfig{}, err
	}
	if !ok {
		return WebhookConfig{}, fmt.Errorf("%w: tenant %s", ErrNotFound, tenantID)
	}
	return c, nil
}

func (r *countingReader) readsOf(tenantID string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.reads[tenantID]
}

func (r *countingReader) set(f func(r *countingReader)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f(r)
}

// fakeClock is a settable clock for TTL tests.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newTestCache(t *testing.T, up ConfigReader, cfg CacheConfig) (*Cache, *fakeClock, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	c := NewCache(up, cfg, reg)
	clock := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	c.now = clock.Now
	return c, clock, reg
}

// waitFor polls cond until it holds or a deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestCacheHitAndMetrics(t *testing.T) {
	ctx := context.Background()
	want := testConfig(t, "ten_a")
	up := newCountingReader(want)
	c, _, reg := newTestCache(t, up, CacheConfig{})
	for range 3 {
		got, err := c.WebhookConfig(ctx, "ten_a")
		if err != nil {
			t.Fatal(err)
		}
		assertSameConfig(t, got, want)
	}
	if n := up.readsOf("ten_a"); n != 1 {
		t.Fatalf("upstream reads = %d, want 1", n)
	}
	if h, m := counterValue(t, reg, "edgehook_config_cache_hits_total"), counterValue(t, reg, "edgehook_config_cache_misses_total"); h != 2 || m != 1 {
		t.Fatalf("hits %v misses %v, want 2 and 1", h, m)
	}
	if e := counterValue(t, reg, "edgehook_config_read_errors_total"); e != 0 {
		t.Fatalf("read errors %v, want 0", e)
	}
}

func TestCacheTTLExpiry(t *testing.T) {
	ctx := context.Background()
	up := newCountingReader(testConfig(t, "ten_a"))
	c, clock, _ := newTestCache(t, up, CacheConfig{})
	if _, err := c.WebhookConfig(ctx, "ten_a"); err != nil {
		t.Fatal(err)
	}
	clock.Advance(DefaultCacheTTL - time.Millisecond)
	if _, err := c.WebhookConfig(ctx, "ten_a"); err != nil {
		t.Fatal(err)
	}
	if n := up.readsOf("ten_a"); n != 1 {
		t.Fatalf("upstream reads within TTL = %d, want 1", n)
	}
	// A changed upstream value is seen once the entry expires.
	changed := testConfig(t, "ten_a")
	changed.TargetURL = "https://changed.example.com/"
	up.set(func(r *countingReader) { r.configs["ten_a"] = changed })
	clock.Advance(time.Millisecond)
	got, err := c.WebhookConfig(ctx, "ten_a")
	if err != nil {
		t.Fatal(err)
	}
	assertSameConfig(t, got, changed)
	if n := up.readsOf("ten_a"); n != 2 {
		t.Fatalf("upstream reads after TTL = %d, want 2", n)
	}
}

func TestCacheCustomTTL(t *testing.T) {
	ctx := context.Background()
	up := newCountingReader(testConfig(t, "ten_a"))
	c, clock, _ := newTestCache(t, up, CacheConfig{TTL: 5 * time.Second})
	for range 2 {
		if _, err := c.WebhookConfig(ctx, "ten_a"); err != nil {
			t.Fatal(err)
		}
		clock.Advance(5 * time.Second)
	}
	if n := up.readsOf("ten_a"); n != 2 {
		t.Fatalf("upstream reads = %d, want 2 (one per 5s TTL)", n)
	}
}

func TestCacheConcurrentMissesShareOneRead(t *testing.T) {
	ctx := context.Background()
	want := testConfig(t, "ten_a")
	up := newCountingReader(want)
	gate := make(chan struct{})
	up.gate = gate
	c, _, reg := newTestCache(t, up, CacheConfig{})

	const callers = 100
	var wg sync.WaitGroup
	var failures atomic.Int32
	for range callers {
		wg.Go(func() {
			got, err := c.WebhookConfig(ctx, "ten_a")
			if err != nil || !got.Secret.Equal(want.Secret) {
				failures.Add(1)
			}
		})
	}
	// Every caller has joined the read once it is counted as a miss.
	waitFor(t, "100 misses", func() bool {
		return counterValue(t, reg, "edgehook_config_cache_misses_total") == callers
	})
	close(gate)
	wg.Wait()
	if f := failures.Load(); f != 0 {
		t.Fatalf("%d callers got an error or a wrong config", f)
	}
	if n := up.readsOf("ten_a"); n != 1 {
		t.Fatalf("upstream reads = %d, want 1", n)
	}
}

func TestCacheInvalidate(t *testing.T) {
	ctx := context.Background()
	up := newCountingReader(testConfig(t, "ten_a"), testConfig(t, "ten_b"))
	c, _, _ := newTestCache(t, up, CacheConfig{})
	for _, id := range []string{"ten_a", "ten_b"} {
		if _, err := c.WebhookConfig(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	changed := testConfig(t, "ten_a")
	up.set(func(r *countingReader) { r.configs["ten_a"] = changed })
	c.Invalidate("ten_a")
	got, err := c.WebhookConfig(ctx, "ten_a")
	if err != nil {
		t.Fatal(err)
	}
	assertSameConfig(t, got, changed)
	if _, err := c.WebhookConfig(ctx, "ten_b"); err != nil {
		t.Fatal(err)
	}
	if a, b := up.readsOf("ten_a"), up.readsOf("ten_b"); a != 2 || b != 1 {
		t.Fatalf("upstream reads a=%d b=%d, want 2 and 1 (only the invalidated tenant re-read)", a, b)
	}
	c.InvalidateAll()
	if _, err := c.WebhookConfig(ctx, "ten_b"); err != nil {
		t.Fatal(err)
	}
	if b := up.readsOf("ten_b"); b != 2 {
		t.Fatalf("upstream reads of b after InvalidateAll = %d, want 2", b)
	}
}

// TestCacheInvalidateDuringRead checks that a read in flight when Invalidate is called
// neither serves callers arriving after it nor repopulates the cache with old data,
// even when it completes after the newer read.
func TestCacheInvalidateDuringRead(t *testing.T) {
	ctx := context.Background()
	old := testConfig(t, "ten_a")
	up := newCountingReader(old)
	gate1 := make(chan struct{})
	up.gate = gate1
	c, _, _ := newTestCache(t, up, CacheConfig{})

	first := make(chan WebhookConfig, 1)
	go func() {
		got, err := c.WebhookConfig(ctx, "ten_a")
		if err != nil {
			t.Error(err)
		}
		first <- got
	}()
	waitFor(t, "first upstream read", func() bool { return up.readsOf("ten_a") == 1 })

	changed := testConfig(t, "ten_a")
	gate2 := make(chan struct{})
	up.set(func(r *countingReader) { r.configs["ten_a"] = changed; r.gate = gate2 })
	c.Invalidate("ten_a")
	second := make(chan WebhookConfig, 1)
	go func() {
		got, err := c.WebhookConfig(ctx, "ten_a")
		if err != nil {
			t.Error(err)
		}
		second <- got
	}()
	// The caller after Invalidate starts its own read instead of joining the old one.
	waitFor(t, "second upstream read", func() bool { return up.readsOf("ten_a") == 2 })
	up.set(func(r *countingReader) { r.gate = nil })
	close(gate2)
	assertSameConfig(t, <-second, changed)
	close(gate1) // the stale read finishes last
	assertSameConfig(t, <-first, old)

	got, err := c.WebhookConfig(ctx, "ten_a")
	if err != nil {
		t.Fatal(err)
	}
	assertSameConfig(t, got, changed)
	if n := up.readsOf("ten_a"); n != 2 {
		t.Fatalf("upstream reads = %d, want 2", n)
	}
}

func TestCacheErrorsAreNotCached(t *testing.T) {
	ctx := context.Background()
	want := testConfig(t, "ten_a")
	up := newCountingReader(want)
	errVaultDown := errors.New("connection refused")
	up.err = errVaultDown
	c, _, reg := newTestCache(t, up, CacheConfig{})
	for i := range 3 {
		if _, err := c.WebhookConfig(ctx, "ten_a"); !errors.Is(err, errVaultDown) {
			t.Fatalf("read %d: err = %v, want the upstream error", i, err)
		}
	}
	if n := up.readsOf("ten_a"); n != 3 {
		t.Fatalf("upstream reads = %d, want 3 (errors are not cached)", n)
	}
	if e := counterValue(t, reg, "edgehook_config_read_errors_total"); e != 3 {
		t.Fatalf("read errors %v, want 3", e)
	}
	up.set(func(r *countingReader) { r.err = nil })
	got, err := c.WebhookConfig(ctx, "ten_a")
	if err != nil {
		t.Fatal(err)
	}
	assertSameConfig(t, got, want)
}

func TestCacheNotFound(t *testing.T) {
	ctx := context.Background()
	t.Run("cached for NotFoundTTL", func(t *testing.T) {
		up := newCountingReader()
		c, clock, reg := newTestCache(t, up, CacheConfig{})
		for range 2 {
			if _, err := c.WebhookConfig(ctx, "ten_new"); !errors.Is(err, ErrNotFound) {
				t.Fatalf("err = %v, want ErrNotFound", err)
			}
		}
		if n := up.readsOf("ten_new"); n != 1 {
			t.Fatalf("upstream reads = %d, want 1", n)
		}
		if e := counterValue(t, reg, "edgehook_config_read_errors_total"); e != 0 {
			t.Fatalf("not-found counted as read error (%v)", e)
		}
		want := testConfig(t, "ten_new")
		up.set(func(r *countingReader) { r.configs["ten_new"] = want })
		clock.Advance(DefaultCacheNotFoundTTL)
		got, err := c.WebhookConfig(ctx, "ten_new")
		if err != nil {
			t.Fatal(err)
		}
		assertSameConfig(t, got, want)
	})
	t.Run("not cached when disabled", func(t *testing.T) {
		up := newCountingReader()
		c, _, _ := newTestCache(t, up, CacheConfig{NotFoundTTL: -1})
		for range 2 {
			if _, err := c.WebhookConfig(ctx, "ten_new"); !errors.Is(err, ErrNotFound) {
				t.Fatalf("err = %v, want ErrNotFound", err)
			}
		}
		if n := up.readsOf("ten_new"); n != 2 {
			t.Fatalf("upstream reads = %d, want 2", n)
		}
	})
}

// TestCacheCallerCancelDoesNotCancelSharedRead checks that a caller giving up returns
// its context error while the shared read completes for everyone else.
func TestCacheCallerCancelDoesNotCancelSharedRead(t *testing.T) {
	want := testConfig(t, "ten_a")
	up := newCountingReader(want)
	gate := make(chan struct{})
	up.gate = gate
	c, _, _ := newTestCache(t, up, CacheConfig{})

	cctx, cancel := context.WithCancel(context.Background())
	cancelled := make(chan error, 1)
	go func() {
		_, err := c.WebhookConfig(cctx, "ten_a")
		cancelled <- err
	}()
	waitFor(t, "upstream read", func() bool { return up.readsOf("ten_a") == 1 })
	patient := make(chan error, 1)
	go func() {
		_, err := c.WebhookConfig(context.Background(), "ten_a")
		patient <- err
	}()
	cancel()
	if err := <-cancelled; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled caller: err = %v, want context.Canceled", err)
	}
	close(gate)
	if err := <-patient; err != nil {
		t.Fatalf("other caller: %v", err)
	}
	up.mu.Lock()
	defer up.mu.Unlock()
	if len(up.ctxErrs) != 1 || up.ctxErrs[0] != nil {
		t.Fatalf("upstream read saw context errors %v, want one uncancelled read", up.ctxErrs)
	}
}

func TestCacheReturnsCopies(t *testing.T) {
	ctx := context.Background()
	want := testConfig(t, "ten_a")
	up := newCountingReader(want)
	c, _, _ := newTestCache(t, up, CacheConfig{})
	got, err := c.WebhookConfig(ctx, "ten_a")
	if err != nil {
		t.Fatal(err)
	}
	got.Previous[0] = PreviousSecret{}
	got.RotationHistory[0] = Rotation{}
	again, err := c.WebhookConfig(ctx, "ten_a")
	if err != nil {
		t.Fatal(err)
	}
	assertSameConfig(t, again, want)
}

func TestCacheSharesMetricsOnOneRegistry(t *testing.T) {
	ctx := context.Background()
	reg := prometheus.NewPedanticRegistry()
	up := newCountingReader(testConfig(t, "ten_a"))
	a := NewCache(up, CacheConfig{}, reg)
	b := NewCache(up, CacheConfig{}, reg) // as worker and receiver in `edgehook up`
	for _, c := range []*Cache{a, b} {
		if _, err := c.WebhookConfig(ctx, "ten_a"); err != nil {
			t.Fatal(err)
		}
	}
	if m := counterValue(t, reg, "edgehook_config_cache_misses_total"); m != 2 {
		t.Fatalf("misses %v, want 2 (both caches counted)", m)
	}
}

// BenchmarkCacheHit measures lookups answered from memory, the per-webhook cost on the
// worker and receiver.
func BenchmarkCacheHit(b *testing.B) {
	ctx := context.Background()
	up := newCountingReader(testConfig(b, "ten_a"))
	c := NewCache(up, CacheConfig{TTL: time.Hour}, prometheus.NewRegistry())
	if _, err := c.WebhookConfig(ctx, "ten_a"); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := c.WebhookConfig(ctx, "ten_a"); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "lookups/s")
}

// entriesGauge is edgehook_config_cache_entries{kind} on reg.
func entriesGauge(t testing.TB, reg prometheus.Gatherer, kind string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "edgehook_config_cache_entries" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "kind" && l.GetValue() == kind {
					return m.GetGauge().GetValue()
				}
			}
		}
	}
	t.Fatalf("edgehook_config_cache_entries{kind=%q} is not exported", kind)
	return 0
}

// TestCacheBoundsNotFoundAnswers checks that lookups of ever new tenant ids that do not
// exist keep at most MaxNotFound answers, the default bound included.
func TestCacheBoundsNotFoundAnswers(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		cfg   CacheConfig
		bound int
	}{
		{"configured", CacheConfig{MaxNotFound: 100}, 100},
		{"default", CacheConfig{}, DefaultCacheMaxNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up := newCountingReader()
			c, _, reg := newTestCache(t, up, tc.cfg)
			for i := range 2*tc.bound + 7 {
				if _, err := c.WebhookConfig(ctx, fmt.Sprintf("made_up_%d", i)); !errors.Is(err, ErrNotFound) {
					t.Fatalf("lookup %d: %v, want ErrNotFound", i, err)
				}
			}
			if got := entriesGauge(t, reg, "not_found"); got != float64(tc.bound) {
				t.Errorf("not-found entries = %v, want the bound %d", got, tc.bound)
			}
			c.mu.Lock()
			n, q := len(c.notFound), c.notFoundQ.n
			c.mu.Unlock()
			if n > tc.bound || q > tc.bound {
				t.Errorf("cache holds %d not-found answers (%d queued), want at most %d", n, q, tc.bound)
			}
			// The most recent answers are the ones kept.
			last := fmt.Sprintf("made_up_%d", 2*tc.bound+6)
			if _, err := c.WebhookConfig(ctx, last); !errors.Is(err, ErrNotFound) || up.readsOf(last) != 1 {
				t.Errorf("the latest not-found answer was not kept: err %v, reads %d", err, up.readsOf(last))
			}
		})
	}
}

// TestCacheDropsExpiredAnswers checks that expired entries are freed, not only ignored:
// once the not-found TTL has passed, the next stored answer drops them all.
func TestCacheDropsExpiredAnswers(t *testing.T) {
	ctx := context.Background()
	up := newCountingReader(testConfig(t, "ten_a"))
	c, clock, reg := newTestCache(t, up, CacheConfig{})
	for i := range 500 {
		_, _ = c.WebhookConfig(ctx, fmt.Sprintf("gone_%d", i))
	}
	if got := entriesGauge(t, reg, "not_found"); got != 500 {
		t.Fatalf("not-found entries = %v, want 500", got)
	}
	clock.Advance(DefaultCacheNotFoundTTL)
	_, _ = c.WebhookConfig(ctx, "one_more")
	if got := entriesGauge(t, reg, "not_found"); got != 1 {
		t.Errorf("not-found entries after their TTL = %v, want 1 (only the new one)", got)
	}
	if _, err := c.WebhookConfig(ctx, "ten_a"); err != nil {
		t.Fatal(err)
	}
	clock.Advance(DefaultCacheTTL)
	up.set(func(r *countingReader) { r.configs["ten_b"] = testConfig(t, "ten_b") })
	if _, err := c.WebhookConfig(ctx, "ten_b"); err != nil {
		t.Fatal(err)
	}
	if got := entriesGauge(t, reg, "config"); got != 1 {
		t.Errorf("config entries after ten_a's TTL = %v, want 1 (only ten_b)", got)
	}
}

// TestCacheBoundsConfigs checks MaxEntries: beyond it the configuration stored first
// (the one that expires soonest) is dropped.
func TestCacheBoundsConfigs(t *testing.T) {
	ctx := context.Background()
	up := newCountingReader()
	for i := range 10 {
		id := fmt.Sprintf("ten_%d", i)
		up.configs[id] = testConfig(t, id)
	}
	c, _, reg := newTestCache(t, up, CacheConfig{MaxEntries: 4})
	for i := range 10 {
		if _, err := c.WebhookConfig(ctx, fmt.Sprintf("ten_%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if got := entriesGauge(t, reg, "config"); got != 4 {
		t.Errorf("config entries = %v, want 4", got)
	}
	for _, c2 := range []struct{ i, wantReads int }{{9, 1}, {6, 1}, {0, 2}, {5, 2}} {
		id, wantReads := fmt.Sprintf("ten_%d", c2.i), c2.wantReads
		if _, err := c.WebhookConfig(ctx, id); err != nil {
			t.Fatal(err)
		}
		if n := up.readsOf(id); n != wantReads {
			t.Errorf("%s: %d upstream reads, want %d", id, n, wantReads)
		}
	}
}

// TestCacheNotFoundFloodKeepsConfigs checks that a flood of lookups of made-up tenant
// ids cannot push real tenants' configurations out of the cache.
func TestCacheNotFoundFloodKeepsConfigs(t *testing.T) {
	ctx := context.Background()
	up := newCountingReader()
	for i := range 20 {
		id := fmt.Sprintf("real_%d", i)
		up.configs[id] = testConfig(t, id)
	}
	c, _, _ := newTestCache(t, up, CacheConfig{MaxEntries: 20, MaxNotFound: 50})
	for i := range 20 {
		if _, err := c.WebhookConfig(ctx, fmt.Sprintf("real_%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 5000 {
		_, _ = c.WebhookConfig(ctx, fmt.Sprintf("fake_%d", i))
	}
	for i := range 20 {
		id := fmt.Sprintf("real_%d", i)
		if _, err := c.WebhookConfig(ctx, id); err != nil {
			t.Fatal(err)
		}
		if n := up.readsOf(id); n != 1 {
			t.Errorf("%s read upstream %d times, want 1: the flood pushed it out", id, n)
		}
	}
}

// TestCacheLimitedRead checks WebhookConfigLimited: a refused read answers
// ErrReadLimited without reading upstream, cached answers need no permission, and
// callers joining a read in flight do not ask for one.
func TestCacheLimitedRead(t *testing.T) {
	ctx := context.Background()
	up := newCountingReader(testConfig(t, "ten_a"))
	c, _, reg := newTestCache(t, up, CacheConfig{})
	var asked atomic.Int32
	deny := func() bool { asked.Add(1); return false }
	allow := func() bool { asked.Add(1); return true }

	if _, err := c.WebhookConfigLimited(ctx, "ten_a", deny); !errors.Is(err, ErrReadLimited) {
		t.Fatalf("refused read: %v, want ErrReadLimited", err)
	}
	if n := up.readsOf("ten_a"); n != 0 {
		t.Fatalf("a refused lookup read upstream %d times", n)
	}
	if _, err := c.WebhookConfigLimited(ctx, "ten_a", allow); err != nil {
		t.Fatal(err)
	}
	asked.Store(0)
	if _, err := c.WebhookConfigLimited(ctx, "ten_a", deny); err != nil {
		t.Fatalf("cached tenant with reads refused: %v, want its config", err)
	}
	if _, err := c.WebhookConfigLimited(ctx, "nobody", allow); !errors.Is(err, ErrNotFound) {
		t.Fatal(err)
	}
	if _, err := c.WebhookConfigLimited(ctx, "nobody", deny); !errors.Is(err, ErrNotFound) {
		t.Fatalf("cached not-found with reads refused: %v, want ErrNotFound", err)
	}
	if n := asked.Load(); n != 1 {
		t.Fatalf("allow called %d times, want 1 (only for the uncached tenant)", n)
	}

	// Concurrent misses of one tenant ask once.
	gate := make(chan struct{})
	up.set(func(r *countingReader) { r.gate = gate; r.configs["ten_b"] = testConfig(t, "ten_b") })
	asked.Store(0)
	misses := counterValue(t, reg, "edgehook_config_cache_misses_total")
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if _, err := c.WebhookConfigLimited(ctx, "ten_b", allow); err != nil {
				t.Error(err)
			}
		})
	}
	waitFor(t, "20 misses", func() bool {
		return counterValue(t, reg, "edgehook_config_cache_misses_total") == misses+20
	})
	close(gate)
	wg.Wait()
	if n, r := asked.Load(), up.readsOf("ten_b"); n != 1 || r != 1 {
		t.Errorf("allow called %d times for %d reads, want 1 and 1", n, r)
	}
}

// TestCachePeekServesFreshEntriesOnly: Peek answers a fresh cached config, counted as
// a hit, with no allocation; a missing, expired or not-found entry is no answer, and
// the read through WebhookConfig that follows fetches it upstream (seeing a change
// made meanwhile) and Peek serves it again.
func TestCachePeekServesFreshEntriesOnly(t *testing.T) {
	ctx := context.Background()
	want := testConfig(t, "ten_a")
	up := newCountingReader(want)
	c, clock, reg := newTestCache(t, up, CacheConfig{})
	if _, ok := c.Peek("ten_a"); ok {
		t.Fatal("Peek answered a tenant never read")
	}
	if _, err := c.WebhookConfig(ctx, "ten_a"); err != nil {
		t.Fatal(err)
	}
	got, ok := c.Peek("ten_a")
	if !ok {
		t.Fatal("Peek missed a fresh entry")
	}
	assertSameConfig(t, got, want)
	if allocs := testing.AllocsPerRun(100, func() {
		if _, ok := c.Peek("ten_a"); !ok {
			t.Fatal("Peek missed a fresh entry")
		}
	}); allocs != 0 {
		t.Errorf("a Peek hit allocates %v times, want 0", allocs)
	}
	if h := counterValue(t, reg, "edgehook_config_cache_hits_total"); h != 102 {
		t.Errorf("hits %v, want 102 (one per Peek hit)", h)
	}

	changed := testConfig(t, "ten_a")
	changed.TargetURL = "https://changed.example.com/"
	up.set(func(r *countingReader) { r.configs["ten_a"] = changed })
	clock.Advance(DefaultCacheTTL)
	if _, ok := c.Peek("ten_a"); ok {
		t.Fatal("Peek answered an expired entry")
	}
	if got, err := c.WebhookConfig(ctx, "ten_a"); err != nil || got.TargetURL != changed.TargetURL {
		t.Fatalf("read through after expiry: %+v, %v; want the changed config", got.TargetURL, err)
	}
	if got, ok := c.Peek("ten_a"); !ok || got.TargetURL != changed.TargetURL {
		t.Fatalf("Peek after the read through: %v, %v; want the changed config", got.TargetURL, ok)
	}
	if n := up.readsOf("ten_a"); n != 2 {
		t.Errorf("upstream reads = %d, want 2", n)
	}
	if m := counterValue(t, reg, "edgehook_config_cache_misses_total"); m != 2 {
		t.Errorf("misses %v, want 2 (Peek's own misses count nothing)", m)
	}

	c.Invalidate("ten_a")
	if _, ok := c.Peek("ten_a"); ok {
		t.Fatal("Peek answered an invalidated entry")
	}
	if _, err := c.WebhookConfig(ctx, "ten_nobody"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown tenant: %v, want ErrNotFound", err)
	}
	if _, ok := c.Peek("ten_nobody"); ok {
		t.Fatal("Peek answered a cached not-found as a config")
	}
}

// BenchmarkCacheHitPath compares a cache hit through WebhookConfig, with the timeout
// context a caller bounds a possible upstream read with, to a Peek hit.
func BenchmarkCacheHitPath(b *testing.B) {
	up := newCountingReader(testConfig(b, "ten_a"))
	c := NewCache(up, CacheConfig{}, nil)
	if _, err := c.WebhookConfig(context.Background(), "ten_a"); err != nil {
		b.Fatal(err)
	}
	b.Run("WebhookConfig", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			if _, err := c.WebhookConfig(ctx, "ten_a"); err != nil {
				b.Fatal(err)
			}
			cancel()
		}
	})
	b.Run("Peek", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, ok := c.Peek("ten_a"); !ok {
				b.Fatal("miss")
			}
		}
	})
}
