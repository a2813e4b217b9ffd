package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/edgehook/edgehook/identity"
	"github.com/edgehook/edgehook/migrate"
	"github.com/edgehook/edgehook/migrate/dynalitetest"
	"github.com/edgehook/edgehook/natsconf"
	"github.com/edgehook/edgehook/vault"
	"github.com/edgehook/edgehook/vault/vaulttest"
	"github.com/edgehook/edgehook/webhook"
)

// migrateCmd runs `edgehook migrate <args>` in-process with env.
func migrateCmd(t *testing.T, env map[string]string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err = migrateRun(ctx, &environment{getenv: func(k string) string { return env[k] }, stdout: &out, stderr: &errOut}, args)
	return out.String(), errOut.String(), err
}

func migrateS(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }

// migrateLegacyTenant is a tenant of the legacy system as its seed script made them.
type migrateLegacyTenant struct {
	apiKey, tenantID, secret, targetURL string
	active                              bool
	previous                            string // a rotated-out secret still valid, or ""
}

func migrateNewLegacyTenant(t *testing.T, name, targetURL string) migrateLegacyTenant {
	t.Helper()
	key, err := randomToken()
	if err != nil {
		t.Fatal(err)
	}
	// whsec_<uuid4 hex>, as the legacy seed script wrote secrets.
	return migrateLegacyTenant{
		apiKey: "tenant_" + name + "_live_" + key[:12], tenantID: name, active: true, targetURL: targetURL,
		secret: "whsec_" + fmt.Sprintf("%x", []byte(key[:16])),
	}
}

func (lt migrateLegacyTenant) identityItem() map[string]types.AttributeValue {
	status := "active"
	if !lt.active {
		status = "suspended"
	}
	return map[string]types.AttributeValue{"apiKey": migrateS(lt.apiKey), "tenantId": migrateS(lt.tenantID),
		"status": migrateS(status), "plan": migrateS("pro"), "createdAt": migrateS("1700000000")}
}

func (lt migrateLegacyTenant) configItem() map[string]types.AttributeValue {
	it := map[string]types.AttributeValue{"tenantId": migrateS(lt.tenantID), "targetUrl": migrateS(lt.targetURL),
		"webhookSecret": migrateS(lt.secret), "lastUpdated": migrateS("1700000000")}
	if lt.previous != "" {
		it["rotationHistory"] = &types.AttributeValueMemberL{Value: []types.AttributeValue{
			&types.AttributeValueMemberM{Value: map[string]types.AttributeValue{
				"rotatedAt": migrateS(time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)), "previousSecret": migrateS(lt.previous),
			}},
		}}
	}
	return it
}

func (lt migrateLegacyTenant) legacyItem() map[string]types.AttributeValue {
	return map[string]types.AttributeValue{"apiKey": migrateS(lt.apiKey), "tenantId": migrateS(lt.tenantID),
		"targetUrl": migrateS(lt.targetURL), "webhookSecret": migrateS(lt.secret),
		"isActive": &types.AttributeValueMemberBOOL{Value: lt.active}, "createdAt": migrateS("1700000000")}
}

// migrateDynalite starts dynalite with the legacy tables.
func migrateDynalite(t *testing.T) *dynalitetest.Server {
	t.Helper()
	db := dynalitetest.Start(t)
	db.CreateTable(t, migrate.DefaultIdentityTable, "apiKey")
	db.CreateTable(t, migrate.DefaultConfigTable, "tenantId")
	db.CreateTable(t, migrate.DefaultLegacyTable, "apiKey")
	return db
}

// migrateEndpoint is a tenant's webhook endpoint that verifies every request with the
// tenant's legacy secret and keeps the verified webhooks' headers and bodies.
type migrateEndpoint struct {
	srv    *httptest.Server
	secret webhook.Secret
	mu     sync.Mutex
	got    []*http.Request
	bodies [][]byte
	bad    int
}

