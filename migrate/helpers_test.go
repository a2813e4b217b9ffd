package migrate_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/edgehook/edgehook/identity"
	"github.com/edgehook/edgehook/migrate"
	"github.com/edgehook/edgehook/migrate/dynalitetest"
	"github.com/edgehook/edgehook/natsconf"
	"github.com/edgehook/edgehook/natsconf/natstest"
	"github.com/edgehook/edgehook/vault"
	"github.com/edgehook/edgehook/vault/vaulttest"
	"github.com/edgehook/edgehook/webhook"
)

type item = map[string]types.AttributeValue

func s(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }
func n(v string) types.AttributeValue { return &types.AttributeValueMemberN{Value: v} }
func b(v bool) types.AttributeValue   { return &types.AttributeValueMemberBOOL{Value: v} }
func l(v ...types.AttributeValue) types.AttributeValue {
	return &types.AttributeValueMemberL{Value: v}
}
func m(v item) types.AttributeValue { return &types.AttributeValueMemberM{Value: v} }

// fixture is a dynalite server with the legacy tables, and the edgehook side a
// migration writes to: a JetStream server with the identity bucket, and a Vault with
// edgehook's policies, written with an admin token.
type fixture struct {
	db      *dynalitetest.Server
	nats    *natstest.Server
	js      jetstream.JetStream
	kv      jetstream.KeyValue
	vault   *vaulttest.Env
	configs *vault.Client
	store   *identity.Store
}

// The legacy tables of every fixture.
const (
	identityTable = "TenantIdentity"
	configTable   = "TenantWebhookConfig"
	legacyTable   = "TenantApiKeys"
)

func newFixture(t testing.TB) *fixture {
	t.Helper()
	f := &fixture{db: dynalitetest.Start(t)}
	f.db.CreateTable(t, identityTable, "apiKey")
	f.db.CreateTable(t, configTable, "tenantId")
	f.db.CreateTable(t, legacyTable, "apiKey")
	f.freshTarget(t)
	return f
}

// freshTarget gives the fixture a new, empty JetStream server and Vault.
func (f *fixture) freshTarget(t testing.TB) {
	t.Helper()
	f.nats, f.vault = natstest.Start(t, nil), vaulttest.Setup(t)
	f.js = f.nats.JetStream(t)
	var err error
	if f.kv, err = f.js.KeyValue(context.Background(), natsconf.BucketIdentity); err != nil {
		t.Fatal(err)
	}
	f.store = identity.NewStore(f.kv)
	cc := f.vault.ClientConfig(f.vault.Token(t, vault.RoleAdmin, 0))
	cc.Address = connProxy(t, f.vault.Addr)
	if f.configs, err = vault.NewClient(cc); err != nil {
		t.Fatal(err)
	}
}

// connProxy forwards TCP connections to the server at target (a URL) and closes them
// all when the test ends, before the server stops. The Vault client keeps connections
// it dialed but never used in its pool, and vaulttest's shutdown would wait for those
// (http.Server counts a connection that sent no request as active for 5 s).
func connProxy(t testing.TB, target string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := strings.TrimPrefix(target, "http://")
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", addr)
			if err != nil {
				c.Close()
				continue
			}
			mu.Lock()
			conns = append(conns, c, up)
			mu.Unlock()
			go func() { io.Copy(up, c); up.Close() }()
			go func() { io.Copy(c, up); c.Close() }()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return "http://" + ln.Addr().String()
}

// migrator returns a Migrator of the fixture's tables with cfg's other settings.
func (f *fixture) migrator(t testing.TB, cfg migrate.Config, progress func(migrate.Progress)) *migrate.Migrator {
	t.Helper()
	if cfg.LegacyTable == "" {
		cfg.IdentityTable, cfg.ConfigTable = identityTable, configTable
	}
	ddb, err := migrate.NewDynamoDBClient(context.Background(), migrate.AWSConfig{
		Region: dynalitetest.Region, EndpointURL: f.db.Endpoint,
		AccessKeyID: dynalitetest.AccessKeyID, SecretAccessKey: dynalitetest.SecretAccessKey,
	})
	if err != nil {
		t.Fatal(err)
	}
	mg, err := migrate.New(cfg, migrate.Deps{DynamoDB: ddb, Identity: f.kv, Configs: f.configs, Progress: progress})
	if err != nil {
		t.Fatal(err)
	}
	return mg
}

// run migrates with cfg and returns the report; an error of the run fails the test.
func (f *fixture) run(t testing.TB, cfg migrate.Config) migrate.Report {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rep, err := f.migrator(t, cfg, nil).Run(ctx)
	if err != nil {
		t.Fatalf("migration: %v", err)
	}
	return rep
}

// identityWrites is the identity bucket's last stream sequence: unchanged means no write.
func (f *fixture) identityWrites(t testing.TB) uint64 {
	t.Helper()
	st, err := f.js.Stream(context.Background(), "KV_"+natsconf.BucketIdentity)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.LastSeq
}

// configVersion is the current version of tenantID's Vault secret (0: none).
func (f *fixture) configVersion(t testing.TB, tenantID string) int {
	t.Helper()
	sec, err := f.vault.Root().Logical().Read(f.vault.Mount + "/metadata/" + f.vault.Prefix + "/" + tenantID)
	if err != nil {
		t.Fatal(err)
	}
	if sec == nil {
		return 0
	}
	var v int
	fmt.Sscan(fmt.Sprint(sec.Data["current_version"]), &v)
	return v
}

