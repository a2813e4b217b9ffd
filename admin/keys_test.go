package admin_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/edgehook/edgehook/admin/admintest"
	"github.com/edgehook/edgehook/identity"
)

// keyAnswer is an answer about one key.
type keyAnswer struct {
	KeyID       string   `json:"keyId"`
	Name        string   `json:"name"`
	Scopes      []string `json:"scopes"`
	Fingerprint string   `json:"fingerprint"`
	APIKey      string   `json:"apiKey"`
}

func decodeKey(t *testing.T, b []byte) keyAnswer {
	t.Helper()
	var k keyAnswer
	if err := json.Unmarshal(b, &k); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	return k
}

// TestKeyManagement walks a key through creation, listing, rotation and revocation at
// the admin API, with the admin token and with a tenant's own manage key, and checks
// the keys are shown only when created or rotated, never listed nor logged.
func TestKeyManagement(t *testing.T) {
	e := start(t, admintest.Options{})
	c := e.createTenant(`{"targetUrl":"https://hooks.example.com/in"}`)
	base := "/v1/tenants/" + c.TenantID + "/keys"
	ctx := context.Background()

	r := e.do("POST", base, testAdminToken, `{"name":"ci pipeline","scopes":["send","read"]}`)
	if r.Code != 201 {
		t.Fatalf("create key: %d %s", r.Code, r.Body)
	}
	k := decodeKey(t, r.Body)
	if !strings.HasPrefix(k.APIKey, identity.APIKeyPrefix) || !strings.HasPrefix(k.KeyID, "key_") || k.Name != "ci pipeline" ||
		strings.Join(k.Scopes, ",") != "send,read" || len(k.Fingerprint) != 12 || strings.Contains(k.APIKey, k.Fingerprint) {
		t.Fatalf("created key %+v", k)
	}
	if p, err := e.srv.Identity.Authenticate(ctx, []byte(k.APIKey)); err != nil || p.Scopes != identity.Send|identity.Read {
		t.Fatalf("the new key authenticates as %+v (%v)", p, err)
	}

	r = e.do("GET", base, testAdminToken, "")
	var list struct{ Keys []keyAnswer }
	if err := json.Unmarshal(r.Body, &list); err != nil || r.Code != 200 || len(list.Keys) != 2 {
		t.Fatalf("list: %d %s", r.Code, r.Body)
	}
	if list.Keys[0].Name != identity.FirstKeyName || strings.Join(list.Keys[0].Scopes, ",") != "send,read,manage" || list.Keys[1].KeyID != k.KeyID {
		t.Errorf("listed %+v", list.Keys)
	}
	for _, secret := range []string{k.APIKey, c.APIKey, `"apiKey"`} {
		if strings.Contains(string(r.Body), secret) {
			t.Errorf("the list shows a key (%s)", secret[:6])
		}
	}

	r = e.do("POST", base+"/"+k.KeyID+"/rotate", testAdminToken, "")
	rot := decodeKey(t, r.Body)
	if r.Code != 200 || rot.KeyID != k.KeyID || rot.Name != k.Name || strings.Join(rot.Scopes, ",") != "send,read" || rot.APIKey == k.APIKey || rot.APIKey == "" {
		t.Fatalf("rotate: %d %s", r.Code, r.Body)
	}
	if _, err := e.srv.Identity.Authenticate(ctx, []byte(k.APIKey)); !errors.Is(err, identity.ErrUnknownKey) {
		t.Errorf("the rotated-out key: %v, want unknown", err)
	}

	if r := e.do("DELETE", base+"/"+k.KeyID, testAdminToken, ""); r.Code != 204 || len(r.Body) != 0 {
		t.Fatalf("revoke: %d %s", r.Code, r.Body)
	}
	if _, err := e.srv.Identity.Authenticate(ctx, []byte(rot.APIKey)); !errors.Is(err, identity.ErrUnknownKey) {
		t.Errorf("the revoked key: %v, want unknown", err)
	}
	for _, req := range [][2]string{{"DELETE", base + "/" + k.KeyID}, {"POST", base + "/" + k.KeyID + "/rotate"}, {"DELETE", base + "/key_0000000000000000"}} {
		if code, msg := e.do(req[0], req[1], testAdminToken, "").ErrorBody(t); code != "not_found" || msg != "API key not found" {
			t.Errorf("%s %s: %s %s", req[0], req[1], code, msg)
		}
	}

	// The tenant's own manage key, on the tenant routes (the gateway relays them here).
	r = e.do("POST", "/v1/tenant/keys", c.APIKey, `{"name":"reader","scopes":["read"]}`)
	reader := decodeKey(t, r.Body)
	if r.Code != 201 || reader.APIKey == "" {
		t.Fatalf("self-service create: %d %s", r.Code, r.Body)
	}
	if r := e.do("GET", "/v1/tenant/keys", reader.APIKey, ""); r.Code != 403 {
		t.Errorf("a read key lists keys: %d %s", r.Code, r.Body)
	}
	if r := e.do("DELETE", "/v1/tenant/keys/"+reader.KeyID, c.APIKey, ""); r.Code != 204 {
		t.Errorf("self-service revoke: %d %s", r.Code, r.Body)
	}
	if r := e.do("GET", "/v1/tenant/keys", "ehk_not-a-key", ""); r.Code != 401 {
		t.Errorf("unknown key: %d", r.Code)
	}
	if r := e.do("GET", "/v1/tenant/keys", testAdminToken, ""); r.Code != 401 {
		t.Errorf("the admin token on a tenant route: %d", r.Code)
	}

	logs := e.logs.String()
	if !strings.Contains(logs, k.KeyID) || !strings.Contains(logs, `"msg":"API key revoked"`) {
		t.Errorf("key changes not logged by key id:\n%s", logs)
	}
	for _, secret := range []string{k.APIKey, rot.APIKey, reader.APIKey, c.APIKey} {
		if strings.Contains(logs, secret) {
			t.Errorf("a key appears in the logs")
		}
	}
}

