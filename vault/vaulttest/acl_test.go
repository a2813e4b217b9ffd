package vaulttest

import (
	"slices"
	"strings"
	"testing"

	"github.com/edgehook/edgehook/vault"
)

func TestMatchPattern(t *testing.T) {
	cases := []struct {
		pattern, path string
		want          bool
	}{
		{"secret/data/a", "secret/data/a", true},
		{"secret/data/a", "secret/data/ab", false},
		{"secret/data/a", "secret/data/a/", false},
		{"secret/data/*", "secret/data/", true},
		{"secret/data/*", "secret/data/a/b/c", true},
		{"secret/data/*", "secret/data", false},
		{"secret/data/a*", "secret/data/abc", true},
		{"secret/data/a*", "secret/data/b", false},
		{"secret/+/a", "secret/data/a", true},
		{"secret/+/a", "secret/metadata/a", true},
		{"secret/+/a", "secret/x/y/a", false},
		{"secret/+/a", "secret/data/a/b", false},
		{"secret/+/+", "secret/data/a", true},
		{"secret/+/+", "secret/data", false},
		{"+/data/a", "kv/data/a", true},
		{"secret/+/team/*", "secret/data/team/x/y", true},
		{"secret/+/team/*", "secret/data/team/", true},
		{"secret/+/team/*", "secret/data/team", false},
		{"secret/+/team/*", "secret/data/other/x", false},
		{"secret/+/te*", "secret/data/team/x", true},
		{"secret/+/te*", "secret/data/other", false},
		{"secret/data/edgehook/webhook-config/*", "secret/data/edgehook/webhook-config/ten_1", true},
		{"secret/data/edgehook/webhook-config/*", "secret/data/edgehook/webhook-configx/ten_1", false},
		{"secret/data/edgehook/webhook-config/*", "secret/metadata/edgehook/webhook-config/ten_1", false},
	}
	for _, c := range cases {
		if got := matchPattern(c.pattern, c.path); got != c.want {
			t.Errorf("matchPattern(%q, %q) = %v, want %v", c.pattern, c.path, got, c.want)
		}
	}
}

// TestHigherPriority checks Vault's documented priority rules for two patterns that
// both match a path.
func TestHigherPriority(t *testing.T) {
	cases := []struct {
		higher, lower, rule string
	}{
		{"secret/data/a", "secret/data/*", "exact beats glob"},
		{"secret/data/a", "secret/+/a", "exact beats segment wildcard"},
		{"secret/data/*", "secret/*", "later first wildcard wins"},
		{"secret/data/+", "secret/+/a", "later first wildcard wins"},
		{"secret/data/a*", "secret/+/a", "later first wildcard wins over a +"},
		{"secret/+/a", "secret/+/a*", "no trailing glob beats a trailing glob"},
		{"secret/+/a/*", "secret/+/+/*", "fewer + segments win"},
		{"secret/+/ab*", "secret/+/a*", "longer wins"},
		{"secret/+/b", "secret/+/a", "lexicographically greater wins"},
	}
	for _, c := range cases {
		if !higherPriority(c.higher, c.lower) {
			t.Errorf("%s: %q should beat %q", c.rule, c.higher, c.lower)
		}
		if higherPriority(c.lower, c.higher) {
			t.Errorf("%s: %q should not beat %q", c.rule, c.lower, c.higher)
		}
	}
}

func mustParse(t *testing.T, name, text string) *policy {
	t.Helper()
	p, err := parsePolicy(name, text)
	if err != nil {
		t.Fatalf("parse %s: %v", name, err)
	}
	return p
}

