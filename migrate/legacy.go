package migrate

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/edgehook/edgehook/identity"
	"github.com/edgehook/edgehook/vault"
	"github.com/edgehook/edgehook/webhook"
)

// item is one DynamoDB item as the SDK returns it.
type item = map[string]types.AttributeValue

// fieldError is a problem with one attribute of a legacy item. Its text names the
// attribute and never quotes a secret, an API key or a URL (which may hold credentials).
type fieldError struct {
	field   string
	problem string
}

func (e *fieldError) Error() string { return e.field + ": " + e.problem }

// Unwrap makes every fieldError match ErrInvalidRecord.
func (e *fieldError) Unwrap() error { return ErrInvalidRecord }

func badField(field, format string, args ...any) error {
	return &fieldError{field: field, problem: fmt.Sprintf(format, args...)}
}

// identityPart is a tenant's identity as a legacy item holds it, validated.
type identityPart struct {
	apiKey    string
	tenantID  string
	status    string
	plan      string
	createdAt time.Time
}

// configPart is a tenant's webhook configuration as a legacy item holds it, validated.
type configPart struct {
	tenantID    string
	targetURL   string
	secret      webhook.Secret
	rotations   []legacyRotation
	lastUpdated time.Time
}

// legacyRotation is one entry of a legacy rotationHistory.
type legacyRotation struct {
	rotatedAt time.Time
	expiresAt time.Time // zero: rotatedAt + the rotation window
	previous  string    // the rotated-out secret, as stored (may be empty)
}

// parseIdentityItem reads an item of the TenantIdentity table. The returned part holds
// the tenant id and API key as far as they could be read, also on error, so a failure
// can name them.
func parseIdentityItem(it item) (identityPart, error) {
	var p identityPart
	var err error
	if p.tenantID, p.apiKey, err = parseKeys(it); err != nil {
		return p, err
	}
	if p.status, err = parseStatus(it, false); err != nil {
		return p, err
	}
	if p.plan, err = parsePlan(it); err != nil {
		return p, err
	}
	if p.createdAt, _, err = optionalTime(it, "createdAt"); err != nil {
		return p, err
	}
	return p, nil
}

// parseConfigItem reads an item of the TenantWebhookConfig table.
func parseConfigItem(it item) (configPart, error) {
	var c configPart
	var err error
	if c.tenantID, err = parseTenantID(it); err != nil {
		return c, err
	}
	if c.targetURL, c.secret, err = parseTarget(it); err != nil {
		return c, err
	}
	if c.rotations, err = parseRotationHistory(it); err != nil {
		return c, err
	}
	if c.lastUpdated, _, err = optionalTime(it, "lastUpdated"); err != nil {
		return c, err
	}
	return c, nil
}

// parseLegacyItem reads an item of the single TenantApiKeys table: identity and
// webhook configuration in one item, the status as the boolean isActive.
func parseLegacyItem(it item) (identityPart, configPart, error) {
	var p identityPart
	var c configPart
	var err error
	if p.tenantID, p.apiKey, err = parseKeys(it); err != nil {
		return p, c, err
	}
	c.tenantID = p.tenantID
	if p.status, err = parseStatus(it, true); err != nil {
		return p, c, err
	}
	if p.plan, err = parsePlan(it); err != nil {
		return p, c, err
	}
	if p.createdAt, _, err = optionalTime(it, "createdAt"); err != nil {
		return p, c, err
	}
	if c.targetURL, c.secret, err = parseTarget(it); err != nil {
		return p, c, err
	}
	if c.rotations, err = parseRotationHistory(it); err != nil {
		return p, c, err
	}
	if c.lastUpdated, _, err = optionalTime(it, "updatedAt"); err != nil {
		return p, c, err
	}
	return p, c, nil
}

// parseKeys reads tenantId and apiKey. The API key is checked to be usable as a Bearer
// token; it is hashed when stored.
func parseKeys(it item) (tenantID, apiKey string, err error) {
	tenantID, terr := parseTenantID(it)
	apiKey, ok, kerr := optionalString(it, "apiKey")
	switch {
	case kerr != nil:
		return tenantID, "", kerr
	case !ok:
		return tenantID, "", badField("apiKey", "missing")
	case !usableAPIKey(apiKey):
		// Not shown in the Failure either: a key that is not usable may still be a
		// working key's secret text with stray whitespace.
		return tenantID, "", badField("apiKey", "cannot be sent as a Bearer token (surrounding whitespace or control characters)")
	}
	return tenantID, apiKey, terr
}

