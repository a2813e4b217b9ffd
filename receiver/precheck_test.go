package receiver_test

import (
	"bufio"
	"encoding/base64"
	"maps"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edgehook/edgehook/receiver"
	"github.com/edgehook/edgehook/vault"
	"github.com/edgehook/edgehook/webhook"
)

// TestFreeChecksComeBeforeTheConfigLookup checks that a webhook for a well-formed
// tenant id whose headers, timestamp, signature format or body are wrong is answered
// without reading the tenant's configuration.
func TestFreeChecksComeBeforeTheConfigLookup(t *testing.T) {
	e := start(t, receiver.Config{MaxBodyBytes: 1024})
	secret := newSecret(t)
	e.tenant("acme", secret)
	now := time.Now()
	body := []byte(`{"n":1}`)
	good := func() delivery { return signed("acme", "msg_1", now, body, secret) }
	with := func(f func(*delivery)) delivery { d := good(); f(&d); return d }
	v1 := strings.TrimPrefix(good().signature, "v1,")

	badSignature := errorBody("invalid_signature", "no signature in webhook-signature matches")
	missing := errorBody("missing_headers", "webhook-id, webhook-timestamp and webhook-signature headers are required")
	badID := errorBody("invalid_headers", "webhook-id must be 1 to 256 visible ASCII characters")
	notANumber := errorBody("invalid_timestamp", "webhook-timestamp must be a unix time in seconds")
	cases := []struct {
		name   string
		d      delivery
		status int
		body   string
		reason string
	}{
		{"missing webhook-id", with(func(d *delivery) { d.id = "" }), 401, missing, "missing_headers"},
		{"missing webhook-signature", with(func(d *delivery) { d.signature = "" }), 401, missing, "missing_headers"},
		{"webhook-id too long", with(func(d *delivery) { d.id = strings.Repeat("m", 257) }), 401, badID, "invalid_headers"},
		{"webhook-id with a space", with(func(d *delivery) { d.id = "msg 1" }), 401, badID, "invalid_headers"},
		{"webhook-id not ASCII", with(func(d *delivery) { d.id = "msg_é" }), 401, badID, "invalid_headers"},
		{"timestamp too long", with(func(d *delivery) { d.timestamp = strings.Repeat("1", 21) }), 401, notANumber, "invalid_timestamp"},
		{"timestamp not a number", with(func(d *delivery) { d.timestamp = "12:00" }), 401, notANumber, "invalid_timestamp"},
		{"timestamp too old", with(func(d *delivery) { d.timestamp = strconv.FormatInt(now.Add(-6*time.Minute).Unix(), 10) }),
			401, errorBody("invalid_timestamp", "webhook-timestamp is too old"), "stale_timestamp"},
		{"timestamp in the future", with(func(d *delivery) { d.timestamp = strconv.FormatInt(now.Add(6*time.Minute).Unix(), 10) }),
			401, errorBody("invalid_timestamp", "webhook-timestamp is too far in the future"), "future_timestamp"},
		{"signature without a version", with(func(d *delivery) { d.signature = v1 }), 401, badSignature, "unauthorized"},
		{"signature of the wrong length", with(func(d *delivery) { d.signature = "v1," + v1[:40] }), 401, badSignature, "unauthorized"},
		{"signature not base64", with(func(d *delivery) { d.signature = "v1," + strings.Repeat("*", 44) }), 401, badSignature, "unauthorized"},
		{"only other versions", with(func(d *delivery) { d.signature = "v1a," + v1 }), 401, badSignature, "unauthorized"},
		{"only malformed entries", with(func(d *delivery) { d.signature = "v1, v1,x " + v1 + " v1," + v1 + "=" }), 401, badSignature, "unauthorized"},
		{"too many signatures", with(func(d *delivery) { d.signature = strings.Repeat("v1,"+v1+" ", 9) }), 401, badSignature, "unauthorized"},
		{"malformed tenant id", with(func(d *delivery) { d.tenant = "acme.corp" }), 401, badSignature, "unauthorized"},
		{"tenant id too long", with(func(d *delivery) { d.tenant = strings.Repeat("a", 65) }), 401, badSignature, "unauthorized"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := e.send(t, tc.d)
			if res.status != tc.status || res.body != tc.body {
				t.Errorf("got %d %s\nwant %d %s", res.status, res.body, tc.status, tc.body)
			}
		})
	}
	if n := e.configs.reads.Load(); n != 0 {
		t.Errorf("%d config reads for webhooks that fail checks needing none, want 0", n)
	}

	// The same webhook, well formed, is verified: the checks above refuse only what
	// they should. Another version and a malformed entry beside it are skipped.
	d := good()
	d.signature += " v1a," + base64.StdEncoding.EncodeToString(make([]byte, 64)) + " junk"
	if res := e.send(t, d); res.status != http.StatusNoContent {
		t.Fatalf("well-formed webhook: %d %s, want 204", res.status, res.body)
	}
	if n := e.configs.reads.Load(); n != 1 {
		t.Errorf("config reads = %d, want 1", n)
	}
}

