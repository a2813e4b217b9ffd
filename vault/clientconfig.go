package vault

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"
)

// Client defaults.
const (
	DefaultMount         = "secret"
	DefaultPrefix        = "edgehook/webhook-config"
	DefaultAppRoleMount  = "approle"
	DefaultClientTimeout = 10 * time.Second
)

// ClientConfig configures a Client. Exactly one way to authenticate is set: Token,
// TokenFile, or RoleID (AppRole, with SecretID or SecretIDFile). Its String and LogValue
// never show a token or secret id.
type ClientConfig struct {
	// Address is Vault's URL, e.g. https://vault.example:8200 (VAULT_ADDR).
	Address string
	// Token is a fixed token (VAULT_TOKEN). It is renewed while renewable; once it
	// expires or is revoked the Client stays unauthenticated.
	Token string
	// TokenFile is a file holding the token (VAULT_TOKEN_FILE), as Nomad's workload
	// identity renders it. It is read again whenever the token in use is found invalid.
	TokenFile string
	// AppRoleMount is the path of the AppRole auth method (default DefaultAppRoleMount).
	AppRoleMount string
	// RoleID selects AppRole login (VAULT_ROLE_ID).
	RoleID string
	// SecretID is the AppRole secret id (VAULT_SECRET_ID).
	SecretID string
	// SecretIDFile is a file holding the AppRole secret id (VAULT_SECRET_ID_FILE), read
	// again at every login so a rotated secret id is picked up.
	SecretIDFile string
	// Mount is the KV v2 mount path (default DefaultMount).
	Mount string
	// Prefix is the path under the mount that holds one secret per tenant
	// (default DefaultPrefix).
	Prefix string
	// Timeout bounds each HTTP request to Vault (default DefaultClientTimeout).
	Timeout time.Duration
	// MaxRetries is how often a request failing with a 5xx or a connection error is
	// retried, 1-1.5 s apart: 0 takes the Vault library's default (2), a negative value
	// disables retries (callers that retry themselves, like a cache miss that naks).
	MaxRetries int
	// LockoutThreshold, LockoutDuration and LockoutCounterReset are the AppRole mount's
	// user lockout settings (Vault's user_lockout_config; defaults
	// DefaultLockoutThreshold, DefaultLockoutDuration and DefaultLockoutCounterReset,
	// Vault's own). Failed logins are spaced so that they never reach the threshold
	// within the counter reset: LockoutThreshold-2 quick retries (at least one), then a
	// wait of LockoutCounterReset, with one more attempt kept for a secret id file that
	// changed. A lockout is waited out (the longer of LockoutDuration and
	// LockoutCounterReset) rather than fed more failures.
	LockoutThreshold    int
	LockoutDuration     time.Duration
	LockoutCounterReset time.Duration
	// Log receives authentication events (logins, renewals, failures); nil discards
	// them. Tokens and secret ids are never logged, token accessors are.
	Log *slog.Logger
}

// String describes the config with credentials redacted.
func (c ClientConfig) String() string {
	return fmt.Sprintf("{Address:%s Token:%s TokenFile:%s AppRoleMount:%s RoleID:%s SecretID:%s SecretIDFile:%s Mount:%s Prefix:%s Timeout:%s MaxRetries:%d LockoutThreshold:%d LockoutDuration:%s LockoutCounterReset:%s}",
		c.Address, redacted(c.Token), c.TokenFile, c.AppRoleMount, redacted(c.RoleID), redacted(c.SecretID), c.SecretIDFile,
		c.Mount, c.Prefix, c.Timeout, c.MaxRetries, c.LockoutThreshold, c.LockoutDuration, c.LockoutCounterReset)
}

// GoString is String, so %#v does not print credentials either.
func (c ClientConfig) GoString() string { return c.String() }

// LogValue logs the config with credentials redacted.
func (c ClientConfig) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("address", c.Address),
		slog.String("auth", c.authMethod()),
		slog.String("token", redacted(c.Token)),
		slog.String("token_file", c.TokenFile),
		slog.String("approle_mount", c.AppRoleMount),
		slog.String("role_id", redacted(c.RoleID)),
		slog.String("secret_id", redacted(c.SecretID)),
		slog.String("secret_id_file", c.SecretIDFile),
		slog.String("mount", c.Mount),
		slog.String("prefix", c.Prefix),
		slog.Duration("timeout", c.Timeout),
		slog.Int("max_retries", c.MaxRetries),
		slog.Int("lockout_threshold", c.LockoutThreshold),
		slog.Duration("lockout_duration", c.LockoutDuration),
		slog.Duration("lockout_counter_reset", c.LockoutCounterReset),
	)
}

