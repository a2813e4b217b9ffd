package vaulttest

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
)

// call sends a raw request and returns the status and decoded JSON body (nil if empty).
func call(t *testing.T, s *Server, method, path, token, body string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, s.Addr()+"/v1/"+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("X-Vault-Token", token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) == 0 {
		return resp.StatusCode, nil
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s %s: body is not JSON: %s", method, path, b)
	}
	return resp.StatusCode, m
}

// rawBody sends a raw request and returns the status and body text.
func rawBody(t *testing.T, s *Server, method, path, token string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, s.Addr()+"/v1/"+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("X-Vault-Token", token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b))
}

func apiClient(t *testing.T, s *Server, token string) *api.Client {
	t.Helper()
	cfg := api.DefaultConfig()
	cfg.Address = s.Addr()
	cfg.MaxRetries = 0
	c, err := api.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.SetToken(token)
	return c
}

func statusOf(err error) int {
	var re *api.ResponseError
	if errors.As(err, &re) {
		return re.StatusCode
	}
	return 0
}

func TestErrorShapes(t *testing.T) {
	s := Start(t)
	root := s.RootToken()
	cases := []struct {
		name, method, path, token string
		status                    int
		body                      string
	}{
		{"no token", "GET", "secret/data/x", "", 403, `{"errors":["permission denied"]}`},
		{"unknown token", "GET", "secret/data/x", "hvs.nope", 403, `{"errors":["permission denied"]}`},
		{"missing secret", "GET", "secret/data/x", root, 404, `{"errors":[]}`},
		{"missing metadata", "GET", "secret/metadata/x", root, 404, `{"errors":[]}`},
		{"empty list", "LIST", "secret/metadata/", root, 404, `{"errors":[]}`},
		{"unknown route", "GET", "nomount/x", root, 404, `{"errors":["no handler for route \"nomount/x\". route entry not found."]}`},
		{"bad method", "COPY", "secret/data/x", root, 405, `{"errors":["unsupported operation"]}`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			status, body := rawBody(t, s, c.method, c.path, c.token)
			if status != c.status || body != c.body {
				t.Fatalf("got %d %s, want %d %s", status, body, c.status, c.body)
			}
		})
	}
}

func TestKVv2(t *testing.T) {
	s := Start(t)
	root := s.RootToken()
	status, body := call(t, s, "POST", "secret/data/app/one", root, `{"data":{"k":"v1","n":1}}`)
	if status != 200 {
		t.Fatalf("write: %d %v", status, body)
	}
	meta := body["data"].(map[string]any)
	if meta["version"].(float64) != 1 || meta["deletion_time"] != "" || meta["destroyed"] != false || meta["created_time"] == "" {
		t.Fatalf("write metadata %v", meta)
	}
	call(t, s, "PUT", "secret/data/app/one", root, `{"data":{"k":"v2"}}`)
	status, body = call(t, s, "GET", "secret/data/app/one", root, "")
	if status != 200 {
		t.Fatalf("read: %d %v", status, body)
	}
	for _, k := range []string{"request_id", "lease_id", "renewable", "lease_duration", "data", "wrap_info", "warnings", "auth", "mount_type"} {
		if _, ok := body[k]; !ok {
			t.Errorf("read response lacks %q", k)
		}
	}
	d := body["data"].(map[string]any)
	if got := d["data"].(map[string]any); got["k"] != "v2" || len(got) != 1 {
		t.Fatalf("read data %v", got)
	}
	if d["metadata"].(map[string]any)["version"].(float64) != 2 {
		t.Fatalf("read metadata %v", d["metadata"])
	}
	_, body = call(t, s, "GET", "secret/data/app/one?version=1", root, "")
	if body["data"].(map[string]any)["data"].(map[string]any)["k"] != "v1" {
		t.Fatalf("version 1: %v", body)
	}

	// Check-and-set.
	if status, body := call(t, s, "POST", "secret/data/app/one", root, `{"data":{"k":"x"},"options":{"cas":1}}`); status != 400 {
		t.Fatalf("stale cas: %d %v", status, body)
	}
	if status, _ := call(t, s, "POST", "secret/data/app/one", root, `{"data":{"k":"v3"},"options":{"cas":2}}`); status != 200 {
		t.Fatalf("cas 2: %d", status)
	}
	if status, _ := call(t, s, "POST", "secret/data/app/new", root, `{"data":{"k":"x"},"options":{"cas":0}}`); status != 200 {
		t.Fatalf("cas 0 on a new key: %d", status)
	}
	if status, _ := call(t, s, "POST", "secret/data/app/x", root, `{"nodata":1}`); status != 400 {
		t.Fatalf("write without data: %d", status)
	}

	// List, metadata.
	call(t, s, "POST", "secret/data/app/sub/two", root, `{"data":{"a":"b"}}`)
	_, body = call(t, s, "LIST", "secret/metadata/app", root, "")
	keys := body["data"].(map[string]any)["keys"].([]any)
	if got := []string{keys[0].(string), keys[1].(string), keys[2].(string)}; !slices.Equal(got, []string{"new", "one", "sub/"}) || len(keys) != 3 {
		t.Fatalf("list keys %v", keys)
	}
	_, body2 := call(t, s, "GET", "secret/metadata/app/?list=true", root, "")
	if len(body2["data"].(map[string]any)["keys"].([]any)) != 3 {
		t.Fatalf("GET ?list=true: %v", body2)
	}
	_, body = call(t, s, "GET", "secret/metadata/app/one", root, "")
	md := body["data"].(map[string]any)
	if md["current_version"].(float64) != 3 || len(md["versions"].(map[string]any)) != 3 {
		t.Fatalf("metadata %v", md)
	}

	// Soft delete: 404 that still carries the metadata.
	if status, _ := call(t, s, "DELETE", "secret/data/app/one", root, ""); status != 204 {
		t.Fatalf("delete: %d", status)
	}
	status, body = call(t, s, "GET", "secret/data/app/one", root, "")
	if status != 404 || body["data"].(map[string]any)["data"] != nil || body["data"].(map[string]any)["metadata"].(map[string]any)["deletion_time"] == "" {
		t.Fatalf("read after soft delete: %d %v", status, body)
	}
	// Metadata delete removes every version; deleting again is fine.
	for range 2 {
		if status, _ := call(t, s, "DELETE", "secret/metadata/app/one", root, ""); status != 204 {
			t.Fatalf("metadata delete: %d", status)
		}
	}
	if status, body := call(t, s, "GET", "secret/data/app/one?version=1", root, ""); status != 404 || body["data"] != nil {
		t.Fatalf("read after metadata delete: %d %v", status, body)
	}
	// Reads of app/one: latest, version 1, after soft delete, after metadata delete.
	if n := s.KVReads("secret/data/app/one"); n != 4 {
		t.Fatalf("KVReads = %d, want 4", n)
	}
	if n := s.TotalKVReads(); n != 4 {
		t.Fatalf("TotalKVReads = %d, want 4", n)
	}
}

