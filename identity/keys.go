package identity

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Scope is one right an API key may hold.
type Scope string

// The scopes of an API key.
const (
	// ScopeSend sends events (POST /v1/events) and asks for replays.
	ScopeSend Scope = "send"
	// ScopeRead reads events' statuses and attempt logs.
	ScopeRead Scope = "read"
	// ScopeManage manages the tenant's endpoint (target URL, signing secret) and API
	// keys, and asks for replays.
	ScopeManage Scope = "manage"
)

// AllScopes lists every scope, in the order answers show them.
var AllScopes = []Scope{ScopeSend, ScopeRead, ScopeManage}

// Scopes is a set of scopes.
type Scopes uint8

// The sets of one scope each, and of all of them: the rights of a key stored without
// scopes (a tenant's first key, keys written before scopes existed).
const (
	Send Scopes = 1 << iota
	Read
	Manage
	All = Send | Read | Manage
)

// Has reports whether s holds any scope of want.
func (s Scopes) Has(want Scopes) bool { return s&want != 0 }

// List returns s's scopes in AllScopes order.
func (s Scopes) List() []Scope {
	out := make([]Scope, 0, len(AllScopes))
	for i, sc := range AllScopes {
		if s&(1<<i) != 0 {
			out = append(out, sc)
		}
	}
	return out
}

// String names s's scopes, joined by " or ", for error messages.
func (s Scopes) String() string {
	names := make([]string, 0, len(AllScopes))
	for _, sc := range s.List() {
		names = append(names, string(sc))
	}
	return strings.Join(names, " or ")
}

// ErrBadScope is returned for a scope that is not one of AllScopes.
var ErrBadScope = errors.New("identity: scope must be send, read or manage")

// ParseScopes returns the set of names, or ErrBadScope naming the first unknown one.
func ParseScopes(names []Scope) (Scopes, error) {
	var s Scopes
	for _, n := range names {
		i := slices.Index(AllScopes, n)
		if i < 0 {
			return 0, fmt.Errorf("%w: %q", ErrBadScope, n)
		}
		s |= 1 << i
	}
	return s, nil
}

// scopesOf reads a key record's scopes: none stored means all of them.
func scopesOf(names []Scope) Scopes {
	if len(names) == 0 {
		return All
	}
	s, err := ParseScopes(names)
	if err != nil {
		return 0 // a record naming a scope this version does not know grants nothing it does not know
	}
	return s
}

// Limits of a tenant's API keys.
const (
	// MaxKeys is the most API keys a tenant may hold.
	MaxKeys = 20
	// MaxKeyNameLen is the longest key name, in bytes.
	MaxKeyNameLen = 100
	// FirstKeyName names the key a tenant gets at creation.
	FirstKeyName = "default"
)

// More errors returned by Store.
var (
	ErrKeyNotFound = errors.New("identity: API key not found")
	ErrTooManyKeys = fmt.Errorf("identity: a tenant may hold at most %d API keys", MaxKeys)
	ErrBadKeyName  = fmt.Errorf("identity: key name must be 1-%d characters without control characters", MaxKeyNameLen)
)

// Key is one API key of a tenant as the tenant's key index holds it: never the key
// itself, only its hash (kept out of answers) and a short fingerprint of it.
type Key struct {
	KeyID     string    `json:"keyId"`
	Name      string    `json:"name"`
	Scopes    []Scope   `json:"scopes"`
	CreatedAt time.Time `json:"createdAt"`
	// Hash is the hex SHA-256 of the key, the name of its key record.
	Hash string `json:"hash"`
}

// Fingerprint is a short, non-secret handle on the key: the first 12 hex characters of
// its hash.
func (k Key) Fingerprint() string { return k.Hash[:min(12, len(k.Hash))] }

// NewKeyID returns a fresh random key id ("key_" + 16 hex characters).
func NewKeyID() (string, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("identity: generate key id: %w", err)
	}
	return "key_" + hex.EncodeToString(b[:]), nil
}

// ValidKeyName reports whether name is usable: 1-MaxKeyNameLen bytes, no control
// characters.
func ValidKeyName(name string) bool {
	return len(name) > 0 && len(name) <= MaxKeyNameLen &&
		!strings.ContainsFunc(name, func(r rune) bool { return r < 0x20 || r == 0x7f })
}

// keyIndex is stored at tenantkeys.<tenantId>: the tenant's keys, so they can be listed
// with one read and their number capped with a compare-and-set.
type keyIndex struct {
	Keys []Key `json:"keys"`
}

// index reads tenantID's key index and its revision (0: none yet).
func (s *Store) index(ctx context.Context, tenantID string) (keyIndex, uint64, error) {
	e, err := s.kv.Get(ctx, keyIndexPrefix+tenantID)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		return keyIndex{}, 0, nil
	case err != nil:
		return keyIndex{}, 0, fmt.Errorf("identity: get key index of %s: %w", tenantID, err)
	}
	var ix keyIndex
	if err := json.Unmarshal(e.Value(), &ix); err != nil {
		return keyIndex{}, 0, fmt.Errorf("identity: decode key index of %s: %w", tenantID, err)
	}
	return ix, e.Revision(), nil
}

// putIndex writes ix as tenantID's key index if it is still at revision rev.
func (s *Store) putIndex(ctx context.Context, tenantID string, ix keyIndex, rev uint64) error {
	b, err := json.Marshal(ix)
	if err != nil {
		return fmt.Errorf("identity: encode key index: %w", err)
	}
	if rev == 0 {
		_, err = s.kv.Create(ctx, keyIndexPrefix+tenantID, b)
	} else {
		_, err = s.kv.Update(ctx, keyIndexPrefix+tenantID, b, rev)
	}
	if err != nil {
		return fmt.Errorf("identity: write key index of %s: %w", tenantID, err)
	}
	return nil
}

