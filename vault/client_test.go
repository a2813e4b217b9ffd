package vault_test

// These tests run against vaulttest, or against a real Vault or OpenBao when VAULT_ADDR
// and VAULT_TOKEN are set (make test-vault); they must pass unchanged on both.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/edgehook/edgehook/vault"
	"github.com/edgehook/edgehook/vault/vaulttest"
	"github.com/edgehook/edgehook/webhook"
)

var (
	_ vault.ConfigStore  = (*vault.Client)(nil)
	_ vault.ConfigStore  = (*vault.DevStore)(nil)
	_ vault.ConfigReader = (*vault.Cache)(nil)
)

func secret(t testing.TB) webhook.Secret {
	t.Helper()
	s, err := webhook.NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// config returns a complete configuration for tenantID.
func config(t testing.TB, tenantID string) vault.WebhookConfig {
	t.Helper()
	now := time.Now().UTC().Truncate(time.Millisecond)
	return vault.WebhookConfig{
		TenantID:        tenantID,
		TargetURL:       "https://hooks.example.com/" + tenantID,
		Secret:          secret(t),
		Previous:        []vault.PreviousSecret{{Secret: secret(t), ExpiresAt: now.Add(24 * time.Hour)}},
		RotationHistory: []vault.Rotation{{RotatedAt: now, PreviousExpiresAt: now.Add(24 * time.Hour)}},
		LastUpdated:     now,
	}
}

func sameConfig(t testing.TB, got, want vault.WebhookConfig) {
	t.Helper()
	ok := got.TenantID == want.TenantID && got.TargetURL == want.TargetURL && got.Secret.Equal(want.Secret) &&
		len(got.Previous) == len(want.Previous) && len(got.RotationHistory) == len(want.RotationHistory) &&
		got.LastUpdated.Equal(want.LastUpdated)
	for i := 0; ok && i < len(want.Previous); i++ {
		ok = got.Previous[i].Secret.Equal(want.Previous[i].Secret) && got.Previous[i].ExpiresAt.Equal(want.Previous[i].ExpiresAt)
	}
	for i := 0; ok && i < len(want.RotationHistory); i++ {
		ok = got.RotationHistory[i].RotatedAt.Equal(want.RotationHistory[i].RotatedAt) &&
			got.RotationHistory[i].PreviousExpiresAt.Equal(want.RotationHistory[i].PreviousExpiresAt)
	}
	if !ok {
		t.Fatalf("config of %s differs from what was written", want.TenantID)
	}
}

func newClient(t testing.TB, cfg vault.ClientConfig) *vault.Client {
	t.Helper()
	c, err := vault.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// tenant returns a tenant id unique to this run, so tests can share a real Vault.
func tenant(t testing.TB) string {
	t.Helper()
	return fmt.Sprintf("ten_%d", time.Now().UnixNano())
}

func TestClientRoundTrip(t *testing.T) {
	ctx := context.Background()
	env := vaulttest.Setup(t)
	admin := newClient(t, env.ClientConfig(env.Token(t, vault.RoleAdmin, 0)))
	worker := newClient(t, env.ClientConfig(env.Token(t, vault.RoleWorker, 0)))
	receiver := newClient(t, env.ClientConfig(env.Token(t, vault.RoleReceiver, 0)))
	id := tenant(t)

	if _, err := worker.WebhookConfig(ctx, id); !errors.Is(err, vault.ErrNotFound) {
		t.Fatalf("missing config: err = %v, want ErrNotFound", err)
	}
	want := config(t, id)
	if err := admin.PutWebhookConfig(ctx, want); err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]*vault.Client{"admin": admin, "worker": worker, "receiver": receiver} {
		got, err := c.WebhookConfig(ctx, id)
		if err != nil {
			t.Fatalf("%s read: %v", name, err)
		}
		sameConfig(t, got, want)
	}

	// A rotation: new current secret, the old one kept as previous.
	rotated := want
	rotated.Secret = secret(t)
	rotated.Previous = append([]vault.PreviousSecret{{Secret: want.Secret, ExpiresAt: time.Now().Add(time.Hour).UTC().Truncate(time.Millisecond)}}, want.Previous...)
	rotated.LastUpdated = want.LastUpdated.Add(time.Second)
	if err := admin.PutWebhookConfig(ctx, rotated); err != nil {
		t.Fatal(err)
	}
	got, err := worker.WebhookConfig(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	sameConfig(t, got, rotated)
	if n := len(got.ActiveSecrets(time.Now())); n != 3 {
		t.Fatalf("%d active secrets, want 3", n)
	}

	if err := admin.DeleteWebhookConfig(ctx, id); err != nil {
		t.Fatal(err)
	}
	if _, err := worker.WebhookConfig(ctx, id); !errors.Is(err, vault.ErrNotFound) {
		t.Fatalf("deleted config: err = %v, want ErrNotFound", err)
	}
	if err := admin.DeleteWebhookConfig(ctx, id); err != nil {
		t.Fatalf("deleting a missing config: %v", err)
	}
	// Deleting the metadata removed every version, not only the latest.
	if sec, err := env.Root().Logical().ReadWithDataWithContext(ctx, admin.DataPath(id), map[string][]string{"version": {"1"}}); err != nil || sec != nil {
		t.Fatalf("version 1 after delete: %v %v", sec, err)
	}
}

// TestClientStoredShape reads the secret with a raw API client: the fields other tools
// (and the migration from the legacy table) see.
func TestClientStoredShape(t *testing.T) {
	ctx := context.Background()
	env := vaulttest.Setup(t)
	admin := newClient(t, env.ClientConfig(env.Token(t, vault.RoleAdmin, 0)))
	id := tenant(t)
	cfg := config(t, id)
	expired := secret(t)
	cfg.Previous = append(cfg.Previous, vault.PreviousSecret{Secret: expired, ExpiresAt: time.Now().Add(-time.Minute)})
	if err := admin.PutWebhookConfig(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	if got, want := admin.DataPath(id), env.Mount+"/data/edgehook/webhook-config/"+id; got != want {
		t.Fatalf("DataPath = %s, want %s", got, want)
	}
	sec, err := env.Root().KVv2(env.Mount).Get(ctx, env.Prefix+"/"+id)
	if err != nil {
		t.Fatal(err)
	}
	d := sec.Data
	if d["targetUrl"] != cfg.TargetURL || d["webhookSecret"] != cfg.Secret.Reveal() {
		t.Fatalf("stored targetUrl/webhookSecret wrong: keys %v", keys(d))
	}
	prev, ok := d["previousSecrets"].([]any)
	if !ok || len(prev) != 1 {
		t.Fatalf("stored previousSecrets: %d entries, want 1 (the expired one dropped)", len(prev))
	}
	p0 := prev[0].(map[string]any)
	if p0["webhookSecret"] != cfg.Previous[0].Secret.Reveal() {
		t.Fatal("stored previous secret wrong")
	}
	if exp, err := time.Parse(time.RFC3339, p0["expiresAt"].(string)); err != nil || !exp.Equal(cfg.Previous[0].ExpiresAt) {
		t.Fatalf("stored expiresAt %v: %v", p0["expiresAt"], err)
	}
	hist := d["rotationHistory"].([]any)
	if len(hist) != 1 || hist[0].(map[string]any)["rotatedAt"] == nil {
		t.Fatalf("stored rotationHistory %v", hist)
	}
	if lu, err := time.Parse(time.RFC3339, d["lastUpdated"].(string)); err != nil || !lu.Equal(cfg.LastUpdated) {
		t.Fatalf("stored lastUpdated %v: %v", d["lastUpdated"], err)
	}
	for _, v := range d {
		if s, ok := v.(string); ok && strings.Contains(s, expired.Reveal()) {
			t.Fatal("an expired previous secret was stored")
		}
	}

	// A record written by another tool in this shape (RFC 3339 without fractions, no
	// previous secrets) reads back.
	other := tenant(t)
	if _, err := env.Root().KVv2(env.Mount).Put(ctx, env.Prefix+"/"+other, map[string]any{
		"targetUrl": "https://legacy.example.com/hook", "webhookSecret": cfg.Secret.Reveal(), "lastUpdated": "2024-05-01T10:00:00Z",
	}); err != nil {
		t.Fatal(err)
	}
	got, err := admin.WebhookConfig(ctx, other)
	if err != nil {
		t.Fatal(err)
	}
	if got.TargetURL != "https://legacy.example.com/hook" || !got.Secret.Equal(cfg.Secret) || got.LastUpdated.Year() != 2024 || len(got.Previous) != 0 {
		t.Fatalf("legacy-shaped record read as %+v", got)
	}
}

func keys(m map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestClientSoftDeletedIsNotFound(t *testing.T) {
	ctx := context.Background()
	env := vaulttest.Setup(t)
	admin := newClient(t, env.ClientConfig(env.Token(t, vault.RoleAdmin, 0)))
	id := tenant(t)
	if err := admin.PutWebhookConfig(ctx, config(t, id)); err != nil {
		t.Fatal(err)
	}
	// `vault kv delete` deletes only the latest version.
	if err := env.Root().KVv2(env.Mount).Delete(ctx, env.Prefix+"/"+id); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.WebhookConfig(ctx, id); !errors.Is(err, vault.ErrNotFound) {
		t.Fatalf("soft-deleted config: err = %v, want ErrNotFound", err)
	}
}

func TestClientInvalidTenantIDIsNotFound(t *testing.T) {
	ctx := context.Background()
	env := vaulttest.Setup(t)
	admin := newClient(t, env.ClientConfig(env.Token(t, vault.RoleAdmin, 0)))
	for _, id := range []string{"", "../other", "a/b", strings.Repeat("x", 65)} {
		if _, err := admin.WebhookConfig(ctx, id); !errors.Is(err, vault.ErrNotFound) {
			t.Errorf("tenant %q: err = %v, want ErrNotFound", id, err)
		}
		if err := admin.DeleteWebhookConfig(ctx, id); err != nil {
			t.Errorf("delete tenant %q: %v", id, err)
		}
		c := config(t, "ten_x")
		c.TenantID = id
		if err := admin.PutWebhookConfig(ctx, c); !errors.Is(err, vault.ErrInvalidConfig) {
			t.Errorf("put tenant %q: err = %v, want ErrInvalidConfig", id, err)
		}
	}
	if env.Server != nil && env.Server.TotalKVReads() != 0 {
		t.Fatalf("invalid tenant ids caused %d Vault reads", env.Server.TotalKVReads())
	}
}

// rawStatus performs a logical request and returns the HTTP status of its error (0 when
// it succeeded).
func rawStatus(t *testing.T, c *api.Client, method, path string, data map[string]any) int {
	t.Helper()
	ctx := context.Background()
	var err error
	switch method {
	case "GET":
		_, err = c.Logical().ReadWithContext(ctx, path)
	case "LIST":
		_, err = c.Logical().ListWithContext(ctx, path)
	case "PUT":
		_, err = c.Logical().WriteWithContext(ctx, path, data)
	case "DELETE":
		_, err = c.Logical().DeleteWithContext(ctx, path)
	}
	var re *api.ResponseError
	if errors.As(err, &re) {
		return re.StatusCode
	}
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	return 0
}

// TestClientPolicyDenials proves each component's denials: worker and receiver tokens
// can read webhook config but get 403 on any write and on any path outside it; the
// admin token gets 403 outside its paths.
func TestClientPolicyDenials(t *testing.T) {
	ctx := context.Background()
	env := vaulttest.Setup(t)
	adminToken := env.Token(t, vault.RoleAdmin, 0)
	admin := newClient(t, env.ClientConfig(adminToken))
	id := tenant(t)
	cfg := config(t, id)
	if err := admin.PutWebhookConfig(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	// A secret outside webhook config, on the same mount.
	outside := env.Prefix + "-other/" + id
	if _, err := env.Root().KVv2(env.Mount).Put(ctx, outside, map[string]any{"x": "y"}); err != nil {
		t.Fatal(err)
	}
	otherPrefix := env.ClientConfig("")
	otherPrefix.Prefix = env.Prefix + "-other"

	for _, role := range []string{vault.RoleWorker, vault.RoleReceiver} {
		t.Run(role, func(t *testing.T) {
			tok := env.Token(t, role, 0)
			c := newClient(t, env.ClientConfig(tok))
			if _, err := c.WebhookConfig(ctx, id); err != nil {
				t.Fatalf("read: %v", err)
			}
			changed := cfg
			changed.TargetURL = "https://evil.example.com/"
			err := c.PutWebhookConfig(ctx, changed)
			if !errors.Is(err, vault.ErrPermissionDenied) {
				t.Fatalf("write: err = %v, want ErrPermissionDenied", err)
			}
			if strings.Contains(err.Error(), cfg.Secret.Reveal()) {
				t.Fatal("error contains the secret")
			}
			if err := c.PutWebhookConfig(ctx, config(t, tenant(t))); !errors.Is(err, vault.ErrPermissionDenied) {
				t.Fatalf("create: err = %v, want ErrPermissionDenied", err)
			}
			if err := c.DeleteWebhookConfig(ctx, id); !errors.Is(err, vault.ErrPermissionDenied) {
				t.Fatalf("delete: err = %v, want ErrPermissionDenied", err)
			}
			otherPrefix.Token = tok
			if _, err := newClient(t, otherPrefix).WebhookConfig(ctx, id); !errors.Is(err, vault.ErrPermissionDenied) {
				t.Fatalf("read outside webhook config: err = %v, want ErrPermissionDenied", err)
			}
			raw := env.APIClient(t, tok)
			for _, r := range []struct{ method, path string }{
				{"DELETE", c.DataPath(id)},
				{"GET", c.MetadataPath(id)},
				{"LIST", env.Mount + "/metadata/" + env.Prefix},
				{"DELETE", c.MetadataPath(id)},
				{"GET", env.Mount + "/data/" + outside},
				{"GET", "secret/data/edgehook/webhook-config/" + id},
				{"GET", "sys/mounts"},
				{"GET", "sys/policy/" + env.PolicyName(t, vault.RoleAdmin)},
				{"PUT", "sys/policy/" + env.PolicyName(t, role)},
				{"PUT", "auth/token/create"},
				{"PUT", "sys/mounts/" + env.Mount + "-x"},
			} {
				if s := rawStatus(t, raw, r.method, r.path, map[string]any{"policy": `path "*" { capabilities = ["sudo"] }`, "type": "kv-v2"}); s != 403 {
					t.Errorf("%s %s: status %d, want 403", r.method, r.path, s)
				}
			}
			// Still unchanged.
			got, err := admin.WebhookConfig(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			sameConfig(t, got, cfg)
		})
	}

	t.Run(vault.RoleAdmin, func(t *testing.T) {
		raw := env.APIClient(t, adminToken)
		if s := rawStatus(t, raw, "LIST", env.Mount+"/metadata/"+env.Prefix, nil); s != 0 {
			t.Fatalf("admin list: status %d", s)
		}
		if s := rawStatus(t, raw, "GET", admin.MetadataPath(id), nil); s != 0 {
			t.Fatalf("admin metadata read: status %d", s)
		}
		otherPrefix.Token = adminToken
		other := newClient(t, otherPrefix)
		if _, err := other.WebhookConfig(ctx, id); !errors.Is(err, vault.ErrPermissionDenied) {
			t.Fatalf("read outside webhook config: err = %v, want ErrPermissionDenied", err)
		}
		if err := other.PutWebhookConfig(ctx, config(t, id)); !errors.Is(err, vault.ErrPermissionDenied) {
			t.Fatalf("write outside webhook config: err = %v, want ErrPermissionDenied", err)
		}
		for _, r := range []struct{ method, path string }{
			{"GET", env.Mount + "/data/" + outside},
			{"PUT", env.Mount + "/data/" + outside},
			{"DELETE", env.Mount + "/metadata/" + outside},
			{"PUT", admin.MetadataPath(id)},
			{"GET", "secret/data/edgehook/webhook-config/" + id},
			{"GET", "sys/mounts"},
			{"PUT", "sys/mounts/" + env.Mount + "-x"},
			{"PUT", "sys/policy/" + env.PolicyName(t, vault.RoleAdmin)},
			{"PUT", "auth/token/create"},
		} {
			if s := rawStatus(t, raw, r.method, r.path, map[string]any{"data": map[string]any{"x": "y"}, "max_versions": 1, "policy": `path "*" { capabilities = ["sudo"] }`, "type": "kv-v2"}); s != 403 {
				t.Errorf("%s %s: status %d, want 403", r.method, r.path, s)
			}
		}
	})
}

func TestClientExpiredAndRevokedTokens(t *testing.T) {
	t.Parallel() // it mostly waits
	ctx := context.Background()
	env := vaulttest.Setup(t)
	admin := newClient(t, env.ClientConfig(env.Token(t, vault.RoleAdmin, 0)))
	id := tenant(t)
	if err := admin.PutWebhookConfig(ctx, config(t, id)); err != nil {
		t.Fatal(err)
	}

	t.Run("expired", func(t *testing.T) {
		c := newClient(t, env.ClientConfig(env.Token(t, vault.RoleWorker, 2*time.Second)))
		if _, err := c.WebhookConfig(ctx, id); err != nil {
			t.Fatalf("read with a fresh token: %v", err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			_, err := c.WebhookConfig(ctx, id)
			if errors.Is(err, vault.ErrPermissionDenied) {
				break
			}
			if err != nil && !errors.Is(err, vault.ErrPermissionDenied) {
				t.Fatalf("read with an expiring token: %v", err)
			}
			if time.Now().After(deadline) {
				t.Fatal("token still accepted 10s after its 2s TTL")
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
	t.Run("revoked", func(t *testing.T) {
		tok := env.Token(t, vault.RoleReceiver, 0)
		c := newClient(t, env.ClientConfig(tok))
		if _, err := c.WebhookConfig(ctx, id); err != nil {
			t.Fatal(err)
		}
		if err := env.Root().Auth().Token().RevokeTreeWithContext(ctx, tok); err != nil {
			t.Fatal(err)
		}
		if _, err := c.WebhookConfig(ctx, id); !errors.Is(err, vault.ErrPermissionDenied) {
			t.Fatalf("read with a revoked token: err = %v, want ErrPermissionDenied", err)
		}
	})
	t.Run("unknown", func(t *testing.T) {
		c := newClient(t, env.ClientConfig("hvs.not-a-token"))
		if _, err := c.WebhookConfig(ctx, id); !errors.Is(err, vault.ErrPermissionDenied) {
			t.Fatalf("read with an unknown token: err = %v, want ErrPermissionDenied", err)
		}
	})
}

// TestClientCacheBoundsVaultReads is the "10,000 deliveries cause a handful of Vault
// reads" check: concurrent and repeated lookups through a Cache in front of a worker
// Client reach Vault once. It counts requests, so it uses vaulttest.
func TestClientCacheBoundsVaultReads(t *testing.T) {
	ctx := context.Background()
	t.Setenv("VAULT_ADDR", "")
	t.Setenv("VAULT_TOKEN", "")
	env := vaulttest.Setup(t) // without VAULT_* set, a vaulttest server of its own
	admin := newClient(t, env.ClientConfig(env.Token(t, vault.RoleAdmin, 0)))
	worker := newClient(t, env.ClientConfig(env.Token(t, vault.RoleWorker, 0)))
	id := tenant(t)
	want := config(t, id)
	if err := admin.PutWebhookConfig(ctx, want); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	cache := vault.NewCache(worker, vault.CacheConfig{}, reg)
	const goroutines, perGoroutine = 20, 500
	var wg sync.WaitGroup
	errs := make(chan error, goroutines)
	for range goroutines {
		wg.Go(func() {
			for range perGoroutine {
				got, err := cache.WebhookConfig(ctx, id)
				if err != nil {
					errs <- err
					return
				}
				if !got.Secret.Equal(want.Secret) {
					errs <- errors.New("wrong secret")
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if n := env.Server.KVReads(worker.DataPath(id)); n != 1 {
		t.Fatalf("%d lookups caused %d Vault reads, want 1", goroutines*perGoroutine, n)
	}
	// After an invalidation (a config-change notice) exactly one more read.
	cache.Invalidate(id)
	if _, err := cache.WebhookConfig(ctx, id); err != nil {
		t.Fatal(err)
	}
	if n := env.Server.KVReads(worker.DataPath(id)); n != 2 {
		t.Fatalf("Vault reads after invalidation = %d, want 2", n)
	}
}

// TestClientUnavailableVault checks that a sealed Vault is an error (not ErrNotFound),
// is counted by the cache and is not cached, and that the error holds no secret.
func TestClientUnavailableVault(t *testing.T) {
	ctx := context.Background()
	t.Setenv("VAULT_ADDR", "")
	t.Setenv("VAULT_TOKEN", "")
	env := vaulttest.Setup(t)
	ccfg := env.ClientConfig(env.Token(t, vault.RoleAdmin, 0))
	ccfg.MaxRetries = -1
	admin := newClient(t, ccfg)
	id := tenant(t)
	cfg := config(t, id)
	if err := admin.PutWebhookConfig(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	cache := vault.NewCache(admin, vault.CacheConfig{}, reg)
	env.Server.SetSealed(true)
	_, err := cache.WebhookConfig(ctx, id)
	if err == nil || errors.Is(err, vault.ErrNotFound) || errors.Is(err, vault.ErrPermissionDenied) {
		t.Fatalf("read from a sealed Vault: err = %v", err)
	}
	werr := admin.PutWebhookConfig(ctx, cfg)
	if werr == nil {
		t.Fatal("write to a sealed Vault succeeded")
	}
	for _, e := range []error{err, werr} {
		if strings.Contains(e.Error(), cfg.Secret.Reveal()) || strings.Contains(e.Error(), cfg.Previous[0].Secret.Reveal()) {
			t.Fatalf("error contains a secret: %v", e)
		}
	}
	if n := testutilCounter(t, reg, "edgehook_config_read_errors_total"); n != 1 {
		t.Fatalf("read errors counted: %v, want 1", n)
	}
	env.Server.SetSealed(false)
	got, err := cache.WebhookConfig(ctx, id)
	if err != nil {
		t.Fatalf("read after unseal: %v", err)
	}
	sameConfig(t, got, cfg)
}

func TestNewClientValidation(t *testing.T) {
	cases := map[string]struct {
		cfg  vault.ClientConfig
		want string
	}{
		"no address":   {vault.ClientConfig{Token: "t"}, "VAULT_ADDR"},
		"bad address":  {vault.ClientConfig{Address: "127.0.0.1:8200", Token: "t"}, "VAULT_ADDR"},
		"no token":     {vault.ClientConfig{Address: "http://127.0.0.1:8200"}, "VAULT_TOKEN"},
		"bad mount":    {vault.ClientConfig{Address: "http://127.0.0.1:8200", Token: "t", Mount: "a/../b"}, "mount"},
		"bad prefix":   {vault.ClientConfig{Address: "http://127.0.0.1:8200", Token: "t", Prefix: "a b"}, "prefix"},
		"neg. timeout": {vault.ClientConfig{Address: "http://127.0.0.1:8200", Token: "t", Timeout: -time.Second}, "timeout"},
	}
	for name, c := range cases {
		_, err := vault.NewClient(c.cfg)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want one naming %s", name, err, c.want)
		}
	}
	c, err := vault.NewClient(vault.ClientConfig{Address: "http://127.0.0.1:8200", Token: "t", Mount: "/kv/", Prefix: "/hooks/"})
	if err != nil {
		t.Fatal(err)
	}
	if c.DataPath("t1") != "kv/data/hooks/t1" || c.MetadataPath("t1") != "kv/metadata/hooks/t1" {
		t.Fatalf("paths %s %s", c.DataPath("t1"), c.MetadataPath("t1"))
	}
}

func TestClientConfigHidesToken(t *testing.T) {
	cfg := vault.ClientConfig{Address: "http://127.0.0.1:8200", Token: "hvs.supersecret"}
	var logged strings.Builder
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("config", "vault", cfg)
	for _, s := range []string{fmt.Sprint(cfg), fmt.Sprintf("%+v", cfg), fmt.Sprintf("%#v", cfg), logged.String()} {
		if strings.Contains(s, "supersecret") {
			t.Fatalf("token printed: %s", s)
		}
		if !strings.Contains(s, "127.0.0.1:8200") {
			t.Fatalf("address missing: %s", s)
		}
	}
}

func testutilCounter(t *testing.T, g prometheus.Gatherer, name string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	return 0
}

// BenchmarkClientRead measures uncached webhook config reads from vaulttest through the
// production client, the cost a cache miss pays.
func BenchmarkClientRead(b *testing.B) {
	b.Setenv("VAULT_ADDR", "")
	b.Setenv("VAULT_TOKEN", "")
	ctx := context.Background()
	env := vaulttest.Setup(b)
	admin := newClient(b, env.ClientConfig(env.Token(b, vault.RoleAdmin, 0)))
	worker := newClient(b, env.ClientConfig(env.Token(b, vault.RoleWorker, 0)))
	id := tenant(b)
	if err := admin.PutWebhookConfig(ctx, config(b, id)); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := worker.WebhookConfig(ctx, id); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "reads/s")
}
