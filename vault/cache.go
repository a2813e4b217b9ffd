package vault

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/edgehook/edgehook/promreg"
)

// Cache defaults.
const (
	DefaultCacheTTL         = 30 * time.Second
	DefaultCacheNotFoundTTL = time.Second
	DefaultCacheReadTimeout = 10 * time.Second
	// DefaultCacheMaxEntries bounds the configurations a Cache keeps.
	DefaultCacheMaxEntries = 50_000
	// DefaultCacheMaxNotFound bounds the not-found answers a Cache keeps, apart from
	// the configurations, so lookups of made-up tenant ids cannot push out real ones.
	DefaultCacheMaxNotFound = 10_000
)

// ErrReadLimited is returned by Cache.WebhookConfigLimited when the tenant's answer is
// not cached and the caller's limit refused an upstream read.
var ErrReadLimited = errors.New("vault: webhook config read refused by the caller's limit")

// CacheConfig configures a Cache. Zero values take the defaults.
type CacheConfig struct {
	// TTL is how long a configuration read upstream is served from memory
	// (default DefaultCacheTTL).
	TTL time.Duration
	// NotFoundTTL is how long an ErrNotFound answer is remembered (default
	// DefaultCacheNotFoundTTL); a negative value disables caching it.
	NotFoundTTL time.Duration
	// ReadTimeout bounds one upstream read (default DefaultCacheReadTimeout). The read
	// is shared by every caller waiting for that tenant, so it does not stop when one
	// caller's context ends.
	ReadTimeout time.Duration
	// MaxEntries is how many configurations are kept (default DefaultCacheMaxEntries);
	// beyond it the one that expires soonest is dropped.
	MaxEntries int
	// MaxNotFound is how many not-found answers are kept (default
	// DefaultCacheMaxNotFound), counted apart from MaxEntries; beyond it the one that
	// expires soonest is dropped.
	MaxNotFound int
}

func (c CacheConfig) withDefaults() CacheConfig {
	if c.TTL <= 0 {
		c.TTL = DefaultCacheTTL
	}
	if c.NotFoundTTL == 0 {
		c.NotFoundTTL = DefaultCacheNotFoundTTL
	}
	if c.ReadTimeout <= 0 {
		c.ReadTimeout = DefaultCacheReadTimeout
	}
	if c.MaxEntries <= 0 {
		c.MaxEntries = DefaultCacheMaxEntries
	}
	if c.MaxNotFound <= 0 {
		c.MaxNotFound = DefaultCacheMaxNotFound
	}
	return c
}

// Cache is a ConfigReader that keeps each tenant's configuration in memory for a TTL,
// so the worker and receiver do not read Vault per webhook. Configurations and
// not-found answers are kept within separate bounds (MaxEntries, MaxNotFound), so
// lookups of tenants that do not exist can only displace one another. Concurrent
// misses for one tenant share a single upstream read; errors other than ErrNotFound
// are never cached. Invalidate drops a tenant's entry, and a read that was in flight
// when Invalidate was called does not repopulate it. It is safe for concurrent use.
type Cache struct {
	upstream ConfigReader
	cfg      CacheConfig
	now      func() time.Time

	mu       sync.Mutex
	found    map[string]foundEntry
	notFound map[string]notFoundEntry
	// foundQ and notFoundQ hold every entry in the order it was stored, which, with
	// one TTL per kind, is the order they expire in.
	foundQ, notFoundQ expiryQueue
	flights           map[string]*flight // upstream reads in progress, by tenant
	seq               uint64             // numbers stored entries, to match them to queue items

	hits, misses, readErrors  prometheus.Counter
	foundGauge, notFoundGauge prometheus.Gauge
}

type foundEntry struct {
	cfg     WebhookConfig
	expires time.Time
	seq     uint64
}

type notFoundEntry struct {
	err     error // the upstream ErrNotFound error
	expires time.Time
	seq     uint64
}

// flight is one upstream read, shared by every caller that misses the tenant while it
// runs. cfg and err are set before done is closed.
type flight struct {
	done  chan struct{}
	cfg   WebhookConfig
	err   error
	stale bool // the tenant was invalidated meanwhile: the answer is not stored (under Cache.mu)
}

// NewCache returns a Cache in front of r. Its metrics edgehook_config_cache_hits_total,
// edgehook_config_cache_misses_total, edgehook_config_read_errors_total and
// edgehook_config_cache_entries{kind} are registered on reg (nil: not registered);
// when reg already holds them, as with two caches in one process, the existing
// series are shared (the entries gauge then counts both caches' entries).
func NewCache(r ConfigReader, cfg CacheConfig, reg prometheus.Registerer) *Cache {
	entries, err := promreg.Register(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "edgehook_config_cache_entries",
		Help: "Entries held by webhook config caches, by kind (config or not_found).",
	}, []string{"kind"}))
	if err != nil {
		panic(fmt.Sprintf("vault: cache metric: %v", err))
	}
	return &Cache{
		upstream: r,
		cfg:      cfg.withDefaults(),
		now:      time.Now,
		found:    map[string]foundEntry{},
		notFound: map[string]notFoundEntry{},
		flights:  map[string]*flight{},
		hits: registerCounter(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "edgehook_config_cache_hits_total",
			Help: "Webhook config lookups answered from the cache.",
		})),
		misses: registerCounter(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "edgehook_config_cache_misses_total",
			Help: "Webhook config lookups not answered from the cache (concurrent misses for one tenant share one upstream read).",
		})),
		readErrors: registerCounter(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "edgehook_config_read_errors_total",
			Help: "Upstream webhook config reads that failed (not counting not-found).",
		})),
		foundGauge:    entries.WithLabelValues("config"),
		notFoundGauge: entries.WithLabelValues("not_found"),
	}
}

