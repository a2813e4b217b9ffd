// Package identity holds tenant identity: the records in the `identity` key-value
// bucket that say which API key belongs to which tenant and whether that tenant may
// send events. It holds no webhook configuration and no secrets: API keys are stored
// only as SHA-256 hashes.
package identity

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"time"
)

// Tenant statuses.
const (
	StatusActive    = "active"
	StatusSuspended = "suspended"
)

// Key prefixes inside the identity bucket.
const (
	tenantPrefix   = "tenants."
	keyPrefix      = "keys."
	keyIndexPrefix = "tenantkeys."
)

// APIKeyPrefix starts every API key edgehook issues.
const APIKeyPrefix = "ehk_"

// Errors returned by Store and View.
var (
	ErrUnknownKey  = errors.New("identity: unknown API key")
	ErrNotFound    = errors.New("identity: tenant not found")
	ErrExists      = errors.New("identity: tenant already exists")
	ErrBadTenantID = errors.New("identity: tenant id must be 1-64 characters of A-Z a-z 0-9 _ -")
	ErrBadStatus   = errors.New("identity: status must be active or suspended")
	ErrBadPlan     = errors.New("identity: plan must be free, pro or enterprise")
)

// Plans a tenant can be on.
var Plans = []string{"free", "pro", "enterprise"}

// DefaultPlan is the plan of a tenant created without one.
const DefaultPlan = "free"

// Tenant is a tenant's identity record, stored at tenants.<tenantId>.
type Tenant struct {
	TenantID  string    `json:"tenantId"`
	Status    string    `json:"status"`
	Plan      string    `json:"plan"`
	CreatedAt time.Time `json:"createdAt"`
}

// Active reports whether the tenant may send events.
func (t Tenant) Active() bool { return t.Status == StatusActive }

// Validate checks the record's fields.
func (t Tenant) Validate() error {
	if !ValidTenantID(t.TenantID) {
		return ErrBadTenantID
	}
	if t.Status != StatusActive && t.Status != StatusSuspended {
		return ErrBadStatus
	}
	return ValidatePlan(t.Plan)
}

// ValidatePlan returns ErrBadPlan unless plan is one of Plans.
func ValidatePlan(plan string) error {
	for _, p := range Plans {
		if plan == p {
			return nil
		}
	}
	return ErrBadPlan
}

// keyRecord is stored at keys.<sha256 hex of the API key>. Records written before key
// ids existed have neither KeyID nor Scopes: such a key holds every scope.
type keyRecord struct {
	TenantID  string    `json:"tenantId"`
	CreatedAt time.Time `json:"createdAt"`
	KeyID     string    `json:"keyId,omitempty"`
	Scopes    []Scope   `json:"scopes,omitempty"`
}

// Principal is who an API key authenticates: its tenant, the key's id ("" for a key
// issued before key ids existed) and its scopes.
type Principal struct {
	Tenant Tenant
	KeyID  string
	Scopes Scopes
}

// KeyHash is the SHA-256 of an API key.
type KeyHash [sha256.Size]byte

// HashKey hashes an API key.
func HashKey(apiKey []byte) KeyHash { return sha256.Sum256(apiKey) }

// String returns the hash in hex, as used in the bucket's key names.
func (h KeyHash) String() string { return hex.EncodeToString(h[:]) }

// NewAPIKey returns a fresh random API key ("ehk_" + base64url of 32 bytes) and its hash.
func NewAPIKey() (string, KeyHash, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", KeyHash{}, fmt.Errorf("identity: generate API key: %w", err)
	}
	key := APIKeyPrefix + base64.RawURLEncoding.EncodeToString(b[:])
	return key, HashKey([]byte(key)), nil
}

// NewTenantID returns a fresh random tenant id ("ten_" + 24 hex characters).
func NewTenantID() (string, error) {
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("identity: generate tenant id: %w", err)
	}
	return "ten_" + hex.EncodeToString(b[:]), nil
}

// ValidTenantID reports whether id is usable as a tenant id: 1-64 characters of
// A-Z a-z 0-9 _ -, so it is safe as a NATS subject token, a KV key part and a Vault path
// segment.
func ValidTenantID(id string) bool {
	if len(id) == 0 || len(id) > 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
