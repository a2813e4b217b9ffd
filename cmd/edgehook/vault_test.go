package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/edgehook/edgehook/identity"
	"github.com/edgehook/edgehook/natsconf"
	"github.com/edgehook/edgehook/natsconf/natstest"
	"github.com/edgehook/edgehook/status"
	"github.com/edgehook/edgehook/vault"
	"github.com/edgehook/edgehook/vault/vaulttest"
	"github.com/edgehook/edgehook/webhook"
)

// These tests run the edgehook commands in-process against a real JetStream server and
// a Vault: vaulttest, or a real Vault when VAULT_ADDR and VAULT_TOKEN are set.

// startCommand runs `edgehook <args>` with env until the test ends.
func startCommand(t *testing.T, env map[string]string, args ...string) *syncBuffer {
	t.Helper()
	stderr := &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, append([]string{"edgehook"}, args...), func(k string) string { return env[k] }, io.Discard, stderr)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("edgehook %s: %v", args[0], err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("edgehook %s did not stop within 30s", args[0])
		}
		if t.Failed() {
			t.Logf("stderr of edgehook %s:\n%s", args[0], stderr.String())
		}
	})
	return stderr
}

// waitHTTP waits until url answers 200.
func waitHTTP(t *testing.T, url string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready within 15s (%v)", url, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// vaultProxy forwards TCP connections to Vault until it is switched off, so a test can
// make Vault unreachable for a while, a real Vault as well as vaulttest.
type vaultProxy struct {
	ln     net.Listener
	target string
	on     atomic.Bool
	mu     sync.Mutex
	conns  []net.Conn
}

func newVaultProxy(t *testing.T, target string) *vaultProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &vaultProxy{ln: ln, target: strings.TrimPrefix(strings.TrimPrefix(target, "http://"), "https://")}
	p.on.Store(true)
	t.Cleanup(func() { ln.Close(); p.cut() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if !p.on.Load() {
				c.Close()
				continue
			}
			up, err := net.Dial("tcp", p.target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, up)
			p.mu.Unlock()
			go func() { io.Copy(up, c); up.Close() }()
			go func() { io.Copy(c, up); c.Close() }()
		}
	}()
	return p
}

func (p *vaultProxy) addr() string { return "http://" + p.ln.Addr().String() }