// registerCounter registers c on reg, or returns the counter reg already holds under
// the same name. Any other registration error is a programming error and panics, as
// with prometheus.MustRegister.
func registerCounter(reg prometheus.Registerer, c prometheus.Counter) prometheus.Counter {
	c, err := promreg.Register(reg, c)
	if err != nil {
		panic(fmt.Sprintf("vault: cache metric: %v", err))
	}
	return c
}

// WebhookConfig returns tenantID's configuration from memory if a fresh entry exists,
// else reads it upstream (once for all concurrent callers) and caches the answer. If
// ctx ends first the call returns ctx's error while the shared read carries on.
func (c *Cache) WebhookConfig(ctx context.Context, tenantID string) (WebhookConfig, error) {
	return c.WebhookConfigLimited(ctx, tenantID, nil)
}

// Peek returns tenantID's configuration if a fresh one is cached, and whether it was:
// the hit path of WebhookConfig without a context, timer, goroutine or allocation,
// for a caller that looks the same tenants up at a high rate (the worker, per event).
// Unlike WebhookConfig's copies, the slices of the configuration returned are the
// cache's own: the caller reads them and never writes to them. A stale or missing
// entry, or a cached not-found answer, is false and counts as no lookup: the caller
// reads through WebhookConfig, which counts it.
func (c *Cache) Peek(tenantID string) (WebhookConfig, bool) {
	c.mu.Lock()
	e, ok := c.found[tenantID]
	ok = ok && c.now().Before(e.expires)
	c.mu.Unlock()
	if !ok {
		return WebhookConfig{}, false
	}
	c.hits.Inc()
	return e.cfg, true
}

// WebhookConfigLimited is WebhookConfig for a caller that limits upstream reads: when
// tenantID's answer is not cached and no read of it is in flight, allow is called
// (under the cache's lock, so it must be quick and must not use the cache), and if it
// returns false the call returns ErrReadLimited without reading. Callers joining a
// read in flight do not call allow. A nil allow allows every read.
func (c *Cache) WebhookConfigLimited(ctx context.Context, tenantID string, allow func() bool) (WebhookConfig, error) {
	c.mu.Lock()
	now := c.now()
	if e, ok := c.found[tenantID]; ok && now.Before(e.expires) {
		c.mu.Unlock()
		c.hits.Inc()
		return cloneConfig(e.cfg), nil
	}
	if e, ok := c.notFound[tenantID]; ok && now.Before(e.expires) {
		c.mu.Unlock()
		c.hits.Inc()
		return WebhookConfig{}, e.err
	}
	f, ok := c.flights[tenantID]
	if !ok {
		if allow != nil && !allow() {
			c.mu.Unlock()
			c.misses.Inc()
			return WebhookConfig{}, ErrReadLimited
		}
		f = &flight{done: make(chan struct{})}
		c.flights[tenantID] = f
		go c.fetch(ctx, tenantID, f)
	}
	c.mu.Unlock()
	c.misses.Inc() // after joining: a counted miss shares its tenant's read

	select {
	case <-f.done:
		if f.err != nil {
			return WebhookConfig{}, f.err
		}
		return cloneConfig(f.cfg), nil
	case <-ctx.Done():
		return WebhookConfig{}, fmt.Errorf("vault: read webhook config of tenant %s: %w", tenantID, ctx.Err())
	}
}

// fetch reads tenantID upstream for f, detached from the first caller's cancellation
// but bounded by ReadTimeout, and stores the answer unless the tenant was invalidated
// meanwhile.
func (c *Cache) fetch(ctx context.Context, tenantID string, f *flight) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.cfg.ReadTimeout)
	defer cancel()
	cfg, err := c.upstream.WebhookConfig(rctx, tenantID)
	notFound := errors.Is(err, ErrNotFound)
	if err != nil && !notFound {
		c.readErrors.Inc()
	}
	c.mu.Lock()
	if !f.stale {
		delete(c.flights, tenantID) // a flight that is not stale is still the tenant's
		now := c.now()
		switch {
		case err == nil:
			c.storeFound(tenantID, cfg, now)
		case notFound && c.cfg.NotFoundTTL > 0:
			c.storeNotFound(tenantID, err, now)
		}
	}
	c.mu.Unlock()
	f.cfg, f.err = cfg, err
	close(f.done)
}

