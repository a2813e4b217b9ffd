// Package vault holds tenants' webhook configuration (target URL and signing secrets)
// behind one interface, with a HashiCorp Vault KV v2 implementation for production, a
// file-backed development store for `edgehook up` without Vault, and a per-tenant cache
// so the delivery and verification paths do not call Vault per webhook.
package vault

import (
	"context"
	"errors"
	"time"

	"github.com/edgehook/edgehook/webhook"
)

// ErrNotFound is returned when a tenant has no webhook configuration.
var ErrNotFound = errors.New("vault: webhook config not found")

// WebhookConfig is one tenant's webhook delivery configuration. Field names follow the
// records of the legacy TenantWebhookConfig table.
type WebhookConfig struct {
	TenantID  string
	TargetURL string
	// Secret is the current signing secret.
	Secret webhook.Secret
	// Previous holds rotated-out secrets that stay valid until their ExpiresAt.
	Previous []PreviousSecret
	// RotationHistory records when secrets were rotated (times only).
	RotationHistory []Rotation
	LastUpdated     time.Time
}

// PreviousSecret is a rotated-out secret still accepted until ExpiresAt.
type PreviousSecret struct {
	Secret    webhook.Secret
	ExpiresAt time.Time
}

// Rotation records one secret rotation.
type Rotation struct {
	RotatedAt         time.Time `json:"rotatedAt"`
	PreviousExpiresAt time.Time `json:"previousExpiresAt"`
}

// ActiveSecrets returns the secrets to sign with or accept at now: the current one
// first, then every previous one whose window has not closed.
func (c WebhookConfig) ActiveSecrets(now time.Time) []webhook.Secret {
	out := make([]webhook.Secret, 0, 1+len(c.Previous))
	out = append(out, c.Secret)
	for _, p := range c.Previous {
		if now.Before(p.ExpiresAt) {
			out = append(out, p.Secret)
		}
	}
	return out
}

// ConfigReader reads webhook configuration; the worker and receiver depend on it.
type ConfigReader interface {
	// WebhookConfig returns tenantID's configuration, or an error matching ErrNotFound.
	WebhookConfig(ctx context.Context, tenantID string) (WebhookConfig, error)
}

// ConfigStore reads and writes webhook configuration; only the admin API holds one.
type ConfigStore interface {
	ConfigReader
	// PutWebhookConfig creates or replaces cfg.TenantID's configuration.
	PutWebhookConfig(ctx context.Context, cfg WebhookConfig) error
	// DeleteWebhookConfig removes tenantID's configuration; deleting a missing one is
	// not an error.
	DeleteWebhookConfig(ctx context.Context, tenantID string) error
}
