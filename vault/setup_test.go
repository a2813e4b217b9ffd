package vault_test

// Tests of vault.Setup. Like the other Vault tests they run against vaulttest or, with
// VAULT_ADDR and VAULT_TOKEN set, against a real Vault or OpenBao. Every name Setup
// writes is unique to the test (policy and role names carry a suffix, mounts and auth
// paths are new) and removed when it ends. The JWKS of the JWT tests is served on
// 127.0.0.1, so a real Vault must run on this machine to fetch it.

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/edgehook/edgehook/vault"
	"github.com/edgehook/edgehook/vault/vaulttest"
)

// setupOptions returns options whose every name is unique to the test and registers
// the removal of everything Setup may create with them. With freshMount the KV mount
// does not exist yet; otherwise it is the Env's.
func setupOptions(t *testing.T, env *vaulttest.Env, freshMount bool) vault.SetupOptions {
	t.Helper()
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	suffix := hex.EncodeToString(b)
	o := vault.SetupOptions{
		Mount:       env.Mount,
		Prefix:      env.Prefix,
		AppRolePath: "approle-setup-" + suffix,
		JWTPath:     "jwt-setup-" + suffix,
		NameSuffix:  "-" + suffix,
	}
	if freshMount {
		o.Mount = env.Mount + "-setup"
	}
	root := env.Root()
	t.Cleanup(func() {
		ctx := context.Background()
		auths, err := root.Sys().ListAuthWithContext(ctx)
		if err != nil {
			t.Errorf("cleanup: list auth methods: %v", err)
			return
		}
		for _, p := range []string{o.AppRolePath, o.JWTPath} {
			if auths[p+"/"] != nil {
				if err := root.Sys().DisableAuthWithContext(ctx, p); err != nil {
					t.Errorf("cleanup: disable auth/%s: %v", p, err)
				}
			}
		}
		for _, role := range vault.Roles() {
			if err := root.Sys().DeletePolicyWithContext(ctx, vault.PolicyName(role)+o.NameSuffix); err != nil {
				t.Errorf("cleanup: delete policy: %v", err)
			}
		}
		if freshMount {
			mounts, err := root.Sys().ListMountsWithContext(ctx)
			if err == nil && mounts[o.Mount+"/"] != nil {
				err = root.Sys().UnmountWithContext(ctx, o.Mount)
			}
			if err != nil {
				t.Errorf("cleanup: unmount %s: %v", o.Mount, err)
			}
		}
	})
	return o
}

// jwksURL serves a JSON Web Key Set with one RSA key on 127.0.0.1, as Nomad serves
// /.well-known/jwks.json.
func jwksURL(t *testing.T) string {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	b64 := base64.RawURLEncoding.EncodeToString
	body := fmt.Sprintf(`{"keys":[{"kty":"RSA","use":"sig","alg":"RS256","kid":"nomad-test","n":%q,"e":%q}]}`,
		b64(key.N.Bytes()), b64(big.NewInt(int64(key.E)).Bytes()))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/.well-known/jwks.json" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, body)
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/.well-known/jwks.json"
}

func runSetup(t *testing.T, env *vaulttest.Env, o vault.SetupOptions) vault.SetupReport {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rep, err := vault.Setup(ctx, env.Root(), o)
	if err != nil {
		t.Fatalf("Setup: %v", err)
	}
	return rep
}

// items renders a report's items as "action kind name" lines (without details).
func items(rep vault.SetupReport) []string {
	var out []string
	for _, it := range rep.Items {
		out = append(out, fmt.Sprintf("%s %s %s", it.Action, it.Kind, it.Name))
	}
	return out
}

