package vaulttest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// jwksFetchTimeout bounds the JWKS fetch made when a jwt config with jwks_url is
// written (under the server lock, like every request).
const jwksFetchTimeout = 5 * time.Second

// jwtConfig is the config of a jwt auth method (auth/<path>/config).
type jwtConfig struct {
	jwksURL, jwksCAPEM, boundIssuer, defaultRole string
	pubkeys, supportedAlgs                       []string
}

// jwtRole is a role of a jwt auth method. vaulttest stores and validates roles as
// Vault's JWT plugin does but does not log anyone in with them.
type jwtRole struct {
	roleType             string
	boundAudiences       []string
	userClaim            string
	userClaimJSONPointer bool
	boundSubject         string
	boundClaimsType      string
	boundClaims          map[string]any
	claimMappings        map[string]string
	groupsClaim          string
	allowedRedirectURIs  []string
	tokenPolicies        []string
	tokenTTL             time.Duration
	tokenMaxTTL          time.Duration
	tokenExplicitMaxTTL  time.Duration
	tokenPeriod          time.Duration
	tokenType            string
	tokenNoDefault       bool
	tokenNumUses         int
}

// routeJWT serves the config and roles of a jwt auth method with the validation and
// read shapes of Vault's JWT plugin; vaulttest does not verify JWTs (no login path).
func (s *Server) routeJWT(m *authMount, sub string) *route {
	switch {
	case sub == "config":
		return &route{handler: func(r *request) response {
			switch r.op {
			case capRead:
				if m.jwtConfig == nil {
					return notFound()
				}
				return dataResponse(m.jwtConfig.data(), "jwt")
			case capCreate, capUpdate:
				c, err := parseJWTConfig(r.body)
				if err != nil {
					return badRequest("%v", err)
				}
				m.jwtConfig = c
				return noContent()
			}
			return unsupported()
		}}
	case sub == "role/" || sub == "role":
		return &route{handler: func(r *request) response {
			if r.op != capList {
				return unsupported()
			}
			keys := slices.Sorted(maps.Keys(m.jwtRoles))
			if len(keys) == 0 {
				return notFound()
			}
			return dataResponse(map[string]any{"keys": keys}, "jwt")
		}}
	case strings.HasPrefix(sub, "role/"):
		name := strings.ToLower(strings.TrimPrefix(sub, "role/"))
		return &route{
			exists: func() bool { return m.jwtRoles[name] != nil },
			handler: func(r *request) response {
				switch r.op {
				case capRead:
					if m.jwtRoles[name] == nil {
						return notFound()
					}
					return dataResponse(m.jwtRoles[name].data(), "jwt")
				case capCreate, capUpdate:
					ro, err := updateJWTRole(m.jwtRoles[name], r.body)
					if err != nil {
						return badRequest("%v", err)
					}
					m.jwtRoles[name] = ro
					return noContent()
				case capDelete:
					delete(m.jwtRoles, name)
					return noContent()
				}
				return unsupported()
			},
		}
	}
	return nil
}

// parseJWTConfig builds a config from a write, which replaces the whole config as in
// Vault. Like Vault it requires exactly one source of keys and, for jwks_url, fetches
// the key set so an unreachable or malformed one is refused when written. Only
// loopback URLs are fetched.
func parseJWTConfig(body map[string]any) (*jwtConfig, error) {
	c := &jwtConfig{}
	var err error
	strs := map[string]*string{"jwks_url": &c.jwksURL, "jwks_ca_pem": &c.jwksCAPEM, "bound_issuer": &c.boundIssuer, "default_role": &c.defaultRole}
	for key, dst := range strs {
		if *dst, err = paramString(body, key); err != nil {
			return nil, err
		}
	}
	if c.pubkeys, _, err = paramStrings(body, "jwt_validation_pubkeys"); err != nil {
		return nil, err
	}
	if c.supportedAlgs, _, err = paramStrings(body, "jwt_supported_algs"); err != nil {
		return nil, err
	}
	discovery, _ := paramString(body, "oidc_discovery_url")
	n := 0
	for _, set := range []bool{c.jwksURL != "", len(c.pubkeys) > 0, discovery != ""} {
		if set {
			n++
		}
	}
	if n != 1 {
		return nil, errors.New("exactly one of 'jwt_validation_pubkeys', 'jwks_url' or 'oidc_discovery_url' must be set")
	}
	switch {
	case discovery != "":
		return nil, errors.New("vaulttest supports jwks_url and jwt_validation_pubkeys, not oidc_discovery_url")
	case c.jwksURL != "":
		if c.jwksCAPEM != "" && !x509.NewCertPool().AppendCertsFromPEM([]byte(c.jwksCAPEM)) {
			return nil, errors.New("error checking jwks_ca_pem: could not parse CA PEM value successfully")
		}
		if err := checkJWKS(c.jwksURL, c.jwksCAPEM); err != nil {
			return nil, fmt.Errorf("error checking jwks URL: %w", err)
		}
	default:
		for _, k := range c.pubkeys {
			b, _ := pem.Decode([]byte(k))
			if b == nil {
				return nil, errors.New("error parsing public key: no PEM block found")
			}
			if _, err := x509.ParsePKIXPublicKey(b.Bytes); err != nil {
				return nil, fmt.Errorf("error parsing public key: %v", err)
			}
		}
	}
	for _, alg := range c.supportedAlgs {
		switch alg {
		case "RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256", "PS384", "PS512", "EdDSA":
		default:
			return nil, fmt.Errorf("Invalid supported algorithm: %s", alg)
		}
	}
	return c, nil
}