func migrateNewEndpoint(t *testing.T, legacySecret string) *migrateEndpoint {
	t.Helper()
	sec, err := webhook.ParseSecret(legacySecret)
	if err != nil {
		t.Fatal(err)
	}
	ep := &migrateEndpoint{secret: sec}
	ep.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		ep.mu.Lock()
		defer ep.mu.Unlock()
		if webhook.Verify(r.Header.Get(webhook.HeaderID), r.Header.Get(webhook.HeaderTimestamp), r.Header.Get(webhook.HeaderSignature),
			body, time.Now(), webhook.DefaultTolerance, ep.secret) != nil {
			ep.bad++
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		ep.got, ep.bodies = append(ep.got, r), append(ep.bodies, body)
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(ep.srv.Close)
	return ep
}

// TestMigrateEndToEnd runs `edgehook up` with Vault (vaulttest), migrates legacy tenants
// of both layouts into it with `edgehook migrate dynamodb`, and sends events with the
// legacy API keys at the gateway: an active tenant's event is delivered, signed with
// its legacy secret (and the still-valid previous one), and verifies with it; a
// suspended tenant is refused. A second run changes nothing.
func TestMigrateEndToEnd(t *testing.T) {
	db := migrateDynalite(t)
	v := vaulttest.Setup(t)
	// Both Vault clients reach vaulttest through a proxy that drops their connections
	// before vaulttest stops, so its shutdown waits for none.
	vaultAddr := newVaultProxy(t, v.Addr).addr()
	vaultEnv := map[string]string{
		"VAULT_ADDR": vaultAddr, "VAULT_TOKEN": v.Token(t, vault.RoleAdmin, 0),
		"EDGEHOOK_VAULT_MOUNT": v.Mount, "EDGEHOOK_VAULT_PREFIX": v.Prefix,
	}
	sys := startUp(t, vaultEnv)

	// acme (two tables) rotated its secret an hour ago; globex (single table) is
	// suspended; initech's secret cannot be converted.
	acme := migrateNewLegacyTenant(t, "acme", "")
	acme.previous = "whsec_" + fmt.Sprintf("%x", []byte("previous-secret!"))
	ep := migrateNewEndpoint(t, acme.secret)
	acme.targetURL = ep.srv.URL + "/hooks/acme"
	globex := migrateNewLegacyTenant(t, "globex", ep.srv.URL+"/hooks/globex")
	globex.active = false
	initech := migrateNewLegacyTenant(t, "initech", ep.srv.URL+"/hooks/initech")
	initech.secret = "whsec_test123"
	db.PutItems(t, migrate.DefaultIdentityTable, []map[string]types.AttributeValue{acme.identityItem(), initech.identityItem()})
	db.PutItems(t, migrate.DefaultConfigTable, []map[string]types.AttributeValue{acme.configItem(), initech.configItem()})
	db.PutItems(t, migrate.DefaultLegacyTable, []map[string]types.AttributeValue{globex.legacyItem()})

	pw, err := os.ReadFile(filepath.Join(sys.dataDir, operatorPasswordFile))
	if err != nil {
		t.Fatal(err)
	}
	env := db.Env()
	for k, val := range vaultEnv {
		env[k] = val
	}
	env["EDGEHOOK_NATS_URL"] = "nats://" + sys.natsURL
	env["EDGEHOOK_NATS_USER"], env["EDGEHOOK_NATS_PASSWORD"] = natsconf.OperatorUser, strings.TrimSpace(string(pw))

	out, stderr, err := migrateCmd(t, env, "dynamodb")
	if err == nil || exitCode(err) != 1 {
		t.Fatalf("two-table migration with a bad record: %v, want exit code 1\n%s%s", err, out, stderr)
	}
	for _, want := range []string{"migrated             1 (created 1, updated 0)", "failed               1", `"initech"  ` + migrate.KeyRef(initech.apiKey), "webhookSecret: is neither"} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}
	if out, stderr, err := migrateCmd(t, env, "dynamodb", "--legacy-table", migrate.DefaultLegacyTable); err != nil {
		t.Fatalf("single-table migration: %v\n%s%s", err, out, stderr)
	}

	// acme's legacy key sends an event; it is delivered, signed so that both its
	// secrets verify it.
	var ack struct{ EventID, Status string }
	if code := call(t, "POST", "http://"+sys.api+"/v1/events", acme.apiKey, map[string]any{"type": "order.created", "data": map[string]int{"orderId": 42}}, &ack); code != 202 {
		t.Fatalf("event with the migrated key: %d", code)
	}
	waitUntil(t, 15*time.Second, "the event delivered to acme's endpoint", func() bool {
		ep.mu.Lock()
		defer ep.mu.Unlock()
		return len(ep.got) > 0
	})
	ep.mu.Lock()
	r, body, bad := ep.got[0], ep.bodies[0], ep.bad
	ep.mu.Unlock()
	if bad != 0 || r.URL.Path != "/hooks/acme" || r.Header.Get(webhook.HeaderID) != ack.EventID || !strings.Contains(string(body), `"orderId":42`) {
		t.Errorf("delivered %s %s %s (%d bad signatures), want event %s at /hooks/acme", r.URL.Path, r.Header.Get(webhook.HeaderID), body, bad, ack.EventID)
	}
	prev, _ := webhook.ParseSecret(acme.previous)
	if err := webhook.Verify(r.Header.Get(webhook.HeaderID), r.Header.Get(webhook.HeaderTimestamp), r.Header.Get(webhook.HeaderSignature), body, time.Now(), webhook.DefaultTolerance, prev); err != nil {
		t.Errorf("the webhook does not verify with acme's still-valid previous secret: %v", err)
	}
	waitUntil(t, 10*time.Second, "the event's status delivered", func() bool {
		var st struct{ Status string }
		call(t, "GET", "http://"+sys.api+"/v1/events/"+ack.EventID, acme.apiKey, nil, &st)
		return st.Status == "delivered"
	})
	if code := call(t, "POST", "http://"+sys.api+"/v1/events", globex.apiKey, map[string]string{"type": "t"}, nil); code != 403 {
		t.Errorf("suspended legacy tenant's event: %d, want 403", code)
	}
	if code := call(t, "POST", "http://"+sys.api+"/v1/events", initech.apiKey, map[string]string{"type": "t"}, nil); code != 401 {
		t.Errorf("event with the key of a record that failed: %d, want 401", code)
	}
	// The admin API sees the migrated tenant.
	var tn struct{ TenantID, Status, Plan, TargetURL string }
	if code := call(t, "GET", "http://"+sys.admin+"/v1/tenants/acme", sys.adminToken, nil, &tn); code != 200 || tn.Plan != "pro" || tn.TargetURL != acme.targetURL {
		t.Errorf("admin API: %d %+v", code, tn)
	}

	// Again: nothing changes.
	out, _, err = migrateCmd(t, env, "dynamodb", "--legacy-table", migrate.DefaultLegacyTable, "--json")
	if err != nil {
		t.Fatalf("re-run: %v\n%s", err, out)
	}
	var rep struct{ Read, Migrated, Skipped, Failed int }
	if err := json.Unmarshal([]byte(out), &rep); err != nil || rep.Read != 1 || rep.Skipped != 1 || rep.Migrated != 0 {
		t.Errorf("re-run summary %s (%v)", out, err)
	}
}