// TestACL checks what merged policies grant on paths: the most specific match wins,
// deny on a pattern overrides grants of the same pattern in other policies, and
// capabilities of the same pattern are united.
func TestACL(t *testing.T) {
	broad := mustParse(t, "broad", `
path "secret/*" { capabilities = ["read", "list"] }
path "secret/data/public/*" { capabilities = ["create", "update", "read"] }
path "secret/data/private/*" { capabilities = ["deny"] }
path "secret/+/team/*" { capabilities = ["read"] }
path "secret/data/team/lead" { capabilities = ["update"] }
path "sys/auth/*" { capabilities = ["create", "update"] }
`)
	other := mustParse(t, "other", `
path "secret/data/public/*" { capabilities = ["delete"] }
path "secret/data/private/*" { capabilities = ["read"] }
path "sys/auth/*" { capabilities = ["sudo"] }
path "kv/data/x" { policy = "write" }
`)
	a := newACL([]*policy{broad, other})
	cases := []struct {
		path string
		want []string
	}{
		{"secret/data/anything", []string{"list", "read"}},
		{"secret/data/public/a", []string{"create", "delete", "read", "update"}}, // united
		{"secret/data/private/a", nil},                                           // deny of the same pattern overrides
		{"secret/data/team/x", []string{"list", "read"}},                         // see below
		{"secret/data/team/lead", []string{"update"}},                            // exact wins
		{"secret/metadata/team/x", []string{"list", "read"}},                     // see below
		{"secret/data/public", []string{"list", "read"}},                         // public/* needs the slash
		{"sys/auth/approle", []string{"create", "sudo", "update"}},
		{"kv/data/x", []string{"create", "delete", "list", "read", "update"}},
		{"kv/data/y", nil},
		{"other/path", nil},
	}
	// secret/{data,metadata}/team/x are matched by secret/* (first wildcard at 7) and
	// secret/+/team/* (first wildcard at 7, the +): both start their wildcard at the
	// same place, both end in a glob, and secret/* has fewer + segments, so it wins.
	for _, c := range cases {
		got := a.capabilities(c.path)
		if !slices.Equal(got, c.want) {
			t.Errorf("capabilities(%q) = %v, want %v", c.path, got, c.want)
		}
	}
	if !a.allowed("sys/auth/approle", capUpdate, true) {
		t.Error("update with sudo on sys/auth/approle denied")
	}
	if a.allowed("kv/data/x", capUpdate, true) {
		t.Error("update needing sudo allowed without sudo")
	}
	if !newACL([]*policy{{name: "root"}}).allowed("any/path", capDelete, true) {
		t.Error("root denied")
	}
	if newACL(nil).allowed("auth/token/lookup-self", capRead, false) {
		t.Error("empty ACL allowed something")
	}
}

// TestDenyOnMoreSpecificPathOverridesBroaderGrant covers the common use of deny: a
// grant on a tree with a hole in it.
func TestDenyOnMoreSpecificPathOverridesBroaderGrant(t *testing.T) {
	a := newACL([]*policy{mustParse(t, "p", `
path "secret/data/*" { capabilities = ["read"] }
path "secret/data/admin/*" { capabilities = ["deny"] }
path "secret/data/+/open" { capabilities = ["read"] }
path "secret/data/+/closed" { capabilities = ["deny"] }
`)})
	// Same first wildcard position as secret/data/*, but no trailing glob: it wins.
	if a.allowed("secret/data/x/closed", capRead, false) {
		t.Error("a + pattern without a glob did not override secret/data/*")
	}
	if !a.allowed("secret/data/x", capRead, false) {
		t.Error("read of secret/data/x denied")
	}
	if a.allowed("secret/data/admin/key", capRead, false) {
		t.Error("read under a denied tree allowed")
	}
	// secret/data/admin/* (first wildcard at 18) beats secret/data/+/open (at 12).
	if a.allowed("secret/data/admin/open", capRead, false) {
		t.Error("a + pattern with an earlier wildcard overrode a deny")
	}
}

