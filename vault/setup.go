package vault

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/vault/api"
)

// Setup defaults.
const (
	// DefaultJWTPath is where Setup enables the JWT auth method for Nomad workload
	// identity (Nomad's documentation uses the same path).
	DefaultJWTPath = "jwt-nomad"
	// DefaultAppRoleTokenTTL and DefaultAppRoleTokenMaxTTL bound the tokens of an
	// AppRole login: renewed up to the max TTL, then the component logs in again.
	DefaultAppRoleTokenTTL    = time.Hour
	DefaultAppRoleTokenMaxTTL = 24 * time.Hour
	// DefaultJWTTokenPeriod is the period of the (periodic, renewable) tokens that Nomad
	// workloads obtain with the JWT roles.
	DefaultJWTTokenPeriod = 30 * time.Minute
	// DefaultNomadNamespace is the Nomad namespace the JWT roles are bound to.
	DefaultNomadNamespace = "default"
	// NomadAudience is the audience of the workload identities Nomad issues for Vault.
	NomadAudience = "vault.io"
)

// nomadJWTAlgs are the signing algorithms of Nomad workload identities.
var nomadJWTAlgs = []string{"RS256", "EdDSA"}

// kvReadyTimeout bounds the wait for a newly enabled KV v2 mount to answer.
const kvReadyTimeout = 30 * time.Second

// ErrWrongMountType is matched by Setup's error when a path it needs is already taken
// by a secrets engine or auth method of another type (for example a KV version 1
// engine where edgehook needs KV version 2). Setup never changes such a mount.
var ErrWrongMountType = errors.New("vault setup: path is mounted with another type")

// SetupOptions say what Setup prepares. Zero values take the defaults.
type SetupOptions struct {
	// Mount is the KV v2 mount of webhook configuration (DefaultMount), enabled if
	// missing.
	Mount string
	// Prefix is the path under Mount that holds one secret per tenant (DefaultPrefix);
	// the policies grant access below it.
	Prefix string
	// AppRolePath is the path of the AppRole auth method (DefaultAppRoleMount), enabled
	// if missing.
	AppRolePath string
	// TokenTTL and TokenMaxTTL are the token_ttl and token_max_ttl of the AppRole roles
	// (DefaultAppRoleTokenTTL, DefaultAppRoleTokenMaxTTL); whole seconds.
	TokenTTL    time.Duration
	TokenMaxTTL time.Duration
	// SecretIDs asks for one new AppRole secret id per role, returned once in the
	// report. Each run with it set issues new ones; earlier ones stay valid.
	SecretIDs bool
	// NomadJWKSURL is the JWKS URL of the Nomad servers (e.g.
	// https://nomad.example:4646/.well-known/jwks.json). When set, Setup enables the JWT
	// auth method at JWTPath with it and creates a JWT role per component; Vault
	// fetches the URL when the config is written. Empty: no JWT auth.
	NomadJWKSURL string
	// JWTPath is the path of the JWT auth method (DefaultJWTPath).
	JWTPath string
	// JWTTokenPeriod is the token_period of the JWT roles (DefaultJWTTokenPeriod).
	JWTTokenPeriod time.Duration
	// NomadNamespace is the Nomad namespace whose jobs the JWT roles accept
	// (DefaultNomadNamespace).
	NomadNamespace string
	// NameSuffix is appended to the names of the policies, AppRole roles and JWT roles
	// ("" in production: "edgehook-worker" and so on), so that two installations, or
	// tests, can share one Vault. It does not change the Nomad job ids a JWT role
	// accepts ("edgehook-<role>").
	NameSuffix string
}

// Validate checks the options, naming the setting at fault.
func (o SetupOptions) Validate() error {
	_, err := o.withDefaults()
	return err
}