// migrateTarget is a JetStream server (with edgehook's users and layout) and a Vault
// for the command to migrate into, as the admin API's NATS user and Vault role.
type migrateTarget struct {
	db  *dynalitetest.Server
	nc  *nats.Conn // the operator's
	js  jetstream.JetStream
	v   *vaulttest.Env
	env map[string]string
}

func migrateNewTarget(t *testing.T) *migrateTarget {
	t.Helper()
	ns, creds := startTestServer(t)
	nc, err := nats.Connect(ns.ClientURL(), nats.UserInfo(natsconf.OperatorUser, creds[natsconf.OperatorUser]))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if err := natsconf.Setup(context.Background(), js, natsconf.DefaultTopology()); err != nil {
		t.Fatal(err)
	}
	mt := &migrateTarget{db: migrateDynalite(t), nc: nc, js: js, v: vaulttest.Setup(t)}
	mt.env = mt.db.Env()
	mt.env["EDGEHOOK_NATS_URL"] = ns.ClientURL()
	mt.env["EDGEHOOK_NATS_USER"], mt.env["EDGEHOOK_NATS_PASSWORD"] = string(natsconf.Admin), creds[string(natsconf.Admin)]
	mt.env["VAULT_ADDR"] = newVaultProxy(t, mt.v.Addr).addr()
	mt.env["VAULT_TOKEN"] = mt.v.Token(t, vault.RoleAdmin, 0)
	mt.env["EDGEHOOK_VAULT_MOUNT"], mt.env["EDGEHOOK_VAULT_PREFIX"] = mt.v.Mount, mt.v.Prefix
	return mt
}

