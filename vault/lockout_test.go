package vault_test

// AppRole lockout tests; like auth_test.go they run against vaulttest or, with
// VAULT_ADDR and VAULT_TOKEN set, against a real Vault or OpenBao. Each tunes the user
// lockout of its own AppRole mount (sys/mounts/auth/<mount>/tune) to short durations and
// gives the client the same settings; they run in parallel, as they mostly wait.

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/edgehook/edgehook/vault"
)

// loginStatus tries an AppRole login with raw credentials and returns the HTTP status
// (200 on success) and Vault's error text.
func loginStatus(t *testing.T, c *api.Client, mount, roleID, secretID string) (int, string) {
	t.Helper()
	_, err := c.Logical().WriteWithContext(context.Background(), "auth/"+mount+"/login", map[string]any{"role_id": roleID, "secret_id": secretID})
	var re *api.ResponseError
	if errors.As(err, &re) {
		return re.StatusCode, strings.Join(re.Errors, "; ")
	}
	if err != nil {
		t.Fatalf("login: %v", err)
	}
	return 200, ""
}

// failedLoginTimes returns when each failed login logged by the client was answered.
func failedLoginTimes(t *testing.T, logs string) []time.Time {
	t.Helper()
	var out []time.Time
	for line := range strings.SplitSeq(strings.TrimSpace(logs), "\n") {
		var rec struct {
			Time time.Time `json:"time"`
			Msg  string    `json:"msg"`
		}
		if line == "" {
			continue
		}
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line is not JSON: %s", line)
		}
		if rec.Msg == "vault authentication failed; retrying" {
			out = append(out, rec.Time)
		}
	}
	return out
}

// vaultCount replays Vault's failed-login counter over failure times: a failure more
// than counterReset after the previous one starts the count again. It returns the
// highest count reached.
func vaultCount(times []time.Time, counterReset time.Duration) int {
	most, n := 0, 0
	for i, at := range times {
		if i > 0 && at.Sub(times[i-1]) > counterReset {
			n = 0
		}
		n++
		most = max(most, n)
	}
	return most
}

// TestVaultAppRoleLockout pins down the lockout the client is built around, as Vault and
// OpenBao do it (and vaulttest must): only refused credentials count, per role id; a
// success clears the count; the threshold locks the role id out, and then a correct
// secret id is refused with 403 too; the lockout ends by itself; and a pause longer than
// the counter reset restarts the count. Two role ids on one mount: one is locked out
// while the other shows the counter reset.
func TestVaultAppRoleLockout(t *testing.T) {
	t.Parallel()
	env, _, _, cfg, mount := appRoleSetup(t, nil)
	const lockout, reset = 3 * time.Second, 2 * time.Second
	env.TuneLockout(t, mount, 3, lockout, reset)
	otherRoleID, otherSecretID := env.AppRole(t, mount, vault.RoleReceiver, nil)
	c := env.APIClient(t, "")
	const bad = "not-a-secret-id"
	expect := func(step, roleID, secretID string, wantStatus int, wantText string) {
		t.Helper()
		status, text := loginStatus(t, c, mount, roleID, secretID)
		if status != wantStatus || !strings.Contains(text, wantText) {
			t.Fatalf("%s: login answered %d %q, want %d %q", step, status, text, wantStatus, wantText)
		}
	}
	refused, denied := "invalid role or secret ID", "permission denied"

	expect("bad 1", cfg.RoleID, bad, 400, refused)
	expect("bad 2", cfg.RoleID, bad, 400, refused)
	expect("good after 2 failures", cfg.RoleID, cfg.SecretID, 200, "")
	expect("bad 1 after a success", cfg.RoleID, bad, 400, refused)
	expect("bad 2 after a success", cfg.RoleID, bad, 400, refused)
	expect("bad 3: the threshold", cfg.RoleID, bad, 400, refused)
	lockedAt := time.Now()
	expect("good while locked out", cfg.RoleID, cfg.SecretID, 403, denied)
	expect("bad while locked out", cfg.RoleID, bad, 403, denied)

	// The other role id is not locked out; two of its failures, a pause past the
	// counter reset, two more: its count restarted, so it stays below the threshold.
	expect("other role id, bad 1", otherRoleID, bad, 400, refused)
	expect("other role id, bad 2", otherRoleID, bad, 400, refused)
	time.Sleep(time.Until(lockedAt.Add(lockout + 200*time.Millisecond)))
	expect("other role id, bad 1 after the counter reset", otherRoleID, bad, 400, refused)
	expect("other role id, bad 2 after the counter reset", otherRoleID, bad, 400, refused)
	expect("other role id, good", otherRoleID, otherSecretID, 200, "")

	// The lockout ended by itself, at most 3s after the last counted failure (Vault
	// counts whole seconds), the refused logins meanwhile not extending it.
	expect("good after the lockout", cfg.RoleID, cfg.SecretID, 200, "")
}