// Keys lists tenantID's API keys, oldest first. Keys issued before key ids existed
// are not in the index and so not listed; they keep every scope.
func (s *Store) Keys(ctx context.Context, tenantID string) ([]Key, error) {
	if _, err := s.Get(ctx, tenantID); err != nil {
		return nil, err
	}
	ix, _, err := s.index(ctx, tenantID)
	return ix.Keys, err
}

// AddKey gives tenantID a new API key with hash, named name, holding scopes. It fails
// with ErrTooManyKeys when the tenant holds MaxKeys already.
func (s *Store) AddKey(ctx context.Context, tenantID, name string, scopes Scopes, hash KeyHash) (Key, error) {
	if !ValidKeyName(name) {
		return Key{}, ErrBadKeyName
	}
	if scopes&All == 0 {
		return Key{}, ErrBadScope
	}
	t, err := s.Get(ctx, tenantID)
	if err != nil {
		return Key{}, err
	}
	id, err := NewKeyID()
	if err != nil {
		return Key{}, err
	}
	k := Key{KeyID: id, Name: name, Scopes: scopes.List(), CreatedAt: time.Now().UTC(), Hash: hash.String()}
	ix, rev, err := s.index(ctx, tenantID)
	if err != nil {
		return Key{}, err
	}
	if len(ix.Keys) >= MaxKeys {
		return Key{}, ErrTooManyKeys
	}
	ix.Keys = append(ix.Keys, k)
	// The index first: a key that authenticates is always listed, so it can be revoked.
	if err := s.putIndex(ctx, tenantID, ix, rev); err != nil {
		return Key{}, err
	}
	if err := s.createKeyRecord(ctx, t.TenantID, k, hash); err != nil {
		s.dropFromIndex(context.WithoutCancel(ctx), tenantID, k.KeyID)
		return Key{}, err
	}
	return k, nil
}

// RotateKey replaces keyID's key by one with hash, keeping its id, name and scopes; the
// old key stops authenticating.
func (s *Store) RotateKey(ctx context.Context, tenantID, keyID string, hash KeyHash) (Key, error) {
	ix, rev, err := s.index(ctx, tenantID)
	if err != nil {
		return Key{}, err
	}
	i := slices.IndexFunc(ix.Keys, func(k Key) bool { return k.KeyID == keyID })
	if i < 0 {
		return Key{}, ErrKeyNotFound
	}
	old := ix.Keys[i]
	k := old
	k.Hash, k.CreatedAt = hash.String(), time.Now().UTC()
	ix.Keys[i] = k
	if err := s.putIndex(ctx, tenantID, ix, rev); err != nil {
		return Key{}, err
	}
	if err := s.createKeyRecord(ctx, tenantID, k, hash); err != nil {
		return Key{}, err
	}
	if err := s.kv.Delete(ctx, keyPrefix+old.Hash); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return Key{}, fmt.Errorf("identity: revoke the rotated key %s of %s: %w", keyID, tenantID, err)
	}
	return k, nil
}

// RevokeKey deletes keyID's key: it stops authenticating at once in this store and,
// as soon as the watch delivers the delete, in every View. Revoking it again is
// ErrKeyNotFound.
func (s *Store) RevokeKey(ctx context.Context, tenantID, keyID string) (Key, error) {
	ix, _, err := s.index(ctx, tenantID)
	if err != nil {
		return Key{}, err
	}
	i := slices.IndexFunc(ix.Keys, func(k Key) bool { return k.KeyID == keyID })
	if i < 0 {
		return Key{}, ErrKeyNotFound
	}
	k := ix.Keys[i]
	// The key record first: once it is gone the key no longer authenticates, whatever
	// happens to the index.
	if err := s.kv.Delete(ctx, keyPrefix+k.Hash); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return Key{}, fmt.Errorf("identity: revoke key %s of %s: %w", keyID, tenantID, err)
	}
	if err := s.dropFromIndex(ctx, tenantID, keyID); err != nil {
		return Key{}, err
	}
	return k, nil
}

// dropFromIndex removes keyID from tenantID's index, retrying a lost compare-and-set.
func (s *Store) dropFromIndex(ctx context.Context, tenantID, keyID string) error {
	for range 5 {
		ix, rev, err := s.index(ctx, tenantID)
		if err != nil {
			return err
		}
		n := len(ix.Keys)
		ix.Keys = slices.DeleteFunc(ix.Keys, func(k Key) bool { return k.KeyID == keyID })
		if len(ix.Keys) == n {
			return nil
		}
		if err = s.putIndex(ctx, tenantID, ix, rev); err == nil || !errors.Is(err, jetstream.ErrKeyExists) {
			return err
		}
	}
	return fmt.Errorf("identity: key index of %s kept changing", tenantID)
}

// createKeyRecord stores the record that makes key hash authenticate as k of tenantID.
func (s *Store) createKeyRecord(ctx context.Context, tenantID string, k Key, hash KeyHash) error {
	b, err := json.Marshal(keyRecord{TenantID: tenantID, CreatedAt: k.CreatedAt, KeyID: k.KeyID, Scopes: k.Scopes})
	if err != nil {
		return fmt.Errorf("identity: encode key: %w", err)
	}
	if _, err := s.kv.Create(ctx, keyPrefix+hash.String(), b); err != nil {
		return fmt.Errorf("identity: create key %s for %s: %w", k.KeyID, tenantID, err)
	}
	return nil
}