// TestMigrateDryRunWritesNothingAndOutputHoldsNoSecrets: --dry-run reports what it would
// do and writes nothing; the real run writes, as the admin API's NATS user and Vault
// role; no output of either shows an API key or a secret, and progress goes to stderr.
func TestMigrateDryRunWritesNothingAndOutputHoldsNoSecrets(t *testing.T) {
	mt := migrateNewTarget(t)
	var secrets []string
	var ids, cfgs []map[string]types.AttributeValue
	for i := range 20 {
		lt := migrateNewLegacyTenant(t, fmt.Sprintf("t%02d", i), "https://hooks.example.com/")
		if i == 7 {
			lt.targetURL = "https://user:s3cr3t-in-url@hooks.example.com/"
			secrets = append(secrets, "s3cr3t-in-url")
		}
		secrets = append(secrets, lt.apiKey, lt.secret, strings.TrimPrefix(lt.secret, "whsec_"))
		ids, cfgs = append(ids, lt.identityItem()), append(cfgs, lt.configItem())
	}
	mt.db.PutItems(t, migrate.DefaultIdentityTable, ids)
	mt.db.PutItems(t, migrate.DefaultConfigTable, cfgs)

	notices, err := mt.nc.SubscribeSync(natsconf.ConfigChangedPrefix + "*")
	if err != nil {
		t.Fatal(err)
	}
	if err := mt.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	// The service's own endpoint variable wins over the general one, as in the AWS
	// library (port 1 on loopback: nothing listens there).
	dryEnv := map[string]string{"AWS_ENDPOINT_URL": "http://127.0.0.1:1", "AWS_ENDPOINT_URL_DYNAMODB": mt.env["AWS_ENDPOINT_URL"]}
	for k, v := range mt.env {
		if _, set := dryEnv[k]; !set {
			dryEnv[k] = v
		}
	}
	out, stderr, err := migrateCmd(t, dryEnv, "dynamodb", "--dry-run", "--json")
	if exitCode(err) != 1 {
		t.Fatalf("dry run with a bad record: %v", err)
	}
	var rep struct {
		DryRun                           bool
		Read, Migrated, Created, Skipped int
		Failed                           int
		Failures                         []struct{ TenantID, APIKeySha256, Table, Reason string }
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("--json output: %v\n%s", err, out)
	}
	if !rep.DryRun || rep.Read != 20 || rep.Created != 19 || rep.Failed != 1 || len(rep.Failures) != 1 || rep.Failures[0].TenantID != "t07" ||
		!strings.HasPrefix(rep.Failures[0].APIKeySha256, "sha256:") || !strings.Contains(rep.Failures[0].Reason, "targetUrl") {
		t.Errorf("dry run summary %s", out)
	}
	if !strings.Contains(stderr, "read 20  migrated 19  skipped 0  failed 1") {
		t.Errorf("no final progress line on stderr:\n%s", stderr)
	}
	kv, err := mt.js.KeyValue(context.Background(), natsconf.BucketIdentity)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := identity.NewStore(kv).Get(context.Background(), "t00"); !errors.Is(err, identity.ErrNotFound) {
		t.Errorf("dry run wrote identity (%v)", err)
	}
	admin, err := vault.NewClient(mt.v.ClientConfig(mt.env["VAULT_TOKEN"]))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.WebhookConfig(context.Background(), "t00"); !errors.Is(err, vault.ErrNotFound) {
		t.Errorf("dry run wrote a webhook config (%v)", err)
	}
	all := out + stderr

	out, stderr, err = migrateCmd(t, mt.env, "dynamodb")
	if exitCode(err) != 1 || !strings.Contains(out, "migrated             19 (created 19, updated 0)") {
		t.Fatalf("migration: %v\n%s", err, out)
	}
	if _, err := identity.NewStore(kv).Get(context.Background(), "t00"); err != nil {
		t.Errorf("migrated tenant: %v", err)
	}
	// Each config written was announced (none by the dry run), so caches drop it.
	waitUntil(t, 5*time.Second, "19 config change notices", func() bool { n, _, _ := notices.Pending(); return n >= 19 })
	time.Sleep(50 * time.Millisecond)
	if n, _, _ := notices.Pending(); n != 19 {
		t.Errorf("%d config change notices, want 19", n)
	}
	all += out + stderr + err.Error()
	for _, sec := range secrets {
		if strings.Contains(all, sec) {
			t.Errorf("the output shows a secret or API key (%.8s...)", sec)
		}
	}
}