func (o SetupOptions) withDefaults() (SetupOptions, error) {
	def := func(s *string, d string) {
		if *s == "" {
			*s = d
		}
		*s = strings.Trim(*s, "/")
	}
	def(&o.Mount, DefaultMount)
	def(&o.Prefix, DefaultPrefix)
	def(&o.AppRolePath, DefaultAppRoleMount)
	def(&o.JWTPath, DefaultJWTPath)
	if o.NomadNamespace == "" {
		o.NomadNamespace = DefaultNomadNamespace
	}
	if o.TokenTTL == 0 {
		o.TokenTTL = DefaultAppRoleTokenTTL
	}
	if o.TokenMaxTTL == 0 {
		o.TokenMaxTTL = DefaultAppRoleTokenMaxTTL
	}
	if o.JWTTokenPeriod == 0 {
		o.JWTTokenPeriod = DefaultJWTTokenPeriod
	}
	switch {
	case !validVaultPath(o.Mount):
		return o, fmt.Errorf("vault setup: mount %q (EDGEHOOK_VAULT_MOUNT) is not a valid Vault path", o.Mount)
	case !validVaultPath(o.Prefix):
		return o, fmt.Errorf("vault setup: prefix %q (EDGEHOOK_VAULT_PREFIX) is not a valid Vault path", o.Prefix)
	case !validVaultPath(o.AppRolePath):
		return o, fmt.Errorf("vault setup: AppRole path %q (EDGEHOOK_VAULT_APPROLE_MOUNT) is not a valid Vault path", o.AppRolePath)
	case !validVaultPath(o.JWTPath):
		return o, fmt.Errorf("vault setup: JWT auth path %q (EDGEHOOK_VAULT_JWT_PATH) is not a valid Vault path", o.JWTPath)
	case o.AppRolePath == o.JWTPath:
		return o, fmt.Errorf("vault setup: the AppRole and JWT auth methods cannot share the path %q", o.JWTPath)
	case o.NameSuffix != "" && (strings.Contains(o.NameSuffix, "/") || !validVaultPath(o.NameSuffix)):
		return o, fmt.Errorf("vault setup: name suffix %q may hold only letters, digits, '-', '_' and '.'", o.NameSuffix)
	case o.TokenTTL < time.Second:
		return o, fmt.Errorf("vault setup: token TTL %s (EDGEHOOK_VAULT_TOKEN_TTL) must be at least 1s", o.TokenTTL)
	case o.TokenMaxTTL < o.TokenTTL:
		return o, fmt.Errorf("vault setup: token max TTL %s (EDGEHOOK_VAULT_TOKEN_MAX_TTL) is shorter than the token TTL %s", o.TokenMaxTTL, o.TokenTTL)
	case o.JWTTokenPeriod < time.Second:
		return o, fmt.Errorf("vault setup: JWT token period %s (EDGEHOOK_VAULT_JWT_TOKEN_PERIOD) must be at least 1s", o.JWTTokenPeriod)
	case !validNomadNamespace(o.NomadNamespace):
		return o, fmt.Errorf("vault setup: Nomad namespace %q (EDGEHOOK_NOMAD_NAMESPACE) is not a namespace name", o.NomadNamespace)
	}
	if o.NomadJWKSURL != "" {
		u, err := url.Parse(o.NomadJWKSURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return o, errors.New("vault setup: Nomad JWKS URL (EDGEHOOK_NOMAD_JWKS_URL) must be an http or https URL")
		}
	}
	return o, nil
}

// validNomadNamespace reports whether ns is a Nomad namespace name (1 to 128 letters,
// digits and dashes).
func validNomadNamespace(ns string) bool {
	if ns == "" || len(ns) > 128 {
		return false
	}
	for _, r := range ns {
		if r != '-' && (r < 'a' || r > 'z') && (r < 'A' || r > 'Z') && (r < '0' || r > '9') {
			return false
		}
	}
	return true
}

// SetupAction says what Setup did to one item.
type SetupAction string

// What Setup did to an item: it did not exist and was created, it differed and was
// brought to the wanted state, or it already was in that state.
const (
	SetupCreated   SetupAction = "created"
	SetupUpdated   SetupAction = "updated"
	SetupUnchanged SetupAction = "unchanged"
)

// SetupItem is one thing Setup ensured: a mount, a policy, an auth method, a role, a
// config or a secret id.
type SetupItem struct {
	// Kind names the sort of item, e.g. "kv v2 mount", "policy", "approle role".
	Kind string
	// Name identifies it in Vault: a mount path with a trailing slash, a policy name,
	// or the API path of a role or config.
	Name string
	// Action is what Setup did.
	Action SetupAction
	// Detail says what a created item holds or which fields an update changed; it never
	// holds a secret.
	Detail string
}

