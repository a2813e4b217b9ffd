package gateway_test

import (
	"context"
	"errors"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/edgehook/edgehook/identity"
	"github.com/edgehook/edgehook/natsconf"
	"github.com/edgehook/edgehook/natsconf/natstest"
	"github.com/edgehook/edgehook/vault"
	"github.com/edgehook/edgehook/webhook"
)

func keys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// TestAdminAPI walks a tenant through creation, reads, updates and a secret rotation,
// and checks that no key or secret ever reaches the logs.
func TestAdminAPI(t *testing.T) {
	e := start(t, options{})
	begin := time.Now().UTC()
	c := e.createTenant(`{"targetUrl":"https://hooks.example.com/in"}`)
	if !identity.ValidTenantID(c.TenantID) || !strings.HasPrefix(c.APIKey, identity.APIKeyPrefix) ||
		c.Plan != identity.DefaultPlan || c.Status != "active" || c.TargetURL != "https://hooks.example.com/in" ||
		c.CreatedAt.Before(begin.Add(-time.Second)) {
		t.Fatalf("created: %+v", c)
	}
	secret, err := webhook.ParseSecret(c.WebhookSecret)
	if err != nil {
		t.Fatalf("webhookSecret: %v", err)
	}
	ctx := context.Background()
	wc, err := e.configs.WebhookConfig(ctx, c.TenantID)
	if err != nil || !wc.Secret.Equal(secret) || wc.TargetURL != c.TargetURL {
		t.Fatalf("stored config does not match the answer: %v", err)
	}
	if tn, err := e.identity.Get(ctx, c.TenantID); err != nil || tn.Status != "active" || tn.Plan != "free" {
		t.Fatalf("identity record: %+v %v", tn, err)
	}
	pro := e.createTenant(`{"targetUrl":"http://127.0.0.1:9/x","plan":"pro"}`)
	if pro.Plan != "pro" || pro.TenantID == c.TenantID || pro.APIKey == c.APIKey || pro.WebhookSecret == c.WebhookSecret {
		t.Errorf("second tenant: %+v", pro)
	}
	// {tenantId} in the target URL names the new tenant.
	own := e.createTenant(`{"targetUrl":"http://127.0.0.1:8090/webhooks/{tenantId}?from={tenantId}"}`)
	if want := "http://127.0.0.1:8090/webhooks/" + own.TenantID + "?from=" + own.TenantID; own.TargetURL != want {
		t.Errorf("placeholder target = %q, want %q", own.TargetURL, want)
	}
	if wc, err := e.configs.WebhookConfig(ctx, own.TenantID); err != nil || wc.TargetURL != own.TargetURL {
		t.Errorf("placeholder target stored as %q (%v)", wc.TargetURL, err)
	}

	// GET never shows the key or the secret.
	r := e.do("GET", "/v1/tenants/"+c.TenantID, testAdminToken, "")
	if r.code != 200 {
		t.Fatalf("GET: %d %s", r.code, r.body)
	}
	if got := strings.Join(keys(r.json(t)), ","); got != "createdAt,plan,status,targetUrl,tenantId" {
		t.Errorf("GET fields %s", got)
	}

	// PATCH plan and target.
	r = e.do("PATCH", "/v1/tenants/"+c.TenantID, testAdminToken, `{"plan":"enterprise","targetUrl":"https://hooks.example.com/v2"}`)
	m := r.json(t)
	if r.code != 200 || m["plan"] != "enterprise" || m["targetUrl"] != "https://hooks.example.com/v2" || m["status"] != "active" {
		t.Fatalf("PATCH: %d %s", r.code, r.body)
	}
	if wc, _ := e.configs.WebhookConfig(ctx, c.TenantID); wc.TargetURL != "https://hooks.example.com/v2" || !wc.Secret.Equal(secret) {
		t.Errorf("PATCH targetUrl: stored %q, secret kept %v", wc.TargetURL, wc.Secret.Equal(secret))
	}

	// The tenant's own view and target change.
	r = e.do("GET", "/v1/tenant", c.APIKey, "")
	m = r.json(t)
	if r.code != 200 || m["tenantId"] != c.TenantID || m["targetUrl"] != "https://hooks.example.com/v2" {
		t.Fatalf("GET /v1/tenant: %d %s", r.code, r.body)
	}
	r = e.do("PATCH", "/v1/tenant", c.APIKey, `{"targetUrl":"https://hooks.example.com/v3"}`)
	if r.code != 200 || r.json(t)["targetUrl"] != "https://hooks.example.com/v3" {
		t.Fatalf("PATCH /v1/tenant: %d %s", r.code, r.body)
	}
	if wc, _ := e.configs.WebhookConfig(ctx, c.TenantID); wc.TargetURL != "https://hooks.example.com/v3" {
		t.Errorf("tenant PATCH stored %q", wc.TargetURL)
	}

	// Rotation: new current secret, old one valid for 24h, history kept.
	r = e.do("POST", "/v1/tenants/"+c.TenantID+"/rotate-secret", testAdminToken, "")
	if r.code != 200 {
		t.Fatalf("rotate: %d %s", r.code, r.body)
	}
	m = r.json(t)
	newSecret, err := webhook.ParseSecret(m["webhookSecret"].(string))
	if err != nil || newSecret.Equal(secret) || m["tenantId"] != c.TenantID {
		t.Fatalf("rotate answer %s: %v", r.body, err)
	}
	expires, err := time.Parse(time.RFC3339Nano, m["previousSecretExpiresAt"].(string))
	if err != nil || expires.Sub(time.Now().Add(24*time.Hour)).Abs() > time.Minute {
		t.Errorf("previousSecretExpiresAt %v (%v), want about now+24h", m["previousSecretExpiresAt"], err)
	}
	wc, _ = e.configs.WebhookConfig(ctx, c.TenantID)
	if !wc.Secret.Equal(newSecret) || len(wc.Previous) != 1 || !wc.Previous[0].Secret.Equal(secret) ||
		!wc.Previous[0].ExpiresAt.Equal(expires) || len(wc.RotationHistory) != 1 || !wc.RotationHistory[0].PreviousExpiresAt.Equal(expires) {
		t.Errorf("stored rotation: current new=%v previous=%d history=%d", wc.Secret.Equal(newSecret), len(wc.Previous), len(wc.RotationHistory))
	}
	if active := wc.ActiveSecrets(time.Now()); len(active) != 2 {
		t.Errorf("%d active secrets during rotation, want 2", len(active))
	}
	r = e.do("POST", "/v1/tenants/"+c.TenantID+"/rotate-secret", testAdminToken, "")
	if wc, _ := e.configs.WebhookConfig(ctx, c.TenantID); r.code != 200 || len(wc.Previous) != 2 || len(wc.RotationHistory) != 2 {
		t.Errorf("second rotation: %d, %d previous, %d history", r.code, len(wc.Previous), len(wc.RotationHistory))
	}
	e.ingest(c.APIKey, `{"type":"after.rotation"}`)

	logs := e.logs.String()
	if !strings.Contains(logs, `"msg":"tenant created"`) || !strings.Contains(logs, c.TenantID) {
		t.Errorf("tenant creation not logged:\n%s", logs)
	}
	for name, s := range map[string]string{"API key": c.APIKey, "webhook secret": c.WebhookSecret, "rotated secret": newSecret.Reveal(), "admin token": testAdminToken, "other key": pro.APIKey} {
		if strings.Contains(logs, s) {
			t.Errorf("%s appears in the logs", name)
		}
	}
}