// checkJWKS fetches a JSON Web Key Set from a loopback URL and checks its shape.
func checkJWKS(raw, caPEM string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("invalid jwks_url %q", raw)
	}
	if ip := net.ParseIP(u.Hostname()); u.Hostname() != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("vaulttest fetches keys only from loopback addresses, not %s", u.Hostname())
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if caPEM != "" {
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM([]byte(caPEM)) // checked by the caller
		tr.TLSClientConfig = &tls.Config{RootCAs: pool}
	}
	cl := &http.Client{Transport: tr, Timeout: jwksFetchTimeout}
	defer cl.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(context.Background(), jwksFetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, raw, nil)
	if err != nil {
		return err
	}
	resp, err := cl.Do(req)
	if err != nil {
		return fmt.Errorf("fetching keys oidc: get keys failed: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return fmt.Errorf("fetching keys oidc: get keys failed: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("fetching keys oidc: get keys failed: %s %s", resp.Status, b)
	}
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(b, &set); err != nil {
		return fmt.Errorf("fetching keys oidc: failed to decode keys: %v %s", err, b)
	}
	return nil
}

func (c *jwtConfig) data() map[string]any {
	return map[string]any{
		"bound_issuer":           c.boundIssuer,
		"default_role":           c.defaultRole,
		"jwks_ca_pem":            c.jwksCAPEM,
		"jwks_url":               c.jwksURL,
		"jwt_supported_algs":     nonNil(c.supportedAlgs),
		"jwt_validation_pubkeys": nonNil(c.pubkeys),
		"namespace_in_state":     true,
		"oidc_client_id":         "",
		"oidc_discovery_ca_pem":  "",
		"oidc_discovery_url":     "",
		"oidc_response_mode":     "",
		"oidc_response_types":    []string{},
		"provider_config":        map[string]any{},
	}
}

