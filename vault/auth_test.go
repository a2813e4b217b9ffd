package vault_test

// Authentication tests; like client_test.go they run against vaulttest or, with
// VAULT_ADDR and VAULT_TOKEN set, against a real Vault.

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgehook/edgehook/api/apitest"
	"github.com/edgehook/edgehook/vault"
	"github.com/edgehook/edgehook/vault/vaulttest"
)

// runClient runs c.Run until the test ends and checks that it returned nil.
func runClient(t *testing.T, c *vault.Client) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Run did not return after its context ended")
		}
	})
}

// eventually polls cond until it holds, failing the test after timeout.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// safeBuffer collects a logger's output for the test to read.
type safeBuffer = apitest.Logs

// appRoleSetup writes a webhook config and returns a worker AppRole client config for it.
func appRoleSetup(t *testing.T, params map[string]any) (*vaulttest.Env, string, vault.WebhookConfig, vault.ClientConfig, string) {
	t.Helper()
	env := vaulttest.Setup(t)
	admin := newClient(t, env.ClientConfig(env.Token(t, vault.RoleAdmin, 0)))
	id := tenant(t)
	want := config(t, id)
	if err := admin.PutWebhookConfig(context.Background(), want); err != nil {
		t.Fatal(err)
	}
	mount := env.EnableAppRole(t)
	roleID, secretID := env.AppRole(t, mount, vault.RoleWorker, params)
	cfg := env.ClientConfig("")
	cfg.AppRoleMount, cfg.RoleID, cfg.SecretID = mount, roleID, secretID
	cfg.MaxRetries = -1
	return env, id, want, cfg, mount
}