func TestKVVersionsArePruned(t *testing.T) {
	s := Start(t)
	root := s.RootToken()
	for range kvDefaultMaxVersions + 2 {
		call(t, s, "POST", "secret/data/k", root, `{"data":{"a":"b"}}`)
	}
	_, body := call(t, s, "GET", "secret/metadata/k", root, "")
	md := body["data"].(map[string]any)
	if len(md["versions"].(map[string]any)) != kvDefaultMaxVersions || md["oldest_version"].(float64) != 3 {
		t.Fatalf("metadata after %d writes: %v", kvDefaultMaxVersions+2, md)
	}
}

// TestCreateVersusUpdate checks Vault's existence check: a policy with only create can
// write a new secret but not overwrite it, one with only update the reverse.
func TestCreateVersusUpdate(t *testing.T) {
	s := Start(t)
	root := apiClient(t, s, s.RootToken())
	ctx := context.Background()
	if err := root.Sys().PutPolicyWithContext(ctx, "creator", `path "secret/data/*" { capabilities = ["create"] }`); err != nil {
		t.Fatal(err)
	}
	if err := root.Sys().PutPolicyWithContext(ctx, "updater", `path "secret/data/*" { capabilities = ["update"] }`); err != nil {
		t.Fatal(err)
	}
	tok := func(policy string) *api.Client {
		sec, err := root.Auth().Token().CreateWithContext(ctx, &api.TokenCreateRequest{Policies: []string{policy}})
		if err != nil {
			t.Fatal(err)
		}
		return apiClient(t, s, sec.Auth.ClientToken)
	}
	creator, updater := tok("creator"), tok("updater")
	write := func(c *api.Client, key string) error {
		_, err := c.Logical().WriteWithContext(ctx, "secret/data/"+key, map[string]any{"data": map[string]any{"a": "b"}})
		return err
	}
	if err := write(updater, "k"); statusOf(err) != 403 {
		t.Fatalf("update-only token created a secret: %v", err)
	}
	if err := write(creator, "k"); err != nil {
		t.Fatalf("create-only token could not create: %v", err)
	}
	if err := write(creator, "k"); statusOf(err) != 403 {
		t.Fatalf("create-only token overwrote a secret: %v", err)
	}
	if err := write(updater, "k"); err != nil {
		t.Fatalf("update-only token could not update: %v", err)
	}
}

