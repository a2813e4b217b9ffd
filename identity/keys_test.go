package identity_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/edgehook/edgehook/identity"
)

// TestScopedKeys: a tenant's first key holds every scope and is listed; more keys
// carry the scopes they were given, are listed without the key, rotate (same id, name
// and scopes, the old key refused) and are revoked, which a View that had the key in
// memory follows within a second. A key record without scopes holds them all.
func TestScopedKeys(t *testing.T) {
	kv := bucket(t)
	store := identity.NewStore(kv)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	tenant, firstKey, firstHash := newTenant(t)
	if err := store.Create(ctx, tenant, firstHash); err != nil {
		t.Fatal(err)
	}
	view := identity.NewView(kv, slog.New(slog.NewTextHandler(io.Discard, nil)))
	done := make(chan error, 1)
	go func() { done <- view.Run(ctx) }()
	defer func() { cancel(); <-done }()
	waitFor(t, "view loaded", view.Loaded)

	keys, err := store.Keys(ctx, tenant.TenantID)
	if err != nil || len(keys) != 1 || keys[0].Name != identity.FirstKeyName || !slices.Equal(keys[0].Scopes, identity.AllScopes) || !strings.HasPrefix(keys[0].KeyID, "key_") {
		t.Fatalf("first key listed as %+v (%v)", keys, err)
	}
	if p, err := view.AuthenticateKey(ctx, []byte(firstKey)); err != nil || p.Scopes != identity.All || p.KeyID != keys[0].KeyID {
		t.Fatalf("first key authenticates as %+v (%v)", p, err)
	}

	sendKey, sendHash, _ := identity.NewAPIKey()
	k, err := store.AddKey(ctx, tenant.TenantID, "ci pipeline", identity.Send, sendHash)
	if err != nil || !slices.Equal(k.Scopes, []identity.Scope{identity.ScopeSend}) {
		t.Fatalf("AddKey: %+v %v", k, err)
	}
	// At once through a direct read, then from memory once the watch delivers it.
	if p, err := view.AuthenticateKey(ctx, []byte(sendKey)); err != nil || p.Scopes != identity.Send || p.Tenant.TenantID != tenant.TenantID {
		t.Fatalf("send key: %+v %v", p, err)
	}
	if p, err := store.Authenticate(ctx, []byte(sendKey)); err != nil || p.Scopes != identity.Send || p.KeyID != k.KeyID {
		t.Fatalf("send key read from the bucket: %+v %v", p, err)
	}

	// The index never holds a key, only hashes.
	e, err := kv.Get(ctx, "tenantkeys."+tenant.TenantID)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(e.Value()), sendKey) || strings.Contains(string(e.Value()), firstKey) {
		t.Fatal("the key index holds a key")
	}

	rotated, rotatedHash, _ := identity.NewAPIKey()
	r, err := store.RotateKey(ctx, tenant.TenantID, k.KeyID, rotatedHash)
	if err != nil || r.KeyID != k.KeyID || r.Name != k.Name || !slices.Equal(r.Scopes, k.Scopes) {
		t.Fatalf("RotateKey: %+v %v", r, err)
	}
	waitFor(t, "rotated-out key refused", func() bool {
		_, err := view.AuthenticateKey(ctx, []byte(sendKey))
		return errors.Is(err, identity.ErrUnknownKey)
	})
	if p, err := view.AuthenticateKey(ctx, []byte(rotated)); err != nil || p.Scopes != identity.Send {
		t.Fatalf("rotated key: %+v %v", p, err)
	}

	// Revocation of a key the view holds in memory.
	waitFor(t, "rotated key in memory", func() bool {
		p, err := view.AuthenticateKey(ctx, []byte(rotated))
		return err == nil && p.KeyID == k.KeyID
	})
	begin := time.Now()
	if _, err := store.RevokeKey(ctx, tenant.TenantID, k.KeyID); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "revoked key refused", func() bool {
		_, err := view.AuthenticateKey(ctx, []byte(rotated))
		return errors.Is(err, identity.ErrUnknownKey)
	})
	t.Logf("revoked key refused by the view after %v", time.Since(begin))
	if _, err := store.RevokeKey(ctx, tenant.TenantID, k.KeyID); !errors.Is(err, identity.ErrKeyNotFound) {
		t.Errorf("second revocation: %v", err)
	}
	if keys, _ := store.Keys(ctx, tenant.TenantID); len(keys) != 1 {
		t.Errorf("after revocation %d keys listed, want 1", len(keys))
	}
	if _, err := view.AuthenticateKey(ctx, []byte(firstKey)); err != nil {
		t.Errorf("the other key stopped working: %v", err)
	}

	// A key record without scopes (written before scopes existed) holds them all.
	legacyKey, legacyHash, _ := identity.NewAPIKey()
	b, _ := json.Marshal(map[string]any{"tenantId": tenant.TenantID, "createdAt": time.Now().UTC()})
	if _, err := kv.Create(ctx, "keys."+legacyHash.String(), b); err != nil {
		t.Fatal(err)
	}
	if p, err := view.AuthenticateKey(ctx, []byte(legacyKey)); err != nil || p.Scopes != identity.All || p.KeyID != "" {
		t.Errorf("legacy key: %+v %v", p, err)
	}
}

