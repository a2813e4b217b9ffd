package worker

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/edgehook/edgehook/status"
	"github.com/edgehook/edgehook/vault"
	"github.com/edgehook/edgehook/webhook"
)

// TestReusedSignersFollowSecretChanges runs one delivery goroutine, whose Signer for
// the tenant is reused between events, through a rotation, the expiry of the previous
// secret (no configuration write: only time passes) and a second rotation: every
// webhook is signed with exactly the secrets active when it is sent, never a replaced
// or expired one.
func TestReusedSignersFollowSecretChanges(t *testing.T) {
	e := newEnv(t, nil)
	ep := newEndpoint(t, e.configs)
	tn := e.tenant(t, ep)
	cfg := e.config()
	cfg.Concurrency = 1 // one goroutine, one signer cache
	e.start(t, cfg)

	// deliver sends one event and returns its webhook's signatures, checking that
	// each verifies with the matching secret of want, in order, and with no other.
	deliver := func(step string, want []webhook.Secret, never ...webhook.Secret) {
		t.Helper()
		id := e.publish(t, tn, []byte(`{"step":"`+step+`"}`))
		e.waitStatus(t, tn, id, status.Delivered)
		h := ep.hitsFor(id)[0]
		if h.verifyErr != nil {
			t.Errorf("%s: endpoint could not verify: %v", step, h.verifyErr)
		}
		sigs := strings.Fields(h.signature)
		if len(sigs) != len(want) {
			t.Fatalf("%s: %d signatures %q, want %d", step, len(sigs), h.signature, len(want))
		}
		for i, sec := range want {
			if err := webhook.Verify(h.id, h.timestamp, sigs[i], h.body, time.Now(), webhook.DefaultTolerance, sec); err != nil {
				t.Errorf("%s: signature %d does not verify with its secret: %v", step, i+1, err)
			}
		}
		for _, old := range never {
			if err := webhook.Verify(h.id, h.timestamp, h.signature, h.body, time.Now(), webhook.DefaultTolerance, old); !errors.Is(err, webhook.ErrNoMatch) {
				t.Errorf("%s: signed with a secret no longer active (Verify: %v)", step, err)
			}
		}
	}

	wc, _ := e.configs.WebhookConfig(context.Background(), tn)
	first := wc.Secret
	deliver("first", []webhook.Secret{first})
	deliver("first again", []webhook.Secret{first}) // the cached signer

	second := mustSecret(t)
	expiry := time.Now().Add(3 * time.Second)
	wc.Secret, wc.Previous = second, []vault.PreviousSecret{{Secret: first, ExpiresAt: expiry}}
	e.configs.put(wc)
	deliver("rotated", []webhook.Secret{second, first})
	if time.Now().After(expiry) {
		t.Fatal("the rotated webhook took longer than the previous secret's 3s window")
	}

	time.Sleep(time.Until(expiry) + 10*time.Millisecond) // the window closes; the config is unchanged
	deliver("previous expired", []webhook.Secret{second}, first)

	third := mustSecret(t)
	wc.Secret, wc.Previous = third, nil
	e.configs.put(wc)
	deliver("rotated again, no grace", []webhook.Secret{third}, first, second)
}

func TestTenantCacheReusesOnlyMatchingSigners(t *testing.T) {
	a, b := mustSecret(t), mustSecret(t)
	var c tenantCache
	s1 := c.signer("t1", []webhook.Secret{a})
	if c.signer("t1", []webhook.Secret{a}) != s1 {
		t.Error("same tenant and secrets: signer not reused")
	}
	for _, secrets := range [][]webhook.Secret{{b}, {a, b}, {b, a}, nil} {
		if s := c.signer("t1", secrets); s == s1 || !s.SignsWith(secrets...) {
			t.Errorf("secrets changed to %d others: got a signer for the old set", len(secrets))
		}
	}
	if s := c.signer("t2", []webhook.Secret{a}); s == s1 {
		t.Error("another tenant shares t1's signer")
	}
	for i := range 3 * maxCachedTenants {
		c.signer("t"+strings.Repeat("x", i%7)+string(rune('a'+i%26))+string(rune('a'+i/26%26)), []webhook.Secret{a})
		if len(c.byTenant) > maxCachedTenants {
			t.Fatalf("cache holds %d tenants, bound is %d", len(c.byTenant), maxCachedTenants)
		}
	}
}
