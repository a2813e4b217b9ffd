package vaulttest

import (
	"context"
	"errors"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/edgehook/edgehook/vault"
)

// Env is a Vault prepared for edgehook's integration tests: a real Vault or OpenBao when
// VAULT_ADDR and VAULT_TOKEN are set (the token must be root or equivalent and is used
// only for setup), else a vaulttest Server. Either way it gets the same setup through
// the same HTTP API: a fresh KV v2 mount, and edgehook's policies from
// vault/policies/*.hcl written under names unique to the test, so tests can run against
// a shared Vault without touching anything else. Everything is removed when the test
// ends.
type Env struct {
	// Addr is the server's URL.
	Addr string
	// Mount and Prefix locate the webhook configuration (Mount is unique to the test).
	Mount, Prefix string
	// Server is the vaulttest server, or nil against a real Vault.
	Server *Server

	root     *api.Client
	suffix   string
	policies map[string]string // role -> policy name in Vault
}

// Setup prepares an Env and registers its cleanup.
func Setup(t testing.TB) *Env {
	t.Helper()
	addr, rootToken := os.Getenv("VAULT_ADDR"), os.Getenv("VAULT_TOKEN")
	var srv *Server
	switch {
	case addr == "" && rootToken == "":
		srv = Start(t)
		addr, rootToken = srv.Addr(), srv.RootToken()
	case addr == "" || rootToken == "":
		t.Fatal("vaulttest: set both VAULT_ADDR and VAULT_TOKEN to test against a real Vault, or neither")
	}
	e := &Env{Addr: addr, Server: srv, suffix: randomHex(4), Prefix: vault.DefaultPrefix, policies: map[string]string{}}
	e.Mount = "edgehook-test-" + e.suffix
	e.root = e.newAPIClient(t, rootToken)
	ctx := context.Background()

	if err := e.root.Sys().MountWithContext(ctx, e.Mount, &api.MountInput{Type: "kv", Options: map[string]string{"version": "2"}}); err != nil {
		t.Fatalf("vaulttest: enable KV v2 at %s: %v", e.Mount, err)
	}
	t.Cleanup(func() {
		if err := e.root.Sys().UnmountWithContext(context.Background(), e.Mount); err != nil {
			t.Errorf("vaulttest: disable %s: %v", e.Mount, err)
		}
	})
	e.waitForMount(t)

	for _, role := range vault.Roles() {
		text, err := vault.Policy(role, e.Mount, e.Prefix)
		if err != nil {
			t.Fatal(err)
		}
		name := vault.PolicyName(role) + "-" + e.suffix
		if err := e.root.Sys().PutPolicyWithContext(ctx, name, text); err != nil {
			t.Fatalf("vaulttest: write policy %s: %v", name, err)
		}
		e.policies[role] = name
		t.Cleanup(func() {
			if err := e.root.Sys().DeletePolicyWithContext(context.Background(), name); err != nil {
				t.Errorf("vaulttest: delete policy %s: %v", name, err)
			}
		})
	}
	return e
}

