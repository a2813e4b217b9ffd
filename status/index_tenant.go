package status

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/valyala/fastjson"
)

// maxInternedTypes bounds the event types one tenant's index shares between its
// entries; types beyond it are stored per entry.
const maxInternedTypes = 1024

// entry is one event in a tenant's index: what a list row shows.
type entry struct {
	id       string
	typ      string
	status   string
	attempts int32
	code     int32
	created  int64 // CreatedAt, Unix nanoseconds
	updated  int64 // UpdatedAt, Unix nanoseconds
	stored   int64 // when the record was written, Unix nanoseconds (for the TTL)
}

// before reports whether e sorts before (is older than) created/id.
func (e *entry) before(created int64, id string) bool {
	if e.created != created {
		return e.created < created
	}
	return e.id < id
}

func compareEntries(a, b *entry) int {
	if c := cmp.Compare(a.created, b.created); c != 0 {
		return c
	}
	return strings.Compare(a.id, b.id)
}

// tenantIndex is one tenant's events, oldest first in order (so a new event, the
// usual case, is an append) and by id in byID.
type tenantIndex struct {
	tenant   string
	max      int
	cancel   context.CancelFunc
	loaded   chan struct{} // closed when the first load is in
	done     chan struct{} // closed when the watch has ended
	lastUsed time.Time     // guarded by Index.mu

	mu        sync.RWMutex
	byID      map[string]*entry
	order     []*entry
	truncated bool // events older than the oldest indexed one exist
	types     map[string]string
	err       error
	badSeen   bool
}

func newTenantIndex(tenant string, max int) *tenantIndex {
	return &tenantIndex{tenant: tenant, max: max, loaded: make(chan struct{}), done: make(chan struct{}),
		byID: make(map[string]*entry), types: make(map[string]string)}
}

func (t *tenantIndex) stop() {
	if t.cancel != nil {
		t.cancel()
	}
}

func (t *tenantIndex) failure() error {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.err
}

// run watches the tenant's records until ctx is done or the watch fails.
func (t *tenantIndex) run(ctx context.Context, kv jetstream.KeyValue, log *slog.Logger) {
	defer close(t.done)
	w, err := kv.Watch(ctx, t.tenant+".*")
	if err != nil {
		t.fail(fmt.Errorf("status: index watch of tenant %s: %w", t.tenant, err))
		return
	}
	defer func() { _ = w.Stop() }()
	started := time.Now()
	var p fastjson.Parser
	loading := true
	for {
		select {
		case <-ctx.Done():
			t.fail(ErrIndexClosed)
			return
		case e, ok := <-w.Updates():
			if !ok {
				t.fail(fmt.Errorf("status: index watch of tenant %s ended", t.tenant))
				return
			}
			if e == nil {
				if loading {
					t.finishLoad()
					loading = false
					log.Info("tenant index loaded", "tenant", t.tenant, "events", t.len(), "took", time.Since(started))
					close(t.loaded)
				}
				continue
			}
			t.apply(&p, e, loading, log)
		}
	}
}

func (t *tenantIndex) fail(err error) {
	t.mu.Lock()
	if t.err == nil {
		t.err = err
	}
	t.mu.Unlock()
}

func (t *tenantIndex) len() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return len(t.order)
}

// apply takes in one watch entry. While loading it only fills byID; finishLoad sorts.
func (t *tenantIndex) apply(p *fastjson.Parser, e jetstream.KeyValueEntry, loading bool, log *slog.Logger) {
	id := e.Key()[len(t.tenant)+1:]
	t.mu.Lock()
	defer t.mu.Unlock()
	if e.Operation() != jetstream.KeyValuePut {
		if old, ok := t.byID[id]; ok {
			delete(t.byID, id)
			if !loading {
				t.removeOrdered(old)
			}
		}
		return
	}
	ne, err := t.parse(p, id, e)
	if err != nil {
		if !t.badSeen {
			t.badSeen = true
			log.Warn("status record not indexed", "tenant", t.tenant, "event", id, "error", err)
		}
		return
	}
	old, had := t.byID[id]
	if loading {
		t.byID[id] = ne
		if len(t.byID) >= 2*t.max {
			t.trimLoad() // a tenant far over the bound never holds much more than it
		}
		return
	}
	if had && old.created == ne.created {
		*old = *ne // same position: a status change
		return
	}
	if had {
		t.removeOrdered(old)
		delete(t.byID, id)
	}
	t.insertOrdered(ne)
}

