package migrate

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/edgehook/edgehook/identity"
	"github.com/edgehook/edgehook/vault"
)

// outcome is what migrating one record did (or, in a dry run, would do).
type outcome int

const (
	outcomeUnchanged outcome = iota
	outcomeCreated
	outcomeUpdated
)

// action is what one of a record's two parts needs.
type action int

const (
	keep action = iota
	create
	update
)

// apply migrates one record: it reads what edgehook holds for the record's API key and
// tenant, decides, and (unless dryRun) writes the webhook configuration first and the
// identity second, like the admin API, so a tenant never authenticates without a
// configuration. A configuration it created is removed again if the identity write
// fails. It writes nothing for a record that conflicts with edgehook.
func (m *Migrator) apply(ctx context.Context, r record, dryRun bool) (outcome, error) {
	idAct, err := m.planIdentity(ctx, r)
	if err != nil {
		return 0, err
	}
	cfgAct, err := m.planConfig(ctx, r)
	if err != nil {
		return 0, configError{err}
	}
	result := outcomeUnchanged
	switch {
	case idAct == create:
		result = outcomeCreated
	case idAct == update || cfgAct != keep:
		result = outcomeUpdated
	}
	if dryRun || result == outcomeUnchanged {
		return result, nil
	}

	if cfgAct != keep {
		if err := m.deps.Configs.PutWebhookConfig(ctx, r.config); err != nil {
			return 0, configError{err}
		}
	}
	switch idAct {
	case create:
		err = m.store.Create(ctx, r.tenant, identity.HashKey([]byte(r.apiKey)))
		if err != nil {
			// A tenant that exists now was created by someone else since the plan, and
			// its config stays.
			if cfgAct == create && !errors.Is(err, identity.ErrExists) {
				m.rollbackConfig(ctx, r.tenant.TenantID)
			}
			if errors.Is(err, identity.ErrExists) {
				return 0, fmt.Errorf("%w: tenant %s was created in edgehook meanwhile, with another API key (a second legacy key of the same tenant?)", ErrConflict, r.tenant.TenantID)
			}
			if errors.Is(err, jetstream.ErrKeyExists) {
				return 0, fmt.Errorf("%w: the API key already has a key record in the identity bucket, without a tenant record", ErrConflict)
			}
			return 0, err
		}
	case update:
		if err := m.store.Update(ctx, r.tenant); err != nil {
			return 0, err
		}
	}
	return result, nil
}

// configError marks an error about a record's webhook configuration, so its Failure
// names the config table.
type configError struct{ error }

func (e configError) Unwrap() error { return e.error }

// planIdentity decides what the record's identity needs: the API key unknown and the
// tenant absent is a new tenant; the key already belonging to the tenant is kept or
// updated. The key belonging to another tenant, or the tenant existing with other keys,
// is a conflict: a key is never moved, and identity.Store cannot add a second key to a
// tenant.
func (m *Migrator) planIdentity(ctx context.Context, r record) (action, error) {
	owner, err := m.keys.Authenticate(ctx, []byte(r.apiKey))
	switch {
	case err == nil && owner.TenantID != r.tenant.TenantID:
		return 0, fmt.Errorf("%w: the API key belongs to tenant %s in edgehook", ErrConflict, owner.TenantID)
	case err == nil && sameTenant(owner, r.tenant):
		return keep, nil
	case err == nil:
		return update, nil
	case !errors.Is(err, identity.ErrUnknownKey):
		return 0, err
	}
	switch _, err := m.store.Get(ctx, r.tenant.TenantID); {
	case errors.Is(err, identity.ErrNotFound):
		return create, nil
	case err != nil:
		return 0, err
	}
	return 0, fmt.Errorf("%w: tenant %s already exists in edgehook with another API key; edgehook's identity store cannot add a second key to a tenant", ErrConflict, r.tenant.TenantID)
}

// planConfig decides what the record's webhook configuration needs. A configuration
// that differs is replaced, unless edgehook changed it after the legacy record's
// lastUpdated (a secret rotated at the admin API, say): the newer one stays, and the
// record is a conflict.
func (m *Migrator) planConfig(ctx context.Context, r record) (action, error) {
	cur, err := m.deps.Configs.WebhookConfig(ctx, r.config.TenantID)
	switch {
	case errors.Is(err, vault.ErrNotFound):
		return create, nil
	case err != nil:
		return 0, err
	case sameConfig(cur, r.config, m.deps.Now()):
		return keep, nil
	case !r.config.LastUpdated.IsZero() && cur.LastUpdated.After(r.config.LastUpdated):
		return 0, fmt.Errorf("%w: the webhook config of tenant %s was changed in edgehook (%s) after the legacy record (%s); it is not overwritten",
			ErrConflict, r.config.TenantID, cur.LastUpdated.UTC().Format(time.RFC3339), r.config.LastUpdated.UTC().Format(time.RFC3339))
	}
	return update, nil
}

// rollbackConfig removes the configuration apply created for a tenant whose identity
// could not be written, so no configuration is left without an owner.
func (m *Migrator) rollbackConfig(ctx context.Context, tenantID string) {
	if err := m.deps.Configs.DeleteWebhookConfig(context.WithoutCancel(ctx), tenantID); err != nil {
		m.deps.Log.Error("identity not written and the webhook config just written for it could not be removed",
			"tenant", tenantID, "error", err)
	}
}

// sameTenant compares identity records (times by instant).
func sameTenant(a, b identity.Tenant) bool {
	return a.TenantID == b.TenantID && a.Status == b.Status && a.Plan == b.Plan && a.CreatedAt.Equal(b.CreatedAt)
}

// sameConfig compares what a configuration does at now: target, current secret, the
// previous secrets still valid, and the rotation history. LastUpdated is not compared:
// it describes the record, and a store may set it.
func sameConfig(a, b vault.WebhookConfig, now time.Time) bool {
	if a.TargetURL != b.TargetURL || !a.Secret.Equal(b.Secret) || len(a.RotationHistory) != len(b.RotationHistory) {
		return false
	}
	for i := range a.RotationHistory {
		x, y := a.RotationHistory[i], b.RotationHistory[i]
		if !x.RotatedAt.Equal(y.RotatedAt) || !x.PreviousExpiresAt.Equal(y.PreviousExpiresAt) {
			return false
		}
	}
	pa, pb := validPrevious(a.Previous, now), validPrevious(b.Previous, now)
	if len(pa) != len(pb) {
		return false
	}
	for i := range pa {
		if !pa[i].Secret.Equal(pb[i].Secret) || !pa[i].ExpiresAt.Equal(pb[i].ExpiresAt) {
			return false
		}
	}
	return true
}

func validPrevious(ps []vault.PreviousSecret, now time.Time) []vault.PreviousSecret {
	var out []vault.PreviousSecret
	for _, p := range ps {
		if now.Before(p.ExpiresAt) {
			out = append(out, p)
		}
	}
	return out
}
