package vault

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/edgehook/edgehook/identity"
)

// ErrPermissionDenied is matched by errors for requests Vault refused with 403: the
// token lacks the policy for the path, or it expired or was revoked and no new one
// could be obtained.
var ErrPermissionDenied = errors.New("vault: permission denied")

// ErrNotAuthenticated is matched by errors of requests made while the Client holds no
// token and cannot log in (AppRole login or token file failing).
var ErrNotAuthenticated = errors.New("vault: not authenticated")

// Client is the production ConfigStore: each tenant's configuration is one secret in
// Vault's KV v2 engine at <mount>/data/<prefix>/<tenantId>, written and read with
// github.com/hashicorp/vault/api. A 404 maps to ErrNotFound, a 403 to
// ErrPermissionDenied; errors never contain a secret or token.
//
// With a token file or AppRole the Client logs in on first use, and logs in again
// (retrying the request once) when Vault rejects its token as expired or revoked. Run
// keeps the token renewed with api.LifetimeWatcher and re-authenticates when renewal
// ends; Ready reports whether the Client holds a usable token. It is safe for
// concurrent use.
type Client struct {
	api    *api.Client // requests for webhook config; its token changes on login
	bare   *api.Client // no token: logins, and requests made with an explicit token
	cfg    ClientConfig
	method string
	mount  string
	prefix string
	now    func() time.Time
	log    *slog.Logger

	authMu sync.Mutex // serializes authentication

	mu       sync.Mutex
	auth     *api.Secret // the current login (nil: none, or found invalid)
	gen      uint64      // incremented whenever auth changes
	ready    bool
	authErr  error // why the Client is not ready
	accessor string
	sched    loginSchedule
	wake     chan struct{} // tells Run that auth changed (1-buffered, coalescing)
}