func sameLines(t *testing.T, what string, got, want []string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("%s:\n got:\n  %s\nwant:\n  %s", what, strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

// expectedItems lists what a run over o reports, every item with action a.
func expectedItems(o vault.SetupOptions, a vault.SetupAction, secretIDs bool) []string {
	out := []string{fmt.Sprintf("%s kv v2 mount %s/", a, o.Mount)}
	for _, r := range vault.Roles() {
		out = append(out, fmt.Sprintf("%s policy %s", a, vault.PolicyName(r)+o.NameSuffix))
	}
	out = append(out, fmt.Sprintf("%s auth method %s/", a, o.AppRolePath))
	for _, r := range vault.Roles() {
		path := "auth/" + o.AppRolePath + "/role/" + vault.PolicyName(r) + o.NameSuffix
		out = append(out, fmt.Sprintf("%s approle role %s", a, path))
		if secretIDs {
			out = append(out, fmt.Sprintf("%s approle secret id %s/secret-id", vault.SetupCreated, path))
		}
	}
	if o.NomadJWKSURL != "" {
		out = append(out, fmt.Sprintf("%s auth method %s/", a, o.JWTPath), fmt.Sprintf("%s jwt config auth/%s/config", a, o.JWTPath))
		for _, r := range vault.Roles() {
			out = append(out, fmt.Sprintf("%s jwt role auth/%s/role/%s", a, o.JWTPath, vault.PolicyName(r)+o.NameSuffix))
		}
	}
	return out
}

// TestSetupCreatesEverythingThenChangesNothing: on a Vault without edgehook's mount,
// policies and auth methods, Setup creates all of them; a second run reports every
// item unchanged and returns the same role ids.
func TestSetupCreatesEverythingThenChangesNothing(t *testing.T) {
	ctx := context.Background()
	env := vaulttest.Setup(t)
	o := setupOptions(t, env, true)
	o.NomadJWKSURL = jwksURL(t)

	first := runSetup(t, env, o)
	sameLines(t, "first run", items(first), expectedItems(o, vault.SetupCreated, false))
	if !first.Changed() || first.Count(vault.SetupCreated) != 13 {
		t.Fatalf("first run: changed %v, %d created", first.Changed(), first.Count(vault.SetupCreated))
	}

	root := env.Root()
	mounts, err := root.Sys().ListMountsWithContext(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if m := mounts[o.Mount+"/"]; m == nil || m.Type != "kv" || m.Options["version"] != "2" {
		t.Fatalf("mount %s/ is not KV v2: %+v", o.Mount, m)
	}
	for _, role := range vault.Roles() {
		want, err := vault.Policy(role, o.Mount, o.Prefix)
		if err != nil {
			t.Fatal(err)
		}
		name := vault.PolicyName(role) + o.NameSuffix
		got, err := root.Sys().GetPolicyWithContext(ctx, name)
		if err != nil || strings.TrimSpace(got) != strings.TrimSpace(want) {
			t.Fatalf("policy %s in Vault:\n%s\nwant:\n%s (%v)", name, got, want, err)
		}
		sec, err := root.Logical().ReadWithContext(ctx, "auth/"+o.AppRolePath+"/role/"+name)
		if err != nil || sec == nil {
			t.Fatalf("AppRole role %s: %v %v", name, sec, err)
		}
		if fmt.Sprint(sec.Data["token_policies"]) != "["+name+"]" ||
			fmt.Sprint(sec.Data["token_ttl"]) != "3600" || fmt.Sprint(sec.Data["token_max_ttl"]) != "86400" {
			t.Fatalf("AppRole role %s: %v", name, sec.Data)
		}
	}
	if len(first.AppRoles) != 3 {
		t.Fatalf("%d AppRole credentials, want 3", len(first.AppRoles))
	}
	for i, c := range first.AppRoles {
		if c.Role != vault.Roles()[i] || c.Name != vault.PolicyName(c.Role)+o.NameSuffix || c.RoleID == "" || !c.SecretID.IsZero() {
			t.Fatalf("AppRole credentials %d: %+v", i, c)
		}
	}

	second := runSetup(t, env, o)
	sameLines(t, "second run", items(second), expectedItems(o, vault.SetupUnchanged, false))
	if second.Changed() {
		t.Fatal("second run reports a change")
	}
	for i := range first.AppRoles {
		if first.AppRoles[i].RoleID != second.AppRoles[i].RoleID {
			t.Fatalf("role id of %s changed between runs", first.AppRoles[i].Name)
		}
	}
}

// TestSetupAppRoleLogins: each component logs in with its role id and a secret id
// issued by Setup; the worker and receiver can read webhook config but get 403 on
// writing it, the admin can write it.
func TestSetupAppRoleLogins(t *testing.T) {
	ctx := context.Background()
	env := vaulttest.Setup(t)
	o := setupOptions(t, env, false)
	o.SecretIDs = true
	rep := runSetup(t, env, o)
	want := expectedItems(o, vault.SetupCreated, true)
	want[0] = fmt.Sprintf("%s kv v2 mount %s/", vault.SetupUnchanged, o.Mount) // the Env's mount exists
	sameLines(t, "run with secret ids", items(rep), want)

	clients := map[string]*vault.Client{}
	for _, c := range rep.AppRoles {
		if c.RoleID == "" || c.SecretID.IsZero() {
			t.Fatalf("no credentials for %s", c.Name)
		}
		clients[c.Role] = newClient(t, vault.ClientConfig{
			Address: env.Addr, RoleID: c.RoleID, SecretID: c.SecretID.Reveal(),
			AppRoleMount: o.AppRolePath, Mount: o.Mount, Prefix: o.Prefix,
		})
	}
	id := tenant(t)
	cfg := config(t, id)
	if err := clients[vault.RoleAdmin].PutWebhookConfig(ctx, cfg); err != nil {
		t.Fatalf("admin write: %v", err)
	}
	for _, role := range []string{vault.RoleWorker, vault.RoleReceiver, vault.RoleAdmin} {
		got, err := clients[role].WebhookConfig(ctx, id)
		if err != nil {
			t.Fatalf("%s read: %v", role, err)
		}
		sameConfig(t, got, cfg)
	}
	for _, role := range []string{vault.RoleWorker, vault.RoleReceiver} {
		if err := clients[role].PutWebhookConfig(ctx, cfg); !errors.Is(err, vault.ErrPermissionDenied) {
			t.Fatalf("%s write: err = %v, want ErrPermissionDenied", role, err)
		}
		if err := clients[role].DeleteWebhookConfig(ctx, id); !errors.Is(err, vault.ErrPermissionDenied) {
			t.Fatalf("%s delete: err = %v, want ErrPermissionDenied", role, err)
		}
	}

	// The secret ids never print, log or marshal.
	var logs strings.Builder
	slog.New(slog.NewTextHandler(&logs, nil)).Info("report", "report", rep, "first", rep.AppRoles[0].SecretID)
	js, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	for _, out := range []string{fmt.Sprintf("%v %+v %#v", rep, rep, rep), logs.String(), string(js)} {
		for _, c := range rep.AppRoles {
			if strings.Contains(out, c.SecretID.Reveal()) {
				t.Fatalf("secret id of %s in %q", c.Name, out)
			}
		}
	}

	// Another run with --secret-ids issues new ones and changes nothing else; the
	// earlier secret ids stay valid.
	again := runSetup(t, env, o)
	want = expectedItems(o, vault.SetupUnchanged, true)
	sameLines(t, "second run with secret ids", items(again), want)
	for i, c := range again.AppRoles {
		if c.SecretID.Reveal() == rep.AppRoles[i].SecretID.Reveal() || c.RoleID != rep.AppRoles[i].RoleID {
			t.Fatalf("second run: %s got the same secret id or another role id", c.Name)
		}
	}
	fresh := newClient(t, vault.ClientConfig{
		Address: env.Addr, RoleID: rep.AppRoles[1].RoleID, SecretID: rep.AppRoles[1].SecretID.Reveal(),
		AppRoleMount: o.AppRolePath, Mount: o.Mount, Prefix: o.Prefix,
	})
	if _, err := fresh.WebhookConfig(ctx, id); err != nil {
		t.Fatalf("login with the first run's secret id after the second run: %v", err)
	}
}

// TestSetupJWTRolesForNomad: the JWT auth method points at Nomad's JWKS and each role
// accepts only the workload identity of its Nomad job, for Vault's audience, and grants
// its component's policy with a periodic service token.
func TestSetupJWTRolesForNomad(t *testing.T) {
	ctx := context.Background()
	env := vaulttest.Setup(t)
	o := setupOptions(t, env, false)
	o.NomadJWKSURL = jwksURL(t)
	o.JWTTokenPeriod = 45 * time.Minute
	rep := runSetup(t, env, o)
	if rep.JWTPath != o.JWTPath || len(rep.JWTRoles) != 3 {
		t.Fatalf("report: JWT path %q, roles %v", rep.JWTPath, rep.JWTRoles)
	}
	root := env.Root()
	cfg, err := root.Logical().ReadWithContext(ctx, "auth/"+o.JWTPath+"/config")
	if err != nil || cfg == nil || cfg.Data["jwks_url"] != o.NomadJWKSURL {
		t.Fatalf("jwt config: %v %v", cfg, err)
	}
	for _, role := range vault.Roles() {
		name := vault.PolicyName(role) + o.NameSuffix
		sec, err := root.Logical().ReadWithContext(ctx, "auth/"+o.JWTPath+"/role/"+name)
		if err != nil || sec == nil {
			t.Fatalf("jwt role %s: %v %v", name, sec, err)
		}
		d := sec.Data
		claims, _ := d["bound_claims"].(map[string]any)
		if d["role_type"] != "jwt" || fmt.Sprint(d["bound_audiences"]) != "[vault.io]" ||
			d["user_claim"] != "/nomad_job_id" || d["user_claim_json_pointer"] != true ||
			len(claims) != 2 || claims["nomad_job_id"] != "edgehook-"+role || claims["nomad_namespace"] != "default" ||
			fmt.Sprint(d["token_policies"]) != "["+name+"]" || d["token_type"] != "service" ||
			fmt.Sprint(d["token_period"]) != "2700" {
			t.Fatalf("jwt role %s read back: %v", name, d)
		}
	}
}

// TestSetupRepairsDrift: items changed by hand are rewritten and reported as updated
// with the fields that differed; the rest stays unchanged.
func TestSetupRepairsDrift(t *testing.T) {
	ctx := context.Background()
	env := vaulttest.Setup(t)
	o := setupOptions(t, env, false)
	o.NomadJWKSURL = jwksURL(t)
	runSetup(t, env, o)

	root := env.Root()
	worker := vault.PolicyName(vault.RoleWorker) + o.NameSuffix
	loose := fmt.Sprintf("path %q {\n  capabilities = [\"create\", \"update\", \"read\"]\n}\n", o.Mount+"/data/*")
	if err := root.Sys().PutPolicyWithContext(ctx, worker, loose); err != nil {
		t.Fatal(err)
	}
	appRole := "auth/" + o.AppRolePath + "/role/" + worker
	if _, err := root.Logical().WriteWithContext(ctx, appRole, map[string]any{"token_ttl": 300, "token_policies": []string{worker, "default"}}); err != nil {
		t.Fatal(err)
	}
	jwtRole := "auth/" + o.JWTPath + "/role/" + vault.PolicyName(vault.RoleReceiver) + o.NameSuffix
	if _, err := root.Logical().WriteWithContext(ctx, jwtRole, map[string]any{"role_type": "jwt", "bound_claims": map[string]any{"nomad_job_id": "anything"}}); err != nil {
		t.Fatal(err)
	}

	rep := runSetup(t, env, o)
	want := map[string]string{
		"policy " + worker:        "updated rules",
		"approle role " + appRole: "updated token_policies, token_ttl",
		"jwt role " + jwtRole:     "updated bound_claims",
	}
	for _, it := range rep.Items {
		key := it.Kind + " " + it.Name
		w, drifted := want[key]
		switch {
		case drifted && string(it.Action)+" "+it.Detail != w:
			t.Errorf("%s: %s %q, want %s", key, it.Action, it.Detail, w)
		case !drifted && it.Action != vault.SetupUnchanged:
			t.Errorf("%s: %s, want unchanged", key, it.Action)
		}
		delete(want, key)
	}
	if len(want) > 0 {
		t.Fatalf("not reported: %v", want)
	}
	text, err := root.Sys().GetPolicyWithContext(ctx, worker)
	if want, _ := vault.Policy(vault.RoleWorker, o.Mount, o.Prefix); err != nil || strings.TrimSpace(text) != strings.TrimSpace(want) {
		t.Fatalf("worker policy not restored: %q %v", text, err)
	}
	if again := runSetup(t, env, o); again.Changed() {
		t.Fatalf("run after the repair changed something: %v", items(again))
	}
}

// TestSetupRefusesKVv1Mount: a KV version 1 engine at the mount path is an error that
// names it, and Setup leaves it, and everything else, alone.
func TestSetupRefusesKVv1Mount(t *testing.T) {
	ctx := context.Background()
	env := vaulttest.Setup(t)
	o := setupOptions(t, env, false)
	o.Mount = env.Mount + "-v1"
	root := env.Root()
	if err := root.Sys().MountWithContext(ctx, o.Mount, &api.MountInput{Type: "kv", Options: map[string]string{"version": "1"}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := root.Sys().UnmountWithContext(context.Background(), o.Mount); err != nil {
			t.Errorf("cleanup: unmount %s: %v", o.Mount, err)
		}
	})
	rep, err := vault.Setup(ctx, root, o)
	if !errors.Is(err, vault.ErrWrongMountType) || !strings.Contains(err.Error(), o.Mount+"/") || !strings.Contains(err.Error(), "KV version 1") {
		t.Fatalf("err = %v, want ErrWrongMountType naming %s/ as KV version 1", err, o.Mount)
	}
	if len(rep.Items) != 0 {
		t.Fatalf("items reported despite the error: %v", items(rep))
	}
	mounts, err := root.Sys().ListMountsWithContext(ctx)
	if err != nil || mounts[o.Mount+"/"] == nil || mounts[o.Mount+"/"].Options["version"] != "1" {
		t.Fatalf("KV v1 mount was changed: %v %v", mounts[o.Mount+"/"], err)
	}
	if p, err := root.Sys().GetPolicyWithContext(ctx, vault.PolicyName(vault.RoleWorker)+o.NameSuffix); p != "" || err != nil {
		t.Fatalf("policy written although the mount was refused: %q %v", p, err)
	}
}

// TestSetupRefusesAuthPathOfAnotherType: an AppRole path already used by another auth
// method is an error naming it; what Setup did before is in the report.
func TestSetupRefusesAuthPathOfAnotherType(t *testing.T) {
	ctx := context.Background()
	env := vaulttest.Setup(t)
	o := setupOptions(t, env, false)
	if err := env.Root().Sys().EnableAuthWithOptionsWithContext(ctx, o.AppRolePath, &api.EnableAuthOptions{Type: "jwt"}); err != nil {
		t.Fatal(err)
	}
	rep, err := vault.Setup(ctx, env.Root(), o)
	if !errors.Is(err, vault.ErrWrongMountType) || !strings.Contains(err.Error(), "auth/"+o.AppRolePath+"/") {
		t.Fatalf("err = %v, want ErrWrongMountType naming auth/%s/", err, o.AppRolePath)
	}
	want := expectedItems(o, vault.SetupCreated, false)[:4]
	want[0] = fmt.Sprintf("%s kv v2 mount %s/", vault.SetupUnchanged, o.Mount)
	sameLines(t, "items before the error", items(rep), want)
}

// TestSetupRejectsUnreachableJWKS: Vault fetches the JWKS URL when the JWT config is
// written, so a wrong URL fails the setup with Vault's explanation.
func TestSetupRejectsUnreachableJWKS(t *testing.T) {
	t.Parallel() // it mostly waits
	env := vaulttest.Setup(t)
	o := setupOptions(t, env, false)
	o.NomadJWKSURL = strings.TrimSuffix(jwksURL(t), "/.well-known/jwks.json") + "/wrong/jwks.json"
	_, err := vault.Setup(context.Background(), env.Root(), o)
	if err == nil || !strings.Contains(err.Error(), "auth/"+o.JWTPath+"/config") || !strings.Contains(strings.ToLower(err.Error()), "jwks") {
		t.Fatalf("err = %v, want a failed write of the jwt config about the JWKS", err)
	}
}

func TestSetupOptionsValidate(t *testing.T) {
	if err := (vault.SetupOptions{}).Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	for _, tc := range []struct {
		o    vault.SetupOptions
		want string
	}{
		{vault.SetupOptions{Mount: "a//b"}, "EDGEHOOK_VAULT_MOUNT"},
		{vault.SetupOptions{Prefix: "x/../y"}, "EDGEHOOK_VAULT_PREFIX"},
		{vault.SetupOptions{AppRolePath: "app role"}, "EDGEHOOK_VAULT_APPROLE_MOUNT"},
		{vault.SetupOptions{JWTPath: "jwt?"}, "EDGEHOOK_VAULT_JWT_PATH"},
		{vault.SetupOptions{AppRolePath: "auth1", JWTPath: "auth1"}, "share the path"},
		{vault.SetupOptions{TokenTTL: -time.Second}, "EDGEHOOK_VAULT_TOKEN_TTL"},
		{vault.SetupOptions{TokenTTL: 2 * time.Hour, TokenMaxTTL: time.Hour}, "EDGEHOOK_VAULT_TOKEN_MAX_TTL"},
		{vault.SetupOptions{JWTTokenPeriod: time.Millisecond}, "EDGEHOOK_VAULT_JWT_TOKEN_PERIOD"},
		{vault.SetupOptions{NomadJWKSURL: "nomad:4646/jwks"}, "EDGEHOOK_NOMAD_JWKS_URL"},
		{vault.SetupOptions{NomadNamespace: "a b"}, "EDGEHOOK_NOMAD_NAMESPACE"},
		{vault.SetupOptions{NameSuffix: "-a/b"}, "name suffix"},
	} {
		err := tc.o.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: err = %v, want one naming %s", tc.o, err, tc.want)
		}
		if _, serr := vault.Setup(context.Background(), nil, tc.o); serr == nil || serr.Error() != fmt.Sprint(err) {
			t.Errorf("%+v: Setup err = %v, want the validation error", tc.o, serr)
		}
	}
}
