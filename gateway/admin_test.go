package gateway_test

import (
	"maps"
	"slices"
	"strings"
	"testing"
)

func keys(m map[string]any) []string { return slices.Sorted(maps.Keys(m)) }

// TestGatewayServesNoAdminAPI: the admin API is its own component; the gateway, which
// holds no Vault token and cannot write identity, answers none of its routes, and
// sends a tenant's configuration changes there.
func TestGatewayServesNoAdminAPI(t *testing.T) {
	e := start(t, options{})
	c := e.createTenant(`{"targetUrl":"https://hooks.example.com/in"}`)
	for _, req := range [][2]string{{"POST", "/v1/tenants"}, {"GET", "/v1/tenants/" + c.TenantID}, {"PATCH", "/v1/tenants/" + c.TenantID}, {"POST", "/v1/tenants/" + c.TenantID + "/rotate-secret"}} {
		r := e.doAt(e.base, req[0], req[1], testAdminToken, `{"targetUrl":"https://evil.example.com/"}`)
		if code, msg := r.errorBody(t); r.code != 404 || code != "not_found" || msg != "no such route" {
			t.Errorf("gateway %s %s: %d %s", req[0], req[1], r.code, r.body)
		}
	}
	r := e.do("PATCH", "/v1/tenant", c.APIKey, `{"targetUrl":"https://evil.example.com/"}`)
	if code, msg := r.errorBody(t); r.code != 404 || code != "not_found" || !strings.Contains(msg, "admin API") {
		t.Errorf("PATCH /v1/tenant: %d %s", r.code, r.body)
	}
	if tn := e.do("GET", "/v1/tenants/"+c.TenantID, testAdminToken, ""); tn.json(t)["targetUrl"] != "https://hooks.example.com/in" {
		t.Errorf("target changed through the gateway: %s", tn.body)
	}
	r = e.do("GET", "/v1/tenant", c.APIKey, "")
	if got := strings.Join(keys(r.json(t)), ","); r.code != 200 || got != "createdAt,plan,status,tenantId" {
		t.Errorf("GET /v1/tenant: %d %s", r.code, r.body)
	}
	e.ingest(c.APIKey, `{}`)
}
