package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/edgehook/edgehook/natsconf"
)

// TestUpNATSNeedsTheOperatorsPassword: under `up`, a client without credentials (or with
// a wrong password) is refused; the operator's password is in a 0600 file in the data
// directory, kept across runs, and the operator can read what the components wrote.
func TestUpNATSNeedsTheOperatorsPassword(t *testing.T) {
	sys := startUp(t, nil)
	for name, opts := range map[string][]nats.Option{
		"no credentials":   nil,
		"wrong password":   {nats.UserInfo(natsconf.OperatorUser, "not-the-password")},
		"a component name": {nats.UserInfo(string(natsconf.Gateway), "")},
	} {
		nc, err := nats.Connect("nats://"+sys.natsURL, opts...)
		if err == nil {
			nc.Close()
			t.Errorf("%s: connected to up's NATS, want an authorization error", name)
		} else if !errors.Is(err, nats.ErrAuthorization) && !strings.Contains(strings.ToLower(err.Error()), "authorization") {
			t.Errorf("%s: %v, want an authorization error", name, err)
		}
	}
	path := filepath.Join(sys.dataDir, operatorPasswordFile)
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("%s: %v, mode %v, want 0600", path, err, fi.Mode().Perm())
	}
	nc, err := nats.Connect("nats://"+sys.natsURL, sys.operator(t))
	if err != nil {
		t.Fatalf("operator: %v", err)
	}
	defer nc.Close()
	if _, err := nc.Request("$JS.API.STREAM.INFO."+natsconf.StreamEvents, nil, 5e9); err != nil {
		t.Errorf("operator cannot read stream info: %v", err)
	}
	pw, err := operatorPassword(sys.dataDir)
	if err != nil || !strings.Contains(readFile(t, path), pw) {
		t.Errorf("a second run would not keep the operator's password: %v", err)
	}
}

// TestUpRefusesANonLoopbackNATSAddress: the embedded server holds the operator's rights,
// so `up` does not listen for NATS beyond this machine unless told to.
func TestUpRefusesANonLoopbackNATSAddress(t *testing.T) {
	var stdout, stderr bytes.Buffer
	env := map[string]string{"EDGEHOOK_DATA_DIR": t.TempDir(), "EDGEHOOK_NATS_ADDR": "0.0.0.0:0"}
	err := run(context.Background(), []string{"edgehook", "up"}, func(k string) string { return env[k] }, &stdout, &stderr)
	var ue usageError
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), "EDGEHOOK_NATS_ALLOW_REMOTE=true") || !strings.Contains(err.Error(), "0.0.0.0:0") {
		t.Fatalf("up on 0.0.0.0: %v, want a usage error naming the address and EDGEHOOK_NATS_ALLOW_REMOTE", err)
	}
}

// TestUpPrintsOnlyAnAdminTokenItGenerated: a token the user supplied never reaches
// stdout, stderr or the logs (the quick start reads it from the environment); a token
// `up` generated is printed once, and it is the one the admin API takes.
func TestUpPrintsOnlyAnAdminTokenItGenerated(t *testing.T) {
	t.Run("supplied", func(t *testing.T) {
		sys := startUp(t, map[string]string{"EDGEHOOK_LOG_LEVEL": "debug"})
		var c createdTenant
		if code := call(t, "POST", "http://"+sys.admin+"/v1/tenants", sys.adminToken, map[string]string{"targetUrl": "http://example.invalid/"}, &c); code != 201 {
			t.Fatalf("the supplied token does not open the admin API: %d", code)
		}
		sys.cancel() // stop up, so every log line it writes is in
		err := <-sys.done
		sys.done <- err // for the cleanup, which checks it
		for name, out := range map[string]string{"stdout": sys.stdout.String(), "stderr": sys.stderr.String()} {
			if strings.Contains(out, sys.adminToken) {
				t.Errorf("the supplied admin token appears on %s:\n%s", name, out)
			}
		}
		if !strings.Contains(sys.stdout.String(), `export EDGEHOOK_ADMIN_TOKEN="$EDGEHOOK_ADMIN_TOKEN"`) {
			t.Errorf("the quick start does not read the supplied token from the environment:\n%s", sys.stdout.String())
		}
	})
	t.Run("generated", func(t *testing.T) {
		sys := startUp(t, map[string]string{"EDGEHOOK_ADMIN_TOKEN": ""})
		_, rest, ok := strings.Cut(sys.stdout.String(), "Admin token (generated; set EDGEHOOK_ADMIN_TOKEN to choose your own):\n")
		token, _, _ := strings.Cut(strings.TrimSpace(rest), "\n")
		if !ok || len(token) < 32 {
			t.Fatalf("up did not print the token it generated:\n%s", sys.stdout.String())
		}
		if code := call(t, "POST", "http://"+sys.admin+"/v1/tenants", token, map[string]string{"targetUrl": "http://example.invalid/"}, nil); code != 201 {
			t.Errorf("the printed token does not open the admin API: %d", code)
		}
		if code := call(t, "POST", "http://"+sys.api+"/v1/tenants", token, map[string]string{"targetUrl": "http://example.invalid/"}, nil); code != 404 {
			t.Errorf("the public gateway serves the admin API: %d, want 404", code)
		}
	})
}