// TestCreateTenantAtomicity: a failing config store or identity store leaves no
// half-created tenant.
func TestCreateTenantAtomicity(t *testing.T) {
	t.Run("config store fails", func(t *testing.T) {
		e := start(t, options{configs: func(m *memConfigs) vault.ConfigStore {
			return failingPuts{ConfigStore: m, err: errors.New("injected: vault sealed")}
		}})
		r := e.do("POST", "/v1/tenants", testAdminToken, `{"targetUrl":"https://hooks.example.com/in"}`)
		if r.code < 500 {
			t.Fatalf("status %d, want 5xx; %s", r.code, r.body)
		}
		if code, _ := r.errorBody(t); code != "internal" {
			t.Errorf("code %q", code)
		}
		if strings.Contains(string(r.body), "vault sealed") {
			t.Errorf("internal error detail leaked to the client: %s", r.body)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		kv, err := e.js.KeyValue(ctx, natsconf.BucketIdentity)
		if err != nil {
			t.Fatal(err)
		}
		if ks, err := kv.ListKeys(ctx); err != nil {
			t.Fatal(err)
		} else {
			for k := range ks.Keys() {
				t.Errorf("identity record %q exists after a failed creation", k)
			}
		}
	})

	t.Run("identity store fails", func(t *testing.T) {
		e := start(t, options{identity: func(t testing.TB, _ *identity.Store) *identity.Store {
			// An identity store whose connection is gone: every write fails.
			other := natstest.Start(t, nil)
			nc := other.Connect(t)
			js, err := jetstream.New(nc)
			if err != nil {
				t.Fatal(err)
			}
			kv, err := js.KeyValue(context.Background(), natsconf.BucketIdentity)
			if err != nil {
				t.Fatal(err)
			}
			nc.Close()
			return identity.NewStore(kv)
		}})
		r := e.do("POST", "/v1/tenants", testAdminToken, `{"targetUrl":"https://hooks.example.com/in"}`)
		if r.code != http.StatusServiceUnavailable {
			t.Fatalf("status %d, want 503; %s", r.code, r.body)
		}
		if code, msg := r.errorBody(t); code != "unavailable" || msg != "identity store is unavailable; retry later" {
			t.Errorf("error %q %q", code, msg)
		}
		if n := e.configs.len(); n != 0 {
			t.Errorf("%d webhook configs left behind by a failed creation", n)
		}
		if !strings.Contains(e.logs.String(), "webhook config removed") {
			t.Errorf("cleanup not logged")
		}
	})
}

// TestAdminDisabled: without an admin token the admin routes do not exist, and a
// gateway without a config store sends config changes to the admin API.
func TestAdminDisabled(t *testing.T) {
	e := start(t, options{noAdmin: true})
	ctx := context.Background()
	key, hash, err := identity.NewAPIKey()
	if err != nil {
		t.Fatal(err)
	}
	tn := identity.Tenant{TenantID: "ten_plain", Status: identity.StatusActive, Plan: "pro", CreatedAt: time.Now().UTC()}
	if err := e.identity.Create(ctx, tn, hash); err != nil {
		t.Fatal(err)
	}
	for _, req := range [][2]string{{"POST", "/v1/tenants"}, {"GET", "/v1/tenants/ten_plain"}, {"POST", "/v1/tenants/ten_plain/rotate-secret"}} {
		r := e.do(req[0], req[1], testAdminToken, `{"targetUrl":"https://example.com/"}`)
		if code, msg := r.errorBody(t); r.code != 404 || code != "not_found" || msg != "no such route" {
			t.Errorf("%s %s: %d %s", req[0], req[1], r.code, r.body)
		}
	}
	r := e.do("PATCH", "/v1/tenant", key, `{"targetUrl":"https://example.com/"}`)
	if code, msg := r.errorBody(t); r.code != 404 || code != "not_found" || !strings.Contains(msg, "admin API") {
		t.Errorf("PATCH /v1/tenant: %d %s", r.code, r.body)
	}
	r = e.do("GET", "/v1/tenant", key, "")
	if got := strings.Join(keys(r.json(t)), ","); r.code != 200 || got != "createdAt,plan,status,tenantId" {
		t.Errorf("GET /v1/tenant: %d %s", r.code, r.body)
	}
	e.ingest(key, `{}`)
}
