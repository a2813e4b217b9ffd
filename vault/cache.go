package vault

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/singleflight"

	"github.com/edgehook/edgehook/promreg"
)

// Cache defaults.
const (
	DefaultCacheTTL         = 30 * time.Second
	DefaultCacheNotFoundTTL = time.Second
	DefaultCacheReadTimeout = 10 * time.Second
)

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
	return c
}

// Cache is a ConfigReader that keeps each tenant's configuration in memory for a TTL,
// so the worker and receiver do not read Vault per webhook. Concurrent misses for one
// tenant share a single upstream read; errors other than ErrNotFound are never cached.
// Invalidate drops a tenant's entry, and a read that was in flight when Invalidate was
// called does not repopulate it. It is safe for concurrent use.
type Cache struct {
	upstream ConfigReader
	cfg      CacheConfig
	now      func() time.Time
	group    singleflight.Group

	mu      sync.Mutex
	entries map[string]cacheEntry
	gens    map[string]uint64 // per-tenant invalidation count
	epoch   uint64            // InvalidateAll count

	hits, misses, readErrors prometheus.Counter
}

type cacheEntry struct {
	cfg     WebhookConfig
	err     error // nil or an ErrNotFound error
	expires time.Time
}

// NewCache returns a Cache in front of r. Its metrics edgehook_config_cache_hits_total,
// edgehook_config_cache_misses_total and edgehook_config_read_errors_total are
// registered on reg (nil: not registered); when reg already holds them, as with two
// caches in one process, the existing counters are shared.
func NewCache(r ConfigReader, cfg CacheConfig, reg prometheus.Registerer) *Cache {
	return &Cache{
		upstream: r,
		cfg:      cfg.withDefaults(),
		now:      time.Now,
		entries:  map[string]cacheEntry{},
		gens:     map[string]uint64{},
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
	c.mu.Lock()
	e, ok := c.entries[tenantID]
	if ok && c.now().Before(e.expires) {
		c.mu.Unlock()
		c.hits.Inc()
		if e.err != nil {
			return WebhookConfig{}, e.err
		}
		return cloneConfig(e.cfg), nil
	}
	epoch, gen := c.epoch, c.gens[tenantID]
	c.mu.Unlock()

	// The key changes with every invalidation, so a caller arriving after Invalidate
	// never joins a read that started before it.
	key := tenantID + "\x00" + strconv.FormatUint(epoch, 10) + "\x00" + strconv.FormatUint(gen, 10)
	ch := c.group.DoChan(key, func() (any, error) {
		return c.fetch(ctx, tenantID, epoch, gen)
	})
	c.misses.Inc() // after DoChan: a counted miss has joined (or started) its read
	select {
	case res := <-ch:
		if res.Err != nil {
			return WebhookConfig{}, res.Err
		}
		return cloneConfig(res.Val.(WebhookConfig)), nil
	case <-ctx.Done():
		return WebhookConfig{}, fmt.Errorf("vault: read webhook config of tenant %s: %w", tenantID, ctx.Err())
	}
}

// fetch reads tenantID upstream, detached from the first caller's cancellation but
// bounded by ReadTimeout, and stores the answer unless the tenant was invalidated
// meanwhile.
func (c *Cache) fetch(ctx context.Context, tenantID string, epoch, gen uint64) (WebhookConfig, error) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.cfg.ReadTimeout)
	defer cancel()
	cfg, err := c.upstream.WebhookConfig(rctx, tenantID)
	var ttl time.Duration
	switch {
	case err == nil:
		ttl = c.cfg.TTL
	case errors.Is(err, ErrNotFound):
		if c.cfg.NotFoundTTL < 0 {
			return WebhookConfig{}, err
		}
		ttl = c.cfg.NotFoundTTL
	default:
		c.readErrors.Inc()
		return WebhookConfig{}, err
	}
	c.mu.Lock()
	if c.epoch == epoch && c.gens[tenantID] == gen {
		c.entries[tenantID] = cacheEntry{cfg: cfg, err: err, expires: c.now().Add(ttl)}
	}
	c.mu.Unlock()
	return cfg, err
}

// Invalidate drops tenantID's entry, so the next lookup reads upstream. A read already
// in flight for the tenant is not cached when it completes.
func (c *Cache) Invalidate(tenantID string) {
	c.mu.Lock()
	delete(c.entries, tenantID)
	c.gens[tenantID]++
	c.mu.Unlock()
}

// InvalidateAll drops every entry, as after missing change notices (a reconnect).
func (c *Cache) InvalidateAll() {
	c.mu.Lock()
	clear(c.entries)
	clear(c.gens) // safe: the new epoch alone keeps older reads from being stored
	c.epoch++
	c.mu.Unlock()
}

// cloneConfig copies cfg's slices so a caller cannot alter the cached entry.
func cloneConfig(cfg WebhookConfig) WebhookConfig {
	cfg.Previous = slices.Clone(cfg.Previous)
	cfg.RotationHistory = slices.Clone(cfg.RotationHistory)
	return cfg
}