// usableAPIKey reports whether key arrives intact in an `Authorization: Bearer` header,
// which the gateway trims.
func usableAPIKey(key string) bool {
	if key == "" || len(key) > 4096 || strings.TrimSpace(key) != key {
		return false
	}
	for i := 0; i < len(key); i++ {
		if c := key[i]; c < 0x20 || c == 0x7f {
			return false
		}
	}
	return true
}

// parseTenantID reads tenantId. A tenant id edgehook cannot use (it becomes a NATS
// subject token, a KV key and a Vault path segment) fails the record; it is not mapped
// to another id, since receivers and clients know tenants by their id.
func parseTenantID(it item) (string, error) {
	id, ok, err := optionalString(it, "tenantId")
	switch {
	case err != nil:
		return "", err
	case !ok:
		return "", badField("tenantId", "missing")
	case !identity.ValidTenantID(id):
		return shorten(id), badField("tenantId", "must be 1-64 characters of A-Z a-z 0-9 _ - for edgehook")
	}
	return id, nil
}

// parseStatus reads status ("active" or "suspended", in any case), or in the
// single-table layout the boolean isActive (true: active, false: suspended) when the
// item has no status.
func parseStatus(it item, isActiveFallback bool) (string, error) {
	s, ok, err := optionalString(it, "status")
	if err != nil {
		return "", err
	}
	if ok {
		switch v := strings.ToLower(strings.TrimSpace(s)); v {
		case identity.StatusActive, identity.StatusSuspended:
			return v, nil
		}
		return "", badField("status", "%.32q is not active or suspended", s)
	}
	if !isActiveFallback {
		return "", badField("status", "missing")
	}
	av, present := it["isActive"]
	if !present || isNull(av) {
		return "", badField("isActive", "missing")
	}
	b, isBool := av.(*types.AttributeValueMemberBOOL)
	if !isBool {
		return "", badField("isActive", "must be a boolean (BOOL), not %s", kind(av))
	}
	if b.Value {
		return identity.StatusActive, nil
	}
	return identity.StatusSuspended, nil
}

// parsePlan reads plan: one of identity.Plans in any case; missing or empty is
// identity.DefaultPlan, as for a tenant created at the admin API without one. Any other
// plan fails the record rather than guessing what it should become.
func parsePlan(it item) (string, error) {
	s, ok, err := optionalString(it, "plan")
	if err != nil || !ok || strings.TrimSpace(s) == "" {
		return identity.DefaultPlan, err
	}
	p := strings.ToLower(strings.TrimSpace(s))
	if identity.ValidatePlan(p) != nil {
		return "", badField("plan", "%.32q is not one of %s", s, strings.Join(identity.Plans, ", "))
	}
	return p, nil
}

// parseTarget reads targetUrl and webhookSecret.
func parseTarget(it item) (string, webhook.Secret, error) {
	u, ok, err := optionalString(it, "targetUrl")
	switch {
	case err != nil:
		return "", webhook.Secret{}, err
	case !ok:
		return "", webhook.Secret{}, badField("targetUrl", "missing")
	case !validTargetURL(u):
		return "", webhook.Secret{}, badField("targetUrl", "must be an absolute http or https URL with a host and no credentials")
	}
	s, ok, err := optionalString(it, "webhookSecret")
	switch {
	case err != nil:
		return "", webhook.Secret{}, err
	case !ok:
		return "", webhook.Secret{}, badField("webhookSecret", "missing")
	}
	sec, err := parseLegacySecret("webhookSecret", s)
	if err != nil {
		return "", webhook.Secret{}, err
	}
	return u, sec, nil
}

// validTargetURL is the admin API's rule for a target URL.
func validTargetURL(raw string) bool {
	if raw == "" || len(raw) > 2048 {
		return false
	}
	u, err := url.Parse(raw)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Hostname() != "" && u.User == nil
}

// parseLegacySecret turns a legacy secret into the signing secret the worker uses. The
// rule is what a Standard Webhooks verifier does with the same text, so the tenant's
// receivers keep the secret they have: "whsec_" + base64 is taken as it is, and plain
// base64 (which the official libraries accept without the prefix) gets the prefix.
// Anything else has no single reading and fails the record.
func parseLegacySecret(field, s string) (webhook.Secret, error) {
	text := s
	if !strings.HasPrefix(text, webhook.SecretPrefix) {
		text = webhook.SecretPrefix + text
	}
	sec, err := webhook.ParseSecret(text)
	if err != nil {
		return webhook.Secret{}, badField(field, "is neither whsec_ + base64 (the Standard Webhooks form) nor plain base64, so it cannot be converted unambiguously")
	}
	return sec, nil
}

