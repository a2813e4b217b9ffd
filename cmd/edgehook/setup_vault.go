package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/edgehook/edgehook/vault"
)

// setupVaultTimeout bounds a whole `edgehook setup vault` run.
const setupVaultTimeout = 2 * time.Minute

// setupVaultOptions are the settings of `edgehook setup vault`.
type setupVaultOptions struct {
	addr  string
	token string
	vault.SetupOptions
}

func (o *setupVaultOptions) register(s *settings) {
	s.String(&o.addr, "vault-addr", "VAULT_ADDR", "", "Vault address")
	s.Secret(&o.token, "vault-token", "VAULT_TOKEN", "Vault token allowed to manage mounts, auth methods and policies (root or equivalent); used only for this setup")
	s.String(&o.Mount, "vault-mount", "EDGEHOOK_VAULT_MOUNT", vault.DefaultMount, "KV v2 mount of webhook configuration (enabled if missing)")
	s.String(&o.Prefix, "vault-prefix", "EDGEHOOK_VAULT_PREFIX", vault.DefaultPrefix, "path of webhook configs under the mount (what the policies grant)")
	s.String(&o.AppRolePath, "approle-path", "EDGEHOOK_VAULT_APPROLE_MOUNT", vault.DefaultAppRoleMount, "path of the AppRole auth method (enabled if missing)")
	s.Duration(&o.TokenTTL, "token-ttl", "EDGEHOOK_VAULT_TOKEN_TTL", vault.DefaultAppRoleTokenTTL, "token_ttl of the AppRole roles")
	s.Duration(&o.TokenMaxTTL, "token-max-ttl", "EDGEHOOK_VAULT_TOKEN_MAX_TTL", vault.DefaultAppRoleTokenMaxTTL, "token_max_ttl of the AppRole roles (components log in again after it)")
	s.Bool(&o.SecretIDs, "secret-ids", "", false, "also issue one AppRole secret id per component and print it (once)")
	s.String(&o.NomadJWKSURL, "nomad-jwks-url", "EDGEHOOK_NOMAD_JWKS_URL", "", "JWKS URL of the Nomad servers (https://<nomad>:4646/.well-known/jwks.json); set it to create the JWT auth roles for Nomad workload identity")
	s.String(&o.JWTPath, "jwt-path", "EDGEHOOK_VAULT_JWT_PATH", vault.DefaultJWTPath, "path of the JWT auth method for Nomad workload identity (enabled if missing)")
	s.Duration(&o.JWTTokenPeriod, "jwt-token-period", "EDGEHOOK_VAULT_JWT_TOKEN_PERIOD", vault.DefaultJWTTokenPeriod, "token_period of the JWT roles (periodic tokens Nomad renews)")
	s.String(&o.NomadNamespace, "nomad-namespace", "EDGEHOOK_NOMAD_NAMESPACE", vault.DefaultNomadNamespace, "Nomad namespace of the edgehook jobs the JWT roles accept")
}

// runSetupVault is `edgehook setup vault`: it prepares Vault for edgehook (vault.Setup)
// and prints what it did, one line per item, then how components log in.
func runSetupVault(ctx context.Context, env *environment, args []string) error {
	var o setupVaultOptions
	s := newSettings("setup vault", env.getenv, env.stderr)
	o.register(s)
	if err := s.parse(args); err != nil {
		return err
	}
	if s.fs.NArg() > 0 {
		return usageError{fmt.Errorf("setup vault takes no arguments, got %q", s.fs.Args())}
	}
	switch {
	case o.addr == "":
		return usageError{errors.New("VAULT_ADDR (--vault-addr) is not set: it names the Vault to set up")}
	case o.token == "":
		return usageError{errors.New("VAULT_TOKEN (--vault-token) is not set: setup needs a token allowed to manage mounts, auth methods and policies")}
	}
	if err := o.Validate(); err != nil {
		return usageError{err}
	}
	c, err := setupVaultClient(o.addr, o.token)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, setupVaultTimeout)
	defer cancel()
	rep, err := vault.Setup(ctx, c, o.SetupOptions)
	printSetupVault(env.stdout, o, rep, err == nil)
	return err
}

