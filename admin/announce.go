package admin

import (
	"context"
	"log/slog"

	"github.com/nats-io/nats.go"

	"github.com/edgehook/edgehook/natsconf"
	"github.com/edgehook/edgehook/vault"
)

// Announcing returns store wrapped so that every write is announced on nc (see
// announcingStore); the admin API and migrations write webhook configuration through
// one.
func Announcing(store vault.ConfigStore, nc *nats.Conn, log *slog.Logger) vault.ConfigStore {
	return announcingStore{ConfigStore: store, nc: nc, log: log}
}

// announcingStore announces every webhook configuration write on
// natsconf.ConfigChangedPrefix+<tenantId>, so workers and receivers drop their cached
// copy and use a new target URL or secret at once instead of after the cache TTL.
type announcingStore struct {
	vault.ConfigStore
	nc  *nats.Conn
	log *slog.Logger
}

// PutWebhookConfig writes cfg, then announces the change.
func (s announcingStore) PutWebhookConfig(ctx context.Context, cfg vault.WebhookConfig) error {
	if err := s.ConfigStore.PutWebhookConfig(ctx, cfg); err != nil {
		return err
	}
	s.announce(cfg.TenantID)
	return nil
}

// DeleteWebhookConfig deletes tenantID's configuration, then announces the change.
func (s announcingStore) DeleteWebhookConfig(ctx context.Context, tenantID string) error {
	if err := s.ConfigStore.DeleteWebhookConfig(ctx, tenantID); err != nil {
		return err
	}
	s.announce(tenantID)
	return nil
}

func (s announcingStore) announce(tenantID string) {
	// A lost notice costs at most one cache TTL of staleness; the write itself stands.
	if err := s.nc.Publish(natsconf.ConfigChangedPrefix+tenantID, nil); err != nil {
		s.log.Warn("config change not announced; caches refresh within their TTL", "tenant", tenantID, "error", err)
	}
}