// parseRotationHistory reads the optional rotationHistory: a list whose entries are
// maps {rotatedAt, previousExpiresAt (or expiresAt), previousSecret}, only rotatedAt
// required, or plain times (the rotation time alone).
func parseRotationHistory(it item) ([]legacyRotation, error) {
	av, ok := it["rotationHistory"]
	if !ok || isNull(av) {
		return nil, nil
	}
	l, isList := av.(*types.AttributeValueMemberL)
	if !isList {
		return nil, badField("rotationHistory", "must be a list (L), not %s", kind(av))
	}
	out := make([]legacyRotation, 0, len(l.Value))
	for i, e := range l.Value {
		field := fmt.Sprintf("rotationHistory[%d]", i)
		m, isMap := e.(*types.AttributeValueMemberM)
		if !isMap {
			switch e.(type) {
			case *types.AttributeValueMemberS, *types.AttributeValueMemberN:
			default:
				return nil, badField(field, "must be a map (M) or a time, not %s", kind(e))
			}
			at, err := parseTime(field, e)
			if err != nil {
				return nil, err
			}
			out = append(out, legacyRotation{rotatedAt: at})
			continue
		}
		var r legacyRotation
		at, ok, err := optionalTime(m.Value, "rotatedAt")
		switch {
		case err != nil:
			return nil, prefixed(field, err)
		case !ok:
			return nil, badField(field+".rotatedAt", "missing")
		}
		r.rotatedAt = at
		for _, name := range []string{"previousExpiresAt", "expiresAt"} {
			if exp, ok, err := optionalTime(m.Value, name); err != nil {
				return nil, prefixed(field, err)
			} else if ok && r.expiresAt.IsZero() {
				r.expiresAt = exp
			}
		}
		if r.previous, _, err = optionalString(m.Value, "previousSecret"); err != nil {
			return nil, prefixed(field, err)
		}
		out = append(out, r)
	}
	return out, nil
}

// prefixed puts field in front of a fieldError's attribute name.
func prefixed(field string, err error) error {
	if fe, ok := err.(*fieldError); ok {
		return &fieldError{field: field + "." + fe.field, problem: fe.problem}
	}
	return err
}

// optionalString reads a string attribute; absent and NULL are not ok, another type
// is an error.
func optionalString(it item, name string) (string, bool, error) {
	av, ok := it[name]
	if !ok || isNull(av) {
		return "", false, nil
	}
	s, isString := av.(*types.AttributeValueMemberS)
	if !isString {
		return "", false, badField(name, "must be a string (S), not %s", kind(av))
	}
	if s.Value == "" {
		return "", false, nil
	}
	return s.Value, true, nil
}

// optionalTime reads a time attribute (see parseTime); absent and NULL are not ok.
func optionalTime(it item, name string) (time.Time, bool, error) {
	av, ok := it[name]
	if !ok || isNull(av) {
		return time.Time{}, false, nil
	}
	if s, isString := av.(*types.AttributeValueMemberS); isString && strings.TrimSpace(s.Value) == "" {
		return time.Time{}, false, nil
	}
	t, err := parseTime(name, av)
	return t, err == nil, err
}

// isoLayouts are the ISO-8601 forms a legacy time may take: RFC 3339, and Python's
// isoformat() and str() of a datetime, without a zone meaning UTC.
var isoLayouts = []string{
	time.RFC3339Nano,
	"2006-01-02T15:04:05.999999999",
	"2006-01-02 15:04:05.999999999Z07:00",
	"2006-01-02 15:04:05.999999999",
	"2006-01-02",
}

// parseTime reads a time: an ISO-8601 string, or epoch seconds as a number or a
// string of digits (the legacy API wrote str(int(time.time()))); a value of 10^11 or
// more is taken as epoch milliseconds.
func parseTime(field string, av types.AttributeValue) (time.Time, error) {
	var s string
	switch v := av.(type) {
	case *types.AttributeValueMemberS:
		s = strings.TrimSpace(v.Value)
		if t, ok := parseEpoch(s); ok {
			return t, nil
		}
		for _, layout := range isoLayouts {
			if t, err := time.Parse(layout, s); err == nil {
				return t.UTC(), nil
			}
		}
		return time.Time{}, badField(field, "%.40q is neither an ISO-8601 time nor epoch seconds", s)
	case *types.AttributeValueMemberN:
		if t, ok := parseEpoch(v.Value); ok {
			return t, nil
		}
		return time.Time{}, badField(field, "number %.40s is not epoch seconds", v.Value)
	default:
		return time.Time{}, badField(field, "must be a time (S or N), not %s", kind(av))
	}
}

