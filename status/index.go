package status

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// The index lists a tenant's events newest first without a round trip per page: it
// holds, per tenant, the current record of each event in memory, loaded and kept live
// by one watch of the tenant's records in the status bucket. The watch is an ordered
// consumer with DeliverLastPerSubject on $KV.status.<tenantId>.* (records only: the
// attempt entries have one more token), so its initial load is the current record of
// every event; afterwards it delivers new events and status changes, and deletes,
// purges and the server's expiry markers, which remove an event. Records that expire
// without a marker (the bucket's TTL) are dropped by Run once they are older than
// the TTL.
//
// It is bounded: at most IndexConfig.MaxTenants tenants are indexed at once (the
// least recently used one is dropped to start another), a tenant's index is dropped
// when no one has read it for IndexConfig.IdleTimeout, and it holds at most
// IndexConfig.MaxEvents events, the newest by CreatedAt.

// Defaults of IndexConfig. An indexed event takes about 190 bytes of heap (measured
// by BenchmarkPortalPages), so the defaults bound the index at about
// 16 × 200,000 × 190 B ≈ 600 MB, reached only by 16 tenants with 200,000 events each
// signed in at once.
const (
	DefaultIndexMaxTenants  = 16
	DefaultIndexMaxEvents   = 200_000
	DefaultIndexIdleTimeout = 10 * time.Minute
	// DefaultIndexLoadTimeout bounds how long a read waits for a tenant's first load.
	DefaultIndexLoadTimeout = 30 * time.Second
)

// ErrIndexInvalid is wrapped by the errors of a bad query (a malformed cursor, an
// unknown status).
var ErrIndexInvalid = errors.New("status: invalid index query")

// ErrIndexClosed is returned by reads after Run has returned.
var ErrIndexClosed = errors.New("status: index closed")

// IndexConfig bounds an Index. Zero values take the defaults.
type IndexConfig struct {
	// MaxTenants is how many tenants are indexed at once (default 16).
	MaxTenants int
	// MaxEvents is how many of a tenant's newest events are indexed (default 200,000).
	MaxEvents int
	// IdleTimeout is how long a tenant's index lives without a read (default 10m).
	IdleTimeout time.Duration
	// LoadTimeout bounds a read's wait for a tenant's first load (default 30s).
	LoadTimeout time.Duration
}

func (c IndexConfig) withDefaults() (IndexConfig, error) {
	switch {
	case c.MaxTenants < 0:
		return c, fmt.Errorf("status: index MaxTenants must be positive, got %d", c.MaxTenants)
	case c.MaxEvents < 0:
		return c, fmt.Errorf("status: index MaxEvents must be positive, got %d", c.MaxEvents)
	case c.IdleTimeout < 0:
		return c, fmt.Errorf("status: index IdleTimeout must be positive, got %s", c.IdleTimeout)
	case c.LoadTimeout < 0:
		return c, fmt.Errorf("status: index LoadTimeout must be positive, got %s", c.LoadTimeout)
	}
	if c.MaxTenants == 0 {
		c.MaxTenants = DefaultIndexMaxTenants
	}
	if c.MaxEvents == 0 {
		c.MaxEvents = DefaultIndexMaxEvents
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = DefaultIndexIdleTimeout
	}
	if c.LoadTimeout == 0 {
		c.LoadTimeout = DefaultIndexLoadTimeout
	}
	return c, nil
}

// Index is the per-tenant, in-memory, newest-first index of the status bucket. Create
// it with NewIndex and call Run; reads start a tenant's watch when they need it.
type Index struct {
	bind func(context.Context) (jetstream.KeyValue, error)
	cfg  IndexConfig
	log  *slog.Logger

	ctx    context.Context // the watches'; cancelled when Run returns
	cancel context.CancelFunc

	mu      sync.Mutex
	kv      jetstream.KeyValue // nil until bound
	tenants map[string]*list.Element
	lru     *list.List // of *tenantIndex, most recently used first
	ttl     time.Duration
	ttlRead bool
}

// NewIndex returns an index of the status bucket kv.
func NewIndex(kv jetstream.KeyValue, cfg IndexConfig, log *slog.Logger) (*Index, error) {
	ix, err := NewLazyIndex(func(context.Context) (jetstream.KeyValue, error) { return kv, nil }, cfg, log)
	if ix != nil {
		ix.kv = kv
	}
	return ix, err
}

// NewLazyIndex returns an index of the bucket bind returns, called at the first read
// and again at each read until it succeeds: an edge gateway indexes the hub's status
// bucket through one, so it starts, and keeps serving, while the hub cannot be
// reached.
func NewLazyIndex(bind func(context.Context) (jetstream.KeyValue, error), cfg IndexConfig, log *slog.Logger) (*Index, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Index{bind: bind, cfg: cfg, log: log.With("component", "status-index"), ctx: ctx, cancel: cancel,
		tenants: make(map[string]*list.Element), lru: list.New()}, nil
}