// waitForMount polls until the new mount accepts writes: a real Vault may briefly
// answer "upgrading" after a KV v2 mount is enabled.
func (e *Env) waitForMount(t testing.TB) {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(15 * time.Second)
	probe := e.Mount + "/data/vaulttest-probe"
	for {
		_, err := e.root.Logical().WriteWithContext(ctx, probe, map[string]any{"data": map[string]any{"ok": true}})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("vaulttest: mount %s does not accept writes: %v", e.Mount, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if _, err := e.root.Logical().DeleteWithContext(ctx, e.Mount+"/metadata/vaulttest-probe"); err != nil {
		t.Fatalf("vaulttest: delete probe: %v", err)
	}
}

// Real reports whether the Env is a real Vault rather than a vaulttest Server.
func (e *Env) Real() bool { return e.Server == nil }

// Root returns an API client holding the setup (root) token.
func (e *Env) Root() *api.Client { return e.root }

// PolicyName returns the name under which role's policy was written.
func (e *Env) PolicyName(t testing.TB, role string) string {
	t.Helper()
	name, ok := e.policies[role]
	if !ok {
		t.Fatalf("vaulttest: no policy for role %q", role)
	}
	return name
}

// Token creates a token holding role's policy (plus Vault's default policy) with the
// given TTL (0: Vault's default), revoked when the test ends.
func (e *Env) Token(t testing.TB, role string, ttl time.Duration) string {
	t.Helper()
	return e.TokenWith(t, &api.TokenCreateRequest{Policies: []string{e.PolicyName(t, role)}, TTL: ttlString(ttl)})
}

// TokenWith creates a token from req with the setup token, revoked when the test ends.
func (e *Env) TokenWith(t testing.TB, req *api.TokenCreateRequest) string {
	t.Helper()
	sec, err := e.root.Auth().Token().CreateWithContext(context.Background(), req)
	if err != nil {
		t.Fatalf("vaulttest: create token: %v", err)
	}
	tok := sec.Auth.ClientToken
	t.Cleanup(func() {
		// The test may have revoked it or let it expire already.
		if err := e.root.Auth().Token().RevokeTreeWithContext(context.Background(), tok); err != nil {
			t.Logf("vaulttest: revoke token at cleanup: %v", err)
		}
	})
	return tok
}

// EnableAppRole enables an AppRole auth method at a path unique to the test and
// returns that path; it is disabled when the test ends.
func (e *Env) EnableAppRole(t testing.TB) string {
	t.Helper()
	path := "approle-test-" + e.suffix
	if err := e.root.Sys().EnableAuthWithOptionsWithContext(context.Background(), path, &api.EnableAuthOptions{Type: "approle"}); err != nil {
		t.Fatalf("vaulttest: enable AppRole at %s: %v", path, err)
	}
	t.Cleanup(func() {
		if err := e.root.Sys().DisableAuthWithContext(context.Background(), path); err != nil {
			t.Errorf("vaulttest: disable %s: %v", path, err)
		}
	})
	return path
}

// TuneLockout sets the user lockout of the auth method at mount (its
// user_lockout_config) as `vault auth tune` does, on a real Vault or OpenBao as on
// vaulttest: threshold failed logins lock a role id out for duration; counterReset
// without a failure restarts the count. Zero leaves a setting as it is; durations are
// whole seconds, as Vault keeps them.
func (e *Env) TuneLockout(t testing.TB, mount string, threshold int, duration, counterReset time.Duration) {
	t.Helper()
	lc := &api.TuneUserLockoutConfigInput{}
	if threshold > 0 {
		v := strconv.Itoa(threshold)
		lc.LockoutThreshold = &v
	}
	if duration > 0 {
		v := strconv.FormatInt(int64(duration/time.Second), 10) + "s"
		lc.LockoutDuration = &v
	}
	if counterReset > 0 {
		v := strconv.FormatInt(int64(counterReset/time.Second), 10) + "s"
		lc.LockoutCounterResetDuration = &v
	}
	if err := e.root.Sys().TuneMountAllowNilWithContext(context.Background(), "auth/"+mount, api.TuneMountConfigInput{UserLockoutConfig: lc}); err != nil {
		t.Fatalf("vaulttest: tune user lockout of auth/%s: %v", mount, err)
	}
}

// AppRole creates the AppRole role for an edgehook role (its policy as token_policies,
// plus params such as token_ttl) on the AppRole method at mount, and returns its role
// id and a fresh secret id.
func (e *Env) AppRole(t testing.TB, mount, role string, params map[string]any) (roleID, secretID string) {
	t.Helper()
	ctx := context.Background()
	body := map[string]any{"token_policies": []string{e.PolicyName(t, role)}}
	for k, v := range params {
		body[k] = v
	}
	base := "auth/" + mount + "/role/edgehook-" + role
	if _, err := e.root.Logical().WriteWithContext(ctx, base, body); err != nil {
		t.Fatalf("vaulttest: write AppRole %s: %v", base, err)
	}
	sec, err := e.root.Logical().ReadWithContext(ctx, base+"/role-id")
	if err != nil || sec == nil {
		t.Fatalf("vaulttest: read role id of %s: %v", base, err)
	}
	roleID, _ = sec.Data["role_id"].(string)
	return roleID, e.SecretID(t, mount, role)
}

// SecretID issues a new secret id for the AppRole role made by AppRole.
func (e *Env) SecretID(t testing.TB, mount, role string) string {
	t.Helper()
	sec, err := e.root.Logical().WriteWithContext(context.Background(), "auth/"+mount+"/role/edgehook-"+role+"/secret-id", nil)
	if err != nil || sec == nil {
		t.Fatalf("vaulttest: issue secret id: %v", err)
	}
	id, _ := sec.Data["secret_id"].(string)
	return id
}

// DestroySecretID makes secretID unusable for further logins.
func (e *Env) DestroySecretID(t testing.TB, mount, role, secretID string) {
	t.Helper()
	if _, err := e.root.Logical().WriteWithContext(context.Background(), "auth/"+mount+"/role/edgehook-"+role+"/secret-id/destroy", map[string]any{"secret_id": secretID}); err != nil {
		t.Fatalf("vaulttest: destroy secret id: %v", err)
	}
}

// RevokeAccessor revokes the token with accessor (and its children).
func (e *Env) RevokeAccessor(t testing.TB, accessor string) {
	t.Helper()
	if err := e.root.Auth().Token().RevokeAccessorWithContext(context.Background(), accessor); err != nil {
		t.Fatalf("vaulttest: revoke accessor: %v", err)
	}
}

// AccessorValid reports whether the token with accessor is still valid.
func (e *Env) AccessorValid(t testing.TB, accessor string) bool {
	t.Helper()
	_, err := e.root.Auth().Token().LookupAccessorWithContext(context.Background(), accessor)
	var re *api.ResponseError
	if errors.As(err, &re) && (re.StatusCode == 400 || re.StatusCode == 403) {
		return false
	}
	if err != nil {
		t.Fatalf("vaulttest: lookup accessor: %v", err)
	}
	return true
}

// ClientConfig returns a vault.ClientConfig for this Env's mount and prefix with token.
func (e *Env) ClientConfig(token string) vault.ClientConfig {
	return vault.ClientConfig{Address: e.Addr, Token: token, Mount: e.Mount, Prefix: e.Prefix}
}

// APIClient returns a raw Vault API client for the Env holding token.
func (e *Env) APIClient(t testing.TB, token string) *api.Client {
	t.Helper()
	return e.newAPIClient(t, token)
}

func (e *Env) newAPIClient(t testing.TB, token string) *api.Client {
	t.Helper()
	cfg := api.DefaultConfig()
	if cfg.Error != nil {
		t.Fatal(cfg.Error)
	}
	cfg.Address = e.Addr
	cfg.MaxRetries = 0
	c, err := api.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.SetToken(token)
	return c
}

func ttlString(d time.Duration) string {
	if d <= 0 {
		return ""
	}
	return d.String()
}