// metricsSnapshot reads every series on e's /metrics.
func (e *env) metricsSnapshot(t testing.TB) map[string]float64 {
	t.Helper()
	res := e.do(t, http.MethodGet, "/metrics", nil, nil)
	if res.status != http.StatusOK {
		t.Fatalf("/metrics: %d", res.status)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(strings.NewReader(res.body))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		name, value, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		f, err := strconv.ParseFloat(value, 64)
		if err != nil {
			t.Fatalf("metric line %q: %v", line, err)
		}
		out[name] = f
	}
	return out
}

// metricsChange returns the series whose value changed from before to after, and by
// how much.
func metricsChange(before, after map[string]float64) map[string]float64 {
	d := map[string]float64{}
	for k, v := range after {
		if v != before[k] {
			d[k] = v - before[k]
		}
	}
	return d
}

// TestUnknownTenantLooksLikeBadSignature checks that nothing a sender or a scraper of
// /metrics sees tells an unknown tenant from a wrong signature for a real one.
func TestUnknownTenantLooksLikeBadSignature(t *testing.T) {
	e := start(t, receiver.Config{})
	secret, wrong := newSecret(t), newSecret(t)
	e.tenant("acme", secret)
	body := []byte(`{"n":1}`)

	// Warm both up so each is answered from the cache, as a prober's second try is.
	e.send(t, signed("acme", "msg_warm", time.Now(), body, wrong))
	e.send(t, signed("ghost", "msg_warm", time.Now(), body, wrong))

	observe := func(tenant string) (response, map[string]float64) {
		before := e.metricsSnapshot(t)
		res := e.send(t, signed(tenant, "msg_1", time.Now(), body, wrong))
		return res, metricsChange(before, e.metricsSnapshot(t))
	}
	known, knownChange := observe("acme")
	unknown, unknownChange := observe("ghost")
	if known.status != http.StatusUnauthorized || known.status != unknown.status || known.body != unknown.body {
		t.Errorf("wrong signature: %d %s; unknown tenant: %d %s; want the same 401", known.status, known.body, unknown.status, unknown.body)
	}
	for _, h := range []string{"Content-Type", "Content-Length", "Retry-After"} {
		if known.header.Get(h) != unknown.header.Get(h) {
			t.Errorf("header %s: %q for a wrong signature, %q for an unknown tenant", h, known.header.Get(h), unknown.header.Get(h))
		}
	}
	if !maps.Equal(knownChange, unknownChange) {
		t.Errorf("/metrics changed by %v for a wrong signature and by %v for an unknown tenant; want the same", knownChange, unknownChange)
	}
	if got := knownChange[`edgehook_webhooks_rejected_total{reason="unauthorized"}`]; got != 1 {
		t.Errorf("rejected{unauthorized} rose by %v, want 1 (changes: %v)", got, knownChange)
	}
	for series := range e.metricsSnapshot(t) {
		if strings.Contains(series, "unknown_tenant") || strings.Contains(series, "invalid_signature") {
			t.Errorf("/metrics has %s, which separates unknown tenants from bad signatures", series)
		}
	}
}