// String renders the item as one line: action, kind, name and detail.
func (i SetupItem) String() string {
	s := fmt.Sprintf("%-9s  %-17s  %s", i.Action, i.Kind, i.Name)
	if i.Detail != "" {
		s += "  (" + i.Detail + ")"
	}
	return s
}

// SecretID is an AppRole secret id. It prints, logs and marshals as REDACTED; only
// Reveal returns the value.
type SecretID struct{ v string }

// Reveal returns the secret id itself.
func (s SecretID) Reveal() string { return s.v }

// IsZero reports whether no secret id is held.
func (s SecretID) IsZero() bool { return s.v == "" }

// String returns "REDACTED" (or "" for the zero SecretID).
func (s SecretID) String() string { return redacted(s.v) }

// GoString is String, so %#v does not show the secret id either.
func (s SecretID) GoString() string { return s.String() }

// LogValue logs the secret id as REDACTED.
func (s SecretID) LogValue() slog.Value { return slog.StringValue(s.String()) }

// MarshalJSON marshals the secret id as "REDACTED".
func (s SecretID) MarshalJSON() ([]byte, error) { return json.Marshal(s.String()) }

// AppRoleCredentials identify the AppRole role of one component.
type AppRoleCredentials struct {
	// Role is the edgehook role (RoleAdmin, RoleWorker, RoleReceiver).
	Role string
	// Name is the AppRole role's name, e.g. "edgehook-worker".
	Name string
	// RoleID is the role's role_id (VAULT_ROLE_ID of the component).
	RoleID string
	// SecretID is a newly issued secret id (VAULT_SECRET_ID), only with
	// SetupOptions.SecretIDs; Vault never shows it again.
	SecretID SecretID
}

// SetupReport is what Setup did, item by item, and the AppRole credentials.
type SetupReport struct {
	// Items lists every item Setup ensured, in the order it did so.
	Items []SetupItem
	// AppRolePath is the AppRole auth method's path.
	AppRolePath string
	// AppRoles holds one entry per component role, in Roles() order.
	AppRoles []AppRoleCredentials
	// JWTPath is the JWT auth method's path, "" when no Nomad JWKS URL was given.
	JWTPath string
	// JWTRoles are the names of the JWT roles, in Roles() order (none without JWT).
	JWTRoles []string
}

// Count returns how many items got action a.
func (r SetupReport) Count(a SetupAction) int {
	n := 0
	for _, it := range r.Items {
		if it.Action == a {
			n++
		}
	}
	return n
}

// Changed reports whether Setup created or updated anything.
func (r SetupReport) Changed() bool { return r.Count(SetupUnchanged) != len(r.Items) }

// Setup prepares Vault for edgehook with c, whose token must be allowed to manage
// mounts, auth methods and policies (root or equivalent): it enables the KV v2 mount
// if missing; writes the policies of vault/policies under PolicyName(role); enables
// AppRole auth if missing and creates the roles edgehook-admin, -worker and -receiver
// holding their policy; and, with a Nomad JWKS URL, enables and configures a JWT auth
// method with one role per component for Nomad workload identity.
//
// It is idempotent: an item already as wanted is left alone and reported unchanged, one
// that differs is rewritten (updated); it never deletes or disables anything, and it
// refuses (ErrWrongMountType) to use a path mounted with another type. On error the
// report holds what was done before it.
func Setup(ctx context.Context, c *api.Client, opts SetupOptions) (SetupReport, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return SetupReport{}, err
	}
	s := &setup{c: c, o: o, rep: SetupReport{AppRolePath: o.AppRolePath}}
	err = s.run(ctx)
	return s.rep, err
}

// setup is one run of Setup.
type setup struct {
	c   *api.Client
	o   SetupOptions
	rep SetupReport
}

func (s *setup) add(kind, name string, a SetupAction, detail string) {
	s.rep.Items = append(s.rep.Items, SetupItem{Kind: kind, Name: name, Action: a, Detail: detail})
}

func (s *setup) name(role string) string { return PolicyName(role) + s.o.NameSuffix }