// cut refuses new connections and drops open ones.
func (p *vaultProxy) cut() {
	p.on.Store(false)
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// verifyingTarget is a webhook endpoint that checks every request against the
// tenant's current secrets and counts deliveries per webhook-id.
type verifyingTarget struct {
	srv      *httptest.Server
	mu       sync.Mutex
	secrets  []webhook.Secret
	received map[string]int
	bad      int
}

func newVerifyingTarget(t *testing.T, secrets ...webhook.Secret) *verifyingTarget {
	v := &verifyingTarget{secrets: secrets, received: map[string]int{}}
	v.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		v.mu.Lock()
		defer v.mu.Unlock()
		err := webhook.Verify(r.Header.Get(webhook.HeaderID), r.Header.Get(webhook.HeaderTimestamp), r.Header.Get(webhook.HeaderSignature),
			body, time.Now(), webhook.DefaultTolerance, v.secrets...)
		if err != nil {
			v.bad++
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		v.received[r.Header.Get(webhook.HeaderID)]++
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(v.srv.Close)
	return v
}

func (v *verifyingTarget) counts() (distinct, total, bad int) {
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, n := range v.received {
		total += n
	}
	return len(v.received), total, v.bad
}

// publishEvents stores n events of tenantID the way the gateway does.
func publishEvents(t *testing.T, js jetstream.JetStream, tenantID string, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("evt_%s_%06d", tenantID, i)
		m := nats.NewMsg(natsconf.EventSubject(tenantID))
		m.Header.Set(natsconf.HeaderEventID, id)
		m.Header.Set(natsconf.HeaderTenant, tenantID)
		m.Header.Set(natsconf.HeaderIngestTime, fmt.Sprint(time.Now().UnixNano()))
		m.Data = []byte(fmt.Sprintf(`{"n":%d}`, i))
		if _, err := js.PublishMsgAsync(m); err != nil {
			t.Fatal(err)
		}
		if (i+1)%1000 == 0 || i == n-1 { // bound the acks outstanding on a busy machine
			select {
			case <-js.PublishAsyncComplete():
			case <-time.After(30 * time.Second):
				t.Fatal("publishing events did not complete")
			}
		}
	}
}

// vaultFixture is a JetStream server, a Vault with edgehook's policies, and one tenant
// whose webhook config points at a verifying target.
type vaultFixture struct {
	nats   *natstest.Server
	vault  *vaulttest.Env
	tenant string
	secret webhook.Secret
	target *verifyingTarget
}

func newVaultFixture(t *testing.T, maxDeliver int) *vaultFixture {
	t.Helper()
	f := &vaultFixture{
		// The workers below retry after 1s or 500ms: both below the ack wait, so the
		// consumer's BackOff for either is the ack wait alone, as for this schedule.
		nats: natstest.Start(t, func(tp *natsconf.Topology) {
			tp.MaxDeliver, tp.RetrySchedule = maxDeliver, []time.Duration{time.Second}
		}),
		vault:  vaulttest.Setup(t),
		tenant: "ten_vaultfixture",
	}
	var err error
	if f.secret, err = webhook.NewSecret(); err != nil {
		t.Fatal(err)
	}
	f.target = newVerifyingTarget(t, f.secret)
	admin, err := vault.NewClient(f.vault.ClientConfig(f.vault.Token(t, vault.RoleAdmin, 0)))
	if err != nil {
		t.Fatal(err)
	}
	if err := admin.PutWebhookConfig(context.Background(), vault.WebhookConfig{
		TenantID: f.tenant, TargetURL: f.target.srv.URL + "/hook", Secret: f.secret, LastUpdated: time.Now().UTC(),
	}); err != nil {
		t.Fatal(err)
	}
	return f
}

// workerEnv is the environment of a worker reading Vault at vaultAddr.
func (f *vaultFixture) workerEnv(t *testing.T, vaultAddr string, maxDeliver int, extra map[string]string) map[string]string {
	env := map[string]string{
		"EDGEHOOK_NATS_URL":              f.nats.URL,
		"VAULT_ADDR":                     vaultAddr,
		"EDGEHOOK_VAULT_MOUNT":           f.vault.Mount,
		"EDGEHOOK_VAULT_PREFIX":          f.vault.Prefix,
		"EDGEHOOK_ALLOW_PRIVATE_TARGETS": "true",
		"EDGEHOOK_MAX_DELIVER":           fmt.Sprint(maxDeliver),
		"EDGEHOOK_RETRY_SCHEDULE":        "1s", // the fixture's consumer follows it
		"EDGEHOOK_METRICS_ADDR":          freeAddr(t),
		"EDGEHOOK_LOG_LEVEL":             "warn",
	}
	for k, v := range extra {
		env[k] = v
	}
	return env
}

// waitDelivered waits until every one of n events reached the target, and the
// consumer has nothing left pending.
func (f *vaultFixture) waitDelivered(t *testing.T, n int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		distinct, _, _ := f.target.counts()
		if distinct == n {
			break
		}
		if time.Now().After(deadline) {
			d, total, bad := f.target.counts()
			t.Fatalf("%d of %d events delivered (%d requests, %d with bad signatures) within %s", d, n, total, bad, within)
		}
		time.Sleep(50 * time.Millisecond)
	}
	js := f.nats.JetStream(t)
	c, err := js.Consumer(context.Background(), natsconf.StreamEvents, natsconf.ConsumerDeliver)
	if err != nil {
		t.Fatal(err)
	}
	for {
		info, err := c.Info(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if info.NumPending == 0 && info.NumAckPending == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("consumer still has %d pending, %d unacked", info.NumPending, info.NumAckPending)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestTenThousandDeliveriesReadVaultAHandfulOfTimes(t *testing.T) {
	f := newVaultFixture(t, 8)
	if f.vault.Real() {
		t.Log("counting Vault reads needs vaulttest's counter; against a real Vault this test checks delivery only")
	}
	startCommand(t, f.workerEnv(t, f.vault.Addr, 8, map[string]string{"VAULT_TOKEN": f.vault.Token(t, vault.RoleWorker, 0)}), "worker")
	const n = 10000
	publishEvents(t, f.nats.JetStream(t), f.tenant, n)
	f.waitDelivered(t, n, 2*time.Minute)
	if _, _, bad := f.target.counts(); bad != 0 {
		t.Errorf("%d webhooks failed verification", bad)
	}
	if f.vault.Server != nil {
		client, _ := vault.NewClient(f.vault.ClientConfig("unused"))
		reads := f.vault.Server.KVReads(client.DataPath(f.tenant))
		if reads < 1 || reads > 5 {
			t.Errorf("%d deliveries read the tenant's config from Vault %d times, want 1 to 5", n, reads)
		}
		t.Logf("%d deliveries, %d Vault reads", n, reads)
	}
}

func TestVaultUnreachableForThirtySecondsLosesNothing(t *testing.T) {
	f := newVaultFixture(t, 100)
	proxy := newVaultProxy(t, f.vault.Addr)
	metrics := freeAddr(t)
	startCommand(t, f.workerEnv(t, proxy.addr(), 100, map[string]string{
		"VAULT_TOKEN":               f.vault.Token(t, vault.RoleWorker, 0),
		"EDGEHOOK_RETRY_SCHEDULE":   "1s",
		"EDGEHOOK_CONFIG_CACHE_TTL": "200ms",
		"EDGEHOOK_METRICS_ADDR":     metrics,
	}), "worker")
	js := f.nats.JetStream(t)
	publishEvents(t, js, f.tenant, 100)
	f.waitDelivered(t, 100, 30*time.Second)

	// Vault goes away; events keep arriving for 30 s. None may be delivered unsigned,
	// none lost.
	proxy.cut()
	time.Sleep(500 * time.Millisecond) // configs cached before the outage expire (TTL 200ms)
	outage := time.Now()
	sent := 100
	for time.Since(outage) < 30*time.Second {
		for i := 0; i < 10; i++ {
			id := fmt.Sprintf("evt_outage_%06d", sent)
			m := nats.NewMsg(natsconf.EventSubject(f.tenant))
			m.Header.Set(natsconf.HeaderEventID, id)
			m.Header.Set(natsconf.HeaderTenant, f.tenant)
			m.Data = []byte(`{"during":"outage"}`)
			if _, err := js.PublishMsg(context.Background(), m); err != nil {
				t.Fatal(err)
			}
			sent++
		}
		time.Sleep(time.Second)
	}
	distinct, _, bad := f.target.counts()
	if bad != 0 {
		t.Fatalf("%d webhooks arrived with bad signatures during the outage", bad)
	}
	if distinct != 100 {
		t.Errorf("%d events delivered during the Vault outage, want only the 100 from before", distinct)
	}
	kv, _ := js.KeyValue(context.Background(), natsconf.BucketStatus)
	if rec, err := status.NewStore(kv).Get(context.Background(), f.tenant, "evt_outage_000100"); err != nil || rec.Status != status.Retrying {
		t.Errorf("status of an event during the outage = %+v %v, want retrying", rec, err)
	}
	proxy.on.Store(true)
	f.waitDelivered(t, sent, 60*time.Second)
	if _, _, bad := f.target.counts(); bad != 0 {
		t.Errorf("%d webhooks failed verification", bad)
	}
	t.Logf("%d events, %d sent during a 30 s Vault outage, all delivered after it", sent, sent-100)
}

func TestWorkerFollowsItsTokenFileAndAppRoleWithoutRestart(t *testing.T) {
	f := newVaultFixture(t, 100)
	js := f.nats.JetStream(t)

	// Nomad workload identity: the token lives in a file that is rewritten. Revoking
	// the first token and rendering a second one must not need a restart.
	tokenFile := filepath.Join(t.TempDir(), "vault_token")
	first := f.vault.Token(t, vault.RoleWorker, 0)
	if err := os.WriteFile(tokenFile, []byte(first), 0o600); err != nil {
		t.Fatal(err)
	}
	metrics := freeAddr(t)
	startCommand(t, f.workerEnv(t, f.vault.Addr, 100, map[string]string{
		"VAULT_TOKEN_FILE":          tokenFile,
		"EDGEHOOK_RETRY_SCHEDULE":   "500ms",
		"EDGEHOOK_CONFIG_CACHE_TTL": "100ms",
		"EDGEHOOK_METRICS_ADDR":     metrics,
	}), "worker")
	publishEvents(t, js, f.tenant, 50)
	f.waitDelivered(t, 50, 30*time.Second)
	waitHTTP(t, "http://"+metrics+"/readyz")
	if err := f.vault.Root().Auth().Token().RevokeTreeWithContext(context.Background(), first); err != nil {
		t.Fatal(err)
	}
	// With its token revoked and no new one rendered, the worker is not ready.
	time.Sleep(300 * time.Millisecond) // the config cached with the first token expires
	publishEvents(t, js, "ten_other", 1)
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get("http://" + metrics + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusServiceUnavailable {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("worker /readyz still 200 with a revoked token")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := os.WriteFile(tokenFile, []byte(f.vault.Token(t, vault.RoleWorker, 0)), 0o600); err != nil {
		t.Fatal(err)
	}
	waitHTTP(t, "http://"+metrics+"/readyz")
	for i := 0; i < 50; i++ {
		m := nats.NewMsg(natsconf.EventSubject(f.tenant))
		m.Header.Set(natsconf.HeaderEventID, fmt.Sprintf("evt_after_revoke_%d", i))
		m.Header.Set(natsconf.HeaderTenant, f.tenant)
		m.Data = []byte(`{}`)
		if _, err := js.PublishMsg(context.Background(), m); err != nil {
			t.Fatal(err)
		}
	}
	f.waitDelivered(t, 100, 30*time.Second)

	// AppRole with tokens that expire every two seconds: the worker logs in again.
	mount := f.vault.EnableAppRole(t)
	roleID, secretID := f.vault.AppRole(t, mount, vault.RoleWorker, map[string]any{"token_ttl": "2s", "token_max_ttl": "3s"})
	startCommand(t, f.workerEnv(t, f.vault.Addr, 100, map[string]string{
		"VAULT_ROLE_ID":                roleID,
		"VAULT_SECRET_ID":              secretID,
		"EDGEHOOK_VAULT_APPROLE_MOUNT": mount,
		"EDGEHOOK_RETRY_SCHEDULE":      "500ms",
		"EDGEHOOK_CONFIG_CACHE_TTL":    "100ms",
	}), "worker")
	deadline = time.Now().Add(8 * time.Second) // well past two token lifetimes
	batch := 0
	for time.Now().Before(deadline) {
		for i := 0; i < 10; i++ {
			m := nats.NewMsg(natsconf.EventSubject(f.tenant))
			m.Header.Set(natsconf.HeaderEventID, fmt.Sprintf("evt_approle_%d_%d", batch, i))
			m.Header.Set(natsconf.HeaderTenant, f.tenant)
			m.Data = []byte(`{}`)
			if _, err := js.PublishMsg(context.Background(), m); err != nil {
				t.Fatal(err)
			}
		}
		batch++
		time.Sleep(500 * time.Millisecond)
	}
	f.waitDelivered(t, 100+batch*10, 30*time.Second)
	if _, _, bad := f.target.counts(); bad != 0 {
		t.Errorf("%d webhooks failed verification", bad)
	}
}

// TestGatewayHoldsNoVaultTokenNorAdminAPI: an edge-facing `edgehook gateway` serves
// ingest and never contacts Vault nor serves the admin API, even with an admin token
// and Vault settings in its environment (the least-privilege table: no Vault token at
// all); the admin API is `edgehook admin`.
func TestGatewayHoldsNoVaultTokenNorAdminAPI(t *testing.T) {
	ns := natstest.Start(t, nil)
	addr := freeAddr(t)
	// A Vault address the test owns: any connection to it is a gateway reaching for Vault.
	vaultLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var vaultConns atomic.Int32
	go func() {
		for {
			c, err := vaultLn.Accept()
			if err != nil {
				return
			}
			vaultConns.Add(1)
			c.Close()
		}
	}()
	t.Cleanup(func() { vaultLn.Close() })
	const adminToken = "gateway-test-admin-token"
	startCommand(t, map[string]string{
		"EDGEHOOK_NATS_URL": ns.URL, "EDGEHOOK_HTTP_ADDR": addr, "EDGEHOOK_LOG_LEVEL": "warn",
		"EDGEHOOK_ADMIN_TOKEN": adminToken, "VAULT_ADDR": "http://" + vaultLn.Addr().String(), "VAULT_TOKEN": "hvs.not-for-the-gateway",
	}, "gateway")
	waitHTTP(t, "http://"+addr+"/readyz")

	kv, err := ns.JetStream(t).KeyValue(context.Background(), natsconf.BucketIdentity)
	if err != nil {
		t.Fatal(err)
	}
	key, hash, _ := identity.NewAPIKey()
	if err := identity.NewStore(kv).Create(context.Background(), identity.Tenant{TenantID: "ten_novault", Status: identity.StatusActive, Plan: "free", CreatedAt: time.Now()}, hash); err != nil {
		t.Fatal(err)
	}
	var ack struct{ EventID, Status string }
	if code := call(t, "POST", "http://"+addr+"/v1/events", key, map[string]string{"type": "x"}, &ack); code != 202 || ack.Status != "queued" {
		t.Fatalf("ingest without Vault: %d %+v", code, ack)
	}
	for _, r := range [][2]string{{"POST", "/v1/tenants"}, {"GET", "/v1/tenants/ten_novault"}, {"POST", "/v1/tenants/ten_novault/rotate-secret"}} {
		if code := call(t, r[0], "http://"+addr+r[1], adminToken, map[string]string{"targetUrl": "https://example.com"}, nil); code != 404 {
			t.Errorf("%s %s on the gateway with the admin token: %d, want 404", r[0], r[1], code)
		}
	}
	if n := vaultConns.Load(); n != 0 {
		t.Errorf("the gateway opened %d connections to VAULT_ADDR", n)
	}
}

func TestRotationThroughTheReceiver(t *testing.T) {
	ns := natstest.Start(t, nil)
	v := vaulttest.Setup(t)
	api, recv := freeAddr(t), freeAddr(t)
	const adminToken = "rotation-test-admin-token"
	common := map[string]string{
		"EDGEHOOK_NATS_URL":     ns.URL,
		"VAULT_ADDR":            v.Addr,
		"EDGEHOOK_VAULT_MOUNT":  v.Mount,
		"EDGEHOOK_VAULT_PREFIX": v.Prefix,
		"EDGEHOOK_LOG_LEVEL":    "warn",
	}
	with := func(extra map[string]string) map[string]string {
		m := map[string]string{}
		for k, val := range common {
			m[k] = val
		}
		for k, val := range extra {
			m[k] = val
		}
		return m
	}
	// The receiver listens on loopback, which the admin API refuses as a target unless
	// told otherwise.
	startCommand(t, with(map[string]string{"EDGEHOOK_ADMIN_ADDR": api, "EDGEHOOK_ADMIN_TOKEN": adminToken,
		"VAULT_TOKEN": v.Token(t, vault.RoleAdmin, 0), "EDGEHOOK_ROTATION_WINDOW": "3s",
		"EDGEHOOK_ALLOW_PRIVATE_TARGETS": "true"}), "admin")
	startCommand(t, with(map[string]string{"EDGEHOOK_RECEIVER_ADDR": recv, "VAULT_TOKEN": v.Token(t, vault.RoleReceiver, 0),
		"EDGEHOOK_CONFIG_CACHE_TTL": "1h"}), "receiver")
	waitHTTP(t, "http://"+api+"/readyz")
	waitHTTP(t, "http://"+recv+"/readyz")

	var c createdTenant
	if code := call(t, "POST", "http://"+api+"/v1/tenants", adminToken, map[string]string{"targetUrl": "http://" + recv + "/webhooks/{tenantId}"}, &c); code != 201 {
		t.Fatalf("create tenant: %d", code)
	}
	old, err := webhook.ParseSecret(c.WebhookSecret)
	if err != nil {
		t.Fatal(err)
	}
	send := func(id string, secrets ...webhook.Secret) int {
		t.Helper()
		body := []byte(`{"rotation":true}`)
		now := time.Now()
		req, _ := http.NewRequest("POST", "http://"+recv+"/webhooks/"+c.TenantID, strings.NewReader(string(body)))
		req.Header.Set(webhook.HeaderID, id)
		req.Header.Set(webhook.HeaderTimestamp, fmt.Sprint(now.Unix()))
		req.Header.Set(webhook.HeaderSignature, webhook.Sign(id, now, body, secrets...))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := send("msg_before", old); code != 204 {
		t.Fatalf("old secret before rotation: %d", code)
	}

	var rot struct {
		WebhookSecret           string    `json:"webhookSecret"`
		PreviousSecretExpiresAt time.Time `json:"previousSecretExpiresAt"`
	}
	if code := call(t, "POST", "http://"+api+"/v1/tenants/"+c.TenantID+"/rotate-secret", adminToken, nil, &rot); code != 200 {
		t.Fatalf("rotate: %d", code)
	}
	rotated := time.Now()
	current, err := webhook.ParseSecret(rot.WebhookSecret)
	if err != nil || current.Equal(old) {
		t.Fatalf("rotation returned %v (same as before: %v)", err, current.Equal(old))
	}
	// Inside the window both are accepted; the receiver's cache (TTL 1h) learned of the
	// rotation from the admin API's change notice.
	for _, tc := range []struct {
		name    string
		secrets []webhook.Secret
	}{{"new", []webhook.Secret{current}}, {"old", []webhook.Secret{old}}, {"both", []webhook.Secret{current, old}}} {
		deadline := time.Now().Add(time.Second)
		for {
			code := send("msg_window_"+tc.name, tc.secrets...)
			if code == 204 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s secret inside the rotation window: %d", tc.name, code)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	if time.Since(rotated) > 3*time.Second {
		t.Fatal("window checks took longer than the window; the test proves nothing")
	}
	time.Sleep(time.Until(rot.PreviousSecretExpiresAt) + 100*time.Millisecond)
	if code := send("msg_after_old", old); code != 401 {
		t.Errorf("old secret after the window: %d, want 401", code)
	}
	if code := send("msg_after_new", current); code != 204 {
		t.Errorf("new secret after the window: %d, want 204", code)
	}
	var got map[string]any
	call(t, "GET", "http://"+api+"/v1/tenants/"+c.TenantID, adminToken, nil, &got)
	if b, _ := json.Marshal(got); strings.Contains(string(b), "whsec_") {
		t.Errorf("GET tenant shows a secret: %s", b)
	}
}
