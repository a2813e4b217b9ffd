package vaulttest

import (
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"
)

// authMount is an enabled auth method.
type authMount struct {
	path, typ, accessor, uuid, description string
	roles                                  map[string]*approleRole // approle
	jwtRoles                               map[string]*jwtRole     // jwt
	jwtConfig                              *jwtConfig              // jwt; nil until written
	lockout                                lockoutConfig           // tuned user_lockout_config
	lockoutTuned                           bool
	failed                                 map[string]*failedLogins // approle: by role id
}

// approleRole is an AppRole role with its issued secret ids.
type approleRole struct {
	name            string
	roleID          string
	policies        []string
	tokenTTL        time.Duration
	tokenMaxTTL     time.Duration
	tokenPeriod     time.Duration
	tokenNumUses    int
	noDefault       bool
	bindSecretID    bool
	secretIDTTL     time.Duration
	secretIDNumUses int
	secretIDs       map[string]*secretID // by secret id
}

type secretID struct {
	id, accessor string
	created      time.Time
	expire       time.Time // zero: never
	usesLeft     int       // 0: unlimited
}

// routeAuth serves auth/<rest>: the token store and enabled auth methods.
func (s *Server) routeAuth(op, rest string) *route {
	if r, ok := strings.CutPrefix(rest, "token/"); ok {
		return s.routeToken(op, r)
	}
	var m *authMount
	for p, am := range s.authMounts {
		if strings.HasPrefix(rest, p) && (m == nil || len(p) > len(m.path)) {
			m = am
		}
	}
	if m == nil {
		return nil
	}
	sub := strings.TrimPrefix(rest, m.path)
	switch m.typ {
	case "approle":
		return s.routeAppRole(m, sub)
	case "jwt":
		return s.routeJWT(m, sub)
	}
	return nil
}

func (s *Server) routeAppRole(m *authMount, sub string) *route {
	if sub == "login" {
		return &route{unauth: true, handler: func(r *request) response { return s.appRoleLogin(m, r) }}
	}
	if sub == "role/" || sub == "role" {
		return &route{handler: func(r *request) response {
			if r.op != capList {
				return unsupported()
			}
			keys := slices.Sorted(maps.Keys(m.roles))
			if len(keys) == 0 {
				return notFound()
			}
			return dataResponse(map[string]any{"keys": keys}, "approle")
		}}
	}
	rest, ok := strings.CutPrefix(sub, "role/")
	if !ok {
		return nil
	}
	name, action, _ := strings.Cut(rest, "/")
	name = strings.ToLower(name)
	role := func() *approleRole { return m.roles[name] }
	switch action {
	case "":
		return &route{
			exists:  func() bool { return role() != nil },
			handler: func(r *request) response { return s.appRoleRole(m, name, r) },
		}
	case "role-id":
		return &route{handler: func(r *request) response {
			ro := role()
			if ro == nil {
				return badRequest("role %q does not exist", name)
			}
			switch r.op {
			case capRead:
				return dataResponse(map[string]any{"role_id": ro.roleID}, "approle")
			case capUpdate:
				id, _ := paramString(r.body, "role_id")
				if id == "" {
					return badRequest("missing role_id")
				}
				ro.roleID = id
				return noContent()
			}
			return unsupported()
		}}
	case "secret-id":
		return &route{handler: func(r *request) response {
			ro := role()
			if ro == nil {
				return badRequest("role %q does not exist", name)
			}
			switch r.op {
			case capUpdate:
				return s.appRoleSecretID(ro, r)
			case capList:
				var keys []string
				for _, sid := range ro.secretIDs {
					keys = append(keys, sid.accessor)
				}
				if len(keys) == 0 {
					return notFound()
				}
				slices.Sort(keys)
				return dataResponse(map[string]any{"keys": keys}, "approle")
			}
			return unsupported()
		}}
	case "secret-id/destroy", "secret-id-accessor/destroy":
		byAccessor := action == "secret-id-accessor/destroy"
		return &route{handler: func(r *request) response {
			ro := role()
			if ro == nil {
				return badRequest("role %q does not exist", name)
			}
			if r.op != capUpdate && r.op != capDelete {
				return unsupported()
			}
			if byAccessor {
				acc, _ := paramString(r.body, "secret_id_accessor")
				for id, sid := range ro.secretIDs {
					if sid.accessor == acc {
						delete(ro.secretIDs, id)
					}
				}
			} else {
				id, _ := paramString(r.body, "secret_id")
				delete(ro.secretIDs, id)
			}
			return noContent()
		}}
	}
	return nil
}