func (s *setup) run(ctx context.Context) error {
	if err := s.kvMount(ctx); err != nil {
		return err
	}
	for _, role := range Roles() {
		if err := s.policy(ctx, role); err != nil {
			return err
		}
	}
	if err := s.authMethod(ctx, s.o.AppRolePath, "approle"); err != nil {
		return err
	}
	for _, role := range Roles() {
		if err := s.appRole(ctx, role); err != nil {
			return err
		}
	}
	if s.o.NomadJWKSURL == "" {
		return nil
	}
	if err := s.authMethod(ctx, s.o.JWTPath, "jwt"); err != nil {
		return err
	}
	s.rep.JWTPath = s.o.JWTPath
	if err := s.jwtConfig(ctx); err != nil {
		return err
	}
	for _, role := range Roles() {
		if err := s.jwtRole(ctx, role); err != nil {
			return err
		}
	}
	return nil
}

// kvMount enables the KV v2 mount if missing and waits until it answers.
func (s *setup) kvMount(ctx context.Context) error {
	path := s.o.Mount + "/"
	mounts, err := s.c.Sys().ListMountsWithContext(ctx)
	if err != nil {
		return setupError("list secrets engines", err)
	}
	if m := mounts[path]; m != nil {
		switch {
		case m.Type == "kv" && m.Options["version"] == "2":
			s.add("kv v2 mount", path, SetupUnchanged, "")
			return nil
		case m.Type == "kv" || m.Type == "generic":
			return fmt.Errorf("%w: %s is a KV version 1 engine and edgehook needs KV version 2: upgrade it (vault kv enable-versioning %s) or choose another mount (--vault-mount)",
				ErrWrongMountType, path, path)
		default:
			return fmt.Errorf("%w: %s is a %q secrets engine, not KV version 2: choose another mount (--vault-mount)", ErrWrongMountType, path, m.Type)
		}
	}
	in := &api.MountInput{Type: "kv", Description: "edgehook webhook configuration", Options: map[string]string{"version": "2"}}
	if err := s.c.Sys().MountWithContext(ctx, s.o.Mount, in); err != nil {
		return setupError("enable KV v2 at "+path, err)
	}
	if err := s.waitKV(ctx); err != nil {
		return err
	}
	s.add("kv v2 mount", path, SetupCreated, "")
	return nil
}

// waitKV polls the new mount's config until it answers: Vault briefly refuses requests
// to a KV v2 mount while it initializes.
func (s *setup) waitKV(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, kvReadyTimeout)
	defer cancel()
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		_, err := s.c.Logical().ReadWithContext(ctx, s.o.Mount+"/config")
		if err == nil {
			return nil
		}
		if isPermissionDenied(err) {
			return setupError("read "+s.o.Mount+"/config", err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("vault setup: KV v2 mount %s/ was enabled but does not answer: %w", s.o.Mount, err)
		case <-t.C:
		}
	}
}

// policy writes role's policy unless Vault already holds the same text.
func (s *setup) policy(ctx context.Context, role string) error {
	text, err := Policy(role, s.o.Mount, s.o.Prefix)
	if err != nil {
		return err
	}
	name := s.name(role)
	old, err := s.c.Sys().GetPolicyWithContext(ctx, name)
	if err != nil {
		return setupError("read policy "+name, err)
	}
	if strings.TrimSpace(old) == strings.TrimSpace(text) {
		s.add("policy", name, SetupUnchanged, "")
		return nil
	}
	if err := s.c.Sys().PutPolicyWithContext(ctx, name, text); err != nil {
		return setupError("write policy "+name, err)
	}
	if old == "" {
		s.add("policy", name, SetupCreated, s.o.Mount+"/data/"+s.o.Prefix+"/*")
	} else {
		s.add("policy", name, SetupUpdated, "rules")
	}
	return nil
}