// parseEpoch reads non-negative epoch seconds (or milliseconds, from 10^11 on), with an
// optional fraction.
func parseEpoch(s string) (time.Time, bool) {
	if s == "" || strings.ContainsAny(s, "eE+-") {
		return time.Time{}, false
	}
	whole, frac, _ := strings.Cut(s, ".")
	n, err := strconv.ParseInt(whole, 10, 64)
	if err != nil || n < 0 {
		return time.Time{}, false
	}
	var nanos int64
	if frac != "" {
		if len(frac) > 9 {
			frac = frac[:9]
		}
		f, err := strconv.ParseInt(frac, 10, 64)
		if err != nil {
			return time.Time{}, false
		}
		nanos = f * pow10(9-len(frac))
	}
	if n >= 1e11 { // milliseconds
		if n > 1e15 {
			return time.Time{}, false
		}
		return time.UnixMilli(n).Add(time.Duration(nanos / 1000)).UTC(), true
	}
	return time.Unix(n, nanos).UTC(), true
}

func pow10(n int) int64 {
	p := int64(1)
	for ; n > 0; n-- {
		p *= 10
	}
	return p
}

func isNull(av types.AttributeValue) bool {
	_, ok := av.(*types.AttributeValueMemberNULL)
	return ok
}

// kind is the DynamoDB type name of av, for error messages.
func kind(av types.AttributeValue) string {
	switch av.(type) {
	case *types.AttributeValueMemberS:
		return "S"
	case *types.AttributeValueMemberN:
		return "N"
	case *types.AttributeValueMemberB:
		return "B"
	case *types.AttributeValueMemberBOOL:
		return "BOOL"
	case *types.AttributeValueMemberNULL:
		return "NULL"
	case *types.AttributeValueMemberM:
		return "M"
	case *types.AttributeValueMemberL:
		return "L"
	case *types.AttributeValueMemberSS:
		return "SS"
	case *types.AttributeValueMemberNS:
		return "NS"
	case *types.AttributeValueMemberBS:
		return "BS"
	}
	return "an unknown type"
}

// shorten keeps at most 100 bytes of s, for naming an invalid tenant id in a Failure.
func shorten(s string) string {
	if len(s) > 100 {
		return s[:100]
	}
	return s
}

// record is one legacy tenant ready to migrate: an API key, its tenant's identity record
// and webhook configuration.
type record struct {
	apiKey string
	tenant identity.Tenant
	config vault.WebhookConfig
}

// newRecord builds the edgehook records of a legacy tenant. Previous secrets of the
// rotation history that are still valid at now become the config's previous secrets
// (the current secret first when signing); all rotations stay in its history.
func newRecord(id identityPart, c configPart, now time.Time, window time.Duration) (record, error) {
	r := record{
		apiKey: id.apiKey,
		tenant: identity.Tenant{TenantID: id.tenantID, Status: id.status, Plan: id.plan, CreatedAt: id.createdAt},
		config: vault.WebhookConfig{
			TenantID:    id.tenantID,
			TargetURL:   c.targetURL,
			Secret:      c.secret,
			LastUpdated: c.lastUpdated,
		},
	}
	// Without their own time, each takes the other's: a tenant's creation is its
	// config's last update at the latest, and a config never updated dates from it.
	if r.tenant.CreatedAt.IsZero() {
		r.tenant.CreatedAt = c.lastUpdated
	}
	if r.config.LastUpdated.IsZero() {
		r.config.LastUpdated = id.createdAt
	}
	for i, h := range c.rotations {
		exp := h.expiresAt
		if exp.IsZero() {
			exp = h.rotatedAt.Add(window)
		}
		r.config.RotationHistory = append(r.config.RotationHistory, vault.Rotation{RotatedAt: h.rotatedAt, PreviousExpiresAt: exp})
		if h.previous == "" || !now.Before(exp) {
			continue // expired secrets are not carried over, nor checked
		}
		sec, err := parseLegacySecret(fmt.Sprintf("rotationHistory[%d].previousSecret", i), h.previous)
		if err != nil {
			return record{}, err
		}
		if sec.Equal(r.config.Secret) || containsSecret(r.config.Previous, sec) {
			continue
		}
		r.config.Previous = append(r.config.Previous, vault.PreviousSecret{Secret: sec, ExpiresAt: exp})
	}
	if err := r.tenant.Validate(); err != nil {
		return record{}, fmt.Errorf("%w: %w", ErrInvalidRecord, err)
	}
	return r, nil
}

func containsSecret(ps []vault.PreviousSecret, s webhook.Secret) bool {
	for _, p := range ps {
		if p.Secret.Equal(s) {
			return true
		}
	}
	return false
}