func redacted(s string) string {
	if s == "" {
		return ""
	}
	return "REDACTED"
}

// Authentication methods.
const (
	authToken     = "token"
	authTokenFile = "token-file"
	authAppRole   = "approle"
)

// authMethod names the configured way to authenticate ("" when none or several).
func (c ClientConfig) authMethod() string {
	n := 0
	m := ""
	if c.Token != "" {
		n, m = n+1, authToken
	}
	if c.TokenFile != "" {
		n, m = n+1, authTokenFile
	}
	if c.RoleID != "" {
		n, m = n+1, authAppRole
	}
	if n != 1 {
		return ""
	}
	return m
}

// withDefaults fills defaults and checks every setting, naming the bad one.
func (c ClientConfig) withDefaults() (ClientConfig, error) {
	if c.Mount == "" {
		c.Mount = DefaultMount
	}
	if c.Prefix == "" {
		c.Prefix = DefaultPrefix
	}
	if c.AppRoleMount == "" {
		c.AppRoleMount = DefaultAppRoleMount
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultClientTimeout
	}
	if c.LockoutThreshold == 0 {
		c.LockoutThreshold = DefaultLockoutThreshold
	}
	if c.LockoutDuration == 0 {
		c.LockoutDuration = DefaultLockoutDuration
	}
	if c.LockoutCounterReset == 0 {
		c.LockoutCounterReset = DefaultLockoutCounterReset
	}
	c.Mount = strings.Trim(c.Mount, "/")
	c.Prefix = strings.Trim(c.Prefix, "/")
	c.AppRoleMount = strings.Trim(c.AppRoleMount, "/")
	u, err := url.Parse(c.Address)
	set := 0
	for _, s := range []string{c.Token, c.TokenFile, c.RoleID} {
		if s != "" {
			set++
		}
	}
	switch {
	case c.Address == "":
		return c, errors.New("vault: VAULT_ADDR (ClientConfig.Address) is empty")
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		return c, errors.New("vault: VAULT_ADDR (ClientConfig.Address) must be an http or https URL")
	case set == 0:
		return c, errors.New("vault: no credentials: set VAULT_TOKEN, VAULT_TOKEN_FILE or VAULT_ROLE_ID (ClientConfig.Token, TokenFile or RoleID)")
	case set > 1:
		return c, errors.New("vault: set only one of VAULT_TOKEN, VAULT_TOKEN_FILE and VAULT_ROLE_ID (ClientConfig.Token, TokenFile, RoleID)")
	case c.SecretID != "" && c.SecretIDFile != "":
		return c, errors.New("vault: set only one of VAULT_SECRET_ID and VAULT_SECRET_ID_FILE (ClientConfig.SecretID, SecretIDFile)")
	case (c.SecretID != "" || c.SecretIDFile != "") && c.RoleID == "":
		return c, errors.New("vault: VAULT_SECRET_ID or VAULT_SECRET_ID_FILE is set without VAULT_ROLE_ID (ClientConfig.RoleID)")
	case !validVaultPath(c.AppRoleMount):
		return c, fmt.Errorf("vault: AppRole mount %q is not a valid Vault path", c.AppRoleMount)
	case !validVaultPath(c.Mount):
		return c, fmt.Errorf("vault: mount %q is not a valid Vault path", c.Mount)
	case !validVaultPath(c.Prefix):
		return c, fmt.Errorf("vault: prefix %q is not a valid Vault path", c.Prefix)
	case c.Timeout < 0:
		return c, errors.New("vault: client timeout must not be negative")
	case c.LockoutThreshold < 0:
		return c, errors.New("vault: lockout threshold (ClientConfig.LockoutThreshold) must not be negative")
	case c.LockoutDuration < 0:
		return c, errors.New("vault: lockout duration (ClientConfig.LockoutDuration) must not be negative")
	case c.LockoutCounterReset < 0:
		return c, errors.New("vault: lockout counter reset (ClientConfig.LockoutCounterReset) must not be negative")
	}
	return c, nil
}

// validVaultPath reports whether p is a non-empty slash-separated path without empty,
// "." or ".." segments and without characters that need escaping.
func validVaultPath(p string) bool {
	if p == "" {
		return false
	}
	for seg := range strings.SplitSeq(p, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return false
		}
		for _, r := range seg {
			ok := r == '-' || r == '_' || r == '.' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9')
			if !ok {
				return false
			}
		}
	}
	return true
}