// authMethod enables an auth method of type typ at path if none is there.
func (s *setup) authMethod(ctx context.Context, path, typ string) error {
	auths, err := s.c.Sys().ListAuthWithContext(ctx)
	if err != nil {
		return setupError("list auth methods", err)
	}
	if m := auths[path+"/"]; m != nil {
		// "oidc" is the same plugin as "jwt" and serves JWT roles as well.
		if m.Type != typ && (typ != "jwt" || m.Type != "oidc") {
			return fmt.Errorf("%w: auth/%s/ is a %q auth method, not %s: choose another path", ErrWrongMountType, path, m.Type, typ)
		}
		s.add("auth method", path+"/", SetupUnchanged, typ)
		return nil
	}
	in := &api.EnableAuthOptions{Type: typ, Description: "edgehook components"}
	if err := s.c.Sys().EnableAuthWithOptionsWithContext(ctx, path, in); err != nil {
		return setupError("enable "+typ+" auth at "+path, err)
	}
	s.add("auth method", path+"/", SetupCreated, typ)
	return nil
}

// appRole ensures role's AppRole role, reads its role id and, if asked, issues a
// secret id.
func (s *setup) appRole(ctx context.Context, role string) error {
	name := s.name(role)
	path := "auth/" + s.o.AppRolePath + "/role/" + name
	a, detail, err := s.ensure(ctx, path, fields{
		"token_policies": []string{name},
		"token_ttl":      s.o.TokenTTL,
		"token_max_ttl":  s.o.TokenMaxTTL,
	})
	if err != nil {
		return err
	}
	if a == SetupCreated {
		detail = fmt.Sprintf("policy %s, token_ttl %s, token_max_ttl %s", name, s.o.TokenTTL, s.o.TokenMaxTTL)
	}
	s.add("approle role", path, a, detail)

	sec, err := s.c.Logical().ReadWithContext(ctx, path+"/role-id")
	if err != nil {
		return setupError("read role id of "+name, err)
	}
	creds := AppRoleCredentials{Role: role, Name: name}
	if sec != nil {
		creds.RoleID, _ = sec.Data["role_id"].(string)
	}
	if creds.RoleID == "" {
		return fmt.Errorf("vault setup: Vault returned no role id for %s", path)
	}
	if s.o.SecretIDs {
		sec, err := s.c.Logical().WriteWithContext(ctx, path+"/secret-id", nil)
		if err != nil {
			return setupError("issue a secret id for "+name, err)
		}
		var id, accessor string
		if sec != nil {
			id, _ = sec.Data["secret_id"].(string)
			accessor, _ = sec.Data["secret_id_accessor"].(string)
		}
		if id == "" {
			return fmt.Errorf("vault setup: Vault returned no secret id for %s", path)
		}
		creds.SecretID = SecretID{id}
		s.add("approle secret id", path+"/secret-id", SetupCreated, "accessor "+accessor)
	}
	s.rep.AppRoles = append(s.rep.AppRoles, creds)
	return nil
}

// jwtConfig points the JWT auth method at Nomad's JWKS. A write replaces the whole
// config, so settings made by hand on this method are lost when it is updated.
func (s *setup) jwtConfig(ctx context.Context) error {
	path := "auth/" + s.o.JWTPath + "/config"
	a, detail, err := s.ensure(ctx, path, fields{
		"jwks_url":           s.o.NomadJWKSURL,
		"jwt_supported_algs": nomadJWTAlgs,
	})
	if err != nil {
		return err
	}
	if a == SetupCreated {
		detail = "jwks_url " + s.o.NomadJWKSURL
	}
	s.add("jwt config", path, a, detail)
	return nil
}

// jwtRole ensures the JWT role a Nomad job named edgehook-<role> logs in with.
func (s *setup) jwtRole(ctx context.Context, role string) error {
	name := s.name(role)
	job := PolicyName(role)
	path := "auth/" + s.o.JWTPath + "/role/" + name
	a, detail, err := s.ensure(ctx, path, fields{
		"role_type":               "jwt",
		"bound_audiences":         []string{NomadAudience},
		"user_claim":              "/nomad_job_id",
		"user_claim_json_pointer": true,
		"bound_claims_type":       "string",
		"bound_claims":            map[string]string{"nomad_job_id": job, "nomad_namespace": s.o.NomadNamespace},
		"claim_mappings": map[string]string{
			"nomad_namespace": "nomad_namespace", "nomad_job_id": "nomad_job_id", "nomad_task": "nomad_task",
		},
		"token_type":     "service",
		"token_policies": []string{name},
		"token_period":   s.o.JWTTokenPeriod,
	})
	if err != nil {
		return err
	}
	if a == SetupCreated {
		detail = fmt.Sprintf("Nomad job %s in namespace %s, policy %s, token_period %s", job, s.o.NomadNamespace, name, s.o.JWTTokenPeriod)
	}
	s.add("jwt role", path, a, detail)
	s.rep.JWTRoles = append(s.rep.JWTRoles, name)
	return nil
}