func (t *tenantIndex) parse(p *fastjson.Parser, id string, e jetstream.KeyValueEntry) (*entry, error) {
	v, err := p.ParseBytes(e.Value())
	if err != nil {
		return nil, err
	}
	created, err := parseTime(v.GetStringBytes("createdAt"))
	if err != nil {
		return nil, fmt.Errorf("createdAt: %w", err)
	}
	updated, err := parseTime(v.GetStringBytes("updatedAt"))
	if err != nil {
		updated = created
	}
	return &entry{
		id:       id,
		typ:      t.intern(v.GetStringBytes("type")),
		status:   internStatus(v.GetStringBytes("status")),
		attempts: int32(v.GetInt("attempts")),
		code:     int32(v.GetInt("lastStatusCode")),
		created:  created,
		updated:  updated,
		stored:   e.Created().UnixNano(),
	}, nil
}

func parseTime(b []byte) (int64, error) {
	if len(b) == 0 {
		return 0, errors.New("missing")
	}
	tm, err := time.Parse(time.RFC3339Nano, string(b))
	if err != nil {
		return 0, err
	}
	if tm.Year() < 1678 || tm.Year() > 2261 { // beyond int64 nanoseconds: the zero time, say
		return 0, nil
	}
	return tm.UnixNano(), nil
}

func internStatus(b []byte) string {
	for _, s := range []string{Queued, Retrying, Delivered, Failed} {
		if string(b) == s {
			return s
		}
	}
	return string(b)
}

func (t *tenantIndex) intern(b []byte) string {
	if s, ok := t.types[string(b)]; ok {
		return s
	}
	s := string(b)
	if len(t.types) < maxInternedTypes {
		t.types[s] = s
	}
	return s
}

// finishLoad orders the loaded records and keeps the newest max of them.
func (t *tenantIndex) finishLoad() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.trimLoad()
}

// trimLoad orders the records loaded so far into order and keeps the newest max of
// them (in order and byID).
func (t *tenantIndex) trimLoad() {
	t.order = make([]*entry, 0, len(t.byID))
	for _, e := range t.byID {
		t.order = append(t.order, e)
	}
	slices.SortFunc(t.order, compareEntries)
	if over := len(t.order) - t.max; over > 0 {
		for _, e := range t.order[:over] {
			delete(t.byID, e.id)
		}
		t.order = slices.Clone(t.order[over:])
		t.truncated = true
	}
}

// position returns the index in order of the first entry not older than created/id.
func (t *tenantIndex) position(created int64, id string) int {
	i, _ := slices.BinarySearchFunc(t.order, &entry{created: created, id: id}, compareEntries)
	return i
}

func (t *tenantIndex) insertOrdered(e *entry) {
	if len(t.order) >= t.max && len(t.order) > 0 && !t.order[0].before(e.created, e.id) {
		t.truncated = true // older than everything kept
		return
	}
	i := t.position(e.created, e.id)
	if i == len(t.order) {
		t.order = append(t.order, e)
	} else {
		t.order = slices.Insert(t.order, i, e)
	}
	t.byID[e.id] = e
	if len(t.order) > t.max {
		delete(t.byID, t.order[0].id)
		t.order[0] = nil
		t.order = t.order[1:]
		t.truncated = true
	}
}

func (t *tenantIndex) removeOrdered(e *entry) {
	i := t.position(e.created, e.id)
	if i < len(t.order) && t.order[i] == e {
		t.order = slices.Delete(t.order, i, i+1)
	}
}

// expire drops the entries written before cutoff (the bucket's TTL has removed them).
func (t *tenantIndex) expire(cutoff time.Time) {
	select {
	case <-t.loaded:
	default:
		return
	}
	c := cutoff.UnixNano()
	t.mu.Lock()
	defer t.mu.Unlock()
	t.order = slices.DeleteFunc(t.order, func(e *entry) bool {
		if e.stored < c {
			delete(t.byID, e.id)
			return true
		}
		return false
	})
}
