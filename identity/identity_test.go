package identity_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/edgehook/edgehook/identity"
	"github.com/edgehook/edgehook/natsconf"
	"github.com/edgehook/edgehook/natsconf/natstest"
)

func bucket(t *testing.T) jetstream.KeyValue {
	t.Helper()
	srv := natstest.Start(t, nil)
	kv, err := srv.JetStream(t).KeyValue(context.Background(), natsconf.BucketIdentity)
	if err != nil {
		t.Fatal(err)
	}
	return kv
}

func newTenant(t *testing.T) (identity.Tenant, string, identity.KeyHash) {
	t.Helper()
	id, err := identity.NewTenantID()
	if err != nil {
		t.Fatal(err)
	}
	key, hash, err := identity.NewAPIKey()
	if err != nil {
		t.Fatal(err)
	}
	return identity.Tenant{TenantID: id, Status: identity.StatusActive, Plan: identity.DefaultPlan, CreatedAt: time.Now().UTC()}, key, hash
}

func TestViewFollowsTheBucket(t *testing.T) {
	kv := bucket(t)
	store := identity.NewStore(kv)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	before, beforeKey, beforeHash := newTenant(t)
	if err := store.Create(ctx, before, beforeHash); err != nil {
		t.Fatal(err)
	}
	view := identity.NewView(kv, slog.New(slog.NewTextHandler(io.Discard, nil)))
	done := make(chan error, 1)
	go func() { done <- view.Run(ctx) }()
	waitFor(t, "view loaded", view.Loaded)
	if got, err := view.Authenticate(ctx, []byte(beforeKey)); err != nil || got.TenantID != before.TenantID {
		t.Fatalf("existing key: %v %v", got, err)
	}

	// A key created after the view loaded works at once (direct read) and then from memory.
	after, afterKey, afterHash := newTenant(t)
	if err := store.Create(ctx, after, afterHash); err != nil {
		t.Fatal(err)
	}
	if got, err := view.Authenticate(ctx, []byte(afterKey)); err != nil || got.TenantID != after.TenantID {
		t.Fatalf("new key: %v %v", got, err)
	}
	waitFor(t, "new tenant in view", func() bool { _, ok := view.Tenant(after.TenantID); return ok })

	// Suspension reaches the view within a second.
	after.Status = identity.StatusSuspended
	if err := store.Update(ctx, after); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "suspension seen", func() bool {
		got, err := view.Authenticate(ctx, []byte(afterKey))
		return err == nil && !got.Active()
	})

	// Deletion removes the key.
	if err := store.Delete(ctx, after.TenantID, afterHash); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "deleted key rejected", func() bool {
		_, err := view.Authenticate(ctx, []byte(afterKey))
		return errors.Is(err, identity.ErrUnknownKey)
	})
	if _, err := view.Authenticate(ctx, []byte("ehk_not-a-key")); !errors.Is(err, identity.ErrUnknownKey) {
		t.Errorf("unknown key: %v", err)
	}
	if view.Len() != 1 {
		t.Errorf("view holds %d tenants, want 1", view.Len())
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}

func TestStoreRejectsBadRecordsAndDuplicates(t *testing.T) {
	kv := bucket(t)
	store := identity.NewStore(kv)
	ctx := context.Background()
	tenant, _, hash := newTenant(t)
	if err := store.Create(ctx, tenant, hash); err != nil {
		t.Fatal(err)
	}
	if err := store.Create(ctx, tenant, hash); !errors.Is(err, identity.ErrExists) {
		t.Errorf("second create: %v, want ErrExists", err)
	}
	bad := tenant
	bad.TenantID = "ten.with.dots"
	if err := store.Create(ctx, bad, hash); !errors.Is(err, identity.ErrBadTenantID) {
		t.Errorf("dotted id: %v", err)
	}
	bad = tenant
	bad.Plan = "platinum"
	if err := store.Update(ctx, bad); !errors.Is(err, identity.ErrBadPlan) {
		t.Errorf("bad plan: %v", err)
	}
	bad = tenant
	bad.Status = "deleted"
	if err := store.Update(ctx, bad); !errors.Is(err, identity.ErrBadStatus) {
		t.Errorf("bad status: %v", err)
	}
	if _, err := store.Get(ctx, "ten_missing"); !errors.Is(err, identity.ErrNotFound) {
		t.Errorf("missing tenant: %v", err)
	}

	// The key record of a second tenant that collides with an existing key hash fails,
	// and the half-written tenant record is removed again.
	other, _, _ := newTenant(t)
	if err := store.Create(ctx, other, hash); err == nil {
		t.Fatal("create with a key hash already in use succeeded")
	}
	if _, err := store.Get(ctx, other.TenantID); !errors.Is(err, identity.ErrNotFound) {
		t.Errorf("tenant record left behind after failed create: %v", err)
	}
}

func TestAPIKeysAreStoredOnlyAsHashes(t *testing.T) {
	kv := bucket(t)
	ctx := context.Background()
	tenant, key, hash := newTenant(t)
	if err := identity.NewStore(kv).Create(ctx, tenant, hash); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(key, identity.APIKeyPrefix) || len(key) < 40 {
		t.Errorf("API key %q is not ehk_ + 32 random bytes", key[:4])
	}
	keys, err := kv.ListKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for k := range keys.Keys() {
		e, err := kv.Get(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(k, key) || strings.Contains(string(e.Value()), key) {
			t.Errorf("API key stored in clear at %s", k)
		}
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 1s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