func TestParsePolicyErrors(t *testing.T) {
	cases := map[string]string{
		"syntax":           `path "a" { capabilities = ["read"]`,
		"bad capability":   `path "a" { capabilities = ["reed"] }`,
		"glob not at end":  `path "a/*/b" { capabilities = ["read"] }`,
		"unknown key":      `paths "a" { capabilities = ["read"] }`,
		"not a list":       `path "a" { capabilities = "read" }`,
		"bad shorthand":    `path "a" { policy = "all" }`,
		"non-string entry": `path "a" { capabilities = [1] }`,
	}
	for name, text := range cases {
		if _, err := parsePolicy("p", text); err == nil {
			t.Errorf("%s: parsed without error", name)
		}
	}
	// JSON form, as Vault accepts.
	p := mustParse(t, "json", `{"path": {"secret/data/*": {"capabilities": ["read"]}}}`)
	if len(p.rules) != 1 || p.rules[0].pattern != "secret/data/*" || !slices.Equal(p.rules[0].capabilities, []string{"read"}) {
		t.Fatalf("JSON policy parsed as %+v", p.rules)
	}
}

// TestProjectPolicies parses vault/policies/*.hcl and checks the grants and denials
// each component relies on.
func TestProjectPolicies(t *testing.T) {
	acls := map[string]*acl{}
	for _, role := range vault.Roles() {
		text, err := vault.Policy(role, "", "")
		if err != nil {
			t.Fatal(err)
		}
		acls[role] = newACL([]*policy{mustParse(t, role, text)})
	}
	const data, meta = "secret/data/edgehook/webhook-config/ten_1", "secret/metadata/edgehook/webhook-config/ten_1"
	type check struct {
		role, path, capability string
		want                   bool
	}
	var checks []check
	for _, role := range []string{vault.RoleWorker, vault.RoleReceiver} {
		checks = append(checks,
			check{role, data, capRead, true},
			check{role, data, capCreate, false},
			check{role, data, capUpdate, false},
			check{role, data, capDelete, false},
			check{role, meta, capRead, false},
			check{role, meta, capList, false},
			check{role, meta, capDelete, false},
			check{role, "secret/data/edgehook/other", capRead, false},
			check{role, "secret/data/other", capRead, false},
			check{role, "sys/policy/x", capUpdate, false},
			check{role, "auth/token/create", capUpdate, false},
		)
	}
	checks = append(checks,
		check{vault.RoleAdmin, data, capCreate, true},
		check{vault.RoleAdmin, data, capUpdate, true},
		check{vault.RoleAdmin, data, capRead, true},
		check{vault.RoleAdmin, data, capDelete, true},
		check{vault.RoleAdmin, data, capList, false},
		check{vault.RoleAdmin, meta, capList, true},
		check{vault.RoleAdmin, "secret/metadata/edgehook/webhook-config/", capList, true},
		check{vault.RoleAdmin, meta, capRead, true},
		check{vault.RoleAdmin, meta, capDelete, true},
		check{vault.RoleAdmin, meta, capUpdate, false},
		check{vault.RoleAdmin, "secret/data/other", capRead, false},
		check{vault.RoleAdmin, "secret/data/edgehook/identity", capCreate, false},
		check{vault.RoleAdmin, "sys/policy/x", capUpdate, false},
		check{vault.RoleAdmin, "sys/mounts/x", capUpdate, false},
		check{vault.RoleAdmin, "auth/token/create", capUpdate, false},
	)
	for _, c := range checks {
		if got := acls[c.role].allowed(c.path, c.capability, false); got != c.want {
			t.Errorf("%s: %s on %s = %v, want %v", c.role, c.capability, c.path, got, c.want)
		}
	}
}

func TestPolicyForCustomMount(t *testing.T) {
	text, err := vault.Policy(vault.RoleAdmin, "kv-prod", "hooks/config")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(text, "secret/") || !strings.Contains(text, `"kv-prod/data/hooks/config/*"`) || !strings.Contains(text, `"kv-prod/metadata/hooks/config/*"`) {
		t.Fatalf("paths not moved:\n%s", text)
	}
	a := newACL([]*policy{mustParse(t, "admin", text)})
	if !a.allowed("kv-prod/data/hooks/config/t", capCreate, false) || a.allowed("secret/data/edgehook/webhook-config/t", capRead, false) {
		t.Fatal("custom-mount admin policy grants the wrong paths")
	}
}