// TestKeyLimits: names, scopes and the number of keys are checked before anything is
// written.
func TestKeyLimits(t *testing.T) {
	kv := bucket(t)
	store := identity.NewStore(kv)
	ctx := context.Background()
	tenant, _, hash := newTenant(t)
	if err := store.Create(ctx, tenant, hash); err != nil {
		t.Fatal(err)
	}
	_, h, _ := identity.NewAPIKey()
	for name, err := range map[string]error{
		"":                       identity.ErrBadKeyName,
		strings.Repeat("n", 101): identity.ErrBadKeyName,
		"tab\tname":              identity.ErrBadKeyName,
		strings.Repeat("n", 100): nil,
	} {
		if _, got := store.AddKey(ctx, tenant.TenantID, name, identity.Read, h); !errors.Is(got, err) {
			t.Errorf("name %q: %v, want %v", name, got, err)
		}
		_, h, _ = identity.NewAPIKey()
	}
	if _, err := store.AddKey(ctx, tenant.TenantID, "none", 0, h); !errors.Is(err, identity.ErrBadScope) {
		t.Errorf("no scopes: %v", err)
	}
	if _, err := store.AddKey(ctx, "ten_missing", "x", identity.Read, h); !errors.Is(err, identity.ErrNotFound) {
		t.Errorf("unknown tenant: %v", err)
	}
	for n := 2; n < identity.MaxKeys; n++ { // the first key and the 100-character one exist
		_, h, _ := identity.NewAPIKey()
		if _, err := store.AddKey(ctx, tenant.TenantID, "k", identity.Read, h); err != nil {
			t.Fatalf("key %d: %v", n+1, err)
		}
	}
	extra, extraHash, _ := identity.NewAPIKey()
	if _, err := store.AddKey(ctx, tenant.TenantID, "one too many", identity.Read, extraHash); !errors.Is(err, identity.ErrTooManyKeys) {
		t.Errorf("key %d: %v, want ErrTooManyKeys", identity.MaxKeys+1, err)
	}
	if _, err := store.Authenticate(ctx, []byte(extra)); !errors.Is(err, identity.ErrUnknownKey) {
		t.Errorf("the refused key authenticates: %v", err)
	}
	if keys, _ := store.Keys(ctx, tenant.TenantID); len(keys) != identity.MaxKeys {
		t.Errorf("%d keys listed, want %d", len(keys), identity.MaxKeys)
	}
	if _, err := identity.ParseScopes([]identity.Scope{"send", "admin"}); !errors.Is(err, identity.ErrBadScope) || !strings.Contains(err.Error(), `"admin"`) {
		t.Errorf("ParseScopes: %v", err)
	}
}