func TestClientAppRoleLogsInOnFirstUse(t *testing.T) {
	ctx := context.Background()
	_, id, want, cfg, _ := appRoleSetup(t, nil)
	logs := &safeBuffer{}
	cfg.Log = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	c := newClient(t, cfg)
	if c.Ready() || c.TokenAccessor() != "" {
		t.Fatal("ready before any login")
	}
	got, err := c.WebhookConfig(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	sameConfig(t, got, want)
	if !c.Ready() || c.TokenAccessor() == "" {
		t.Fatalf("after login: ready %v accessor %q", c.Ready(), c.TokenAccessor())
	}
	// The worker policy still applies to the AppRole token.
	if err := c.PutWebhookConfig(ctx, want); !errors.Is(err, vault.ErrPermissionDenied) {
		t.Fatalf("write with the worker AppRole token: err = %v, want ErrPermissionDenied", err)
	}
	if !c.Ready() {
		t.Fatal("a policy denial made the client not ready")
	}
	out := logs.String()
	if !strings.Contains(out, "vault authenticated") || !strings.Contains(out, c.TokenAccessor()) {
		t.Fatalf("login not logged: %s", out)
	}
	if strings.Contains(out, cfg.SecretID) || strings.Contains(out, cfg.RoleID) {
		t.Fatal("credentials in the log")
	}
}

// TestClientAppRoleReauthenticatesAfterRevocation: the worker's token is revoked; the
// next read logs in again and succeeds, without a restart.
func TestClientAppRoleReauthenticatesAfterRevocation(t *testing.T) {
	ctx := context.Background()
	env, id, want, cfg, _ := appRoleSetup(t, nil)
	c := newClient(t, cfg)
	runClient(t, c)
	eventually(t, 10*time.Second, "first login", c.Ready)
	first := c.TokenAccessor()
	env.RevokeAccessor(t, first)
	got, err := c.WebhookConfig(ctx, id)
	if err != nil {
		t.Fatalf("read after revocation: %v", err)
	}
	sameConfig(t, got, want)
	if c.TokenAccessor() == first || !c.Ready() {
		t.Fatalf("no new login: accessor unchanged %v, ready %v", c.TokenAccessor() == first, c.Ready())
	}
	if !env.AccessorValid(t, c.TokenAccessor()) {
		t.Fatal("the new token is not valid")
	}
}

// TestClientRunRenewsThenLogsInAtMaxTTL: Run renews the token past its TTL, and logs in
// again before the token reaches its max TTL, so reads never fail.
func TestClientRunRenewsThenLogsInAtMaxTTL(t *testing.T) {
	t.Parallel() // it mostly waits
	ctx := context.Background()
	env, id, _, cfg, _ := appRoleSetup(t, map[string]any{"token_ttl": "2s", "token_max_ttl": "6s"})
	c := newClient(t, cfg)
	runClient(t, c)
	eventually(t, 10*time.Second, "first login", c.Ready)
	first := c.TokenAccessor()
	loginAt := time.Now()
	for time.Since(loginAt) < 3*time.Second {
		if _, err := c.WebhookConfig(ctx, id); err != nil {
			t.Fatalf("read %s after login: %v", time.Since(loginAt), err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// 3s after a login with a 2s TTL the first token only lives if it was renewed.
	if c.TokenAccessor() == first && !env.AccessorValid(t, first) {
		t.Fatal("the token expired in use: it was not renewed")
	}
	if c.TokenAccessor() != first {
		t.Fatal("logged in again within 3s instead of renewing")
	}
	eventually(t, 10*time.Second, "a new login near max TTL", func() bool {
		if _, err := c.WebhookConfig(ctx, id); err != nil {
			t.Fatalf("read while the token ages: %v", err)
		}
		return c.TokenAccessor() != first
	})
	if !c.Ready() {
		t.Fatal("not ready after re-login")
	}
}

// TestClientRunRecoversWhenLoginWorksAgain: the token is revoked and the secret id is
// destroyed, so logins fail and the client is not ready; once a new secret id is
// rendered into the secret id file, Run logs in again. With Vault's default lockout (5
// failed logins within 15 minutes) the failures stop at 3, so the role id is never
// locked out and the new secret id gets in at once.
func TestClientRunRecoversWhenLoginWorksAgain(t *testing.T) {
	t.Parallel() // it mostly waits
	ctx := context.Background()
	env, id, want, cfg, mount := appRoleSetup(t, nil)
	file := filepath.Join(t.TempDir(), "secret-id")
	if err := os.WriteFile(file, []byte(cfg.SecretID+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	oldSecretID := cfg.SecretID
	cfg.SecretID, cfg.SecretIDFile = "", file
	logs := &safeBuffer{}
	cfg.Log = slog.New(slog.NewJSONHandler(logs, nil))
	c := newClient(t, cfg)
	runClient(t, c)
	eventually(t, 10*time.Second, "first login", c.Ready)

	env.DestroySecretID(t, mount, vault.RoleWorker, oldSecretID)
	env.RevokeAccessor(t, c.TokenAccessor())
	_, err := c.WebhookConfig(ctx, id)
	if err == nil {
		t.Fatal("read succeeded with a revoked token and no way to log in")
	}
	if strings.Contains(err.Error(), oldSecretID) {
		t.Fatal("error contains the secret id")
	}
	if c.Ready() {
		t.Fatal("ready while it cannot log in")
	}
	// A few quick retries (the read's login and two from Run), then Run waits out
	// Vault's counter reset instead of spending the last failures before the lockout.
	budget := vault.DefaultLockoutThreshold - 2
	failed := func() int { return len(failedLoginTimes(t, logs.String())) }
	eventually(t, 10*time.Second, "the quick retries", func() bool { return failed() >= budget })
	time.Sleep(time.Second)
	if n := failed(); n != budget {
		t.Fatalf("%d failed logins, want %d before the wait for Vault's counter reset", n, budget)
	}
	if r := c.NotReadyReason(); !strings.Contains(r, "invalid role or secret ID") || strings.Contains(r, oldSecretID) {
		t.Fatalf("readiness reason %q", r)
	}

	if err := os.WriteFile(file, []byte(env.SecretID(t, mount, vault.RoleWorker)), 0o600); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "ready after the secret id is replaced", c.Ready)
	got, err := c.WebhookConfig(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	sameConfig(t, got, want)
}

// TestClientTokenFile: the token is read from a file, read again when the token in use
// is revoked.
func TestClientTokenFile(t *testing.T) {
	ctx := context.Background()
	env := vaulttest.Setup(t)
	admin := newClient(t, env.ClientConfig(env.Token(t, vault.RoleAdmin, 0)))
	id := tenant(t)
	want := config(t, id)
	if err := admin.PutWebhookConfig(ctx, want); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "vault_token")
	tok := env.Token(t, vault.RoleReceiver, time.Hour)
	if err := os.WriteFile(file, []byte(tok), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := env.ClientConfig("")
	cfg.TokenFile = file
	c := newClient(t, cfg)
	if _, err := c.WebhookConfig(ctx, id); err != nil {
		t.Fatal(err)
	}
	first := c.TokenAccessor()
	env.RevokeAccessor(t, first)
	// Nomad renders a new token into the file.
	if err := os.WriteFile(file, []byte(env.Token(t, vault.RoleReceiver, time.Hour)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := c.WebhookConfig(ctx, id)
	if err != nil {
		t.Fatalf("read after the token was replaced: %v", err)
	}
	sameConfig(t, got, want)
	if c.TokenAccessor() == first || !c.Ready() {
		t.Fatal("token file not read again")
	}
}

// TestClientFixedTokenRevoked: a fixed token cannot be replaced; once Vault rejects it
// the client reports not ready.
func TestClientFixedTokenRevoked(t *testing.T) {
	ctx := context.Background()
	env := vaulttest.Setup(t)
	admin := newClient(t, env.ClientConfig(env.Token(t, vault.RoleAdmin, 0)))
	id := tenant(t)
	if err := admin.PutWebhookConfig(ctx, config(t, id)); err != nil {
		t.Fatal(err)
	}
	tok := env.Token(t, vault.RoleWorker, time.Hour)
	c := newClient(t, env.ClientConfig(tok))
	runClient(t, c)
	eventually(t, 10*time.Second, "token looked up", func() bool { return c.TokenAccessor() != "" })
	if !c.Ready() {
		t.Fatal("not ready with a valid token")
	}
	env.RevokeAccessor(t, c.TokenAccessor())
	if _, err := c.WebhookConfig(ctx, id); !errors.Is(err, vault.ErrPermissionDenied) {
		t.Fatalf("read with a revoked fixed token: err = %v, want ErrPermissionDenied", err)
	}
	if c.Ready() {
		t.Fatal("ready with a revoked fixed token")
	}
}

func TestClientAuthConfigValidation(t *testing.T) {
	base := vault.ClientConfig{Address: "http://127.0.0.1:8200"}
	cases := map[string]struct {
		mutate func(*vault.ClientConfig)
		want   string
	}{
		"no credentials":         {func(c *vault.ClientConfig) {}, "VAULT_ROLE_ID"},
		"token and role":         {func(c *vault.ClientConfig) { c.Token, c.RoleID = "t", "r" }, "only one"},
		"token and token file":   {func(c *vault.ClientConfig) { c.Token, c.TokenFile = "t", "/f" }, "only one"},
		"two secret ids":         {func(c *vault.ClientConfig) { c.RoleID, c.SecretID, c.SecretIDFile = "r", "s", "/f" }, "VAULT_SECRET_ID_FILE"},
		"secret id without role": {func(c *vault.ClientConfig) { c.Token, c.SecretID = "t", "s" }, "VAULT_ROLE_ID"},
		"bad approle mount":      {func(c *vault.ClientConfig) { c.RoleID, c.AppRoleMount = "r", "a b" }, "AppRole mount"},
	}
	for name, tc := range cases {
		cfg := base
		tc.mutate(&cfg)
		_, err := vault.NewClient(cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want one mentioning %s", name, err, tc.want)
		}
	}
	cfg := base
	cfg.RoleID, cfg.SecretID = "role-1234", "secret-5678"
	if s := cfg.String(); strings.Contains(s, "role-1234") || strings.Contains(s, "secret-5678") {
		t.Fatalf("credentials printed: %s", s)
	}
}

// TestClientUnreachableLoginIsNotReady: logins against a Vault that is down fail with
// ErrNotAuthenticated and leave the client not ready.
func TestClientUnreachableLoginIsNotReady(t *testing.T) {
	srv := vaulttest.Start(t)
	srv.SetSealed(true)
	c := newClient(t, vault.ClientConfig{Address: srv.Addr(), RoleID: "role", SecretID: "secret", MaxRetries: -1})
	_, err := c.WebhookConfig(context.Background(), "ten_x")
	if !errors.Is(err, vault.ErrNotAuthenticated) {
		t.Fatalf("read with login failing: err = %v, want ErrNotAuthenticated", err)
	}
	if c.Ready() {
		t.Fatal("ready without a token")
	}
	// Unsealed, but the role does not exist: still not authenticated.
	srv.SetSealed(false)
	runClient(t, c)
	if _, err := c.WebhookConfig(context.Background(), "ten_x"); !errors.Is(err, vault.ErrNotAuthenticated) {
		t.Fatalf("read with a bad role: err = %v, want ErrNotAuthenticated", err)
	}
	if c.Ready() {
		t.Fatal("ready without a token")
	}
}