// TestConfigReadsForUncachedTenantsAreLimited checks the read limit: past it, a webhook
// for a tenant the cache does not hold is answered 503 with Retry-After without a read,
// the same for a real tenant and a made-up one, while cached tenants are served.
func TestConfigReadsForUncachedTenantsAreLimited(t *testing.T) {
	// One read per 1,000 s: no token comes back while the test runs.
	e := start(t, receiver.Config{ConfigReadRate: 0.001, ConfigReadBurst: 3})
	secret := newSecret(t)
	e.tenant("acme", secret)
	e.tenant("globex", secret)
	body := []byte(`{}`)
	if res := e.send(t, signed("acme", "msg_1", time.Now(), body, secret)); res.status != http.StatusNoContent {
		t.Fatalf("first webhook: %d %s", res.status, res.body)
	}
	for _, ghost := range []string{"ghost_1", "ghost_2"} {
		if res := e.send(t, signed(ghost, "msg_1", time.Now(), body, secret)); res.status != http.StatusUnauthorized {
			t.Fatalf("%s within the burst: %d %s, want 401", ghost, res.status, res.body)
		}
	}
	if n := e.configs.reads.Load(); n != 3 {
		t.Fatalf("config reads = %d, want 3 (the burst)", n)
	}

	busy := errorBody("unavailable", "the receiver is busy; retry later")
	madeUp := e.send(t, signed("ghost_3", "msg_1", time.Now(), body, secret))
	real := e.send(t, signed("globex", "msg_1", time.Now(), body, secret))
	for name, res := range map[string]response{"made-up tenant": madeUp, "real uncached tenant": real} {
		if res.status != http.StatusServiceUnavailable || res.body != busy || res.header.Get("Retry-After") == "" {
			t.Errorf("%s over the limit: %d %s (Retry-After %q), want 503 %s with Retry-After", name, res.status, res.body, res.header.Get("Retry-After"), busy)
		}
	}
	if madeUp.header.Get("Retry-After") != real.header.Get("Retry-After") {
		t.Errorf("Retry-After differs: %q and %q", madeUp.header.Get("Retry-After"), real.header.Get("Retry-After"))
	}
	if n := e.configs.reads.Load(); n != 3 {
		t.Errorf("config reads = %d after the limit, want still 3", n)
	}
	// Cached answers need no read: the cached tenant is served, a cached unknown one
	// still gets the wrong-signature answer.
	if res := e.send(t, signed("acme", "msg_2", time.Now(), body, secret)); res.status != http.StatusNoContent {
		t.Errorf("cached tenant while reads are limited: %d %s, want 204", res.status, res.body)
	}
	if res := e.send(t, signed("ghost_1", "msg_2", time.Now(), body, secret)); res.status != http.StatusUnauthorized {
		t.Errorf("cached unknown tenant while reads are limited: %d %s, want 401", res.status, res.body)
	}
	if got := e.metric(t, `edgehook_webhooks_rejected_total{reason="throttled"}`); got != 2 {
		t.Errorf("rejected{throttled} = %v, want 2", got)
	}
	if n := e.receivedCount(t); n != 2 {
		t.Errorf("RECEIVED holds %d messages, want 2", n)
	}
}

// TestRejectionLogsAreSampled checks that rejected webhooks write one line per reason
// per interval, without the request's header values, and that the lines held back are
// counted when the receiver stops.
func TestRejectionLogsAreSampled(t *testing.T) {
	e := start(t, receiver.Config{RejectLogInterval: time.Hour})
	secret, wrong := newSecret(t), newSecret(t)
	e.tenant("acme", secret)
	const n = 300
	for i := range n {
		id := "msg_secretish_" + strconv.Itoa(i)
		e.send(t, signed("acme", id, time.Now(), []byte(`{}`), wrong))
	}
	e.send(t, delivery{tenant: "acme"}) // another reason: missing headers
	e.stop()

	logs := e.logs.String()
	var rejected, flushed []string
	for line := range strings.Lines(logs) {
		switch {
		case strings.Contains(line, `"msg":"webhook rejected"`):
			rejected = append(rejected, line)
		case strings.Contains(line, `"msg":"webhooks rejected or failed and not logged"`):
			flushed = append(flushed, line)
		}
	}
	if len(rejected) != 2 {
		t.Errorf("%d rejection lines for %d rejections of two reasons, want 2:\n%s", len(rejected), n+1, logs)
	}
	if len(flushed) != 1 || !strings.Contains(flushed[0], `"reason":"unauthorized"`) || !strings.Contains(flushed[0], `"suppressed":`+strconv.Itoa(n-1)) {
		t.Errorf("lines at stop %q, want one counting %d suppressed unauthorized rejections", flushed, n-1)
	}
	if strings.Contains(logs, "msg_secretish") {
		t.Errorf("logs carry a webhook-id a caller sent:\n%s", logs)
	}
	if strings.Contains(logs, webhook.HeaderSignature) || strings.Contains(logs, "v1,") {
		t.Errorf("logs carry signature material:\n%s", logs)
	}
}

// TestNewValidatesReceiverLimits checks the settings the hardening added.
func TestNewValidatesReceiverLimits(t *testing.T) {
	e := start(t, receiver.Config{})
	deps := receiver.Deps{JS: e.js, Configs: vault.NewCache(e.configs, vault.CacheConfig{}, nil)}
	for name, cfg := range map[string]receiver.Config{
		"ConfigReadRate":    {ConfigReadRate: -1},
		"ConfigReadBurst":   {ConfigReadBurst: -1},
		"RejectLogInterval": {RejectLogInterval: -time.Second},
	} {
		if _, err := receiver.New(cfg, deps); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("New with a negative %s: %v, want an error naming it", name, err)
		}
	}
}
