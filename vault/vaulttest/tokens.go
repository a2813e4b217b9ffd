package vaulttest

import (
	"net/http"
	"slices"
	"strings"
	"time"
)

// token is a service token of the token store.
type token struct {
	id, accessor   string
	policies       []string // sorted; includes "default" unless excluded or root
	parent         string   // "" for orphans
	created        time.Time
	expire         time.Time // zero: never (root tokens)
	maxExpire      time.Time // zero: unbounded; renewals stop here
	creationTTL    time.Duration
	explicitMaxTTL time.Duration
	period         time.Duration
	renewable      bool
	numUses        int // 0: unlimited
	displayName    string
	meta           map[string]string
	path           string // the path that created it
}

// tokenParams are the properties of a token to create.
type tokenParams struct {
	policies       []string
	noDefault      bool
	orphan         bool
	parent         string
	ttl            time.Duration
	explicitMaxTTL time.Duration
	period         time.Duration
	renewable      bool
	numUses        int
	displayName    string
	meta           map[string]string
	path           string
}

// sanitizePolicies lower-cases, dedupes and sorts names, adding "default" unless
// noDefault is set or the set holds "root".
func sanitizePolicies(names []string, noDefault bool) []string {
	var out []string
	for _, n := range names {
		n = strings.ToLower(strings.TrimSpace(n))
		if n != "" && !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	if !noDefault && !slices.Contains(out, "root") && !slices.Contains(out, "default") {
		out = append(out, "default")
	}
	slices.Sort(out)
	return out
}

// newToken creates and stores a token. Tokens holding the root policy and no TTL never
// expire; others default to the system TTL of 768h, bounded by their explicit max TTL
// and the system maximum. A periodic token lives one period per renewal, unbounded.
func (s *Server) newToken(p tokenParams) *token {
	now := s.now()
	t := &token{
		id:             randomToken(),
		accessor:       randomTokenAccessor(),
		policies:       sanitizePolicies(p.policies, p.noDefault),
		created:        now,
		explicitMaxTTL: p.explicitMaxTTL,
		period:         p.period,
		renewable:      p.renewable,
		numUses:        p.numUses,
		displayName:    p.displayName,
		meta:           p.meta,
		path:           p.path,
	}
	if !p.orphan {
		t.parent = p.parent
	}
	ttl := p.ttl
	switch {
	case p.period > 0:
		ttl = p.period
	case ttl == 0 && slices.Contains(t.policies, "root"):
		// no expiry
	default:
		if ttl == 0 {
			ttl = systemMaxTTL
		}
		t.maxExpire = now.Add(systemMaxTTL)
		if p.explicitMaxTTL > 0 {
			t.maxExpire = now.Add(p.explicitMaxTTL)
		}
	}
	if ttl > 0 {
		t.expire = now.Add(ttl)
		if !t.maxExpire.IsZero() && t.expire.After(t.maxExpire) {
			t.expire = t.maxExpire
		}
		t.creationTTL = t.expire.Sub(now)
	}
	s.tokens[t.id] = t
	s.accessors[t.accessor] = t.id
	return t
}

func randomTokenAccessor() string { return randomToken()[4:] }

// validToken returns the live token with id, or nil when it is unknown, expired,
// revoked or its parent is no longer valid (expired tokens are revoked here).
func (s *Server) validToken(id string) *token {
	t := s.tokens[id]
	if t == nil {
		return nil
	}
	if !t.expire.IsZero() && !s.now().Before(t.expire) {
		s.revokeToken(t)
		return nil
	}
	if t.parent != "" && s.validToken(t.parent) == nil {
		s.revokeToken(t)
		return nil
	}
	return t
}

// useToken counts one use of a limited-use token and reports whether that was its last
// (the token is revoked after the request, as Vault does).
func (s *Server) useToken(t *token) bool {
	if t.numUses == 0 {
		return false
	}
	t.numUses--
	if t.numUses == 0 {
		t.numUses = -1 // spent: revoked once the request completes
		return true
	}
	return false
}

// revokeToken removes t and, recursively, every non-orphan token it created.
func (s *Server) revokeToken(t *token) {
	if s.tokens[t.id] != t {
		return
	}
	delete(s.tokens, t.id)
	delete(s.accessors, t.accessor)
	for _, child := range s.tokens {
		if child.parent == t.id {
			s.revokeToken(child)
		}
	}
}

// aclFor builds the ACL of t's policies as they are now.
func (s *Server) aclFor(t *token) *acl {
	var ps []*policy
	for _, name := range t.policies {
		if name == "root" {
			ps = append(ps, &policy{name: "root"})
			continue
		}
		if p := s.policies[name]; p != nil {
			ps = append(ps, p)
		}
	}
	return newACL(ps)
}

// roundSeconds renders a lease as whole seconds, so a token created with a TTL of 1h
// reports 3600 rather than the 3599.99 left when the response is written.
func roundSeconds(d time.Duration) int64 { return int64(d.Round(time.Second) / time.Second) }

func (t *token) remaining(now time.Time) time.Duration {
	if t.expire.IsZero() {
		return 0
	}
	return max(t.expire.Sub(now), 0)
}

// authBlock is the "auth" object Vault returns for a login, a token creation or a
// renewal.
func (s *Server) authBlock(t *token, metadata map[string]string) map[string]any {
	var meta any
	if metadata != nil {
		meta = metadata
	}
	return map[string]any{
		"client_token":    t.id,
		"accessor":        t.accessor,
		"policies":        t.policies,
		"token_policies":  t.policies,
		"metadata":        meta,
		"lease_duration":  roundSeconds(t.remaining(s.now())),
		"renewable":       t.renewable,
		"entity_id":       "",
		"token_type":      "service",
		"orphan":          t.parent == "",
		"mfa_requirement": nil,
		"num_uses":        max(t.numUses, 0),
	}
}

// lookupData is the "data" of a token lookup.
func (s *Server) lookupData(t *token) map[string]any {
	now := s.now()
	var expireTime any
	if !t.expire.IsZero() {
		expireTime = timeString(t.expire)
	}
	var meta any
	if t.meta != nil {
		meta = t.meta
	}
	d := map[string]any{
		"accessor":         t.accessor,
		"creation_time":    t.created.Unix(),
		"creation_ttl":     seconds(t.creationTTL),
		"display_name":     t.displayName,
		"entity_id":        "",
		"expire_time":      expireTime,
		"explicit_max_ttl": seconds(t.explicitMaxTTL),
		"id":               t.id,
		"issue_time":       timeString(t.created),
		"meta":             meta,
		"num_uses":         max(t.numUses, 0),
		"orphan":           t.parent == "",
		"path":             t.path,
		"policies":         t.policies,
		"renewable":        t.renewable,
		"ttl":              seconds(t.remaining(now)),
		"type":             "service",
	}
	if t.period > 0 {
		d["period"] = seconds(t.period)
	}
	return d
}

// routeToken serves auth/token/<rest>.
func (s *Server) routeToken(op, rest string) *route {
	switch rest {
	case "create", "create-orphan":
		orphan := rest == "create-orphan"
		return &route{handler: func(r *request) response {
			if r.op != capUpdate {
				return unsupported()
			}
			return s.tokenCreate(r, orphan)
		}}
	case "lookup-self":
		return &route{handler: func(r *request) response {
			if r.op != capRead {
				return unsupported()
			}
			return dataResponse(s.lookupData(r.tok), "token")
		}}
	case "lookup":
		return &route{handler: func(r *request) response {
			if r.op != capUpdate {
				return unsupported()
			}
			id, _ := paramString(r.body, "token")
			t := s.validToken(id)
			if t == nil {
				return errorResponse(http.StatusForbidden, "bad token")
			}
			return dataResponse(s.lookupData(t), "token")
		}}
	case "renew-self":
		return &route{handler: func(r *request) response {
			if r.op != capUpdate {
				return unsupported()
			}
			return s.tokenRenew(r, r.tok)
		}}
	case "renew":
		return &route{handler: func(r *request) response {
			if r.op != capUpdate {
				return unsupported()
			}
			id, _ := paramString(r.body, "token")
			t := s.validToken(id)
			if t == nil {
				return errorResponse(http.StatusForbidden, "bad token")
			}
			return s.tokenRenew(r, t)
		}}
	case "revoke-self":
		return &route{handler: func(r *request) response {
			if r.op != capUpdate {
				return unsupported()
			}
			s.revokeToken(r.tok)
			return noContent()
		}}
	case "lookup-accessor", "revoke-accessor":
		revoke := rest == "revoke-accessor"
		return &route{handler: func(r *request) response {
			if r.op != capUpdate {
				return unsupported()
			}
			acc, _ := paramString(r.body, "accessor")
			if acc == "" {
				return badRequest("missing accessor")
			}
			t := s.validToken(s.accessors[acc])
			if t == nil {
				return badRequest("invalid accessor")
			}
			if revoke {
				s.revokeToken(t)
				return noContent()
			}
			d := s.lookupData(t)
			d["id"] = "" // a lookup by accessor never shows the token
			return dataResponse(d, "token")
		}}
	case "revoke":
		return &route{handler: func(r *request) response {
			if r.op != capUpdate {
				return unsupported()
			}
			id, _ := paramString(r.body, "token")
			if id == "" {
				return badRequest("missing token")
			}
			if t := s.tokens[id]; t != nil {
				s.revokeToken(t)
			}
			return noContent()
		}}
	}
	return nil
}

// tokenCreate serves auth/token/create: a child of the calling token (or an orphan),
// whose policies must be a subset of the caller's unless the caller is root.
func (s *Server) tokenCreate(r *request, orphan bool) response {
	parent := r.tok
	parentRoot := slices.Contains(parent.policies, "root")
	policies, _, err := paramStrings(r.body, "policies")
	if err != nil {
		return badRequest("%v", err)
	}
	ttl, _, err := paramDuration(r.body, "ttl")
	if err != nil {
		return badRequest("%v", err)
	}
	maxTTL, _, err := paramDuration(r.body, "explicit_max_ttl")
	if err != nil {
		return badRequest("%v", err)
	}
	period, _, err := paramDuration(r.body, "period")
	if err != nil {
		return badRequest("%v", err)
	}
	renewable, set, err := paramBool(r.body, "renewable")
	if err != nil {
		return badRequest("%v", err)
	}
	if !set {
		renewable = true
	}
	numUses, _, err := paramInt(r.body, "num_uses")
	if err != nil || numUses < 0 {
		return badRequest("number of uses cannot be negative")
	}
	noDefault, _, err := paramBool(r.body, "no_default_policy")
	if err != nil {
		return badRequest("%v", err)
	}
	noParent, _, err := paramBool(r.body, "no_parent")
	if err != nil {
		return badRequest("%v", err)
	}
	if noParent && !parentRoot {
		return badRequest("root or sudo privileges required to create orphan token")
	}
	display, _ := paramString(r.body, "display_name")
	if display == "" {
		display = "token"
	} else {
		display = "token-" + display
	}
	var meta map[string]string
	if m, ok := r.body["meta"].(map[string]any); ok {
		meta = map[string]string{}
		for k, v := range m {
			if sv, ok := v.(string); ok {
				meta[k] = sv
			}
		}
	}
	if len(policies) == 0 {
		policies = slices.Clone(parent.policies)
	}
	if !parentRoot {
		for _, p := range sanitizePolicies(policies, true) {
			if p == "default" {
				continue
			}
			if !slices.Contains(parent.policies, p) {
				return badRequest("child policies must be subset of parent")
			}
		}
	}
	t := s.newToken(tokenParams{
		policies:       policies,
		noDefault:      noDefault,
		orphan:         orphan || noParent,
		parent:         parent.id,
		ttl:            ttl,
		explicitMaxTTL: maxTTL,
		period:         period,
		renewable:      renewable,
		numUses:        numUses,
		displayName:    display,
		meta:           meta,
		path:           "auth/token/create",
	})
	return response{status: http.StatusOK, body: envelope(nil, s.authBlock(t, meta), "token")}
}

// tokenRenew extends t by the requested increment (default: its creation TTL, or its
// period), never past its maximum.
func (s *Server) tokenRenew(r *request, t *token) response {
	if !t.renewable {
		return badRequest("lease is not renewable")
	}
	inc, _, err := paramDuration(r.body, "increment")
	if err != nil {
		return badRequest("%v", err)
	}
	now := s.now()
	switch {
	case t.period > 0:
		inc = t.period
	case inc == 0:
		inc = t.creationTTL
	}
	if t.expire.IsZero() {
		return response{status: http.StatusOK, body: envelope(nil, s.authBlock(t, t.meta), "token")}
	}
	t.expire = now.Add(inc)
	var warnings any
	if !t.maxExpire.IsZero() && t.expire.After(t.maxExpire) {
		t.expire = t.maxExpire
		warnings = []string{"TTL of \"" + inc.String() + "\" exceeded the effective max_ttl; TTL value is capped accordingly"}
	}
	body := envelope(nil, s.authBlock(t, t.meta), "token")
	body["warnings"] = warnings
	return response{status: http.StatusOK, body: body}
}
