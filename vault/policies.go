package vault

import (
	"embed"
	"errors"
	"fmt"
	"strings"
)

// policyFiles holds vault/policies/*.hcl, the Vault ACL policies of edgehook's
// components. `edgehook setup vault`, vaulttest-based tests and operators running
// `vault policy write` all use these same files.
//
//go:embed policies/*.hcl
var policyFiles embed.FS

// Component roles that have a Vault policy. The gateway has none: it holds no token.
const (
	RoleAdmin    = "admin"
	RoleWorker   = "worker"
	RoleReceiver = "receiver"
)

// ErrUnknownRole is returned by Policy for a role without a policy file.
var ErrUnknownRole = errors.New("vault: no policy for this role")

// Roles returns the roles that have a policy, in a fixed order.
func Roles() []string { return []string{RoleAdmin, RoleWorker, RoleReceiver} }

// PolicyName returns the name a role's policy is written under in Vault
// ("edgehook-" + role).
func PolicyName(role string) string { return "edgehook-" + role }

// Policy returns the HCL of role's policy for webhook configuration kept under mount
// and prefix (empty: DefaultMount, DefaultPrefix). With the defaults it is the file
// vault/policies/<role>.hcl unchanged; otherwise its paths are moved to
// <mount>/data/<prefix>/* and <mount>/metadata/<prefix>/*.
func Policy(role, mount, prefix string) (string, error) {
	b, err := policyFiles.ReadFile("policies/" + role + ".hcl")
	if err != nil || strings.ContainsAny(role, "/.") {
		return "", fmt.Errorf("%w: %q", ErrUnknownRole, role)
	}
	if mount == "" {
		mount = DefaultMount
	}
	if prefix == "" {
		prefix = DefaultPrefix
	}
	mount, prefix = strings.Trim(mount, "/"), strings.Trim(prefix, "/")
	if !validVaultPath(mount) {
		return "", fmt.Errorf("vault: mount %q is not a valid Vault path", mount)
	}
	if !validVaultPath(prefix) {
		return "", fmt.Errorf("vault: prefix %q is not a valid Vault path", prefix)
	}
	text := string(b)
	for _, kind := range []string{"/data/", "/metadata/"} {
		text = strings.ReplaceAll(text,
			`"`+DefaultMount+kind+DefaultPrefix+`/`,
			`"`+mount+kind+prefix+`/`)
	}
	return text, nil
}
