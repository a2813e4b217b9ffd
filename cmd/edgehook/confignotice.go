package main

import (
	"log/slog"
	"strings"

	"github.com/nats-io/nats.go"

	"github.com/edgehook/edgehook/identity"
	"github.com/edgehook/edgehook/natsconf"
	"github.com/edgehook/edgehook/vault"
)

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