func TestMigrateUsageMistakes(t *testing.T) {
	vaultless := map[string]string{"AWS_REGION": "us-east-1"}
	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"no source", nil, nil, "migrate dynamodb"},
		{"unknown source", nil, []string{"postgres"}, `unknown source "postgres"`},
		{"bad segments", map[string]string{"EDGEHOOK_MIGRATE_SEGMENTS": "0"}, []string{"dynamodb"}, "EDGEHOOK_MIGRATE_SEGMENTS"},
		{"bad concurrency env", map[string]string{"EDGEHOOK_MIGRATE_CONCURRENCY": "lots"}, []string{"dynamodb"}, "EDGEHOOK_MIGRATE_CONCURRENCY"},
		{"bad dry-run env", map[string]string{"EDGEHOOK_MIGRATE_DRY_RUN": "maybe"}, []string{"dynamodb"}, "EDGEHOOK_MIGRATE_DRY_RUN"},
		{"no tables", nil, []string{"dynamodb", "--identity-table", ""}, "--identity-table"},
		{"no vault", vaultless, []string{"dynamodb"}, "VAULT_ADDR"},
		{"stray argument", nil, []string{"dynamodb", "now"}, "no arguments"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, stderr, err := migrateCmd(t, tc.env, tc.args...)
			if err == nil || exitCode(err) != 2 {
				t.Fatalf("%v, want a usage error", err)
			}
			if !strings.Contains(err.Error()+stderr, tc.want) {
				t.Errorf("error %q does not mention %q", err, tc.want)
			}
		})
	}
	_, stderr, err := migrateCmd(t, map[string]string{"VAULT_TOKEN": "s3cr3t-vault", "EDGEHOOK_NATS_PASSWORD": "s3cr3t-nats"}, "dynamodb", "-h")
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("-h: %v", err)
	}
	for _, env := range []string{"EDGEHOOK_MIGRATE_IDENTITY_TABLE", "EDGEHOOK_MIGRATE_CONFIG_TABLE", "EDGEHOOK_MIGRATE_LEGACY_TABLE",
		"EDGEHOOK_MIGRATE_DRY_RUN", "EDGEHOOK_MIGRATE_SEGMENTS", "EDGEHOOK_MIGRATE_CONCURRENCY", "AWS_PROFILE", "AWS_REGION",
		"AWS_ENDPOINT_URL", "EDGEHOOK_NATS_URL", "VAULT_ADDR", "-json"} {
		if !strings.Contains(stderr, env) {
			t.Errorf("-h does not mention %s", env)
		}
	}
	if strings.Contains(stderr, "s3cr3t") {
		t.Error("-h shows a secret from the environment")
	}
}