// updateJWTRole applies a role write to old (nil: a new role): parameters that are
// present replace the stored ones, except role_type and bound_claims_type, which every
// write sets (to "oidc" and "string" when absent), as in Vault's JWT plugin. It then
// checks the role as that plugin does.
func updateJWTRole(old *jwtRole, body map[string]any) (*jwtRole, error) {
	ro := &jwtRole{tokenType: "default"}
	if old != nil {
		c := *old
		ro = &c
	}
	ro.roleType, ro.boundClaimsType = "oidc", "string"
	strs := map[string]*string{
		"role_type": &ro.roleType, "user_claim": &ro.userClaim, "bound_subject": &ro.boundSubject,
		"bound_claims_type": &ro.boundClaimsType, "groups_claim": &ro.groupsClaim, "token_type": &ro.tokenType,
	}
	for key, dst := range strs {
		_, present := body[key]
		v, err := paramString(body, key)
		switch {
		case err != nil:
			return nil, err
		case present && (v != "" || (key != "role_type" && key != "bound_claims_type")):
			*dst = v
		}
	}
	lists := map[string]*[]string{"bound_audiences": &ro.boundAudiences, "allowed_redirect_uris": &ro.allowedRedirectURIs}
	for key, dst := range lists {
		if v, ok, err := paramStrings(body, key); err != nil {
			return nil, err
		} else if ok {
			*dst = v
		}
	}
	for _, key := range []string{"token_policies", "policies"} {
		if ps, ok, err := paramStrings(body, key); err != nil {
			return nil, err
		} else if ok {
			ro.tokenPolicies = sanitizePolicies(ps, true)
		}
	}
	durations := map[string]*time.Duration{
		"token_ttl": &ro.tokenTTL, "token_max_ttl": &ro.tokenMaxTTL, "token_explicit_max_ttl": &ro.tokenExplicitMaxTTL,
		"token_period": &ro.tokenPeriod, "period": &ro.tokenPeriod,
	}
	for key, dst := range durations {
		if d, ok, err := paramDuration(body, key); err != nil {
			return nil, err
		} else if ok {
			*dst = d
		}
	}
	if b, ok, err := paramBool(body, "user_claim_json_pointer"); err != nil {
		return nil, err
	} else if ok {
		ro.userClaimJSONPointer = b
	}
	if b, ok, err := paramBool(body, "token_no_default_policy"); err != nil {
		return nil, err
	} else if ok {
		ro.tokenNoDefault = b
	}
	if n, ok, err := paramInt(body, "token_num_uses"); err != nil || n < 0 {
		return nil, errors.New("'token_num_uses' cannot be negative")
	} else if ok {
		ro.tokenNumUses = n
	}
	if v, ok := body["bound_claims"]; ok && v != nil {
		claims, ok := v.(map[string]any)
		if !ok {
			return nil, errors.New("bound_claims: expected a map")
		}
		for k, cv := range claims {
			switch cv := cv.(type) {
			case string, json.Number, bool:
			case []any:
				for _, e := range cv {
					if _, ok := e.(string); !ok {
						return nil, fmt.Errorf("bound claim %q: list values must be strings", k)
					}
				}
			default:
				return nil, fmt.Errorf("bound claim %q is not a string or list: %v", k, cv)
			}
		}
		ro.boundClaims = claims
	}
	if v, ok := body["claim_mappings"]; ok && v != nil {
		raw, ok := v.(map[string]any)
		if !ok {
			return nil, errors.New("claim_mappings: expected a map")
		}
		ro.claimMappings = map[string]string{}
		targets := map[string]bool{}
		for k, tv := range raw {
			t, ok := tv.(string)
			if !ok {
				return nil, fmt.Errorf("claim_mappings: value of %q is not a string", k)
			}
			if t == "role" {
				return nil, fmt.Errorf("metadata key %q is reserved and may not be a mapping destination", t)
			}
			if targets[t] {
				return nil, fmt.Errorf("multiple keys are mapped to metadata key %q", t)
			}
			targets[t] = true
			ro.claimMappings[k] = t
		}
	}

	switch {
	case ro.roleType != "jwt" && ro.roleType != "oidc":
		return nil, fmt.Errorf("invalid 'role_type': %s", ro.roleType)
	case ro.userClaim == "":
		return nil, errors.New("a user claim must be defined on the role")
	case ro.roleType == "jwt" && len(ro.boundAudiences) == 0 && ro.boundSubject == "" && len(ro.boundClaims) == 0:
		return nil, errors.New("must have at least one bound constraint when creating/updating a role")
	case ro.roleType == "oidc" && len(ro.allowedRedirectURIs) == 0:
		return nil, errors.New("'allowed_redirect_uris' must be set if 'role_type' is 'oidc' or unspecified.")
	case ro.boundClaimsType != "string" && ro.boundClaimsType != "glob":
		return nil, fmt.Errorf("invalid 'bound_claims_type': %s", ro.boundClaimsType)
	case ro.tokenType != "service" && ro.tokenType != "batch" && ro.tokenType != "default":
		return nil, fmt.Errorf("invalid 'token_type' value %q", ro.tokenType)
	case ro.tokenType == "batch" && ro.tokenPeriod > 0:
		return nil, errors.New("'token_type' cannot be 'batch' or 'default_batch' when set to generate periodic tokens")
	case ro.tokenMaxTTL > 0 && ro.tokenTTL > ro.tokenMaxTTL:
		return nil, errors.New("ttl should not be greater than max ttl")
	}
	return ro, nil
}

// data is the role as Vault's JWT plugin reads it back: durations in seconds, every
// field present.
func (ro *jwtRole) data() map[string]any {
	var claims, mappings any
	if ro.boundClaims != nil {
		claims = ro.boundClaims
	}
	if ro.claimMappings != nil {
		mappings = ro.claimMappings
	}
	return map[string]any{
		"role_type":               ro.roleType,
		"bound_audiences":         nonNil(ro.boundAudiences),
		"user_claim":              ro.userClaim,
		"user_claim_json_pointer": ro.userClaimJSONPointer,
		"bound_subject":           ro.boundSubject,
		"bound_claims_type":       ro.boundClaimsType,
		"bound_claims":            claims,
		"claim_mappings":          mappings,
		"groups_claim":            ro.groupsClaim,
		"oidc_scopes":             []string{},
		"allowed_redirect_uris":   nonNil(ro.allowedRedirectURIs),
		"verbose_oidc_logging":    false,
		"max_age":                 0,
		"expiration_leeway":       0,
		"not_before_leeway":       0,
		"clock_skew_leeway":       0,
		"token_bound_cidrs":       []string{},
		"token_explicit_max_ttl":  seconds(ro.tokenExplicitMaxTTL),
		"token_max_ttl":           seconds(ro.tokenMaxTTL),
		"token_no_default_policy": ro.tokenNoDefault,
		"token_num_uses":          ro.tokenNumUses,
		"token_period":            seconds(ro.tokenPeriod),
		"token_policies":          nonNil(ro.tokenPolicies),
		"token_ttl":               seconds(ro.tokenTTL),
		"token_type":              ro.tokenType,
	}
}

// nonNil renders a missing list as [] rather than null, as Vault does.
func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
