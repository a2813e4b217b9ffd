package identity

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/nats-io/nats.go/jetstream"
)

// View is an in-memory copy of the identity bucket kept current by a KV watch, so
// authenticating a request costs a hash and a map lookup, no round trip. A key the
// view has not seen yet (created a moment ago) is looked up in the bucket directly.
type View struct {
	kv  jetstream.KeyValue
	log *slog.Logger

	mu      sync.RWMutex
	keys    map[KeyHash]viewKey
	tenants map[string]Tenant
	loaded  atomic.Bool
}

// NewView returns a View of the identity bucket kv. Call Run to fill and follow it.
func NewView(kv jetstream.KeyValue, log *slog.Logger) *View {
	return &View{kv: kv, log: log, keys: make(map[KeyHash]viewKey), tenants: make(map[string]Tenant)}
}

// viewKey is what the view keeps of a key record.
type viewKey struct {
	tenantID string
	keyID    string
	scopes   Scopes
}

// Loaded reports whether the view has read the whole bucket once.
func (v *View) Loaded() bool { return v.loaded.Load() }

// Len returns the number of tenants in the view.
func (v *View) Len() int {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return len(v.tenants)
}

// Keys returns the number of API keys in the view.
func (v *View) Keys() int {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return len(v.keys)
}

// Run watches the bucket until ctx is cancelled, applying every change to the view.
func (v *View) Run(ctx context.Context) error {
	w, err := v.kv.WatchAll(ctx)
	if err != nil {
		return fmt.Errorf("identity: watch: %w", err)
	}
	defer w.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case e, ok := <-w.Updates():
			if !ok {
				if ctx.Err() != nil {
					return nil
				}
				return fmt.Errorf("identity: watch closed")
			}
			if e == nil {
				if !v.loaded.Swap(true) {
					// Decoding the whole bucket leaves garbage several times the
					// view's own size; hand it back to the OS once instead of
					// carrying it as resident memory until the next GC cycles.
					debug.FreeOSMemory()
				}
				continue
			}
			v.apply(e)
		}
	}
}

func (v *View) apply(e jetstream.KeyValueEntry) {
	deleted := e.Operation() != jetstream.KeyValuePut
	switch key := e.Key(); {
	case strings.HasPrefix(key, tenantPrefix):
		id := key[len(tenantPrefix):]
		if deleted {
			v.mu.Lock()
			delete(v.tenants, id)
			v.mu.Unlock()
			return
		}
		var t Tenant
		if err := json.Unmarshal(e.Value(), &t); err != nil {
			v.log.Error("identity: undecodable tenant record", "tenant", id, "error", err)
			return
		}
		t.Status, t.Plan = intern(t.Status), intern(t.Plan)
		v.mu.Lock()
		v.tenants[id] = t
		v.mu.Unlock()
	case strings.HasPrefix(key, keyPrefix):
		var h KeyHash
		if n, err := hex.Decode(h[:], []byte(key[len(keyPrefix):])); err != nil || n != len(h) {
			v.log.Error("identity: malformed key record name", "key", key)
			return
		}
		if deleted {
			v.mu.Lock()
			delete(v.keys, h)
			v.mu.Unlock()
			return
		}
		var kr keyRecord
		if err := json.Unmarshal(e.Value(), &kr); err != nil {
			v.log.Error("identity: undecodable key record", "error", err)
			return
		}
		v.mu.Lock()
		v.keys[h] = viewKey{tenantID: kr.TenantID, keyID: kr.KeyID, scopes: scopesOf(kr.Scopes)}
		v.mu.Unlock()
	}
}

// intern returns the package's constant for a known status or plan, so 100,000
// tenants share a handful of strings instead of holding one copy each.
func intern(s string) string {
	switch s {
	case StatusActive:
		return StatusActive
	case StatusSuspended:
		return StatusSuspended
	}
	for _, p := range Plans {
		if s == p {
			return p
		}
	}
	return s
}

// Authenticate returns the tenant that owns apiKey, or ErrUnknownKey. It does not
// check the tenant's status; callers decide what a suspended tenant may do.
func (v *View) Authenticate(ctx context.Context, apiKey []byte) (Tenant, error) {
	p, err := v.AuthenticateKey(ctx, apiKey)
	return p.Tenant, err
}

// AuthenticateKey returns who apiKey authenticates (its tenant, key id and scopes), or
// ErrUnknownKey, from memory for every key the watch has delivered; a revoked key is
// unknown as soon as the watch delivers its delete. It does not check the tenant's
// status.
func (v *View) AuthenticateKey(ctx context.Context, apiKey []byte) (Principal, error) {
	h := HashKey(apiKey)
	v.mu.RLock()
	k, ok := v.keys[h]
	t, tok := v.tenants[k.tenantID]
	v.mu.RUnlock()
	if ok && tok {
		return Principal{Tenant: t, KeyID: k.keyID, Scopes: k.scopes}, nil
	}
	// A key or tenant the watch has not delivered yet, or a key that does not exist:
	// one direct read settles it.
	return lookup(ctx, v.kv, h)
}

// Tenant returns the view's record of tenantID.
func (v *View) Tenant(tenantID string) (Tenant, bool) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	t, ok := v.tenants[tenantID]
	return t, ok
}