// setupVaultClient returns a Vault API client for addr holding token. TLS settings come
// from the Vault library's standard variables (VAULT_CACERT and so on).
func setupVaultClient(addr, token string) (*api.Client, error) {
	cfg := api.DefaultConfig()
	if cfg.Error != nil {
		return nil, fmt.Errorf("vault client configuration: %w", cfg.Error)
	}
	cfg.Address = addr
	c, err := api.NewClient(cfg)
	if err != nil {
		return nil, usageError{fmt.Errorf("VAULT_ADDR=%q: %w", addr, err)}
	}
	c.SetToken(token)
	return c, nil
}

// printSetupVault prints the items of rep, then (when complete) a summary and how the
// components log in. Secret ids appear here once, marked as such; tokens never do.
func printSetupVault(w io.Writer, o setupVaultOptions, rep vault.SetupReport, complete bool) {
	var b strings.Builder
	fmt.Fprintf(&b, "Vault %s:\n", o.addr)
	for _, it := range rep.Items {
		fmt.Fprintf(&b, "  %s\n", it)
	}
	if !complete {
		b.WriteString("setup stopped early; the items above were done before the error\n")
		io.WriteString(w, b.String())
		return
	}
	fmt.Fprintf(&b, "%d created, %d updated, %d unchanged\n",
		rep.Count(vault.SetupCreated), rep.Count(vault.SetupUpdated), rep.Count(vault.SetupUnchanged))

	fmt.Fprintf(&b, "\nAppRole role ids (auth/%s/); give each component its own as VAULT_ROLE_ID:\n", rep.AppRolePath)
	for _, c := range rep.AppRoles {
		fmt.Fprintf(&b, "  %-8s  %-17s  VAULT_ROLE_ID=%s\n", c.Role, c.Name, c.RoleID)
	}
	issued := false
	for _, c := range rep.AppRoles {
		issued = issued || !c.SecretID.IsZero()
	}
	if issued {
		b.WriteString("\n!!! NEW SECRET IDS, shown only this once: store each in its component's VAULT_SECRET_ID\n")
		b.WriteString("!!! (or in a file named by VAULT_SECRET_ID_FILE). Vault cannot show them again.\n")
		for _, c := range rep.AppRoles {
			if !c.SecretID.IsZero() {
				fmt.Fprintf(&b, "  %-8s  %-17s  VAULT_SECRET_ID=%s\n", c.Role, c.Name, c.SecretID.Reveal())
			}
		}
	} else if len(rep.AppRoles) > 0 {
		fmt.Fprintf(&b, "Secret ids: rerun with --secret-ids, or `vault write -f auth/%s/role/%s/secret-id` per role; pass it as VAULT_SECRET_ID or VAULT_SECRET_ID_FILE.\n",
			rep.AppRolePath, rep.AppRoles[0].Name)
	}
	fmt.Fprintf(&b, "Components (worker, receiver, and the gateway serving the admin API) also need VAULT_ADDR=%s", o.addr)
	if o.Mount != vault.DefaultMount {
		fmt.Fprintf(&b, " EDGEHOOK_VAULT_MOUNT=%s", o.Mount)
	}
	if o.Prefix != vault.DefaultPrefix {
		fmt.Fprintf(&b, " EDGEHOOK_VAULT_PREFIX=%s", o.Prefix)
	}
	if rep.AppRolePath != vault.DefaultAppRoleMount {
		fmt.Fprintf(&b, " EDGEHOOK_VAULT_APPROLE_MOUNT=%s", rep.AppRolePath)
	}
	b.WriteString("; the gateway without an admin token needs no Vault settings.\n")

	if rep.JWTPath != "" {
		fmt.Fprintf(&b, "\nNomad workload identity: set jwt_auth_backend_path = %q in the Nomad agents' vault block;\n", rep.JWTPath)
		fmt.Fprintf(&b, "jobs edgehook-admin, edgehook-worker and edgehook-receiver (namespace %s) log in with the role of their name\n", o.NomadNamespace)
		fmt.Fprintf(&b, "(vault { role = %q } and so on) and read the token from VAULT_TOKEN_FILE.\n", rep.JWTRoles[min(1, len(rep.JWTRoles)-1)])
	}
	io.WriteString(w, b.String())
}
