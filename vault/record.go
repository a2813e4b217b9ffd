package vault

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/edgehook/edgehook/identity"
	"github.com/edgehook/edgehook/webhook"
)

// ErrInvalidConfig is returned when a WebhookConfig cannot be stored (bad tenant id,
// missing target URL or secret) or a stored record cannot be decoded. Its messages name
// the field, never a secret value.
var ErrInvalidConfig = errors.New("vault: invalid webhook config")

// record is the stored shape of one tenant's webhook configuration: the fields of the
// Vault KV v2 secret at <mount>/data/<prefix>/<tenantId>, and of one entry of the dev
// store's file. Secrets are in their text form ("whsec_..."); times are RFC 3339.
type record struct {
	TargetURL       string           `json:"targetUrl"`
	WebhookSecret   string           `json:"webhookSecret"`
	PreviousSecrets []recordPrevious `json:"previousSecrets"`
	RotationHistory []Rotation       `json:"rotationHistory"`
	LastUpdated     time.Time        `json:"lastUpdated"`
}

// recordPrevious is a rotated-out secret in a record.
type recordPrevious struct {
	WebhookSecret string    `json:"webhookSecret"`
	ExpiresAt     time.Time `json:"expiresAt"`
}

// validate checks what every store requires of a configuration before writing it.
func validate(cfg WebhookConfig) error {
	if !identity.ValidTenantID(cfg.TenantID) {
		return fmt.Errorf("%w: tenantId must be 1-64 characters of A-Z a-z 0-9 _ -", ErrInvalidConfig)
	}
	if cfg.TargetURL == "" {
		return fmt.Errorf("%w: targetUrl is empty (tenant %s)", ErrInvalidConfig, cfg.TenantID)
	}
	if u, err := url.Parse(cfg.TargetURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%w: targetUrl must be an absolute http or https URL (tenant %s)", ErrInvalidConfig, cfg.TenantID)
	}
	if cfg.Secret.IsZero() {
		return fmt.Errorf("%w: webhookSecret is empty (tenant %s)", ErrInvalidConfig, cfg.TenantID)
	}
	for _, p := range cfg.Previous {
		if p.Secret.IsZero() {
			return fmt.Errorf("%w: a previous secret is empty (tenant %s)", ErrInvalidConfig, cfg.TenantID)
		}
	}
	return nil
}

// encodeRecord turns cfg into its stored record. Previous secrets whose window closed
// before now are dropped, so an old secret value outlives its window in no store; their
// rotation times stay in RotationHistory. A zero LastUpdated becomes now.
func encodeRecord(cfg WebhookConfig, now time.Time) (record, error) {
	if err := validate(cfg); err != nil {
		return record{}, err
	}
	r := record{
		TargetURL:       cfg.TargetURL,
		WebhookSecret:   cfg.Secret.Reveal(),
		PreviousSecrets: []recordPrevious{},
		RotationHistory: []Rotation{},
		LastUpdated:     cfg.LastUpdated.UTC(),
	}
	if r.LastUpdated.IsZero() {
		r.LastUpdated = now.UTC()
	}
	for _, p := range cfg.Previous {
		if !now.Before(p.ExpiresAt) {
			continue
		}
		r.PreviousSecrets = append(r.PreviousSecrets, recordPrevious{WebhookSecret: p.Secret.Reveal(), ExpiresAt: p.ExpiresAt.UTC()})
	}
	for _, h := range cfg.RotationHistory {
		r.RotationHistory = append(r.RotationHistory, Rotation{RotatedAt: h.RotatedAt.UTC(), PreviousExpiresAt: h.PreviousExpiresAt.UTC()})
	}
	return r, nil
}

// decodeRecord turns a stored record back into tenantID's configuration. Errors name
// the bad field, never its value.
func decodeRecord(tenantID string, r record) (WebhookConfig, error) {
	cfg := WebhookConfig{
		TenantID:        tenantID,
		TargetURL:       r.TargetURL,
		RotationHistory: r.RotationHistory,
		LastUpdated:     r.LastUpdated,
	}
	if r.TargetURL == "" {
		return WebhookConfig{}, fmt.Errorf("%w: stored record of tenant %s has no targetUrl", ErrInvalidConfig, tenantID)
	}
	sec, err := webhook.ParseSecret(r.WebhookSecret)
	if err != nil {
		return WebhookConfig{}, fmt.Errorf("%w: stored webhookSecret of tenant %s: %w", ErrInvalidConfig, tenantID, err)
	}
	cfg.Secret = sec
	for i, p := range r.PreviousSecrets {
		ps, err := webhook.ParseSecret(p.WebhookSecret)
		if err != nil {
			return WebhookConfig{}, fmt.Errorf("%w: stored previousSecrets[%d] of tenant %s: %w", ErrInvalidConfig, i, tenantID, err)
		}
		cfg.Previous = append(cfg.Previous, PreviousSecret{Secret: ps, ExpiresAt: p.ExpiresAt})
	}
	return cfg, nil
}

// toMap turns a record into the data map of a KV v2 write.
func (r record) toMap() (map[string]any, error) {
	b, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("vault: encode webhook config: %w", err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("vault: encode webhook config: %w", err)
	}
	return m, nil
}

// recordFromMap reads a record from the data map of a KV v2 read. Errors say which
// field has the wrong type, never a value.
func recordFromMap(tenantID string, m map[string]any) (record, error) {
	b, err := json.Marshal(m)
	if err != nil {
		return record{}, fmt.Errorf("%w: stored record of tenant %s: %w", ErrInvalidConfig, tenantID, err)
	}
	var r record
	if err := json.Unmarshal(b, &r); err != nil {
		return record{}, fmt.Errorf("%w: stored record of tenant %s: %w", ErrInvalidConfig, tenantID, redactJSONError(err))
	}
	return r, nil
}

// errUndecodable stands in for a JSON error whose text could quote stored data.
var errUndecodable = errors.New("malformed JSON or a field in the wrong format")

// redactJSONError keeps the field and kinds of a type mismatch, without the value, and
// replaces any other JSON error, whose text may quote part of the input.
func redactJSONError(err error) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		kind, _, _ := strings.Cut(te.Value, " ") // "number 42" quotes the number
		return fmt.Errorf("field %s must be %s, not %s", te.Field, te.Type, kind)
	}
	return errUndecodable
}
