package admin_test

import (
	"context"
	"errors"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/edgehook/edgehook/admin/admintest"
	"github.com/edgehook/edgehook/identity"
	"github.com/edgehook/edgehook/natsconf"
	"github.com/edgehook/edgehook/natsconf/natstest"
	"github.com/edgehook/edgehook/vault"
	"github.com/edgehook/edgehook/webhook"
)

func keys(m map[string]any) []string { return slices.Sorted(maps.Keys(m)) }

// TestAdminAPI walks a tenant through creation, reads, updates and a secret rotation,
// and checks that no key or secret ever reaches the logs.
func TestAdminAPI(t *testing.T) {
	e := start(t, admintest.Options{})
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
	wc, err := e.srv.Configs.WebhookConfig(ctx, c.TenantID)
	if err != nil || !wc.Secret.Equal(secret) || wc.TargetURL != c.TargetURL {
		t.Fatalf("stored config does not match the answer: %v", err)
	}
	if tn, err := e.srv.Identity.Get(ctx, c.TenantID); err != nil || tn.Status != "active" || tn.Plan != "free" {
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
	if wc, err := e.srv.Configs.WebhookConfig(ctx, own.TenantID); err != nil || wc.TargetURL != own.TargetURL {
		t.Errorf("placeholder target stored as %q (%v)", wc.TargetURL, err)
	}

	// GET never shows the key or the secret.
	r := e.do("GET", "/v1/tenants/"+c.TenantID, testAdminToken, "")
	if r.Code != 200 {
		t.Fatalf("GET: %d %s", r.Code, r.Body)
	}
	if got := strings.Join(keys(r.JSON(t)), ","); got != "createdAt,plan,status,targetUrl,tenantId" {
		t.Errorf("GET fields %s", got)
	}

	// PATCH plan and target.
	r = e.do("PATCH", "/v1/tenants/"+c.TenantID, testAdminToken, `{"plan":"enterprise","targetUrl":"https://hooks.example.com/v2"}`)
	m := r.JSON(t)
	if r.Code != 200 || m["plan"] != "enterprise" || m["targetUrl"] != "https://hooks.example.com/v2" || m["status"] != "active" {
		t.Fatalf("PATCH: %d %s", r.Code, r.Body)
	}
	if wc, _ := e.srv.Configs.WebhookConfig(ctx, c.TenantID); wc.TargetURL != "https://hooks.example.com/v2" || !wc.Secret.Equal(secret) {
		t.Errorf("PATCH targetUrl: stored %q, secret kept %v", wc.TargetURL, wc.Secret.Equal(secret))
	}

	// Rotation: new current secret, old one valid for 24h, history kept.
	r = e.do("POST", "/v1/tenants/"+c.TenantID+"/rotate-secret", testAdminToken, "")
	if r.Code != 200 {
		t.Fatalf("rotate: %d %s", r.Code, r.Body)
	}
	m = r.JSON(t)
	newSecret, err := webhook.ParseSecret(m["webhookSecret"].(string))
	if err != nil || newSecret.Equal(secret) || m["tenantId"] != c.TenantID {
		t.Fatalf("rotate answer %s: %v", r.Body, err)
	}
	expires, err := time.Parse(time.RFC3339Nano, m["previousSecretExpiresAt"].(string))
	if err != nil || expires.Sub(time.Now().Add(24*time.Hour)).Abs() > time.Minute {
		t.Errorf("previousSecretExpiresAt %v (%v), want about now+24h", m["previousSecretExpiresAt"], err)
	}
	wc, _ = e.srv.Configs.WebhookConfig(ctx, c.TenantID)
	if !wc.Secret.Equal(newSecret) || len(wc.Previous) != 1 || !wc.Previous[0].Secret.Equal(secret) ||
		!wc.Previous[0].ExpiresAt.Equal(expires) || len(wc.RotationHistory) != 1 || !wc.RotationHistory[0].PreviousExpiresAt.Equal(expires) {
		t.Errorf("stored rotation: current new=%v previous=%d history=%d", wc.Secret.Equal(newSecret), len(wc.Previous), len(wc.RotationHistory))
	}
	if active := wc.ActiveSecrets(time.Now()); len(active) != 2 {
		t.Errorf("%d active secrets during rotation, want 2", len(active))
	}
	r = e.do("POST", "/v1/tenants/"+c.TenantID+"/rotate-secret", testAdminToken, "")
	if wc, _ := e.srv.Configs.WebhookConfig(ctx, c.TenantID); r.Code != 200 || len(wc.Previous) != 2 || len(wc.RotationHistory) != 2 {
		t.Errorf("second rotation: %d, %d previous, %d history", r.Code, len(wc.Previous), len(wc.RotationHistory))
	}

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
		e := start(t, admintest.Options{Configs: func(c vault.ConfigStore) vault.ConfigStore {
			return failingPuts{ConfigStore: c, err: errors.New("injected: vault sealed")}
		}})
		r := e.do("POST", "/v1/tenants", testAdminToken, `{"targetUrl":"https://hooks.example.com/in"}`)
		if r.Code < 500 {
			t.Fatalf("status %d, want 5xx; %s", r.Code, r.Body)
		}
		if code, _ := r.ErrorBody(t); code != "internal" {
			t.Errorf("code %q", code)
		}
		if strings.Contains(string(r.Body), "vault sealed") {
			t.Errorf("internal error detail leaked to the client: %s", r.Body)
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
		e := start(t, admintest.Options{Identity: identity.NewStore(kv)})
		r := e.do("POST", "/v1/tenants", testAdminToken, `{"targetUrl":"https://hooks.example.com/in"}`)
		if r.Code != http.StatusServiceUnavailable {
			t.Fatalf("status %d, want 503; %s", r.Code, r.Body)
		}
		if code, msg := r.ErrorBody(t); code != "unavailable" || msg != "identity store is unavailable; retry later" {
			t.Errorf("error %q %q", code, msg)
		}
		if n := e.storedConfigs(); n != 0 {
			t.Errorf("%d webhook configs left behind by a failed creation", n)
		}
		if !strings.Contains(e.logs.String(), "webhook config removed") {
			t.Errorf("cleanup not logged")
		}
	})
}
