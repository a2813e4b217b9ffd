package gateway_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/edgehook/edgehook/gateway"
	"github.com/edgehook/edgehook/identity"
)

// addKey gives tenantID a key holding scopes, as the admin API does, and returns it.
func (e *env) addKey(tenantID string, scopes identity.Scopes) (string, identity.Key) {
	e.t.Helper()
	key, hash, err := identity.NewAPIKey()
	if err != nil {
		e.t.Fatal(err)
	}
	k, err := e.identity.AddKey(context.Background(), tenantID, "test "+scopes.String(), scopes, hash)
	if err != nil {
		e.t.Fatal(err)
	}
	return key, k
}

// TestKeyScopes: sending needs send, reading an event or its attempts read, a replay
// send or manage, GET /v1/tenant any scope; a key lacking the scope gets 403
// insufficient_scope naming it, an unknown key still 401. The key a tenant gets at
// creation holds every scope.
func TestKeyScopes(t *testing.T) {
	e := start(t, options{})
	c := e.createTenant(`{"targetUrl":"http://127.0.0.1:9/hook"}`)
	send, _ := e.addKey(c.TenantID, identity.Send)
	read, _ := e.addKey(c.TenantID, identity.Read)
	manage, _ := e.addKey(c.TenantID, identity.Manage)
	id, _ := e.ingest(c.APIKey, `{"type":"first"}`)
	e.ingest(send, `{"type":"by.send.key"}`)

	type want struct {
		code int
		msg  string
	}
	lacks := func(scopes string) want {
		return want{http.StatusForbidden, "this API key lacks the " + scopes + " scope this request needs"}
	}
	ok := func(code int) want { return want{code: code} }
	for _, tc := range []struct {
		key, method, path, body string
		want                    want
	}{
		{read, "POST", "/v1/events", `{}`, lacks("send")},
		{read, "POST", "/v1/events/batch", `{"events":[{"event":{}}]}`, lacks("send")},
		{manage, "POST", "/v1/events/batch", `{"events":[{"event":{}}]}`, lacks("send")},
		{send, "POST", "/v1/events/batch", `{"events":[{"event":{}}]}`, ok(202)},
		{manage, "POST", "/v1/events", `{}`, lacks("send")},
		{send, "GET", "/v1/events/" + id, "", lacks("read")},
		{manage, "GET", "/v1/events/" + id, "", lacks("read")},
		{send, "GET", "/v1/events/" + id + "/attempts", "", lacks("read")},
		{read, "GET", "/v1/events/" + id, "", ok(200)},
		{read, "GET", "/v1/events/" + id + "/attempts", "", ok(200)},
		{read, "POST", "/v1/events/" + id + "/replay", "", lacks("send or manage")},
		{send, "POST", "/v1/events/" + id + "/replay", "", ok(409)}, // allowed; the event is still queued
		{manage, "POST", "/v1/events/" + id + "/replay", "", ok(409)},
		{send, "GET", "/v1/tenant", "", ok(200)},
		{read, "GET", "/v1/tenant", "", ok(200)},
		{manage, "GET", "/v1/tenant", "", ok(200)},
		{c.APIKey, "GET", "/v1/events/" + id, "", ok(200)},
		{"ehk_unknown", "GET", "/v1/events/" + id, "", want{401, "missing or unknown API key"}},
	} {
		r := e.do(tc.method, tc.path, tc.key, tc.body)
		if r.code != tc.want.code {
			t.Errorf("%s %s: %d %s, want %d", tc.method, tc.path, r.code, r.body, tc.want.code)
			continue
		}
		if tc.want.msg == "" {
			continue
		}
		code, msg := r.errorBody(t)
		wantCode := "insufficient_scope"
		if tc.want.code == 401 {
			wantCode = "unauthorized"
		}
		if code != wantCode || msg != tc.want.msg {
			t.Errorf("%s %s: %s %q, want %s %q", tc.method, tc.path, code, msg, wantCode, tc.want.msg)
		}
	}
	if n := e.subjectCount(c.TenantID); n != 3 {
		t.Errorf("EVENTS holds %d events of the tenant, want the 3 sent with send scope (one in a batch)", n)
	}
}

// TestRevokedKeyIsRefusedAtOnce: a key the gateway's view holds in memory is refused
// (401) within a second of its revocation at the admin API, while the tenant's other
// keys keep working.
func TestRevokedKeyIsRefusedAtOnce(t *testing.T) {
	e := start(t, options{})
	c := e.createTenant(`{"targetUrl":"http://127.0.0.1:9/hook"}`)
	key, k := e.addKey(c.TenantID, identity.Send)
	e.eventually(5*time.Second, "both keys in the view's memory", func() bool { return e.view.Keys() == 2 })
	e.ingest(key, `{}`)
	if r := e.do("DELETE", "/v1/tenants/"+c.TenantID+"/keys/"+k.KeyID, testAdminToken, ""); r.code != 204 {
		t.Fatalf("revoke at the admin API: %d %s", r.code, r.body)
	}
	took := e.eventually(time.Second, "revoked key refused", func() bool {
		return e.do("POST", "/v1/events", key, `{}`).code == 401
	})
	t.Logf("revoked key refused after %v", took)
	e.ingest(c.APIKey, `{}`)
}

// TestRelayWithoutAnAdminAPI: with no admin API answering (none running, or at an edge
// the link down), a tenant's endpoint and key requests get 503 with Retry-After, not a
// hang, but GET /v1/tenant, which shows the identity record from the gateway's view
// (without the target URL); ingest is unaffected.
func TestRelayWithoutAnAdminAPI(t *testing.T) {
	e := start(t, options{noAdmin: true, cfg: gateway.Config{AdminTimeout: 500 * time.Millisecond}})
	key, hash, _ := identity.NewAPIKey()
	if err := e.identity.Create(context.Background(), identity.Tenant{TenantID: "ten_alone", Status: identity.StatusActive, Plan: "free", CreatedAt: time.Now().UTC()}, hash); err != nil {
		t.Fatal(err)
	}
	r := e.do("GET", "/v1/tenant", key, "")
	if got := strings.Join(keys(r.json(t)), ","); r.code != 200 || got != "createdAt,plan,status,tenantId" {
		t.Errorf("GET /v1/tenant without an admin API: %d %s", r.code, r.body)
	}
	for _, req := range [][2]string{{"PATCH", "/v1/tenant"}, {"GET", "/v1/tenant/keys"}, {"POST", "/v1/tenant/rotate-secret"}} {
		r := e.do(req[0], req[1], key, `{"targetUrl":"https://x.example/"}`)
		if code, msg := r.errorBody(t); r.code != 503 || code != "unavailable" || msg != "the admin API is unavailable; retry later" || r.header.Get("Retry-After") == "" {
			t.Errorf("%s %s: %d %s", req[0], req[1], r.code, r.body)
		}
	}
	e.ingest(key, `{}`)
}
