package main

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/edgehook/edgehook/vault"
	"github.com/edgehook/edgehook/vault/vaulttest"
)

// nomadJWKS serves a JSON Web Key Set on 127.0.0.1 as a Nomad server does.
func nomadJWKS(t *testing.T) string {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	b64 := base64.RawURLEncoding.EncodeToString
	body := fmt.Sprintf(`{"keys":[{"kty":"RSA","use":"sig","alg":"RS256","kid":"k","n":%q,"e":%q}]}`,
		b64(key.N.Bytes()), b64(big.NewInt(int64(key.E)).Bytes()))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, body)
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/.well-known/jwks.json"
}

// TestSetupVaultCommand runs `edgehook setup vault` twice against a vaulttest server
// (always in-process: the command writes Vault-wide names such as edgehook-worker): the
// first run creates everything and prints the secret ids once, the second changes
// nothing; a worker then logs in with the printed credentials.
func TestSetupVaultCommand(t *testing.T) {
	srv := vaulttest.Start(t)
	env := map[string]string{
		"VAULT_ADDR": srv.Addr(), "VAULT_TOKEN": srv.RootToken(),
		"EDGEHOOK_VAULT_MOUNT": "edgehook", "EDGEHOOK_NOMAD_JWKS_URL": nomadJWKS(t),
	}
	out, stderr, err := runArgs(t, env, "setup", "vault", "--secret-ids", "--token-ttl", "30m")
	if err != nil {
		t.Fatalf("setup vault: %v\n%s%s", err, out, stderr)
	}
	for _, want := range []string{
		"created    kv v2 mount        edgehook/",
		"created    policy             edgehook-worker",
		"created    auth method        approle/",
		"created    approle role       auth/approle/role/edgehook-worker  (policy edgehook-worker, token_ttl 30m0s, token_max_ttl 24h0m0s)",
		"created    approle secret id  auth/approle/role/edgehook-receiver/secret-id",
		"created    auth method        jwt-nomad/",
		"created    jwt config         auth/jwt-nomad/config",
		"created    jwt role           auth/jwt-nomad/role/edgehook-admin  (Nomad job edgehook-admin in namespace default",
		"16 created, 0 updated, 0 unchanged",
		"shown only this once",
		"EDGEHOOK_VAULT_MOUNT=edgehook",
		`jwt_auth_backend_path = "jwt-nomad"`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out+stderr, srv.RootToken()) {
		t.Fatal("the Vault token was printed")
	}
	roleIDs := regexp.MustCompile(`worker\s+edgehook-worker\s+VAULT_ROLE_ID=(\S+)`).FindStringSubmatch(out)
	secretIDs := regexp.MustCompile(`worker\s+edgehook-worker\s+VAULT_SECRET_ID=(\S+)`).FindStringSubmatch(out)
	if roleIDs == nil || secretIDs == nil {
		t.Fatalf("worker credentials not printed:\n%s", out)
	}

	again, _, err := runArgs(t, env, "setup", "vault", "--token-ttl", "30m")
	if err != nil {
		t.Fatalf("second run: %v", err)
	}
	t.Logf("second run:\n%s", again)
	if !strings.Contains(again, "0 created, 0 updated, 13 unchanged") || strings.Contains(again, "VAULT_SECRET_ID=") ||
		!strings.Contains(again, "VAULT_ROLE_ID="+roleIDs[1]) {
		t.Fatalf("second run output:\n%s", again)
	}

	worker, err := vault.NewClient(vault.ClientConfig{Address: srv.Addr(), RoleID: roleIDs[1], SecretID: secretIDs[1], Mount: "edgehook"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := worker.WebhookConfig(context.Background(), "ten_missing"); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Fatalf("worker read with the printed credentials: %v (want not found, i.e. logged in and allowed)", err)
	}
}

func TestSetupVaultUsageMistakes(t *testing.T) {
	srv := vaulttest.Start(t)
	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"no address", map[string]string{"VAULT_TOKEN": "x"}, nil, "VAULT_ADDR"},
		{"no token", map[string]string{"VAULT_ADDR": srv.Addr()}, nil, "VAULT_TOKEN"},
		{"bad ttl env", map[string]string{"VAULT_ADDR": srv.Addr(), "VAULT_TOKEN": "x", "EDGEHOOK_VAULT_TOKEN_TTL": "soon"}, nil, "EDGEHOOK_VAULT_TOKEN_TTL"},
		{"ttl above max", map[string]string{"VAULT_ADDR": srv.Addr(), "VAULT_TOKEN": "x"}, []string{"--token-ttl", "48h"}, "EDGEHOOK_VAULT_TOKEN_MAX_TTL"},
		{"bad jwks url", map[string]string{"VAULT_ADDR": srv.Addr(), "VAULT_TOKEN": "x"}, []string{"--nomad-jwks-url", "nomad:4646"}, "EDGEHOOK_NOMAD_JWKS_URL"},
		{"stray argument", map[string]string{"VAULT_ADDR": srv.Addr(), "VAULT_TOKEN": "x"}, []string{"now"}, "no arguments"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, stderr, err := runArgs(t, tc.env, append([]string{"setup", "vault"}, tc.args...)...)
			if err == nil || exitCode(err) != 2 || !strings.Contains(err.Error()+stderr, tc.want) {
				t.Fatalf("err = %v (exit %d), stderr %q; want a usage error naming %s", err, exitCode(err), stderr, tc.want)
			}
		})
	}

	// A token Vault refuses is an error (exit 1) that says so, not a usage mistake.
	out, _, err := runArgs(t, map[string]string{"VAULT_ADDR": srv.Addr(), "VAULT_TOKEN": "hvs.not-a-token"}, "setup", "vault")
	if err == nil || exitCode(err) != 1 || !strings.Contains(err.Error(), "permission denied") || strings.Contains(out+err.Error(), "hvs.not-a-token") {
		t.Fatalf("bad token: err = %v, output %q", err, out)
	}
}
