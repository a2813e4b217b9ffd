package vaulttest

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// User lockout, as Vault (1.13 and later) and OpenBao do it for AppRole logins: failed
// logins are counted per role id and auth mount (not per source address); a count
// reaching the threshold locks the role id out for the lockout duration, measured from
// the last failed login, and while locked out every login of that role id is refused
// with 403 "permission denied" before its credentials are checked, so a correct secret
// id is refused too and the refused login counts for nothing. A failed login more than
// the counter reset after the previous one starts the count at one again; a successful
// login clears it. Vault keeps these times in whole Unix seconds, and so does this model.
// Only refused credentials count (a secret id unknown to the role): an unknown role id or
// a missing secret id does not.
const (
	lockoutThresholdDefault    = 5
	lockoutDurationDefault     = 15 * time.Minute
	lockoutCounterResetDefault = 15 * time.Minute
)

// lockoutConfig is an auth mount's tuned user_lockout_config; zero fields take the
// server's defaults.
type lockoutConfig struct {
	threshold    uint64
	duration     time.Duration
	counterReset time.Duration
	disable      bool
}

// failedLogins is Vault's record of one role id's failed logins.
type failedLogins struct {
	count      uint64
	lastFailed int64 // Unix seconds
}

// effectiveLockout returns m's lockout settings: the tuned ones over Vault's defaults.
func effectiveLockout(m *authMount) lockoutConfig {
	c := lockoutConfig{threshold: lockoutThresholdDefault, duration: lockoutDurationDefault, counterReset: lockoutCounterResetDefault}
	if m.lockout.threshold != 0 {
		c.threshold = m.lockout.threshold
	}
	if m.lockout.duration != 0 {
		c.duration = m.lockout.duration
	}
	if m.lockout.counterReset != 0 {
		c.counterReset = m.lockout.counterReset
	}
	c.disable = m.lockout.disable
	return c
}

// lockedOut reports whether roleID is locked out on m at now.
func lockedOut(m *authMount, roleID string, now time.Time) bool {
	c := effectiveLockout(m)
	f := m.failed[roleID]
	if c.disable || f == nil {
		return false
	}
	return f.count >= c.threshold && now.Unix()-f.lastFailed < int64(c.duration.Seconds())
}

// loginFailed counts a refused login of roleID on m at now.
func loginFailed(m *authMount, roleID string, now time.Time) {
	c := effectiveLockout(m)
	if c.disable {
		return
	}
	f := m.failed[roleID]
	switch {
	case f == nil:
		f = &failedLogins{}
		m.failed[roleID] = f
	case now.After(time.Unix(f.lastFailed, 0).Add(c.counterReset)):
		f.count = 0
	}
	f.count++
	f.lastFailed = now.Unix()
}

// authTune serves sys/auth/<path>/tune and sys/mounts/auth/<path>/tune. It reads the
// mount's tuning and writes its user_lockout_config, with the keys and value forms the
// servers decode: lockout_threshold ("5"), lockout_duration and
// lockout_counter_reset_duration ("30s", "60" or "system"), lockout_disable (a boolean).
// Like the servers it ignores other keys inside user_lockout_config. Vault's API
// documentation calls the counter reset key lockout_counter_reset, which the servers
// ignore; so does this one.
func (s *Server) authTune(r *request, path string) response {
	m := s.authMounts[path]
	if m == nil {
		return badRequest("cannot fetch mount entry")
	}
	switch r.op {
	case capRead:
		data := map[string]any{
			"default_lease_ttl": int64(systemMaxTTL / time.Second),
			"max_lease_ttl":     int64(systemMaxTTL / time.Second),
			"force_no_cache":    false,
			"description":       m.description,
			"token_type":        "default-service",
		}
		if m.lockoutTuned {
			data["user_lockout_threshold"] = m.lockout.threshold
			data["user_lockout_duration"] = seconds(m.lockout.duration)
			data["user_lockout_counter_reset_duration"] = seconds(m.lockout.counterReset)
			data["user_lockout_disable"] = m.lockout.disable
		}
		return dataResponse(data, "system")
	case capCreate, capUpdate:
	default:
		return unsupported()
	}
	for k := range r.body {
		if k != "user_lockout_config" && k != "description" {
			return badRequest("vaulttest tunes only user_lockout_config and description of auth methods, not %s", k)
		}
	}
	raw, _ := r.body["user_lockout_config"].(map[string]any)
	if _, ok := r.body["user_lockout_config"]; ok && raw == nil {
		return badRequest("unable to convert given user lockout config information")
	}
	next := m.lockout
	if len(raw) > 0 {
		if m.typ != "approle" {
			return badRequest("tuning of user lockout configuration for auth type %q not allowed", m.typ)
		}
		strs := map[string]string{}
		for _, k := range []string{"lockout_threshold", "lockout_duration", "lockout_counter_reset_duration"} {
			v, ok := raw[k]
			if !ok || v == nil {
				continue
			}
			// The servers decode these into strings, which takes a JSON number too.
			switch v := v.(type) {
			case string:
				strs[k] = v
			case json.Number:
				strs[k] = v.String()
			default:
				return badRequest("unable to convert given user lockout config information")
			}
		}
		if v, ok := raw["lockout_disable"]; ok && v != nil {
			b, ok := v.(bool)
			if !ok {
				return badRequest("unable to convert given user lockout config information")
			}
			next.disable = b
		}
		if v := strs["lockout_threshold"]; v != "" {
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				return badRequest("unable to parse user lockout threshold: %v", err)
			}
			next.threshold = n
		}
		for key, dst := range map[string]*time.Duration{"lockout_duration": &next.duration, "lockout_counter_reset_duration": &next.counterReset} {
			v := strs[key]
			switch v {
			case "":
				continue
			case "system":
				*dst = 0
				continue
			}
			d, ok, err := paramDuration(map[string]any{key: v}, key)
			if err != nil || !ok {
				return badRequest("%v", err)
			}
			*dst = d
		}
	}
	if d, ok := r.body["description"].(string); ok {
		m.description = d
	}
	if len(raw) > 0 {
		m.lockout, m.lockoutTuned = next, true
	}
	return noContent()
}

// routeAuthTune returns the tune route when rest (below sys/auth/ or sys/mounts/auth/)
// names an auth mount's tune endpoint.
func (s *Server) routeAuthTune(rest string, sudo bool) *route {
	p, ok := strings.CutSuffix(strings.Trim(rest, "/"), "/tune")
	if !ok || p == "" {
		return nil
	}
	path := p + "/"
	return &route{sudo: sudo, handler: func(r *request) response { return s.authTune(r, path) }}
}

// lockoutDenied is the answer to a login of a locked-out role id.
func lockoutDenied() response { return errorResponse(http.StatusForbidden, "permission denied") }