// TestClientBadSecretIDNeverLocksOut: a worker whose secret id is wrong keeps retrying
// for longer than the threshold of failures would last, yet its role id is never locked
// out: once the right secret id is rendered, it logs in at once. The server's lockout
// lasts an hour, so a lockout would fail the test.
func TestClientBadSecretIDNeverLocksOut(t *testing.T) {
	t.Parallel()
	env, id, want, cfg, mount := appRoleSetup(t, nil)
	const reset = time.Second
	env.TuneLockout(t, mount, vault.DefaultLockoutThreshold, time.Hour, reset)
	file := filepath.Join(t.TempDir(), "secret-id")
	if err := os.WriteFile(file, []byte("not-a-secret-id\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	good := cfg.SecretID
	cfg.SecretID, cfg.SecretIDFile = "", file
	cfg.LockoutDuration, cfg.LockoutCounterReset = time.Hour, reset
	logs := &safeBuffer{}
	cfg.Log = slog.New(slog.NewJSONHandler(logs, nil))
	c := newClient(t, cfg)
	runClient(t, c)

	// More failures than the threshold, which would have locked the role id out had
	// they come in one run.
	failures := vault.DefaultLockoutThreshold + 1
	eventually(t, 15*time.Second, "more failed logins than the lockout threshold", func() bool {
		return len(failedLoginTimes(t, logs.String())) >= failures
	})
	if c.Ready() {
		t.Fatal("ready with a wrong secret id")
	}
	times := failedLoginTimes(t, logs.String())
	if n := vaultCount(times, reset); n > vault.DefaultLockoutThreshold-2 {
		t.Fatalf("Vault counted %d failed logins in a row (threshold %d): %v", n, vault.DefaultLockoutThreshold, times)
	}

	if err := os.WriteFile(file, []byte(good+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "login with the right secret id", c.Ready)
	got, err := c.WebhookConfig(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	sameConfig(t, got, want)
	if strings.Contains(logs.String(), "locked out") {
		t.Fatalf("a lockout was logged: %s", logs.String())
	}
}

// TestClientReportsLockoutAndRecovers: the role id is locked out (by someone else's
// failed logins) when the worker starts with a correct secret id. The client says so,
// once in the log and as its readiness reason, waits the lockout out instead of
// feeding it, and then logs in by itself.
func TestClientReportsLockoutAndRecovers(t *testing.T) {
	t.Parallel()
	env, id, want, cfg, mount := appRoleSetup(t, nil)
	const threshold, lockout = 3, 2 * time.Second
	env.TuneLockout(t, mount, threshold, lockout, lockout)
	raw := env.APIClient(t, "")
	for range threshold {
		if status, text := loginStatus(t, raw, mount, cfg.RoleID, "not-a-secret-id"); status != 400 {
			t.Fatalf("bad login: %d %q", status, text)
		}
	}
	cfg.LockoutThreshold, cfg.LockoutDuration, cfg.LockoutCounterReset = threshold, lockout, lockout
	logs := &safeBuffer{}
	cfg.Log = slog.New(slog.NewJSONHandler(logs, nil))
	c := newClient(t, cfg)

	_, err := c.WebhookConfig(context.Background(), id)
	if !errors.Is(err, vault.ErrLockedOut) || !errors.Is(err, vault.ErrNotAuthenticated) {
		t.Fatalf("read while locked out: err = %v, want ErrLockedOut and ErrNotAuthenticated", err)
	}
	reason := c.NotReadyReason()
	if c.Ready() || !strings.Contains(reason, "AppRole role id locked out by Vault after repeated failed logins; next attempt at ") {
		t.Fatalf("while locked out: ready %v, reason %q", c.Ready(), reason)
	}
	for _, s := range []string{reason, err.Error(), logs.String()} {
		if strings.Contains(s, cfg.SecretID) || strings.Contains(s, cfg.RoleID) {
			t.Fatalf("credentials shown: %s", s)
		}
	}

	runClient(t, c)
	eventually(t, 15*time.Second, "login once the lockout is over", c.Ready)
	if r := c.NotReadyReason(); r != "" {
		t.Fatalf("ready, yet the reason is %q", r)
	}
	got, err := c.WebhookConfig(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	sameConfig(t, got, want)
	out := logs.String()
	if n := strings.Count(out, "AppRole role id locked out by Vault after repeated failed logins; next attempt at "); n != 1 {
		t.Fatalf("lockout logged %d times, want once: %s", n, out)
	}
	if strings.Contains(out, "still locked out") || len(failedLoginTimes(t, out)) != 0 {
		t.Fatalf("logins tried while locked out: %s", out)
	}
}

// TestClientRunSpacesLoginAfterFailedRequestLogin: a read finds the token revoked and its
// login fails; Run, woken by the revocation, must not log in again before the schedule
// allows. With a lockout threshold of 2, a second login right after the first would
// lock the role id out for an hour, and the corrected secret id would never get in.
func TestClientRunSpacesLoginAfterFailedRequestLogin(t *testing.T) {
	t.Parallel()
	env, id, want, cfg, mount := appRoleSetup(t, nil)
	const reset = time.Second
	env.TuneLockout(t, mount, 2, time.Hour, reset)
	file := filepath.Join(t.TempDir(), "secret-id")
	if err := os.WriteFile(file, []byte(cfg.SecretID), 0o600); err != nil {
		t.Fatal(err)
	}
	oldSecretID := cfg.SecretID
	cfg.SecretID, cfg.SecretIDFile = "", file
	cfg.LockoutThreshold, cfg.LockoutDuration, cfg.LockoutCounterReset = 2, time.Hour, reset
	logs := &safeBuffer{}
	cfg.Log = slog.New(slog.NewJSONHandler(logs, nil))
	c := newClient(t, cfg)
	runClient(t, c)
	eventually(t, 10*time.Second, "first login", c.Ready)
	// Past Run's one-second pause after starting to renew: from now on it reacts to the
	// revocation at once.
	time.Sleep(1100 * time.Millisecond)

	env.DestroySecretID(t, mount, vault.RoleWorker, oldSecretID)
	env.RevokeAccessor(t, c.TokenAccessor())
	if _, err := c.WebhookConfig(context.Background(), id); err == nil {
		t.Fatal("read succeeded with a revoked token and a destroyed secret id")
	}
	// An early login from Run would have used the destroyed secret id by now.
	time.Sleep(500 * time.Millisecond)
	if err := os.WriteFile(file, []byte(env.SecretID(t, mount, vault.RoleWorker)), 0o600); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "login with the new secret id", c.Ready)
	if n := len(failedLoginTimes(t, logs.String())); n != 1 {
		t.Fatalf("%d failed logins, want 1: %s", n, logs.String())
	}
	got, err := c.WebhookConfig(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	sameConfig(t, got, want)
}
