package gateway_test

import (
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/edgehook/edgehook/identity"
)

func keys(m map[string]any) []string { return slices.Sorted(maps.Keys(m)) }

// TestGatewayServesNoAdminAPI: the admin API is its own component; the gateway, which
// holds no Vault token and cannot write identity, answers none of its routes, even
// with the admin token.
func TestGatewayServesNoAdminAPI(t *testing.T) {
	e := start(t, options{})
	c := e.createTenant(`{"targetUrl":"https://hooks.example.com/in"}`)
	for _, req := range [][2]string{{"POST", "/v1/tenants"}, {"GET", "/v1/tenants/" + c.TenantID}, {"PATCH", "/v1/tenants/" + c.TenantID},
		{"POST", "/v1/tenants/" + c.TenantID + "/rotate-secret"}, {"GET", "/v1/tenants/" + c.TenantID + "/keys"}} {
		r := e.doAt(e.base, req[0], req[1], testAdminToken, `{"targetUrl":"https://evil.example.com/"}`)
		if code, msg := r.errorBody(t); r.code != 404 || code != "not_found" || msg != "no such route" {
			t.Errorf("gateway %s %s: %d %s", req[0], req[1], r.code, r.body)
		}
	}
	// Nor does the admin token pass for a tenant's key on the relayed routes.
	if r := e.do("GET", "/v1/tenant", testAdminToken, ""); r.code != 401 {
		t.Errorf("GET /v1/tenant with the admin token: %d %s", r.code, r.body)
	}
}

// TestALeakedSendKeyCannotRedirectWebhooks: PATCH /v1/tenant (the target URL), the
// signing secret and the keys need the manage scope; a key that can only send events
// (the kind that sits in an application's config) changes nothing, and the tenant's
// manage key still can, through the gateway, which relays it to the admin API.
func TestALeakedSendKeyCannotRedirectWebhooks(t *testing.T) {
	e := start(t, options{})
	c := e.createTenant(`{"targetUrl":"https://hooks.example.com/in"}`)
	send, _ := e.addKey(c.TenantID, identity.Send|identity.Read)
	for _, req := range [][3]string{
		{"PATCH", "/v1/tenant", `{"targetUrl":"https://evil.example.com/"}`},
		{"POST", "/v1/tenant/rotate-secret", ""},
		{"GET", "/v1/tenant/keys", ""},
		{"POST", "/v1/tenant/keys", `{"name":"mine","scopes":["manage"]}`},
	} {
		r := e.do(req[0], req[1], send, req[2])
		if code, msg := r.errorBody(t); r.code != 403 || code != "insufficient_scope" || !strings.Contains(msg, "manage") {
			t.Errorf("%s %s with a send key: %d %s", req[0], req[1], r.code, r.body)
		}
	}
	if tn := e.do("GET", "/v1/tenants/"+c.TenantID, testAdminToken, ""); tn.json(t)["targetUrl"] != "https://hooks.example.com/in" {
		t.Fatalf("the send key changed the target: %s", tn.body)
	}
	// Reading the tenant needs any scope; the answer shows its target, never a secret.
	r := e.do("GET", "/v1/tenant", send, "")
	if got := strings.Join(keys(r.json(t)), ","); r.code != 200 || got != "createdAt,plan,status,targetUrl,tenantId" {
		t.Errorf("GET /v1/tenant: %d %s", r.code, r.body)
	}
	// The key the tenant got at creation holds manage.
	r = e.do("PATCH", "/v1/tenant", c.APIKey, `{"targetUrl":"https://hooks.example.com/v2"}`)
	if r.code != 200 || r.json(t)["targetUrl"] != "https://hooks.example.com/v2" {
		t.Errorf("PATCH /v1/tenant with the first key: %d %s", r.code, r.body)
	}
	e.ingest(send, `{}`)
}
