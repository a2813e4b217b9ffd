package identity

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// Store reads and writes identity records. Only the admin API (and migrations) hold
// a connection allowed to write the bucket.
type Store struct {
	kv jetstream.KeyValue
}

// NewStore returns a Store on the identity bucket kv.
func NewStore(kv jetstream.KeyValue) *Store { return &Store{kv: kv} }

// Create stores a new tenant and its API key hash. Either both records exist
// afterwards or neither does.
func (s *Store) Create(ctx context.Context, t Tenant, key KeyHash) error {
	if err := t.Validate(); err != nil {
		return err
	}
	tb, err := json.Marshal(t)
	if err != nil {
		return fmt.Errorf("identity: encode tenant: %w", err)
	}
	kb, err := json.Marshal(keyRecord{TenantID: t.TenantID, CreatedAt: t.CreatedAt})
	if err != nil {
		return fmt.Errorf("identity: encode key: %w", err)
	}
	if _, err := s.kv.Create(ctx, tenantPrefix+t.TenantID, tb); err != nil {
		if errors.Is(err, jetstream.ErrKeyExists) {
			return ErrExists
		}
		return fmt.Errorf("identity: create tenant %s: %w", t.TenantID, err)
	}
	if _, err := s.kv.Create(ctx, keyPrefix+key.String(), kb); err != nil {
		if derr := s.kv.Delete(context.WithoutCancel(ctx), tenantPrefix+t.TenantID); derr != nil {
			return fmt.Errorf("identity: create key for %s: %w (and removing the tenant record failed: %w)", t.TenantID, err, derr)
		}
		return fmt.Errorf("identity: create key for %s: %w", t.TenantID, err)
	}
	return nil
}

// Get returns the tenant record for tenantID.
func (s *Store) Get(ctx context.Context, tenantID string) (Tenant, error) {
	if !ValidTenantID(tenantID) {
		return Tenant{}, ErrNotFound
	}
	e, err := s.kv.Get(ctx, tenantPrefix+tenantID)
	if err != nil {
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return Tenant{}, ErrNotFound
		}
		return Tenant{}, fmt.Errorf("identity: get tenant %s: %w", tenantID, err)
	}
	var t Tenant
	if err := json.Unmarshal(e.Value(), &t); err != nil {
		return Tenant{}, fmt.Errorf("identity: decode tenant %s: %w", tenantID, err)
	}
	return t, nil
}

// Update replaces an existing tenant record.
func (s *Store) Update(ctx context.Context, t Tenant) error {
	if err := t.Validate(); err != nil {
		return err
	}
	e, err := s.kv.Get(ctx, tenantPrefix+t.TenantID)
	if err != nil {
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return ErrNotFound
		}
		return fmt.Errorf("identity: get tenant %s: %w", t.TenantID, err)
	}
	b, err := json.Marshal(t)
	if err != nil {
		return fmt.Errorf("identity: encode tenant: %w", err)
	}
	if _, err := s.kv.Update(ctx, tenantPrefix+t.TenantID, b, e.Revision()); err != nil {
		return fmt.Errorf("identity: update tenant %s: %w", t.TenantID, err)
	}
	return nil
}

// Delete removes a tenant record and its key record. A tenant whose key record is gone
// can no longer authenticate even if removing the tenant record fails.
func (s *Store) Delete(ctx context.Context, tenantID string, key KeyHash) error {
	if err := s.kv.Delete(ctx, keyPrefix+key.String()); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("identity: delete key of %s: %w", tenantID, err)
	}
	if err := s.kv.Delete(ctx, tenantPrefix+tenantID); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("identity: delete tenant %s: %w", tenantID, err)
	}
	return nil
}

// lookup resolves a key hash to its tenant with two reads, for keys the View has not
// seen yet.
func lookup(ctx context.Context, kv jetstream.KeyValue, key KeyHash) (Tenant, error) {
	e, err := kv.Get(ctx, keyPrefix+key.String())
	if err != nil {
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return Tenant{}, ErrUnknownKey
		}
		return Tenant{}, fmt.Errorf("identity: get key: %w", err)
	}
	var kr keyRecord
	if err := json.Unmarshal(e.Value(), &kr); err != nil {
		return Tenant{}, fmt.Errorf("identity: decode key record: %w", err)
	}
	t, err := (&Store{kv: kv}).Get(ctx, kr.TenantID)
	if errors.Is(err, ErrNotFound) {
		return Tenant{}, ErrUnknownKey
	}
	return t, err
}
