package vault

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/hashicorp/vault/api"
)

// Ready reports whether the Client holds a token it believes valid: the last login (or
// the lookup of a fixed token) succeeded and no request has since found the token
// expired or revoked without a new one. Serve it as /readyz.
func (c *Client) Ready() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ready
}

// NotReadyReason says why Ready reports false, in one line fit for a readiness answer
// or a log ("" while ready). After Vault locked the AppRole role id out it says so and
// when the next login is due. It never contains a token or secret id.
func (c *Client) NotReadyReason() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.ready:
		return ""
	case c.sched.lockedOut(c.now()):
		return fmt.Sprintf("%v; next attempt at %s", ErrLockedOut, c.sched.next.UTC().Format(time.RFC3339))
	case c.authErr != nil:
		return strings.Join(strings.Fields(c.authErr.Error()), " ")
	}
	return ErrNotAuthenticated.Error() + ": no login yet"
}

// TokenAccessor returns the accessor of the token in use ("" before the first login).
// An accessor identifies a token in Vault's audit log and can revoke it, but cannot be
// used as the token; it is safe to log.
func (c *Client) TokenAccessor() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.accessor
}

// Run keeps the Client authenticated until ctx ends: it logs in (or looks up a fixed
// token), renews the token with api.LifetimeWatcher, and logs in again when renewal
// ends (the token reached its max TTL) or a request found the token expired or
// revoked. Failed logins are retried on the Client's login schedule (see
// ClientConfig.LockoutThreshold) while Ready reports false; nothing, not even a failed
// login from a request, brings a retry forward. On return it revokes a token it
// obtained by AppRole login. It returns nil once ctx ends.
func (c *Client) Run(ctx context.Context) error {
	for ctx.Err() == nil {
		c.mu.Lock()
		sec, gen := c.auth, c.gen
		c.mu.Unlock()
		if sec == nil {
			var err error
			c.authMu.Lock()
			c.mu.Lock()
			sec = c.auth // a request may have logged in while we waited for the lock
			c.mu.Unlock()
			if sec == nil {
				sec, err = c.authenticateLocked(ctx)
			}
			c.authMu.Unlock()
			if err != nil {
				if ctx.Err() != nil {
					break
				}
				// Woken early (a request's login changed the state), it looks again.
				c.sleep(ctx, c.untilNextLogin(), true)
				continue
			}
			c.mu.Lock()
			gen = c.gen
			c.mu.Unlock()
		}
		started := time.Now()
		c.watch(ctx, sec, gen)
		if time.Since(started) < time.Second {
			// Near expiry a fixed token can look valid yet have nothing left to renew.
			c.sleep(ctx, time.Second, false)
		}
	}
	c.revokeOwnToken()
	return nil
}

// untilNextLogin is how long Run waits before looking at the login schedule again: until
// the next login is due, or the next look at a secret id file that may have changed.
func (c *Client) untilNextLogin() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	d := c.sched.next.Sub(now)
	if c.cfg.SecretIDFile != "" && c.sched.reserveLeft(now) {
		d = min(d, secretIDPoll)
	}
	return max(d, 10*time.Millisecond)
}

// watch renews sec's token until renewal ends, the Client's auth changes (gen moves
// on) or ctx ends. When renewal ends it drops the auth so Run authenticates again.
func (c *Client) watch(ctx context.Context, sec *api.Secret, gen uint64) {
	if sec.Auth == nil || sec.Auth.LeaseDuration == 0 {
		// A token without a TTL (root, or a non-expiring token) needs no renewal.
		for {
			select {
			case <-ctx.Done():
				return
			case <-c.wake:
				if c.currentGen() != gen {
					return
				}
			}
		}
	}
	w, err := c.api.NewLifetimeWatcher(&api.LifetimeWatcherInput{Secret: sec})
	if err != nil {
		c.log.Error("vault token renewal cannot start", "accessor", sec.Auth.Accessor, "error", err)
		c.dropAuth(gen)
		return
	}
	go w.Start()
	defer w.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case err := <-w.DoneCh():
			if err != nil {
				c.log.Warn("vault token renewal failed; authenticating again", "accessor", sec.Auth.Accessor, "error", err)
			} else {
				c.log.Info("vault token reached the end of its lifetime; authenticating again", "accessor", sec.Auth.Accessor)
			}
			c.dropAuth(gen)
			return
		case r := <-w.RenewCh():
			if r.Secret != nil && r.Secret.Auth != nil {
				c.log.Debug("vault token renewed", "accessor", sec.Auth.Accessor, "ttl", time.Duration(r.Secret.Auth.LeaseDuration)*time.Second)
			}
		case <-c.wake:
			if c.currentGen() != gen {
				return
			}
		}
	}
}

// sleep waits for d or ctx; with wakeable it also returns when the auth changes.
func (c *Client) sleep(ctx context.Context, d time.Duration, wakeable bool) {
	t := time.NewTimer(d)
	defer t.Stop()
	var wake <-chan struct{}
	if wakeable {
		wake = c.wake
	}
	select {
	case <-ctx.Done():
	case <-t.C:
	case <-wake:
	}
}