func TestTokenLifecycle(t *testing.T) {
	s := Start(t)
	ctx := context.Background()
	root := apiClient(t, s, s.RootToken())
	if err := root.Sys().PutPolicyWithContext(ctx, "reader", `path "secret/data/*" { capabilities = ["read"] }`); err != nil {
		t.Fatal(err)
	}
	sec, err := root.Auth().Token().CreateWithContext(ctx, &api.TokenCreateRequest{Policies: []string{"reader"}, TTL: "1h", DisplayName: "w"})
	if err != nil {
		t.Fatal(err)
	}
	if sec.Auth.LeaseDuration != 3600 || !sec.Auth.Renewable || !slices.Equal(sec.Auth.Policies, []string{"default", "reader"}) || sec.Auth.Orphan {
		t.Fatalf("create auth %+v", sec.Auth)
	}
	if !strings.HasPrefix(sec.Auth.ClientToken, "hvs.") {
		t.Fatalf("token %q lacks the hvs. prefix", sec.Auth.ClientToken)
	}
	c := apiClient(t, s, sec.Auth.ClientToken)

	self, err := c.Auth().Token().LookupSelfWithContext(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ttl, err := self.TokenTTL()
	if err != nil || ttl <= 3590*time.Second || ttl > time.Hour {
		t.Fatalf("lookup-self ttl %v %v", ttl, err)
	}
	if pol, _ := self.TokenPolicies(); !slices.Equal(pol, []string{"default", "reader"}) {
		t.Fatalf("lookup-self policies %v", pol)
	}
	if self.Data["display_name"] != "token-w" || self.Data["path"] != "auth/token/create" {
		t.Fatalf("lookup-self data %v", self.Data)
	}

	renewed, err := c.Auth().Token().RenewSelfWithContext(ctx, 7200)
	if err != nil {
		t.Fatal(err)
	}
	if renewed.Auth.LeaseDuration != 7200 || renewed.Auth.ClientToken != sec.Auth.ClientToken {
		t.Fatalf("renew-self auth %+v", renewed.Auth)
	}

	// The default policy does not allow creating tokens or reading other paths.
	if _, err := c.Auth().Token().CreateWithContext(ctx, &api.TokenCreateRequest{}); statusOf(err) != 403 {
		t.Fatalf("token create by a non-root token: %v", err)
	}
	if _, err := c.Sys().ListMountsWithContext(ctx); statusOf(err) != 403 {
		t.Fatalf("sys/mounts by a reader: %v", err)
	}

	if err := c.Auth().Token().RevokeSelfWithContext(ctx, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Auth().Token().LookupSelfWithContext(ctx); statusOf(err) != 403 {
		t.Fatalf("lookup-self after revoke-self: %v", err)
	}
	if _, err := c.Logical().ReadWithContext(ctx, "secret/data/x"); statusOf(err) != 403 {
		t.Fatalf("read after revoke-self: %v", err)
	}
}

func TestTokenExpiry(t *testing.T) {
	s := Start(t)
	ctx := context.Background()
	root := apiClient(t, s, s.RootToken())
	sec, err := root.Auth().Token().CreateWithContext(ctx, &api.TokenCreateRequest{Policies: []string{"default"}, TTL: "1s"})
	if err != nil {
		t.Fatal(err)
	}
	c := apiClient(t, s, sec.Auth.ClientToken)
	if _, err := c.Auth().Token().LookupSelfWithContext(ctx); err != nil {
		t.Fatalf("fresh token: %v", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := c.Auth().Token().LookupSelfWithContext(ctx)
		if statusOf(err) == 403 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("token still valid 5s after a 1s TTL (err %v)", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Renewal cannot revive it.
	if _, err := c.Auth().Token().RenewSelfWithContext(ctx, 60); statusOf(err) != 403 {
		t.Fatalf("renew-self of an expired token: %v", err)
	}
}

func TestTokenMaxTTLAndNonRenewable(t *testing.T) {
	s := Start(t)
	ctx := context.Background()
	root := apiClient(t, s, s.RootToken())
	sec, err := root.Auth().Token().CreateWithContext(ctx, &api.TokenCreateRequest{TTL: "1m", ExplicitMaxTTL: "2m", Policies: []string{"default"}})
	if err != nil {
		t.Fatal(err)
	}
	renewed, err := apiClient(t, s, sec.Auth.ClientToken).Auth().Token().RenewSelfWithContext(ctx, 3600)
	if err != nil {
		t.Fatal(err)
	}
	if d := renewed.Auth.LeaseDuration; d > 120 || d < 118 || len(renewed.Warnings) != 1 {
		t.Fatalf("renewal past explicit max: lease %d warnings %v", d, renewed.Warnings)
	}
	no := false
	sec, err = root.Auth().Token().CreateWithContext(ctx, &api.TokenCreateRequest{TTL: "1m", Renewable: &no, Policies: []string{"default"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := apiClient(t, s, sec.Auth.ClientToken).Auth().Token().RenewSelfWithContext(ctx, 60); statusOf(err) != 400 {
		t.Fatalf("renewing a non-renewable token: %v", err)
	}
}

func TestTokenNumUses(t *testing.T) {
	s := Start(t)
	ctx := context.Background()
	root := apiClient(t, s, s.RootToken())
	sec, err := root.Auth().Token().CreateWithContext(ctx, &api.TokenCreateRequest{Policies: []string{"default"}, NumUses: 2})
	if err != nil {
		t.Fatal(err)
	}
	c := apiClient(t, s, sec.Auth.ClientToken)
	for i := range 2 {
		if _, err := c.Auth().Token().LookupSelfWithContext(ctx); err != nil {
			t.Fatalf("use %d: %v", i+1, err)
		}
	}
	if _, err := c.Auth().Token().LookupSelfWithContext(ctx); statusOf(err) != 403 {
		t.Fatalf("third use of a 2-use token: %v", err)
	}
}

func TestTokenHierarchy(t *testing.T) {
	s := Start(t)
	ctx := context.Background()
	root := apiClient(t, s, s.RootToken())
	for name, text := range map[string]string{
		"a":       `path "secret/data/a" { capabilities = ["read"] }`,
		"b":       `path "secret/data/b" { capabilities = ["read"] }`,
		"creator": `path "auth/token/create" { capabilities = ["update"] }`,
	} {
		if err := root.Sys().PutPolicyWithContext(ctx, name, text); err != nil {
			t.Fatal(err)
		}
	}
	sec, err := root.Auth().Token().CreateWithContext(ctx, &api.TokenCreateRequest{Policies: []string{"a", "creator"}})
	if err != nil {
		t.Fatal(err)
	}
	parent := apiClient(t, s, sec.Auth.ClientToken)
	if _, err := parent.Auth().Token().CreateWithContext(ctx, &api.TokenCreateRequest{Policies: []string{"b"}}); statusOf(err) != 400 {
		t.Fatalf("child with a policy the parent lacks: %v", err)
	}
	if _, err := parent.Auth().Token().CreateWithContext(ctx, &api.TokenCreateRequest{Policies: []string{"root"}}); statusOf(err) != 400 {
		t.Fatalf("child with root: %v", err)
	}
	child, err := parent.Auth().Token().CreateWithContext(ctx, &api.TokenCreateRequest{Policies: []string{"a"}})
	if err != nil {
		t.Fatal(err)
	}
	// A root-created token without policies inherits root.
	rootChild, err := root.Auth().Token().CreateWithContext(ctx, &api.TokenCreateRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(rootChild.Auth.Policies, []string{"root"}) || rootChild.Auth.LeaseDuration != 0 {
		t.Fatalf("root child auth %+v", rootChild.Auth)
	}
	if err := root.Auth().Token().RevokeTreeWithContext(ctx, sec.Auth.ClientToken); err != nil {
		t.Fatal(err)
	}
	if _, err := apiClient(t, s, child.Auth.ClientToken).Auth().Token().LookupSelfWithContext(ctx); statusOf(err) != 403 {
		t.Fatalf("child of a revoked token still valid: %v", err)
	}
}

func TestAppRole(t *testing.T) {
	s := Start(t)
	ctx := context.Background()
	root := apiClient(t, s, s.RootToken())
	if err := root.Sys().PutPolicyWithContext(ctx, "reader", `path "secret/data/*" { capabilities = ["read"] }`); err != nil {
		t.Fatal(err)
	}
	// Login before the method is enabled: no such route.
	if _, err := apiClient(t, s, "").Logical().WriteWithContext(ctx, "auth/approle/login", map[string]any{"role_id": "x"}); statusOf(err) != 403 {
		t.Fatalf("login on a disabled method: %v", err)
	}
	if err := root.Sys().EnableAuthWithOptionsWithContext(ctx, "approle", &api.EnableAuthOptions{Type: "approle"}); err != nil {
		t.Fatal(err)
	}
	if err := root.Sys().EnableAuthWithOptionsWithContext(ctx, "approle", &api.EnableAuthOptions{Type: "approle"}); statusOf(err) != 400 {
		t.Fatalf("enabling twice: %v", err)
	}
	if _, err := root.Logical().WriteWithContext(ctx, "auth/approle/role/Worker", map[string]any{
		"token_policies": []string{"reader"}, "token_ttl": "20m", "token_max_ttl": "1h", "secret_id_num_uses": 2,
	}); err != nil {
		t.Fatal(err)
	}
	roleSec, err := root.Logical().ReadWithContext(ctx, "auth/approle/role/worker/role-id")
	if err != nil {
		t.Fatal(err)
	}
	roleID := roleSec.Data["role_id"].(string)
	sidSec, err := root.Logical().WriteWithContext(ctx, "auth/approle/role/worker/secret-id", nil)
	if err != nil {
		t.Fatal(err)
	}
	secretID := sidSec.Data["secret_id"].(string)

	anon := apiClient(t, s, "")
	login := func(role, secret string) (*api.Secret, error) {
		return anon.Logical().WriteWithContext(ctx, "auth/approle/login", map[string]any{"role_id": role, "secret_id": secret})
	}
	for name, args := range map[string][2]string{"bad secret": {roleID, "nope"}, "bad role": {"nope", secretID}} {
		if _, err := login(args[0], args[1]); statusOf(err) != 400 || !strings.Contains(err.Error(), "invalid role or secret ID") {
			t.Fatalf("%s: %v", name, err)
		}
	}
	sec, err := login(roleID, secretID)
	if err != nil {
		t.Fatal(err)
	}
	a := sec.Auth
	if !slices.Equal(a.Policies, []string{"default", "reader"}) || a.LeaseDuration != 1200 || !a.Renewable || !a.Orphan || a.Metadata["role_name"] != "worker" {
		t.Fatalf("login auth %+v", a)
	}
	c := apiClient(t, s, a.ClientToken)
	if _, err := c.Logical().ReadWithContext(ctx, "secret/data/x"); err != nil {
		t.Fatalf("AppRole token read: %v", err)
	}
	renewed, err := c.Auth().Token().RenewSelfWithContext(ctx, 7200)
	if err != nil || renewed.Auth.LeaseDuration > 3600 {
		t.Fatalf("renewal past token_max_ttl: %v %+v", err, renewed)
	}
	// The secret id had two uses.
	if _, err := login(roleID, secretID); err != nil {
		t.Fatalf("second login: %v", err)
	}
	if _, err := login(roleID, secretID); statusOf(err) != 400 {
		t.Fatalf("third login with a 2-use secret id: %v", err)
	}
	// Destroyed secret ids stop working.
	sidSec, err = root.Logical().WriteWithContext(ctx, "auth/approle/role/worker/secret-id", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := root.Logical().WriteWithContext(ctx, "auth/approle/role/worker/secret-id/destroy", map[string]any{"secret_id": sidSec.Data["secret_id"]}); err != nil {
		t.Fatal(err)
	}
	if _, err := login(roleID, sidSec.Data["secret_id"].(string)); statusOf(err) != 400 {
		t.Fatalf("login with a destroyed secret id: %v", err)
	}
	role, err := root.Logical().ReadWithContext(ctx, "auth/approle/role/worker")
	if err != nil {
		t.Fatal(err)
	}
	if role.Data["token_ttl"].(json.Number).String() != "1200" {
		t.Fatalf("role read %v", role.Data)
	}
	list, err := root.Logical().ListWithContext(ctx, "auth/approle/role")
	if err != nil || len(list.Data["keys"].([]any)) != 1 {
		t.Fatalf("role list %v %v", list, err)
	}
}

func TestPoliciesAPI(t *testing.T) {
	s := Start(t)
	ctx := context.Background()
	root := apiClient(t, s, s.RootToken())
	if err := root.Sys().PutPolicyWithContext(ctx, "bad", `path "a" { capabilities = ["reed"] }`); statusOf(err) != 400 {
		t.Fatalf("invalid policy accepted: %v", err)
	}
	if err := root.Sys().PutPolicyWithContext(ctx, "root", `path "a" { capabilities = ["read"] }`); statusOf(err) != 400 {
		t.Fatalf("root policy overwritten: %v", err)
	}
	text := `path "secret/data/p" { capabilities = ["read"] }`
	if err := root.Sys().PutPolicyWithContext(ctx, "p", text); err != nil {
		t.Fatal(err)
	}
	got, err := root.Sys().GetPolicyWithContext(ctx, "p")
	if err != nil || got != text {
		t.Fatalf("get policy = %q, %v", got, err)
	}
	names, err := root.Sys().ListPoliciesWithContext(ctx)
	if err != nil || !slices.Equal(names, []string{"default", "p", "root"}) {
		t.Fatalf("list policies = %v, %v", names, err)
	}
	// sys/policies/acl is the newer form of the same store.
	if _, err := root.Logical().WriteWithContext(ctx, "sys/policies/acl/q", map[string]any{"policy": text}); err != nil {
		t.Fatal(err)
	}
	acl, err := root.Logical().ReadWithContext(ctx, "sys/policies/acl/q")
	if err != nil || acl.Data["policy"] != text {
		t.Fatalf("read sys/policies/acl/q: %v %v", acl, err)
	}
	// A token holding a policy loses its grants when the policy is deleted.
	sec, err := root.Auth().Token().CreateWithContext(ctx, &api.TokenCreateRequest{Policies: []string{"p"}})
	if err != nil {
		t.Fatal(err)
	}
	c := apiClient(t, s, sec.Auth.ClientToken)
	if _, err := c.Logical().ReadWithContext(ctx, "secret/data/p"); err != nil {
		t.Fatal(err)
	}
	if err := root.Sys().DeletePolicyWithContext(ctx, "p"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Logical().ReadWithContext(ctx, "secret/data/p"); statusOf(err) != 403 {
		t.Fatalf("read after its policy was deleted: %v", err)
	}
}

func TestMountsAPI(t *testing.T) {
	s := Start(t)
	ctx := context.Background()
	root := apiClient(t, s, s.RootToken())
	mounts, err := root.Sys().ListMountsWithContext(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if m := mounts["secret/"]; m == nil || m.Type != "kv" || m.Options["version"] != "2" {
		t.Fatalf("dev secret/ mount missing: %+v", mounts)
	}
	if err := root.Sys().MountWithContext(ctx, "team/kv", &api.MountInput{Type: "kv-v2"}); err != nil {
		t.Fatal(err)
	}
	if err := root.Sys().MountWithContext(ctx, "team/kv", &api.MountInput{Type: "kv", Options: map[string]string{"version": "2"}}); statusOf(err) != 400 {
		t.Fatalf("mounting twice: %v", err)
	}
	if err := root.Sys().MountWithContext(ctx, "team/kv/sub", &api.MountInput{Type: "kv-v2"}); statusOf(err) != 400 {
		t.Fatalf("mount below a mount: %v", err)
	}
	if err := root.Sys().MountWithContext(ctx, "other", &api.MountInput{Type: "database"}); statusOf(err) != 400 {
		t.Fatalf("unsupported engine type accepted: %v", err)
	}
	if _, err := root.Logical().WriteWithContext(ctx, "team/kv/data/a", map[string]any{"data": map[string]any{"x": "y"}}); err != nil {
		t.Fatal(err)
	}
	info, err := root.Logical().ReadWithContext(ctx, "sys/mounts/team/kv")
	if err != nil || info.Data["type"] != "kv" {
		t.Fatalf("read mount: %v %v", info, err)
	}
	if err := root.Sys().UnmountWithContext(ctx, "team/kv"); err != nil {
		t.Fatal(err)
	}
	// The API client reports a 404 as no secret and no error.
	if sec, err := root.Logical().ReadWithContext(ctx, "team/kv/data/a"); sec != nil || err != nil {
		t.Fatalf("read from an unmounted engine: %v %v", sec, err)
	}
	if status, _ := rawBody(t, s, "GET", "team/kv/data/a", s.RootToken()); status != 404 {
		t.Fatalf("read from an unmounted engine: status %d", status)
	}
}

func TestSysAuthNeedsSudo(t *testing.T) {
	s := Start(t)
	ctx := context.Background()
	root := apiClient(t, s, s.RootToken())
	for name, text := range map[string]string{
		"nosudo": `path "sys/auth/*" { capabilities = ["create", "update"] }`,
		"sudo":   `path "sys/auth/*" { capabilities = ["create", "update", "sudo"] }`,
	} {
		if err := root.Sys().PutPolicyWithContext(ctx, name, text); err != nil {
			t.Fatal(err)
		}
	}
	for name, want := range map[string]int{"nosudo": 403, "sudo": 0} {
		sec, err := root.Auth().Token().CreateWithContext(ctx, &api.TokenCreateRequest{Policies: []string{name}})
		if err != nil {
			t.Fatal(err)
		}
		err = apiClient(t, s, sec.Auth.ClientToken).Sys().EnableAuthWithOptionsWithContext(ctx, "ar-"+name, &api.EnableAuthOptions{Type: "approle"})
		if statusOf(err) != want {
			t.Fatalf("%s: enable auth: %v", name, err)
		}
	}
}

func TestCapabilitiesSelf(t *testing.T) {
	s := Start(t)
	ctx := context.Background()
	root := apiClient(t, s, s.RootToken())
	if err := root.Sys().PutPolicyWithContext(ctx, "p", `path "secret/data/*" { capabilities = ["read", "list"] }`); err != nil {
		t.Fatal(err)
	}
	sec, err := root.Auth().Token().CreateWithContext(ctx, &api.TokenCreateRequest{Policies: []string{"p"}})
	if err != nil {
		t.Fatal(err)
	}
	c := apiClient(t, s, sec.Auth.ClientToken)
	caps, err := c.Sys().CapabilitiesSelfWithContext(ctx, "secret/data/x")
	if err != nil || !slices.Equal(caps, []string{"list", "read"}) {
		t.Fatalf("capabilities = %v, %v", caps, err)
	}
	caps, err = c.Sys().CapabilitiesSelfWithContext(ctx, "sys/mounts")
	if err != nil || !slices.Equal(caps, []string{"deny"}) {
		t.Fatalf("capabilities = %v, %v", caps, err)
	}
	caps, err = root.Sys().CapabilitiesSelfWithContext(ctx, "anything")
	if err != nil || !slices.Equal(caps, []string{"root"}) {
		t.Fatalf("root capabilities = %v, %v", caps, err)
	}
}

func TestSealed(t *testing.T) {
	s := Start(t)
	root := s.RootToken()
	call(t, s, "POST", "secret/data/k", root, `{"data":{"a":"b"}}`)
	s.SetSealed(true)
	if status, body := rawBody(t, s, "GET", "secret/data/k", root); status != 503 || body != `{"errors":["Vault is sealed"]}` {
		t.Fatalf("sealed read: %d %s", status, body)
	}
	if status, body := call(t, s, "GET", "sys/health", "", ""); status != 503 || body["sealed"] != true {
		t.Fatalf("sealed health: %d %v", status, body)
	}
	s.SetSealed(false)
	if status, _ := call(t, s, "GET", "secret/data/k", root, ""); status != 200 {
		t.Fatalf("read after unseal: %d", status)
	}
	if status, body := call(t, s, "GET", "sys/health", "", ""); status != 200 || body["initialized"] != true {
		t.Fatalf("health: %d %v", status, body)
	}
}

func TestKVv1Mounts(t *testing.T) {
	s := Start(t)
	ctx := context.Background()
	root := apiClient(t, s, s.RootToken())
	if err := root.Sys().MountWithContext(ctx, "plain", &api.MountInput{Type: "kv"}); err != nil {
		t.Fatal(err)
	}
	if err := root.Sys().MountWithContext(ctx, "old", &api.MountInput{Type: "kv", Options: map[string]string{"version": "1"}}); err != nil {
		t.Fatal(err)
	}
	mounts, err := root.Sys().ListMountsWithContext(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if m := mounts["plain/"]; m == nil || m.Type != "kv" || m.Options["version"] != "" {
		t.Fatalf("kv mount without version: %+v", m)
	}
	if m := mounts["old/"]; m == nil || m.Type != "kv" || m.Options["version"] != "1" {
		t.Fatalf("kv version 1 mount: %+v", m)
	}
	// KV v1 stores the request body itself, unversioned; there is no data/ sub-path.
	if _, err := root.Logical().WriteWithContext(ctx, "old/app/one", map[string]any{"x": "y"}); err != nil {
		t.Fatal(err)
	}
	sec, err := root.Logical().ReadWithContext(ctx, "old/app/one")
	if err != nil || sec == nil || sec.Data["x"] != "y" || sec.LeaseDuration != 768*3600 {
		t.Fatalf("KV v1 read: %+v %v", sec, err)
	}
	if sec, err := root.Logical().ReadWithContext(ctx, "old/data/app/one"); sec != nil || err != nil {
		t.Fatalf("KV v1 has no data/ path: %v %v", sec, err)
	}
	list, err := root.Logical().ListWithContext(ctx, "old/app")
	if err != nil || list == nil || fmt.Sprint(list.Data["keys"]) != "[one]" {
		t.Fatalf("KV v1 list: %v %v", list, err)
	}
	if _, err := root.Logical().DeleteWithContext(ctx, "old/app/one"); err != nil {
		t.Fatal(err)
	}
	if sec, err := root.Logical().ReadWithContext(ctx, "old/app/one"); sec != nil || err != nil {
		t.Fatalf("read after delete: %v %v", sec, err)
	}
	if err := root.Sys().UnmountWithContext(ctx, "old"); err != nil {
		t.Fatal(err)
	}
}

func TestKVv2MountConfig(t *testing.T) {
	s := Start(t)
	ctx := context.Background()
	root := apiClient(t, s, s.RootToken())
	cfg, err := root.Logical().ReadWithContext(ctx, "secret/config")
	if err != nil || cfg == nil || cfg.Data["cas_required"] != false || fmt.Sprint(cfg.Data["max_versions"]) != "0" {
		t.Fatalf("config: %+v %v", cfg, err)
	}
	if _, err := root.Logical().WriteWithContext(ctx, "secret/config", map[string]any{"max_versions": 2, "cas_required": true}); err != nil {
		t.Fatal(err)
	}
	if _, err := root.Logical().WriteWithContext(ctx, "secret/data/k", map[string]any{"data": map[string]any{"v": 1}}); statusOf(err) != 400 {
		t.Fatalf("write without cas on a cas_required mount: %v", err)
	}
	for i := range 3 {
		body := map[string]any{"data": map[string]any{"v": i}, "options": map[string]any{"cas": i}}
		if _, err := root.Logical().WriteWithContext(ctx, "secret/data/k", body); err != nil {
			t.Fatal(err)
		}
	}
	meta, err := root.Logical().ReadWithContext(ctx, "secret/metadata/k")
	if err != nil || fmt.Sprint(meta.Data["oldest_version"]) != "2" || fmt.Sprint(meta.Data["current_version"]) != "3" {
		t.Fatalf("mount max_versions not applied: %+v %v", meta, err)
	}
	if _, err := root.Logical().WriteWithContext(ctx, "secret/config", map[string]any{"delete_version_after": "1h"}); statusOf(err) != 400 {
		t.Fatalf("unimplemented delete_version_after accepted: %v", err)
	}
}

// jwksServer serves a JSON Web Key Set (one generated RSA key) on 127.0.0.1.
func jwksServer(t *testing.T) string {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	b64 := base64.RawURLEncoding.EncodeToString
	jwks := fmt.Sprintf(`{"keys":[{"kty":"RSA","use":"sig","alg":"RS256","kid":"k1","n":%q,"e":%q}]}`,
		b64(key.N.Bytes()), b64(big.NewInt(int64(key.E)).Bytes()))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/.well-known/jwks.json" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, jwks)
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/.well-known/jwks.json"
}

func TestJWTAuthConfigAndRoles(t *testing.T) {
	s := Start(t)
	ctx := context.Background()
	root := apiClient(t, s, s.RootToken())
	if err := root.Sys().EnableAuthWithOptionsWithContext(ctx, "jwt-nomad", &api.EnableAuthOptions{Type: "jwt"}); err != nil {
		t.Fatal(err)
	}
	auths, err := root.Sys().ListAuthWithContext(ctx)
	if err != nil || auths["jwt-nomad/"] == nil || auths["jwt-nomad/"].Type != "jwt" || auths["token/"] == nil {
		t.Fatalf("auth list %v %v", auths, err)
	}
	if sec, err := root.Logical().ReadWithContext(ctx, "auth/jwt-nomad/config"); sec != nil || err != nil {
		t.Fatalf("config before it is written: %v %v", sec, err)
	}

	// The config needs exactly one key source, and a jwks_url must serve a key set.
	url := jwksServer(t)
	bad := []map[string]any{
		{},
		{"jwks_url": url, "jwt_validation_pubkeys": []string{"x"}},
		{"jwks_url": strings.TrimSuffix(url, "jwks.json") + "missing.json"},
		{"jwks_url": "http://127.0.0.1:1/jwks.json"},
		{"jwks_url": url, "jwt_supported_algs": []string{"HS256"}},
	}
	for _, body := range bad {
		if _, err := root.Logical().WriteWithContext(ctx, "auth/jwt-nomad/config", body); statusOf(err) != 400 {
			t.Fatalf("config %v accepted: %v", body, err)
		}
	}
	if _, err := root.Logical().WriteWithContext(ctx, "auth/jwt-nomad/config", map[string]any{"jwks_url": url, "jwt_supported_algs": "RS256,EdDSA"}); err != nil {
		t.Fatal(err)
	}
	cfg, err := root.Logical().ReadWithContext(ctx, "auth/jwt-nomad/config")
	if err != nil || cfg.Data["jwks_url"] != url || fmt.Sprint(cfg.Data["jwt_supported_algs"]) != "[RS256 EdDSA]" {
		t.Fatalf("config read: %+v %v", cfg, err)
	}

	// Roles are validated like Vault's JWT plugin validates them.
	role := "auth/jwt-nomad/role/edgehook-worker"
	invalid := []map[string]any{
		{"role_type": "jwt", "bound_audiences": []string{"vault.io"}},                      // no user_claim
		{"role_type": "jwt", "user_claim": "sub"},                                          // no bound constraint
		{"user_claim": "sub", "bound_audiences": []string{"vault.io"}},                     // oidc without redirect URIs
		{"role_type": "saml", "user_claim": "sub", "bound_audiences": []string{"a"}},       // bad type
		{"role_type": "jwt", "user_claim": "sub", "bound_subject": "x", "token_type": "x"}, // bad token type
	}
	for _, body := range invalid {
		if _, err := root.Logical().WriteWithContext(ctx, role, body); statusOf(err) != 400 {
			t.Fatalf("role %v accepted: %v", body, err)
		}
	}
	if _, err := root.Logical().WriteWithContext(ctx, role, map[string]any{
		"role_type": "jwt", "bound_audiences": []string{"vault.io"}, "user_claim": "/nomad_job_id", "user_claim_json_pointer": true,
		"bound_claims": map[string]any{"nomad_job_id": "edgehook-worker"}, "token_type": "service",
		"token_policies": []string{"Edgehook-Worker"}, "token_period": "30m",
	}); err != nil {
		t.Fatal(err)
	}
	// An update changes only what it names, except that, as in Vault, every write sets
	// role_type ("oidc" when absent, which then needs redirect URIs).
	if _, err := root.Logical().WriteWithContext(ctx, role, map[string]any{"token_ttl": 60}); statusOf(err) != 400 {
		t.Fatalf("update without role_type: %v", err)
	}
	if _, err := root.Logical().WriteWithContext(ctx, role, map[string]any{"role_type": "jwt", "token_ttl": 60}); err != nil {
		t.Fatal(err)
	}
	r, err := root.Logical().ReadWithContext(ctx, role)
	if err != nil || r == nil {
		t.Fatalf("jwt role read: %v %v", r, err)
	}
	claims, _ := r.Data["bound_claims"].(map[string]any)
	if r.Data["role_type"] != "jwt" || r.Data["user_claim"] != "/nomad_job_id" || r.Data["user_claim_json_pointer"] != true ||
		fmt.Sprint(r.Data["bound_audiences"]) != "[vault.io]" || claims["nomad_job_id"] != "edgehook-worker" ||
		fmt.Sprint(r.Data["token_policies"]) != "[edgehook-worker]" || r.Data["token_type"] != "service" ||
		fmt.Sprint(r.Data["token_period"]) != "1800" || fmt.Sprint(r.Data["token_ttl"]) != "60" {
		t.Fatalf("jwt role read back: %v", r.Data)
	}
	list, err := root.Logical().ListWithContext(ctx, "auth/jwt-nomad/role")
	if err != nil || fmt.Sprint(list.Data["keys"]) != "[edgehook-worker]" {
		t.Fatalf("role list: %v %v", list, err)
	}
}

// TestAppRoleLockoutTuning covers what the shared lockout test in package vault cannot:
// the tune endpoint's validation and read-back, the documented but ignored
// lockout_counter_reset key, lockout_disable, and times measured on the server's clock.
func TestAppRoleLockoutTuning(t *testing.T) {
	s := Start(t)
	ctx := context.Background()
	clock := time.Unix(1_800_000_000, 0)
	s.mu.Lock()
	s.now = func() time.Time { return clock }
	s.mu.Unlock()
	advance := func(d time.Duration) {
		s.mu.Lock()
		clock = clock.Add(d)
		s.mu.Unlock()
	}
	root := apiClient(t, s, s.RootToken())
	for path, typ := range map[string]string{"approle": "approle", "jwt": "jwt"} {
		if err := root.Sys().EnableAuthWithOptionsWithContext(ctx, path, &api.EnableAuthOptions{Type: typ}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := root.Logical().WriteWithContext(ctx, "auth/approle/role/worker", map[string]any{"token_policies": "default"}); err != nil {
		t.Fatal(err)
	}
	roleSec, err := root.Logical().ReadWithContext(ctx, "auth/approle/role/worker/role-id")
	if err != nil {
		t.Fatal(err)
	}
	roleID := roleSec.Data["role_id"].(string)
	sidSec, err := root.Logical().WriteWithContext(ctx, "auth/approle/role/worker/secret-id", nil)
	if err != nil {
		t.Fatal(err)
	}
	good := sidSec.Data["secret_id"].(string)
	anon := apiClient(t, s, "")
	login := func(secretID string) int {
		_, err := anon.Logical().WriteWithContext(ctx, "auth/approle/login", map[string]any{"role_id": roleID, "secret_id": secretID})
		return statusOf(err)
	}

	for name, c := range map[string]struct {
		path string
		body map[string]any
		want string
	}{
		"jwt mount":      {"sys/auth/jwt/tune", map[string]any{"user_lockout_config": map[string]any{"lockout_threshold": "2"}}, `auth type "jwt" not allowed`},
		"list":           {"sys/auth/approle/tune", map[string]any{"user_lockout_config": map[string]any{"lockout_threshold": []string{"2"}}}, "unable to convert"},
		"bad threshold":  {"sys/auth/approle/tune", map[string]any{"user_lockout_config": map[string]any{"lockout_threshold": "two"}}, "lockout threshold"},
		"bad duration":   {"sys/auth/approle/tune", map[string]any{"user_lockout_config": map[string]any{"lockout_duration": "soon"}}, "invalid duration"},
		"other settings": {"sys/auth/approle/tune", map[string]any{"default_lease_ttl": "1h"}, "default_lease_ttl"},
	} {
		if _, err := root.Logical().WriteWithContext(ctx, c.path, c.body); statusOf(err) != 400 || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want 400 mentioning %s", name, err, c.want)
		}
	}
	// The key Vault's API documentation names for the counter reset is ignored, as the
	// servers ignore it; the reset stays at its 15 minute default.
	if _, err := root.Logical().WriteWithContext(ctx, "sys/mounts/auth/approle/tune", map[string]any{"user_lockout_config": map[string]any{
		"lockout_threshold": "2", "lockout_duration": "1h", "lockout_counter_reset": "1s",
	}}); err != nil {
		t.Fatal(err)
	}
	tuned, err := root.Logical().ReadWithContext(ctx, "sys/auth/approle/tune")
	if err != nil {
		t.Fatal(err)
	}
	if tuned.Data["user_lockout_threshold"].(json.Number).String() != "2" || tuned.Data["user_lockout_duration"].(json.Number).String() != "3600" ||
		tuned.Data["user_lockout_counter_reset_duration"].(json.Number).String() != "0" {
		t.Fatalf("tune read back %v", tuned.Data)
	}

	// One failure, 16 minutes, one more: the count restarted, not locked out.
	if login("bad") != 400 {
		t.Fatal("bad login not refused")
	}
	advance(16 * time.Minute)
	if login("bad") != 400 || login(good) != 0 {
		t.Fatal("locked out although the counter reset passed between the failures")
	}
	// Two failures 14 minutes apart lock the role id out for an hour after the last.
	login("bad")
	advance(14 * time.Minute)
	login("bad")
	advance(59*time.Minute + 59*time.Second)
	if got := login(good); got != 403 {
		t.Fatalf("good login 1s before the lockout ends: %d, want 403", got)
	}
	advance(time.Second)
	if got := login(good); got != 0 {
		t.Fatalf("good login when the lockout ends: %d, want success", got)
	}

	// lockout_disable: failures are not counted at all.
	if _, err := root.Logical().WriteWithContext(ctx, "sys/auth/approle/tune", map[string]any{"user_lockout_config": map[string]any{"lockout_disable": true}}); err != nil {
		t.Fatal(err)
	}
	for range 5 {
		login("bad")
	}
	if got := login(good); got != 0 {
		t.Fatalf("good login with the lockout disabled: %d", got)
	}
}