// TestUpRelaysTenantRequestsToTheAdminAPI: under `up`, the gateway relays a tenant's
// endpoint and key requests over NATS to the admin API, which checks the key's scope:
// a send key created at the admin API cannot move the tenant's webhooks, its manage
// key can, and a key revoked through the gateway is refused there at once.
func TestUpRelaysTenantRequestsToTheAdminAPI(t *testing.T) {
	sys := startUp(t, nil)
	var c createdTenant
	if code := call(t, "POST", "http://"+sys.admin+"/v1/tenants", sys.adminToken, map[string]string{"targetUrl": "http://example.invalid/"}, &c); code != 201 {
		t.Fatalf("create tenant: %d", code)
	}
	var send struct{ KeyID, APIKey string }
	body := map[string]any{"name": "app", "scopes": []string{"send"}}
	if code := call(t, "POST", "http://"+sys.admin+"/v1/tenants/"+c.TenantID+"/keys", sys.adminToken, body, &send); code != 201 || send.APIKey == "" {
		t.Fatalf("create a send key: %d", code)
	}
	gw := "http://" + sys.api
	if code := call(t, "PATCH", gw+"/v1/tenant", send.APIKey, map[string]string{"targetUrl": "http://evil.example/"}, nil); code != 403 {
		t.Errorf("PATCH /v1/tenant with a send key: %d, want 403", code)
	}
	var tn map[string]any
	if code := call(t, "PATCH", gw+"/v1/tenant", c.APIKey, map[string]string{"targetUrl": "http://example.invalid/v2"}, &tn); code != 200 || tn["targetUrl"] != "http://example.invalid/v2" {
		t.Errorf("PATCH /v1/tenant with the first key: %d %v", code, tn)
	}
	if code := call(t, "DELETE", gw+"/v1/tenant/keys/"+send.KeyID, c.APIKey, nil, nil); code != 204 {
		t.Fatalf("revoke through the gateway: %d", code)
	}
	deadline := time.Now().Add(time.Second)
	for call(t, "POST", gw+"/v1/events", send.APIKey, map[string]string{"type": "x"}, nil) != 401 {
		if time.Now().After(deadline) {
			t.Fatal("the revoked key still sends events after 1s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestTenantCommandManagesKeys: `edgehook tenant` creates and updates a tenant (flags
// may follow the id) and adds, lists, rotates and revokes its keys at the admin API
// (EDGEHOOK_ADMIN_URL); a key is printed only by the action that makes it.
func TestTenantCommandManagesKeys(t *testing.T) {
	sys := startUp(t, nil)
	env := map[string]string{"EDGEHOOK_ADMIN_URL": "http://" + sys.admin, "EDGEHOOK_ADMIN_TOKEN": sys.adminToken}
	tenantCmd := func(args ...string) map[string]any {
		t.Helper()
		out, stderr, err := runArgs(t, env, append([]string{"tenant"}, args...)...)
		if err != nil {
			t.Fatalf("tenant %v: %v\n%s", args, err, stderr)
		}
		var m map[string]any
		if strings.TrimSpace(out) != "" {
			if err := json.Unmarshal([]byte(out), &m); err != nil {
				t.Fatalf("tenant %v printed %q: %v", args, out, err)
			}
		}
		return m
	}
	c := tenantCmd("create", "--target-url", "http://example.invalid/")
	id, _ := c["tenantId"].(string)
	if u := tenantCmd("update", id, "--plan", "pro"); u["plan"] != "pro" {
		t.Errorf("update with a flag after the id printed %v", u)
	}
	k := tenantCmd("add-key", id, "--name", "app", "--scopes", "send,read")
	keyID, _ := k["keyId"].(string)
	apiKey, _ := k["apiKey"].(string)
	if !strings.HasPrefix(apiKey, "ehk_") || !strings.HasPrefix(keyID, "key_") {
		t.Fatalf("add-key printed %v", k)
	}
	out, _, err := runArgs(t, env, "tenant", "keys", id)
	if err != nil || !strings.Contains(out, keyID) || strings.Contains(out, apiKey) || strings.Contains(out, "apiKey") {
		t.Fatalf("keys: %v\n%s", err, out)
	}
	if r := tenantCmd("rotate-key", id, keyID); r["apiKey"] == apiKey || r["keyId"] != keyID {
		t.Errorf("rotate-key printed %v", r)
	}
	tenantCmd("revoke-key", id, keyID)
	if _, _, err := runArgs(t, env, "tenant", "revoke-key", id, keyID); err == nil || !strings.Contains(err.Error(), "API key not found") {
		t.Errorf("revoking twice: %v", err)
	}
	if _, _, err := runArgs(t, env, "tenant", "add-key", id, "--name", "x"); exitCode(err) != 2 || !strings.Contains(err.Error(), "--scopes") {
		t.Errorf("add-key without scopes: %v", err)
	}
}

// The generated passwords are pasted after `nats --password`, which takes a value that
// begins with '-' for a flag. One base64url token in 64 began with one; 2,000 draws
// would meet about 31 of them.
func TestGeneratedPasswordsNeverBeginWithADash(t *testing.T) {
	for range 2000 {
		tok, err := randomToken()
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(tok, "-") || len(tok) != 43 {
			t.Fatalf("generated %q: want 43 base64url characters, the first not '-'", tok)
		}
	}
}

// TestEdgehookRunsAtGOGC200UnlessTheEnvironmentSetsIt: the binary collects garbage at
// GOGC=200 by default (see gcPercent), as its /metrics says, and a GOGC in the
// environment still decides.
func TestEdgehookRunsAtGOGC200UnlessTheEnvironmentSetsIt(t *testing.T) {
	bin, err := edgehookBinary()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ gogc, want string }{{"", "200"}, {"50", "50"}} {
		api := freeAddr(t)
		env := map[string]string{
			"EDGEHOOK_DATA_DIR": t.TempDir(), "EDGEHOOK_HTTP_ADDR": api, "EDGEHOOK_ADMIN_ADDR": freeAddr(t),
			"EDGEHOOK_RECEIVER_ADDR": freeAddr(t), "EDGEHOOK_NATS_ADDR": freeAddr(t),
			"EDGEHOOK_ADMIN_TOKEN": "test-admin-token", "EDGEHOOK_LOG_LEVEL": "warn",
		}
		if tc.gogc != "" {
			env["GOGC"] = tc.gogc
		}
		p := startProc(t, "up (GOGC="+tc.gogc+")", bin, true, env, "up")
		var got string
		for i := 0; got == "" && i < 300; i++ {
			time.Sleep(100 * time.Millisecond)
			resp, err := http.Get("http://" + api + "/metrics")
			if err != nil {
				continue
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			for line := range strings.Lines(string(b)) {
				if v, ok := strings.CutPrefix(line, "go_gc_gogc_percent "); ok {
					got = strings.TrimSpace(v)
				}
			}
		}
		p.end(t, syscall.SIGTERM)
		if got != tc.want {
			t.Errorf("GOGC=%q in the environment: /metrics says go_gc_gogc_percent %q, want %s", tc.gogc, got, tc.want)
		}
	}
}

// TestUpSaysWhichOfItsAddressesIsTaken: when a listen address of `up` is taken, up
// fails naming it. Its components start one after another, and the one that cannot
// listen fails while the next is starting; up used to report that next one's
// cancelled start ("status bucket …: context canceled") instead.
func TestUpSaysWhichOfItsAddressesIsTaken(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	for _, key := range []string{"EDGEHOOK_HTTP_ADDR", "EDGEHOOK_ADMIN_ADDR", "EDGEHOOK_RECEIVER_ADDR"} {
		vars := map[string]string{
			"EDGEHOOK_DATA_DIR": t.TempDir(), "EDGEHOOK_HTTP_ADDR": freeAddr(t), "EDGEHOOK_ADMIN_ADDR": freeAddr(t),
			"EDGEHOOK_RECEIVER_ADDR": freeAddr(t), "EDGEHOOK_NATS_ADDR": freeAddr(t),
			"EDGEHOOK_ADMIN_TOKEN": "test-admin-token", "EDGEHOOK_LOG_LEVEL": "error",
		}
		vars[key] = taken.Addr().String()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err := run(ctx, []string{"edgehook", "up"}, func(k string) string { return vars[k] }, &bytes.Buffer{}, &bytes.Buffer{})
		timedOut := ctx.Err() != nil
		cancel()
		switch {
		case timedOut:
			t.Errorf("%s taken: up still running after 30s", key)
		case err == nil || !strings.Contains(err.Error(), taken.Addr().String()) || !strings.Contains(err.Error(), "address already in use"):
			t.Errorf("%s taken: up returned %v, want an error naming %s as in use", key, err, taken.Addr())
		}
	}
}