func (c *Client) currentGen() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gen
}

// signal wakes Run (without blocking; pending wake-ups coalesce).
func (c *Client) signal() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// dropAuth forgets the current login if it is still generation gen, so Run
// authenticates again; the token stays in use (and Ready unchanged) until then.
func (c *Client) dropAuth(gen uint64) {
	c.mu.Lock()
	if c.gen == gen {
		c.auth = nil
		c.gen++
	}
	c.mu.Unlock()
}

// call runs fn (a request made with c.api's token), logging in first if the Client has
// no token yet. When Vault answers 403 because the token expired or was revoked, it
// authenticates again and runs fn once more.
func (c *Client) call(ctx context.Context, fn func() error) error {
	tok, err := c.ensureToken(ctx)
	if err != nil {
		return err
	}
	err = fn()
	if !isPermissionDenied(err) {
		return err
	}
	if c.recoverToken(ctx, tok) {
		return fn()
	}
	return err
}

// ensureToken returns the token in use, logging in first when there is none.
func (c *Client) ensureToken(ctx context.Context) (string, error) {
	if tok := c.api.Token(); tok != "" {
		return tok, nil
	}
	c.authMu.Lock()
	defer c.authMu.Unlock()
	if tok := c.api.Token(); tok != "" {
		return tok, nil
	}
	if _, err := c.authenticateLocked(ctx); err != nil {
		return "", err
	}
	return c.api.Token(), nil
}

// recoverToken handles a 403 for a request made with failed: it reports whether a
// retry can succeed because another token is now in use. A token Vault still accepts
// means a genuine policy denial (no retry); an expired or revoked one is replaced by
// logging in again where the method allows it, else the Client becomes not ready.
func (c *Client) recoverToken(ctx context.Context, failed string) bool {
	c.authMu.Lock()
	defer c.authMu.Unlock()
	if cur := c.api.Token(); cur != failed {
		return cur != "" // someone logged in meanwhile
	}
	c.mu.Lock()
	knownBad := c.auth == nil && !c.ready
	c.mu.Unlock()
	if !knownBad {
		_, err := c.lookupSelf(ctx, failed)
		if err == nil || !isPermissionDenied(err) {
			return false // a policy denial, or Vault cannot tell us now
		}
		c.log.Warn("vault rejected the token as expired or revoked", "auth", c.method, "accessor", c.TokenAccessor())
		c.mu.Lock()
		c.auth, c.gen, c.ready = nil, c.gen+1, false
		c.authErr = fmt.Errorf("%w: token expired or revoked", ErrNotAuthenticated)
		c.mu.Unlock()
		c.signal()
	}
	if c.method == authToken {
		return false // a fixed token cannot be replaced
	}
	_, err := c.authenticateLocked(ctx)
	return err == nil
}

// authenticateLocked logs in (or reads and looks up the token) and installs the new
// token, unless the login schedule says no login is due yet: then it returns the last
// failure. c.authMu must be held.
func (c *Client) authenticateLocked(ctx context.Context) (*api.Secret, error) {
	var secretID string
	var credErr error
	if c.method == authAppRole {
		secretID, credErr = c.currentSecretID()
	}
	cred := sha256.Sum256([]byte(secretID))
	c.mu.Lock()
	if !c.sched.due(c.now(), credErr == nil && cred != c.sched.failedCred) {
		err := c.authErr
		c.mu.Unlock()
		if err == nil {
			err = ErrNotAuthenticated
		}
		return nil, err
	}
	c.mu.Unlock()

	var auth *api.Secret
	err := credErr
	if err == nil {
		auth, err = c.login(ctx, secretID)
	}
	if err != nil {
		c.loginFailed(err, cred)
		c.mu.Lock()
		err = c.authErr
		c.mu.Unlock()
		return nil, err
	}
	c.api.SetToken(auth.Auth.ClientToken)
	c.mu.Lock()
	c.auth, c.gen, c.ready, c.authErr = auth, c.gen+1, true, nil
	c.accessor = auth.Auth.Accessor
	c.sched.succeeded()
	c.mu.Unlock()
	c.signal()
	c.log.Info("vault authenticated", "auth", c.method, "accessor", auth.Auth.Accessor,
		"ttl", time.Duration(auth.Auth.LeaseDuration)*time.Second, "renewable", auth.Auth.Renewable, "policies", auth.Auth.Policies)
	return auth, nil
}

