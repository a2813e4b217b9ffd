package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/edgehook/edgehook/vault"
)

// TestWorkerReadyzSaysVaultLockedItsRoleIDOut: a worker starting while Vault holds its
// AppRole role id locked out (after someone's failed logins) is not ready, and its
// /readyz and its log say why and when it tries again, without showing a credential.
func TestWorkerReadyzSaysVaultLockedItsRoleIDOut(t *testing.T) {
	f := newVaultFixture(t, 100)
	mount := f.vault.EnableAppRole(t)
	roleID, secretID := f.vault.AppRole(t, mount, vault.RoleWorker, nil)
	f.vault.TuneLockout(t, mount, 2, time.Hour, 0)
	raw := f.vault.APIClient(t, "")
	for range 2 {
		_, err := raw.Logical().WriteWithContext(context.Background(), "auth/"+mount+"/login", map[string]any{"role_id": roleID, "secret_id": "not-a-secret-id"})
		var re *api.ResponseError
		if !errors.As(err, &re) || re.StatusCode != 400 {
			t.Fatalf("bad login: %v", err)
		}
	}
	metrics := freeAddr(t)
	stderr := startCommand(t, f.workerEnv(t, f.vault.Addr, 100, map[string]string{
		"VAULT_ROLE_ID":                roleID,
		"VAULT_SECRET_ID":              secretID,
		"EDGEHOOK_VAULT_APPROLE_MOUNT": mount,
		"EDGEHOOK_METRICS_ADDR":        metrics,
	}), "worker")

	const said = "AppRole role id locked out by Vault after repeated failed logins; next attempt at "
	var body struct {
		Error struct{ Code, Message string }
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get("http://" + metrics + "/readyz")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				t.Fatal("worker ready while its role id is locked out")
			}
			if err := json.Unmarshal(b, &body); err != nil {
				t.Fatalf("/readyz body %s: %v", b, err)
			}
			if strings.Contains(body.Error.Message, said) {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz does not tell of the lockout: %+v (%v)", body, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if body.Error.Code != "not_ready" {
		t.Fatalf("/readyz error code %q", body.Error.Code)
	}
	out := stderr.String()
	if n := strings.Count(out, said); n != 1 {
		t.Fatalf("lockout logged %d times, want once:\n%s", n, out)
	}
	for _, s := range []string{body.Error.Message, out} {
		if strings.Contains(s, secretID) || strings.Contains(s, roleID) {
			t.Fatalf("a credential is shown: %s", s)
		}
	}
}