// fields are the wanted values of a Vault object: string, bool, []string (compared as
// a set), map[string]string or time.Duration (sent and compared as whole seconds).
type fields map[string]any

// body renders the fields as a request body.
func (f fields) body() map[string]any {
	b := make(map[string]any, len(f))
	for k, v := range f {
		if d, ok := v.(time.Duration); ok {
			v = int64(d / time.Second)
		}
		b[k] = v
	}
	return b
}

// diff returns the names of the fields whose value in got (as Vault reads it back)
// differs from the wanted one, sorted.
func (f fields) diff(got map[string]any) []string {
	var out []string
	for _, k := range slices.Sorted(maps.Keys(f)) {
		if !sameValue(f[k], got[k]) {
			out = append(out, k)
		}
	}
	return out
}

// ensure reads the object at path and writes want when it is missing (created) or any
// field differs (updated, detail naming the fields).
func (s *setup) ensure(ctx context.Context, path string, want fields) (SetupAction, string, error) {
	sec, err := s.c.Logical().ReadWithContext(ctx, path)
	if err != nil {
		return "", "", setupError("read "+path, err)
	}
	action, detail := SetupCreated, ""
	if sec != nil {
		changed := want.diff(sec.Data)
		if len(changed) == 0 {
			return SetupUnchanged, "", nil
		}
		action, detail = SetupUpdated, strings.Join(changed, ", ")
	}
	if _, err := s.c.Logical().WriteWithContext(ctx, path, want.body()); err != nil {
		return "", "", setupError("write "+path, err)
	}
	return action, detail, nil
}

// sameValue compares a wanted value with the one Vault returned (decoded JSON with
// json.Number numbers, or strings for durations).
func sameValue(want, got any) bool {
	switch w := want.(type) {
	case string:
		g, ok := got.(string)
		return ok && g == w
	case bool:
		g, ok := got.(bool)
		return ok && g == w
	case time.Duration:
		g, ok := durationSeconds(got)
		return ok && g == int64(w/time.Second)
	case []string:
		g, ok := stringList(got)
		return ok && slices.Equal(slices.Sorted(slices.Values(g)), slices.Sorted(slices.Values(w)))
	case map[string]string:
		g, ok := got.(map[string]any)
		if !ok || len(g) != len(w) {
			return false
		}
		for k, v := range w {
			if gv, ok := g[k].(string); !ok || gv != v {
				return false
			}
		}
		return true
	}
	return false
}

// durationSeconds reads a duration Vault returned as seconds (a number) or as a
// duration string.
func durationSeconds(v any) (int64, bool) {
	switch v := v.(type) {
	case json.Number:
		if n, err := v.Int64(); err == nil {
			return n, true
		}
		f, err := v.Float64()
		return int64(f), err == nil
	case float64:
		return int64(v), true
	case int:
		return int64(v), true
	case int64:
		return v, true
	case string:
		if n, err := strconv.ParseInt(v, 10, 64); err == nil {
			return n, true
		}
		d, err := time.ParseDuration(v)
		return int64(d / time.Second), err == nil
	}
	return 0, false
}

// stringList reads a list of strings Vault returned (a JSON array, or null as empty).
func stringList(v any) ([]string, bool) {
	switch v := v.(type) {
	case nil:
		return nil, true
	case []string:
		return v, true
	case []any:
		out := make([]string, 0, len(v))
		for _, e := range v {
			s, ok := e.(string)
			if !ok {
				return nil, false
			}
			out = append(out, s)
		}
		return out, true
	}
	return nil, false
}

// setupError wraps a Vault error with the step that failed, and ErrPermissionDenied
// for a 403 (the setup token lacks a capability).
func setupError(what string, err error) error {
	if isPermissionDenied(err) {
		return fmt.Errorf("vault setup: %s: %w (the setup token needs root or equivalent): %w", what, ErrPermissionDenied, err)
	}
	return fmt.Errorf("vault setup: %s: %w", what, err)
}