// Run serves the index until ctx is cancelled: it drops idle tenants and records past
// the bucket's TTL once a minute (or more often for a short IdleTimeout), and stops
// every watch when it returns; later reads are ErrIndexClosed. Reads may start
// before Run, but only Run ends their watches.
func (ix *Index) Run(ctx context.Context) error {
	defer ix.closeAll()
	defer ix.cancel()
	tick := time.NewTicker(min(time.Minute, max(ix.cfg.IdleTimeout/4, 10*time.Millisecond)))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-tick.C:
			ix.sweep(now)
		}
	}
}

func (ix *Index) closeAll() {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	for e := ix.lru.Front(); e != nil; e = e.Next() {
		e.Value.(*tenantIndex).stop()
	}
	ix.lru.Init()
	clear(ix.tenants)
}

// bucket returns the index's bucket, binding it (and reading its TTL) if need be.
func (ix *Index) bucket(ctx context.Context) (jetstream.KeyValue, error) {
	ix.mu.Lock()
	kv, ttlRead := ix.kv, ix.ttlRead
	ix.mu.Unlock()
	if kv == nil {
		var err error
		if kv, err = ix.bind(ctx); err != nil {
			return nil, fmt.Errorf("status: index bucket: %w", err)
		}
	}
	var ttl time.Duration
	if !ttlRead {
		if st, err := kv.Status(ctx); err == nil {
			ttl, ttlRead = st.TTL(), true
		}
	}
	ix.mu.Lock()
	defer ix.mu.Unlock()
	ix.kv = kv
	if ttlRead && !ix.ttlRead {
		ix.ttl, ix.ttlRead = ttl, true
	}
	return kv, nil
}

// sweep drops the tenants nobody read for IdleTimeout and, with a known TTL, the
// records older than it.
func (ix *Index) sweep(now time.Time) {
	ix.mu.Lock()
	var live []*tenantIndex
	for e := ix.lru.Back(); e != nil; {
		prev := e.Prev()
		t := e.Value.(*tenantIndex)
		if now.Sub(t.lastUsed) >= ix.cfg.IdleTimeout {
			ix.dropLocked(e)
		} else {
			live = append(live, t)
		}
		e = prev
	}
	ttl := ix.ttl
	ix.mu.Unlock()
	if ttl > 0 {
		for _, t := range live {
			t.expire(now.Add(-ttl))
		}
	}
}

func (ix *Index) dropLocked(e *list.Element) {
	t := e.Value.(*tenantIndex)
	t.stop()
	ix.lru.Remove(e)
	delete(ix.tenants, t.tenant)
	ix.log.Debug("tenant index dropped", "tenant", t.tenant)
}

// Tenants returns how many tenants are indexed now.
func (ix *Index) Tenants() int {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	return ix.lru.Len()
}

// tenant returns tenantID's index once its first load is complete, starting its watch
// if need be.
func (ix *Index) tenant(ctx context.Context, tenantID string) (*tenantIndex, error) {
	if !validToken(tenantID) {
		return nil, fmt.Errorf("%w: tenant id", ErrIndexInvalid)
	}
	kv, err := ix.bucket(ctx)
	if err != nil {
		return nil, err
	}
	ix.mu.Lock()
	if ix.ctx.Err() != nil {
		ix.mu.Unlock()
		return nil, ErrIndexClosed
	}
	var t *tenantIndex
	if e, ok := ix.tenants[tenantID]; ok {
		ix.lru.MoveToFront(e)
		t = e.Value.(*tenantIndex)
	} else {
		for ix.lru.Len() >= ix.cfg.MaxTenants {
			ix.dropLocked(ix.lru.Back())
		}
		t = newTenantIndex(tenantID, ix.cfg.MaxEvents)
		ix.tenants[tenantID] = ix.lru.PushFront(t)
		tctx, cancel := context.WithCancel(ix.ctx)
		t.cancel = cancel
		go t.run(tctx, kv, ix.log)
	}
	t.lastUsed = time.Now()
	ix.mu.Unlock()

	wctx, cancel := context.WithTimeout(ctx, ix.cfg.LoadTimeout)
	defer cancel()
	select {
	case <-t.loaded:
	case <-t.done:
	case <-wctx.Done():
		return nil, fmt.Errorf("status: index of tenant %s still loading: %w", tenantID, wctx.Err())
	}
	if err := t.failure(); err != nil {
		ix.mu.Lock()
		if e, ok := ix.tenants[tenantID]; ok && e.Value == t {
			ix.dropLocked(e) // its watch ended: the next read starts over
		}
		ix.mu.Unlock()
		select {
		case <-t.loaded: // what it holds is good for this read
		default:
			return nil, err
		}
	}
	return t, nil
}