// tenant checks tenantID's identity record, and that apiKey authenticates as it.
func (f *fixture) tenant(t testing.TB, tenantID, apiKey string) identity.Tenant {
	t.Helper()
	ctx := context.Background()
	tn, err := f.store.Get(ctx, tenantID)
	if err != nil {
		t.Fatalf("tenant %s: %v", tenantID, err)
	}
	got, err := identity.NewView(f.kv, nil).Authenticate(ctx, []byte(apiKey))
	if err != nil || got.TenantID != tenantID {
		t.Fatalf("the legacy API key of %s authenticates as %q (%v)", tenantID, got.TenantID, err)
	}
	return tn
}

// config returns tenantID's webhook config.
func (f *fixture) config(t testing.TB, tenantID string) vault.WebhookConfig {
	t.Helper()
	c, err := f.configs.WebhookConfig(context.Background(), tenantID)
	if err != nil {
		t.Fatalf("webhook config of %s: %v", tenantID, err)
	}
	return c
}

// legacyTenant is one tenant of the legacy system, in either layout.
type legacyTenant struct {
	apiKey, tenantID, status, plan, createdAt string
	targetURL, secret, lastUpdated            string
	rotations                                 types.AttributeValue // rotationHistory, or nil
}

// newLegacyTenant returns a tenant as the legacy system made them: an API key like
// tenant_<name>_live_<hex>, a secret whsec_<uuid hex>, creation time as epoch seconds.
func newLegacyTenant(name string) legacyTenant {
	return legacyTenant{
		apiKey:    "tenant_" + name + "_live_" + randomHex(6),
		tenantID:  name,
		status:    "active",
		plan:      "pro",
		createdAt: "1700000000",
		targetURL: "https://hooks.example.com/" + name,
		secret:    "whsec_" + randomHex(16),
	}
}

func (lt legacyTenant) identityItem() item {
	it := item{"apiKey": s(lt.apiKey), "tenantId": s(lt.tenantID), "status": s(lt.status)}
	if lt.plan != "" {
		it["plan"] = s(lt.plan)
	}
	if lt.createdAt != "" {
		it["createdAt"] = s(lt.createdAt)
	}
	return it
}

func (lt legacyTenant) configItem() item {
	it := item{"tenantId": s(lt.tenantID), "targetUrl": s(lt.targetURL), "webhookSecret": s(lt.secret)}
	if lt.lastUpdated != "" {
		it["lastUpdated"] = s(lt.lastUpdated)
	}
	if lt.rotations != nil {
		it["rotationHistory"] = lt.rotations
	}
	return it
}

// legacyItem is the tenant in the single-table layout.
func (lt legacyTenant) legacyItem() item {
	it := item{"apiKey": s(lt.apiKey), "tenantId": s(lt.tenantID), "targetUrl": s(lt.targetURL),
		"webhookSecret": s(lt.secret), "isActive": b(lt.status == "active"), "displayName": s("Tenant " + lt.tenantID)}
	if lt.plan != "" {
		it["plan"] = s(lt.plan)
	}
	if lt.createdAt != "" {
		it["createdAt"] = s(lt.createdAt)
	}
	if lt.lastUpdated != "" {
		it["updatedAt"] = s(lt.lastUpdated)
	}
	return it
}

// putTwoTable writes tenants into the two-table layout.
func (f *fixture) putTwoTable(t testing.TB, tenants ...legacyTenant) {
	t.Helper()
	ids := make([]item, len(tenants))
	cfgs := make([]item, len(tenants))
	for i, lt := range tenants {
		ids[i], cfgs[i] = lt.identityItem(), lt.configItem()
	}
	f.db.PutItems(t, identityTable, ids)
	f.db.PutItems(t, configTable, cfgs)
}

func randomHex(nbytes int) string {
	buf := make([]byte, nbytes)
	rand.Read(buf)
	return hex.EncodeToString(buf)
}

func mustSecret(t testing.TB, text string) webhook.Secret {
	t.Helper()
	sec, err := webhook.ParseSecret(text)
	if err != nil {
		t.Fatal(err)
	}
	return sec
}

func newSecretText(t testing.TB) string {
	t.Helper()
	sec, err := webhook.NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	return sec.Reveal()
}

// plainBase64 is a secret as some systems keep it: base64 without the whsec_ prefix.
func plainBase64(t testing.TB) string {
	t.Helper()
	buf := make([]byte, 24)
	rand.Read(buf)
	return base64.StdEncoding.EncodeToString(buf)
}

// failureFor returns the report's failure of tenantID (and of the legacy API key
// apiKey, when set), which must be the only one.
func failureFor(t testing.TB, rep migrate.Report, tenantID string, apiKey ...string) migrate.Failure {
	t.Helper()
	var found []migrate.Failure
	for _, f := range rep.Failures {
		if f.TenantID == tenantID && (len(apiKey) == 0 || f.Key == migrate.KeyRef(apiKey[0])) {
			found = append(found, f)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d failures for tenant %q, want 1: %+v", len(found), tenantID, rep.Failures)
	}
	return found[0]
}

// leaks returns which of the secrets appear in text.
func leaks(text string, secrets ...string) []string {
	var out []string
	for _, sec := range secrets {
		if sec != "" && strings.Contains(text, sec) {
			out = append(out, sec)
		}
	}
	return out
}

func wantCounts(t testing.TB, rep migrate.Report, want migrate.Counts) {
	t.Helper()
	if rep.Counts != want {
		t.Fatalf("counts %+v, want %+v; failures: %+v", rep.Counts, want, rep.Failures)
	}
}

func isInvalid(f migrate.Failure) bool { return errors.Is(f.Err, migrate.ErrInvalidRecord) }