// storeFound caches cfg for tenantID, first dropping expired configurations and, at
// MaxEntries, the one that expires soonest. c.mu must be held.
func (c *Cache) storeFound(tenantID string, cfg WebhookConfig, now time.Time) {
	c.dropNotFound(tenantID)
	c.dropFound(tenantID)
	c.foundQ.popWhile(func(q queued) bool {
		return !now.Before(q.expires) || c.foundQ.n >= c.cfg.MaxEntries
	}, func(q queued) {
		if e, ok := c.found[q.key]; ok && e.seq == q.seq {
			c.dropFound(q.key)
		}
	})
	c.seq++
	e := foundEntry{cfg: cfg, expires: now.Add(c.cfg.TTL), seq: c.seq}
	c.found[tenantID] = e
	c.foundGauge.Inc()
	c.foundQ.push(queued{key: tenantID, seq: e.seq, expires: e.expires})
}

// storeNotFound caches a not-found answer for tenantID, first dropping expired ones
// and, at MaxNotFound, the one that expires soonest. c.mu must be held.
func (c *Cache) storeNotFound(tenantID string, err error, now time.Time) {
	c.dropFound(tenantID)
	c.dropNotFound(tenantID)
	c.notFoundQ.popWhile(func(q queued) bool {
		return !now.Before(q.expires) || c.notFoundQ.n >= c.cfg.MaxNotFound
	}, func(q queued) {
		if e, ok := c.notFound[q.key]; ok && e.seq == q.seq {
			c.dropNotFound(q.key)
		}
	})
	c.seq++
	e := notFoundEntry{err: err, expires: now.Add(c.cfg.NotFoundTTL), seq: c.seq}
	c.notFound[tenantID] = e
	c.notFoundGauge.Inc()
	c.notFoundQ.push(queued{key: tenantID, seq: e.seq, expires: e.expires})
}

// dropFound and dropNotFound delete tenantID's entry of that kind, if any; its queue
// item stays until it reaches the front. c.mu must be held.
func (c *Cache) dropFound(tenantID string) {
	if _, ok := c.found[tenantID]; ok {
		delete(c.found, tenantID)
		c.foundGauge.Dec()
	}
}

func (c *Cache) dropNotFound(tenantID string) {
	if _, ok := c.notFound[tenantID]; ok {
		delete(c.notFound, tenantID)
		c.notFoundGauge.Dec()
	}
}

// Invalidate drops tenantID's entry, so the next lookup reads upstream. A read already
// in flight for the tenant is not cached when it completes, and callers arriving after
// Invalidate do not join it.
func (c *Cache) Invalidate(tenantID string) {
	c.mu.Lock()
	c.dropFound(tenantID)
	c.dropNotFound(tenantID)
	if f, ok := c.flights[tenantID]; ok {
		f.stale = true
		delete(c.flights, tenantID)
	}
	c.mu.Unlock()
}

// InvalidateAll drops every entry, as after missing change notices (a reconnect).
func (c *Cache) InvalidateAll() {
	c.mu.Lock()
	c.foundGauge.Sub(float64(len(c.found)))
	c.notFoundGauge.Sub(float64(len(c.notFound)))
	clear(c.found)
	clear(c.notFound)
	c.foundQ.reset()
	c.notFoundQ.reset()
	for _, f := range c.flights {
		f.stale = true
	}
	clear(c.flights)
	c.mu.Unlock()
}

// queued is one stored entry in an expiryQueue.
type queued struct {
	key     string
	seq     uint64
	expires time.Time
}

// expiryQueue is a FIFO ring of stored entries that grows as needed; its length
// bounds the entries of its kind, since an entry is only kept while its item is
// queued. Items of entries replaced or dropped since stay until they reach the front.
type expiryQueue struct {
	items   []queued
	head, n int
}

// popWhile pops items from the front while cond holds for the front one, passing each
// to drop.
func (q *expiryQueue) popWhile(cond func(queued) bool, drop func(queued)) {
	for q.n > 0 && cond(q.items[q.head]) {
		it := q.items[q.head]
		q.items[q.head] = queued{}
		q.head = (q.head + 1) % len(q.items)
		q.n--
		drop(it)
	}
}

func (q *expiryQueue) push(it queued) {
	if q.n == len(q.items) {
		grown := make([]queued, max(16, 2*len(q.items)))
		for i := range q.n {
			grown[i] = q.items[(q.head+i)%len(q.items)]
		}
		q.items, q.head = grown, 0
	}
	q.items[(q.head+q.n)%len(q.items)] = it
	q.n++
}

func (q *expiryQueue) reset() { *q = expiryQueue{} }

// cloneConfig copies cfg's slices so a caller cannot alter the cached entry.
func cloneConfig(cfg WebhookConfig) WebhookConfig {
	cfg.Previous = slices.Clone(cfg.Previous)
	cfg.RotationHistory = slices.Clone(cfg.RotationHistory)
	return cfg
}
