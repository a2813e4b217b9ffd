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

// Create stores a new tenant and its first API key hash, a key named FirstKeyName
// holding every scope. Either the tenant and its key exist afterwards or neither does.
func (s *Store) Create(ctx context.Context, t Tenant, key KeyHash) error {
	_, err := s.CreateWithKey(ctx, t, key)
	return err
}

// CreateWithKey is Create, returning the first key's index entry.
func (s *Store) CreateWithKey(ctx context.Context, t Tenant, key KeyHash) (Key, error) {
	if err := t.Validate(); err != nil {
		return Key{}, err
	}
	tb, err := json.Marshal(t)
	if err != nil {
		return Key{}, fmt.Errorf("identity: encode tenant: %w", err)
	}
	id, err := NewKeyID()
	if err != nil {
		return Key{}, err
	}
	k := Key{KeyID: id, Name: FirstKeyName, Scopes: All.List(), CreatedAt: t.CreatedAt, Hash: key.String()}
	if _, err := s.kv.Create(ctx, tenantPrefix+t.TenantID, tb); err != nil {
		if errors.Is(err, jetstream.ErrKeyExists) {
			return Key{}, ErrExists
		}
		return Key{}, fmt.Errorf("identity: create tenant %s: %w", t.TenantID, err)
	}
	undo := func(err error) (Key, error) {
		ctx := context.WithoutCancel(ctx)
		if derr := errors.Join(s.kv.Delete(ctx, keyIndexPrefix+t.TenantID), s.kv.Delete(ctx, tenantPrefix+t.TenantID)); derr != nil {
			return Key{}, fmt.Errorf("%w (and removing the tenant record failed: %w)", err, derr)
		}
		return Key{}, err
	}
	if err := s.putIndex(ctx, t.TenantID, keyIndex{Keys: []Key{k}}, 0); err != nil {
		return undo(err)
	}
	if err := s.createKeyRecord(ctx, t.TenantID, k, key); err != nil {
		return undo(err)
	}
	return k, nil
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

// Delete removes a tenant record, its key record and its key index. A tenant whose key
// record is gone can no longer authenticate even if removing the tenant record fails.
func (s *Store) Delete(ctx context.Context, tenantID string, key KeyHash) error {
	if err := s.kv.Delete(ctx, keyPrefix+key.String()); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("identity: delete key of %s: %w", tenantID, err)
	}
	if err := s.kv.Delete(ctx, keyIndexPrefix+tenantID); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("identity: delete key index of %s: %w", tenantID, err)
	}
	if err := s.kv.Delete(ctx, tenantPrefix+tenantID); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("identity: delete tenant %s: %w", tenantID, err)
	}
	return nil
}

// lookup resolves a key hash to its principal with two reads, for keys the View has
// not seen yet (and for the admin API, which reads the bucket, not a View).
func lookup(ctx context.Context, kv jetstream.KeyValue, key KeyHash) (Principal, error) {
	e, err := kv.Get(ctx, keyPrefix+key.String())
	if err != nil {
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return Principal{}, ErrUnknownKey
		}
		return Principal{}, fmt.Errorf("identity: get key: %w", err)
	}
	var kr keyRecord
	if err := json.Unmarshal(e.Value(), &kr); err != nil {
		return Principal{}, fmt.Errorf("identity: decode key record: %w", err)
	}
	t, err := (&Store{kv: kv}).Get(ctx, kr.TenantID)
	if errors.Is(err, ErrNotFound) {
		return Principal{}, ErrUnknownKey
	}
	if err != nil {
		return Principal{}, err
	}
	return Principal{Tenant: t, KeyID: kr.KeyID, Scopes: scopesOf(kr.Scopes)}, nil
}

// Authenticate returns who apiKey authenticates, read from the bucket (two reads), or
// ErrUnknownKey. The admin API authenticates tenants' keys with it.
func (s *Store) Authenticate(ctx context.Context, apiKey []byte) (Principal, error) {
	return lookup(ctx, s.kv, HashKey(apiKey))
}