func (s *Server) appRoleRole(m *authMount, name string, r *request) response {
	switch r.op {
	case capRead:
		ro := m.roles[name]
		if ro == nil {
			return notFound()
		}
		return dataResponse(map[string]any{
			"bind_secret_id":          ro.bindSecretID,
			"local_secret_ids":        false,
			"secret_id_bound_cidrs":   nil,
			"secret_id_num_uses":      ro.secretIDNumUses,
			"secret_id_ttl":           seconds(ro.secretIDTTL),
			"token_bound_cidrs":       []string{},
			"token_explicit_max_ttl":  0,
			"token_max_ttl":           seconds(ro.tokenMaxTTL),
			"token_no_default_policy": ro.noDefault,
			"token_num_uses":          ro.tokenNumUses,
			"token_period":            seconds(ro.tokenPeriod),
			"token_policies":          ro.policies,
			"policies":                ro.policies,
			"token_ttl":               seconds(ro.tokenTTL),
			"token_type":              "default",
			"period":                  seconds(ro.tokenPeriod),
		}, "approle")
	case capCreate, capUpdate:
		ro := m.roles[name]
		if ro == nil {
			ro = &approleRole{name: name, roleID: randomUUID(), bindSecretID: true, secretIDs: map[string]*secretID{}, policies: []string{}}
		}
		for _, key := range []string{"token_policies", "policies"} {
			if ps, ok, err := paramStrings(r.body, key); err != nil {
				return badRequest("%v", err)
			} else if ok {
				ro.policies = sanitizePolicies(ps, true)
			}
		}
		durations := map[string]*time.Duration{
			"token_ttl": &ro.tokenTTL, "token_max_ttl": &ro.tokenMaxTTL, "token_period": &ro.tokenPeriod,
			"period": &ro.tokenPeriod, "secret_id_ttl": &ro.secretIDTTL,
		}
		for key, dst := range durations {
			if d, ok, err := paramDuration(r.body, key); err != nil {
				return badRequest("%v", err)
			} else if ok {
				*dst = d
			}
		}
		ints := map[string]*int{"token_num_uses": &ro.tokenNumUses, "secret_id_num_uses": &ro.secretIDNumUses}
		for key, dst := range ints {
			if n, ok, err := paramInt(r.body, key); err != nil || n < 0 {
				return badRequest("%s cannot be negative", key)
			} else if ok {
				*dst = n
			}
		}
		bools := map[string]*bool{"bind_secret_id": &ro.bindSecretID, "token_no_default_policy": &ro.noDefault}
		for key, dst := range bools {
			if b, ok, err := paramBool(r.body, key); err != nil {
				return badRequest("%v", err)
			} else if ok {
				*dst = b
			}
		}
		if ro.tokenMaxTTL > 0 && ro.tokenTTL > ro.tokenMaxTTL {
			return badRequest("token_ttl should not be greater than token_max_ttl")
		}
		m.roles[name] = ro
		return noContent()
	case capDelete:
		delete(m.roles, name)
		return noContent()
	}
	return unsupported()
}

func (s *Server) appRoleSecretID(ro *approleRole, r *request) response {
	now := s.now()
	sid := &secretID{id: randomUUID(), accessor: randomUUID(), created: now, usesLeft: ro.secretIDNumUses}
	ttl := ro.secretIDTTL
	if d, ok, err := paramDuration(r.body, "ttl"); err != nil {
		return badRequest("%v", err)
	} else if ok && d > 0 {
		ttl = d
	}
	if n, ok, err := paramInt(r.body, "num_uses"); err != nil || n < 0 {
		return badRequest("num_uses cannot be negative")
	} else if ok {
		sid.usesLeft = n
	}
	if ttl > 0 {
		sid.expire = now.Add(ttl)
	}
	ro.secretIDs[sid.id] = sid
	return dataResponse(map[string]any{
		"secret_id":          sid.id,
		"secret_id_accessor": sid.accessor,
		"secret_id_ttl":      seconds(ttl),
		"secret_id_num_uses": sid.usesLeft,
	}, "approle")
}

// appRoleLogin serves auth/<approle>/login: a valid role_id (and secret_id when bound)
// yields an orphan, renewable token with the role's policies and TTLs. Failed logins
// count towards the role id's lockout (see lockout.go).
func (s *Server) appRoleLogin(m *authMount, r *request) response {
	if r.op != capUpdate {
		return unsupported()
	}
	roleID, _ := paramString(r.body, "role_id")
	roleID = strings.TrimSpace(roleID)
	if roleID == "" {
		return badRequest("missing role_id")
	}
	now := s.now()
	if lockedOut(m, roleID, now) {
		return lockoutDenied() // before the credentials are looked at
	}
	var ro *approleRole
	for _, candidate := range m.roles {
		if candidate.roleID == roleID {
			ro = candidate
		}
	}
	if ro == nil {
		return badRequest("invalid role or secret ID")
	}
	if ro.bindSecretID {
		id, _ := paramString(r.body, "secret_id")
		id = strings.TrimSpace(id)
		if id == "" {
			return badRequest("missing secret_id")
		}
		sid := ro.secretIDs[id]
		if sid == nil {
			loginFailed(m, roleID, now) // the one failure Vault counts
			return badRequest("invalid role or secret ID")
		}
		if !sid.expire.IsZero() && !s.now().Before(sid.expire) {
			delete(ro.secretIDs, id)
			return badRequest("invalid role or secret ID")
		}
		if sid.usesLeft > 0 {
			sid.usesLeft--
			if sid.usesLeft == 0 {
				delete(ro.secretIDs, id)
			}
		}
	}
	delete(m.failed, roleID) // a successful login clears the count
	meta := map[string]string{"role_name": ro.name}
	t := s.newToken(tokenParams{
		policies:       ro.policies,
		noDefault:      ro.noDefault,
		orphan:         true,
		ttl:            ro.tokenTTL,
		explicitMaxTTL: ro.tokenMaxTTL,
		period:         ro.tokenPeriod,
		renewable:      true,
		numUses:        ro.tokenNumUses,
		displayName:    strings.TrimSuffix(m.path, "/"),
		meta:           meta,
		path:           "auth/" + m.path + "login",
	})
	return response{status: http.StatusOK, body: envelope(nil, s.authBlock(t, meta), "approle")}
}
