package main

import (
	"context"
	"log/slog"
	"strings"

	"github.com/nats-io/nats.go"

	"github.com/edgehook/edgehook/identity"
	"github.com/edgehook/edgehook/natsconf"
	"github.com/edgehook/edgehook/vault"
)

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

// followConfigChanges drops a tenant's cached configuration when the admin API
// announces a change, then calls changed (when set) with the tenant id, and drops
// everything cached after a reconnect (notices may have been missed while
// disconnected).
func followConfigChanges(nc *nats.Conn, cache *vault.Cache, log *slog.Logger, changed func(tenantID string)) error {
	_, err := nc.Subscribe(natsconf.ConfigChangedPrefix+"*", func(m *nats.Msg) {
		tenantID := strings.TrimPrefix(m.Subject, natsconf.ConfigChangedPrefix)
		if identity.ValidTenantID(tenantID) {
			cache.Invalidate(tenantID)
			if changed != nil {
				changed(tenantID)
			}
		}
	})
	if err != nil {
		return err
	}
	nc.SetReconnectHandler(func(nc *nats.Conn) {
		cache.InvalidateAll()
		log.Info("nats reconnected; webhook config cache cleared", "url", nc.ConnectedUrlRedacted())
	})
	return nc.Flush()
}
