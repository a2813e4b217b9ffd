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