// loginFailed records a failed login on the schedule, makes the Client not ready with
// the failure as the reason, and logs it: a lockout once, clearly, when it starts.
func (c *Client) loginFailed(err error, cred [32]byte) {
	outcome := loginUncounted
	if c.method == authAppRole {
		outcome = classifyAppRoleLogin(err)
	}
	c.mu.Lock()
	now := c.now()
	wasLocked := c.sched.lockedOut(now)
	c.sched.failed(now, outcome, cred)
	next, counted := c.sched.next, c.sched.counted
	if outcome == loginLocked {
		err = lockoutError(next, err)
	} else {
		err = fmt.Errorf("%w: %s: %w", ErrNotAuthenticated, c.method, err)
	}
	c.ready, c.authErr = false, err
	c.mu.Unlock()
	at := next.UTC().Format(time.RFC3339)
	switch {
	case outcome == loginLocked && !wasLocked:
		c.log.Error("AppRole role id locked out by Vault after repeated failed logins; next attempt at "+at,
			"auth", c.method, "next_attempt", at,
			"detail", "Vault refuses every login of the role id until the lockout ends, with a correct secret id too; it answers the same (403) when the AppRole mount does not exist")
	case outcome == loginLocked:
		c.log.Warn("AppRole role id still locked out by Vault; next attempt at "+at, "auth", c.method, "next_attempt", at)
	default:
		c.log.Warn("vault authentication failed; retrying", "auth", c.method, "next_attempt", at,
			"retry_in", next.Sub(now).Round(time.Millisecond), "counted_failures", counted, "error", err)
	}
}

// currentSecretID returns the AppRole secret id to log in with: the configured one, or
// the secret id file's content, read again at every login ("" without secret id).
func (c *Client) currentSecretID() (string, error) {
	if c.cfg.SecretIDFile == "" {
		return c.cfg.SecretID, nil
	}
	return readCredentialFile(c.cfg.SecretIDFile, "secret id file")
}

// login obtains a token by the configured method (with secretID for AppRole) and
// returns it as an auth secret.
func (c *Client) login(ctx context.Context, secretID string) (*api.Secret, error) {
	switch c.method {
	case authToken:
		return c.lookupSelf(ctx, c.cfg.Token)
	case authTokenFile:
		tok, err := readCredentialFile(c.cfg.TokenFile, "token file")
		if err != nil {
			return nil, err
		}
		return c.lookupSelf(ctx, tok)
	}
	body := map[string]any{"role_id": c.cfg.RoleID}
	if secretID != "" {
		body["secret_id"] = secretID
	}
	sec, err := c.bare.Logical().WriteWithContext(ctx, "auth/"+c.cfg.AppRoleMount+"/login", body)
	if err != nil {
		return nil, fmt.Errorf("AppRole login: %w", err)
	}
	if sec == nil || sec.Auth == nil || sec.Auth.ClientToken == "" {
		return nil, errors.New("AppRole login returned no token")
	}
	return sec, nil
}

// lookupSelf looks tok up and returns what it is as an auth secret (TTL, renewable,
// accessor), the form api.LifetimeWatcher renews.
func (c *Client) lookupSelf(ctx context.Context, tok string) (*api.Secret, error) {
	cl, err := c.bare.Clone()
	if err != nil {
		return nil, fmt.Errorf("token lookup: %w", err)
	}
	cl.SetToken(tok)
	s, err := cl.Auth().Token().LookupSelfWithContext(ctx)
	if err != nil {
		return nil, fmt.Errorf("token lookup: %w", err)
	}
	if s == nil {
		return nil, errors.New("token lookup returned nothing")
	}
	ttl, err := s.TokenTTL()
	if err != nil {
		return nil, fmt.Errorf("token lookup: ttl: %w", err)
	}
	renewable, err := s.TokenIsRenewable()
	if err != nil {
		return nil, fmt.Errorf("token lookup: renewable: %w", err)
	}
	accessor, _ := s.TokenAccessor()
	policies, _ := s.TokenPolicies()
	return &api.Secret{Auth: &api.SecretAuth{
		ClientToken:   tok,
		Accessor:      accessor,
		Policies:      policies,
		LeaseDuration: int(ttl / time.Second),
		Renewable:     renewable,
	}}, nil
}

// revokeOwnToken revokes a token obtained by AppRole login when Run stops, so it does
// not outlive the process. Fixed tokens and token files belong to someone else.
func (c *Client) revokeOwnToken() {
	if c.method != authAppRole {
		return
	}
	c.authMu.Lock()
	defer c.authMu.Unlock()
	tok := c.api.Token()
	if tok == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	cl, err := c.bare.Clone()
	if err == nil {
		cl.SetToken(tok)
		err = cl.Auth().Token().RevokeSelfWithContext(ctx, "")
	}
	if err != nil {
		c.log.Warn("vault token not revoked at shutdown", "accessor", c.TokenAccessor(), "error", err)
		return
	}
	c.api.ClearToken()
	c.mu.Lock()
	c.auth, c.gen, c.ready = nil, c.gen+1, false
	c.mu.Unlock()
}

// readCredentialFile reads a token or secret id from path, trimming whitespace. Errors
// name the file, never its content.
func readCredentialFile(path, what string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read %s: %w", what, err)
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", fmt.Errorf("%s %s is empty", what, path)
	}
	return s, nil
}