// NewClient returns a Client for cfg. It makes no request. TLS settings come from the
// standard VAULT_CACERT, VAULT_CLIENT_CERT etc. variables read by the Vault library.
func NewClient(cfg ClientConfig) (*Client, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	newAPI := func() (*api.Client, error) {
		ac := api.DefaultConfig()
		if ac.Error != nil {
			return nil, fmt.Errorf("vault: client configuration: %w", ac.Error)
		}
		ac.Address = cfg.Address
		ac.Timeout = cfg.Timeout
		// The library's pooled transport keeps GOMAXPROCS+1 idle connections per host,
		// so concurrent readers would keep dialing (and, with TLS, handshaking) Vault.
		if t, ok := ac.HttpClient.Transport.(*http.Transport); ok {
			t.MaxIdleConnsPerHost = 64
		}
		switch {
		case cfg.MaxRetries > 0:
			ac.MaxRetries = cfg.MaxRetries
		case cfg.MaxRetries < 0:
			ac.MaxRetries = 0
		}
		c, err := api.NewClient(ac)
		if err != nil {
			return nil, fmt.Errorf("vault: new client: %w", err)
		}
		c.ClearToken() // the library picks up VAULT_TOKEN by itself; only cfg counts
		return c, nil
	}
	c := &Client{
		cfg:    cfg,
		method: cfg.authMethod(),
		mount:  cfg.Mount,
		prefix: cfg.Prefix,
		now:    time.Now,
		log:    cfg.Log,
		wake:   make(chan struct{}, 1),
		sched:  loginSchedule{threshold: cfg.LockoutThreshold, duration: cfg.LockoutDuration, counterReset: cfg.LockoutCounterReset},
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.api, err = newAPI(); err != nil {
		return nil, err
	}
	if c.bare, err = newAPI(); err != nil {
		return nil, err
	}
	if c.method == authToken {
		// A fixed token is usable at once; Run looks it up to learn its TTL.
		c.api.SetToken(cfg.Token)
		c.ready = true
	}
	return c, nil
}

// DataPath returns the logical path (without /v1/) of tenantID's secret data.
func (c *Client) DataPath(tenantID string) string {
	return c.mount + "/data/" + c.prefix + "/" + tenantID
}

// MetadataPath returns the logical path (without /v1/) of tenantID's secret metadata.
func (c *Client) MetadataPath(tenantID string) string {
	return c.mount + "/metadata/" + c.prefix + "/" + tenantID
}

// WebhookConfig reads tenantID's configuration (the latest version of its secret). A
// missing or deleted secret, or an invalid tenant id, is ErrNotFound.
func (c *Client) WebhookConfig(ctx context.Context, tenantID string) (WebhookConfig, error) {
	if !identity.ValidTenantID(tenantID) {
		return WebhookConfig{}, fmt.Errorf("%w: invalid tenant id", ErrNotFound)
	}
	var sec *api.Secret
	err := c.call(ctx, func() (err error) {
		sec, err = c.api.Logical().ReadWithContext(ctx, c.DataPath(tenantID))
		return err
	})
	if err != nil {
		return WebhookConfig{}, wrapError("read", tenantID, err)
	}
	if sec == nil {
		return WebhookConfig{}, fmt.Errorf("%w: tenant %s", ErrNotFound, tenantID)
	}
	// A deleted latest version comes back with "data": null.
	data, _ := sec.Data["data"].(map[string]any)
	if data == nil {
		return WebhookConfig{}, fmt.Errorf("%w: tenant %s", ErrNotFound, tenantID)
	}
	r, err := recordFromMap(tenantID, data)
	if err != nil {
		return WebhookConfig{}, err
	}
	return decodeRecord(tenantID, r)
}

// PutWebhookConfig writes cfg as a new version of cfg.TenantID's secret. Previous
// secrets whose window has closed are dropped; a zero LastUpdated is set to now.
func (c *Client) PutWebhookConfig(ctx context.Context, cfg WebhookConfig) error {
	r, err := encodeRecord(cfg, c.now())
	if err != nil {
		return err
	}
	m, err := r.toMap()
	if err != nil {
		return err
	}
	err = c.call(ctx, func() error {
		_, err := c.api.Logical().WriteWithContext(ctx, c.DataPath(cfg.TenantID), map[string]any{"data": m})
		return err
	})
	return wrapError("write", cfg.TenantID, err)
}

// DeleteWebhookConfig removes tenantID's secret with all its versions (its metadata);
// deleting a missing one is not an error.
func (c *Client) DeleteWebhookConfig(ctx context.Context, tenantID string) error {
	if !identity.ValidTenantID(tenantID) {
		return nil
	}
	err := c.call(ctx, func() error {
		_, err := c.api.Logical().DeleteWithContext(ctx, c.MetadataPath(tenantID))
		return err
	})
	if err = wrapError("delete", tenantID, err); err != nil && !errors.Is(err, ErrNotFound) {
		return err
	}
	return nil
}

// wrapError maps a Vault API error (nil stays nil): 404 on a read or delete to
// ErrNotFound (on a write it means the mount is missing), 403 to ErrPermissionDenied,
// and wraps everything with the operation and tenant. Vault's error texts (URL, status,
// Vault's messages) never echo request bodies or tokens, so no secret can appear.
func wrapError(op, tenantID string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, ErrNotAuthenticated) {
		return fmt.Errorf("vault: %s webhook config of tenant %s: %w", op, tenantID, err)
	}
	var re *api.ResponseError
	if errors.As(err, &re) {
		switch {
		case re.StatusCode == 404 && op != "write":
			return fmt.Errorf("%w: tenant %s: %w", ErrNotFound, tenantID, err)
		case re.StatusCode == 403:
			return fmt.Errorf("vault: %s webhook config of tenant %s: %w: %w", op, tenantID, ErrPermissionDenied, err)
		}
	}
	return fmt.Errorf("vault: %s webhook config of tenant %s: %w", op, tenantID, err)
}

// isPermissionDenied reports whether err is Vault's 403.
func isPermissionDenied(err error) bool {
	var re *api.ResponseError
	return errors.As(err, &re) && re.StatusCode == 403
}