// TestKeyValidation: bad key requests get 400 with a message naming the problem, and
// nothing is written.
func TestKeyValidation(t *testing.T) {
	e := start(t, admintest.Options{})
	c := e.createTenant(`{"targetUrl":"https://hooks.example.com/in"}`)
	base := "/v1/tenants/" + c.TenantID + "/keys"
	for body, msg := range map[string]string{
		`{"name":"x","scopes":["send","admin"]}`: `field "scopes": unknown scope "admin"; want send, read, manage`,
		`{"name":"x","scopes":[]}`:               `field "scopes" must list at least one of send, read, manage`,
		`{"name":"x"}`:                           `field "scopes" must list at least one of send, read, manage`,
		`{"scopes":["send"]}`:                    `field "name" must be 1-100 characters without control characters`,
		fmt.Sprintf(`{"name":%q,"scopes":["send"]}`, strings.Repeat("n", 101)): `field "name" must be 1-100 characters without control characters`,
		`{"name":"x","scopes":"send"}`:                                         `field "scopes" must be a slice`,
		`{"name":"x","scopes":["send"],"apiKey":"ehk_mine"}`:                   `unknown field "apiKey"`,
	} {
		r := e.do("POST", base, testAdminToken, body)
		if code, got := r.ErrorBody(t); r.Code != 400 || code != "invalid_request" || got != msg {
			t.Errorf("%s: %d %s %q, want %q", body, r.Code, code, got, msg)
		}
	}
	for i := 1; i < identity.MaxKeys; i++ {
		if r := e.do("POST", base, testAdminToken, `{"name":"k","scopes":["read"]}`); r.Code != 201 {
			t.Fatalf("key %d: %d %s", i+1, r.Code, r.Body)
		}
	}
	r := e.do("POST", base, testAdminToken, `{"name":"k","scopes":["read"]}`)
	if code, msg := r.ErrorBody(t); r.Code != 400 || code != "invalid_request" || msg != "the tenant holds 20 API keys, the most it may; revoke one first" {
		t.Errorf("key 21: %d %s %s", r.Code, code, msg)
	}
	if code, msg := e.do("GET", "/v1/tenants/ten_nope/keys", testAdminToken, "").ErrorBody(t); code != "not_found" || msg != "tenant not found" {
		t.Errorf("unknown tenant: %s %s", code, msg)
	}
	if r := e.do("GET", base, "", ""); r.Code != 401 {
		t.Errorf("no token: %d", r.Code)
	}
}
