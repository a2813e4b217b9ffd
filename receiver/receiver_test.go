package receiver_test

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/edgehook/edgehook/natsconf"
	"github.com/edgehook/edgehook/receiver"
	"github.com/edgehook/edgehook/vault"
	"github.com/edgehook/edgehook/webhook"
)

func TestVerifiedWebhookIsStoredInReceived(t *testing.T) {
	e := start(t, receiver.Config{})
	secret := newSecret(t)
	e.tenant("acme", secret)

	body := []byte(`{"type":"invoice.paid","amount":4200}`)
	before := time.Now()
	res := e.send(t, signed("acme", "msg_2k9sd", time.Now(), body, secret))
	after := time.Now()
	if res.status != http.StatusNoContent || res.body != "" {
		t.Fatalf("verified webhook: got %d %q, want 204 and no body", res.status, res.body)
	}

	m := e.lastReceived(t, "acme")
	if m.Subject != "received.acme" {
		t.Errorf("subject = %q, want received.acme", m.Subject)
	}
	if string(m.Data) != string(body) {
		t.Errorf("body = %q, want %q", m.Data, body)
	}
	for name, want := range map[string]string{
		"webhook-id":              "msg_2k9sd",
		"webhook-timestamp":       strconv.FormatInt(before.Unix(), 10),
		natsconf.HeaderTenant:     "acme",
		natsconf.HeaderEventID:    "msg_2k9sd",
		"Content-Type":            "application/json",
		jetstream.MsgIDHeader:     "acme:msg_2k9sd",
		natsconf.HeaderVerifyTime: "", // checked below
	} {
		got := m.Header.Get(name)
		if name == natsconf.HeaderVerifyTime {
			ns, err := strconv.ParseInt(got, 10, 64)
			if err != nil || ns < before.UnixNano() || ns > after.UnixNano() {
				t.Errorf("%s = %q, want unix nanos between the request's start and end", name, got)
			}
			continue
		}
		if name == "webhook-timestamp" && got == strconv.FormatInt(after.Unix(), 10) {
			continue // the second ticked over during the request
		}
		if got != want {
			t.Errorf("header %s = %q, want %q", name, got, want)
		}
	}
	if m.Header.Get(webhook.HeaderSignature) != "" {
		t.Errorf("RECEIVED message carries the signature header; it should carry only verified facts")
	}
	if got := e.metric(t, "edgehook_webhooks_verified_total"); got != 1 {
		t.Errorf("edgehook_webhooks_verified_total = %v, want 1", got)
	}
	if got := e.metric(t, `edgehook_http_requests_total{code="204",route="/webhooks/{tenantId}",server="receiver"}`); got != 1 {
		t.Errorf("requests{204,/webhooks/{tenantId}} = %v, want 1", got)
	}
}

func TestWebhookWithoutContentTypeOrBody(t *testing.T) {
	e := start(t, receiver.Config{})
	secret := newSecret(t)
	e.tenant("acme", secret)
	d := signed("acme", "msg_empty", time.Now(), nil, secret)
	d.contentType = ""
	if res := e.send(t, d); res.status != http.StatusNoContent {
		t.Fatalf("empty webhook: got %d %s, want 204", res.status, res.body)
	}
	m := e.lastReceived(t, "acme")
	if len(m.Data) != 0 || m.Header.Get("Content-Type") != "" {
		t.Errorf("stored data %q, content type %q; want both empty", m.Data, m.Header.Get("Content-Type"))
	}
}

func TestRejectedWebhooksGet401AndAreNotStored(t *testing.T) {
	e := start(t, receiver.Config{})
	secret, other := newSecret(t), newSecret(t)
	e.tenant("acme", secret)
	body := []byte(`{"n":1}`)
	now := time.Now()
	good := func() delivery { return signed("acme", "msg_1", now, body, secret) }

	badSignature := errorBody("invalid_signature", "no signature in webhook-signature matches")
	missing := errorBody("missing_headers", "webhook-id, webhook-timestamp and webhook-signature headers are required")
	cases := []struct {
		name   string
		d      delivery
		body   string
		reason string
	}{
		{"tampered body", func() delivery { d := good(); d.body = []byte(`{"n":2}`); return d }(), badSignature, "unauthorized"},
		{"wrong secret", signed("acme", "msg_1", now, body, other), badSignature, "unauthorized"},
		{"signature for another id", func() delivery { d := good(); d.id = "msg_2"; return d }(), badSignature, "unauthorized"},
		{"unknown signature version", func() delivery {
			d := good()
			d.signature = "v2," + strings.TrimPrefix(d.signature, "v1,")
			return d
		}(), badSignature, "unauthorized"},
		{"stale timestamp", signed("acme", "msg_1", now.Add(-6*time.Minute), body, secret),
			errorBody("invalid_timestamp", "webhook-timestamp is too old"), "stale_timestamp"},
		{"future timestamp", signed("acme", "msg_1", now.Add(6*time.Minute), body, secret),
			errorBody("invalid_timestamp", "webhook-timestamp is too far in the future"), "future_timestamp"},
		{"timestamp not a number", func() delivery { d := good(); d.timestamp = "yesterday"; return d }(),
			errorBody("invalid_timestamp", "webhook-timestamp must be a unix time in seconds"), "invalid_timestamp"},
		{"missing webhook-id", func() delivery { d := good(); d.id = ""; return d }(), missing, "missing_headers"},
		{"missing webhook-timestamp", func() delivery { d := good(); d.timestamp = ""; return d }(), missing, "missing_headers"},
		{"missing webhook-signature", func() delivery { d := good(); d.signature = ""; return d }(), missing, "missing_headers"},
		// An unknown or malformed tenant answers exactly like a wrong signature, and
		// counts under the same reason.
		{"unknown tenant", signed("nobody", "msg_1", now, body, secret), badSignature, "unauthorized"},
		{"malformed tenant id", signed("a.b", "msg_1", now, body, secret), badSignature, "unauthorized"},
	}
	wantReasons := map[string]float64{}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := e.send(t, tc.d)
			if res.status != http.StatusUnauthorized || res.body != tc.body {
				t.Errorf("got %d %s\nwant 401 %s", res.status, res.body, tc.body)
			}
			if ct := res.header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type = %q, want application/json", ct)
			}
		})
		wantReasons[tc.reason]++
	}
	if n := e.receivedCount(t); n != 0 {
		t.Errorf("RECEIVED holds %d messages after only rejected webhooks, want 0", n)
	}
	for reason, want := range wantReasons {
		if got := e.metric(t, `edgehook_webhooks_rejected_total{reason="`+reason+`"}`); got != want {
			t.Errorf("rejected{reason=%s} = %v, want %v", reason, got, want)
		}
	}
	for _, s := range []webhook.Secret{secret, other} {
		key := strings.TrimPrefix(s.Reveal(), webhook.SecretPrefix)
		if strings.Contains(e.logs.String(), key) {
			t.Errorf("logs contain a signing secret")
		}
	}
}

func TestRotation(t *testing.T) {
	e := start(t, receiver.Config{})
	current, previous, expired := newSecret(t), newSecret(t), newSecret(t)
	now := time.Now()
	e.tenant("acme", current,
		vault.PreviousSecret{Secret: previous, ExpiresAt: now.Add(time.Hour)},
		vault.PreviousSecret{Secret: expired, ExpiresAt: now.Add(-time.Second)},
	)
	body := []byte(`{"rotated":true}`)
	cases := []struct {
		name    string
		secrets []webhook.Secret
		want    int
	}{
		{"current secret", []webhook.Secret{current}, http.StatusNoContent},
		{"previous secret within its window", []webhook.Secret{previous}, http.StatusNoContent},
		{"header with both signatures", []webhook.Secret{current, previous}, http.StatusNoContent},
		{"previous secret after ExpiresAt", []webhook.Secret{expired}, http.StatusUnauthorized},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := e.send(t, signed("acme", "msg_rot_"+strconv.Itoa(i), now, body, tc.secrets...))
			if res.status != tc.want {
				t.Errorf("got %d %s, want %d", res.status, res.body, tc.want)
			}
		})
	}
	if n := e.receivedCount(t); n != 3 {
		t.Errorf("RECEIVED holds %d messages, want 3", n)
	}
}

func TestDuplicateWebhookIsStoredOnce(t *testing.T) {
	e := start(t, receiver.Config{})
	secret := newSecret(t)
	e.tenant("acme", secret)
	e.tenant("globex", secret)

	d := signed("acme", "msg_dup", time.Now(), []byte(`{"once":true}`), secret)
	for i := range 3 {
		if res := e.send(t, d); res.status != http.StatusNoContent {
			t.Fatalf("delivery %d: got %d %s, want 204", i+1, res.status, res.body)
		}
	}
	if n := e.receivedCount(t); n != 1 {
		t.Errorf("RECEIVED holds %d messages after 3 deliveries of one webhook-id, want 1", n)
	}
	if got := e.metric(t, "edgehook_webhooks_duplicate_total"); got != 2 {
		t.Errorf("edgehook_webhooks_duplicate_total = %v, want 2", got)
	}

	// The same webhook-id sent to another tenant is a different webhook.
	d.tenant = "globex"
	if res := e.send(t, d); res.status != http.StatusNoContent {
		t.Fatalf("other tenant: got %d %s, want 204", res.status, res.body)
	}
	if n := e.receivedCount(t); n != 2 {
		t.Errorf("RECEIVED holds %d messages, want 2 (one per tenant)", n)
	}
}

func TestJetStreamUnavailable(t *testing.T) {
	unavailable := errorBody("unavailable", "the webhook could not be stored; retry later")

	t.Run("stream missing", func(t *testing.T) {
		e := start(t, receiver.Config{PublishTimeout: 2 * time.Second})
		secret := newSecret(t)
		e.tenant("acme", secret)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := e.js.DeleteStream(ctx, natsconf.StreamReceived); err != nil {
			t.Fatal(err)
		}
		res := e.send(t, signed("acme", "msg_1", time.Now(), []byte(`{}`), secret))
		if res.status != http.StatusServiceUnavailable || res.body != unavailable || res.header.Get("Retry-After") == "" {
			t.Errorf("got %d %s (Retry-After %q), want 503 %s with Retry-After", res.status, res.body, res.header.Get("Retry-After"), unavailable)
		}
	})

	t.Run("server down", func(t *testing.T) {
		e := start(t, receiver.Config{PublishTimeout: 300 * time.Millisecond})
		secret := newSecret(t)
		e.tenant("acme", secret)
		if res := e.do(t, http.MethodGet, "/readyz", nil, nil); res.status != http.StatusOK {
			t.Fatalf("/readyz with NATS up: %d %s", res.status, res.body)
		}
		e.nats.Shutdown()
		e.nats.WaitForShutdown()

		res := e.send(t, signed("acme", "msg_1", time.Now(), []byte(`{}`), secret))
		if res.status != http.StatusServiceUnavailable || res.body != unavailable || res.header.Get("Retry-After") == "" {
			t.Errorf("got %d %s (Retry-After %q), want 503 %s with Retry-After", res.status, res.body, res.header.Get("Retry-After"), unavailable)
		}
		res = e.do(t, http.MethodGet, "/readyz", nil, nil)
		if res.status != http.StatusServiceUnavailable || res.body != errorBody("not_ready", "not connected to NATS, or webhook configuration unreachable") {
			t.Errorf("/readyz with NATS down: %d %s, want 503 not_ready", res.status, res.body)
		}
		if res := e.do(t, http.MethodGet, "/healthz", nil, nil); res.status != http.StatusOK {
			t.Errorf("/healthz with NATS down: %d, want 200 (the process is alive)", res.status)
		}
	})
}

func TestConfigStoreUnavailable(t *testing.T) {
	e := start(t, receiver.Config{})
	secret := newSecret(t)
	e.tenant("acme", secret)
	e.configs.fail(errVaultDown)
	res := e.send(t, signed("acme", "msg_1", time.Now(), []byte(`{}`), secret))
	want := errorBody("unavailable", "webhook configuration is unavailable; retry later")
	if res.status != http.StatusServiceUnavailable || res.body != want || res.header.Get("Retry-After") == "" {
		t.Errorf("got %d %s (Retry-After %q), want 503 %s with Retry-After", res.status, res.body, res.header.Get("Retry-After"), want)
	}
	if n := e.receivedCount(t); n != 0 {
		t.Errorf("RECEIVED holds %d messages, want 0", n)
	}
}

func TestRoutes(t *testing.T) {
	e := start(t, receiver.Config{MaxBodyBytes: 1024})
	secret := newSecret(t)
	e.tenant("acme", secret)
	notFound := errorBody("not_found", "no such route")
	notAllowed := errorBody("method_not_allowed", "method not allowed on this route")

	cases := []struct {
		method, path string
		body         []byte
		status       int
		wantBody     string
		allow        string
	}{
		{http.MethodGet, "/healthz", nil, 200, `{"status":"ok"}`, ""},
		{http.MethodGet, "/readyz", nil, 200, `{"status":"ready"}`, ""},
		{http.MethodGet, "/webhooks/acme", nil, 405, notAllowed, "POST"},
		{http.MethodPut, "/webhooks/acme", []byte(`{}`), 405, notAllowed, "POST"},
		{http.MethodPost, "/healthz", nil, 405, notAllowed, "GET, HEAD"},
		{http.MethodDelete, "/metrics", nil, 405, notAllowed, "GET, HEAD"},
		{http.MethodGet, "/", nil, 404, notFound, ""},
		{http.MethodPost, "/webhooks", nil, 404, notFound, ""},
		{http.MethodPost, "/webhooks/", nil, 404, notFound, ""},
		{http.MethodPost, "/webhooks/acme/extra", nil, 404, notFound, ""},
		{http.MethodPost, "/v1/events", nil, 404, notFound, ""},
	}
	for _, tc := range cases {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			res := e.do(t, tc.method, tc.path, tc.body, nil)
			if res.status != tc.status || res.body != tc.wantBody {
				t.Errorf("got %d %s, want %d %s", res.status, res.body, tc.status, tc.wantBody)
			}
			if got := res.header.Get("Allow"); got != tc.allow {
				t.Errorf("Allow = %q, want %q", got, tc.allow)
			}
		})
	}

	t.Run("body over the limit", func(t *testing.T) {
		body := []byte(`{"pad":"` + strings.Repeat("x", 1100) + `"}`)
		res := e.send(t, signed("acme", "msg_big", time.Now(), body, secret))
		want := errorBody("payload_too_large", "request body exceeds 1024 bytes")
		if res.status != http.StatusRequestEntityTooLarge || res.body != want {
			t.Errorf("got %d %s, want 413 %s", res.status, res.body, want)
		}
		if n := e.receivedCount(t); n != 0 {
			t.Errorf("RECEIVED holds %d messages, want 0", n)
		}
		if got := e.metric(t, `edgehook_webhooks_rejected_total{reason="body_too_large"}`); got != 1 {
			t.Errorf("rejected{body_too_large} = %v, want 1", got)
		}
		if got := e.metric(t, `edgehook_http_requests_total{code="413",route="/webhooks/{tenantId}",server="receiver"}`); got != 1 {
			t.Errorf("requests{413} = %v, want 1", got)
		}
	})

	t.Run("unreadable requests", func(t *testing.T) {
		for _, tc := range []struct {
			name, raw, want string
		}{
			{"oversized headers", "POST /webhooks/acme HTTP/1.1\r\nHost: x\r\nX-Pad: " + strings.Repeat("p", 8192) + "\r\n\r\n",
				"HTTP/1.1 431 "},
			{"malformed request line", "NOT HTTP\r\n\r\n", "HTTP/1.1 400 "},
		} {
			got := rawRequest(t, e.srv.Addr(), tc.raw)
			if !strings.HasPrefix(got, tc.want) || !strings.Contains(got, `{"error":{"code":`) {
				t.Errorf("%s: got %q, want %q... with a JSON error", tc.name, got, tc.want)
			}
		}
	})

	t.Run("metrics label routes by pattern", func(t *testing.T) {
		res := e.do(t, http.MethodGet, "/metrics", nil, nil)
		if res.status != http.StatusOK {
			t.Fatalf("/metrics: %d", res.status)
		}
		if strings.Contains(res.body, "acme") {
			t.Errorf("/metrics mentions a tenant id; routes must be labelled by pattern")
		}
		for _, series := range []string{
			`edgehook_http_requests_total{code="405",route="/webhooks/{tenantId}",server="receiver"} 2`,
			`edgehook_http_requests_total{code="404",route="other",server="receiver"} 5`,
			`edgehook_http_requests_total{code="200",route="/healthz",server="receiver"} 1`,
		} {
			if !strings.Contains(res.body, series+"\n") {
				t.Errorf("/metrics lacks %s", series)
			}
		}
	})
}

func TestNewValidatesConfig(t *testing.T) {
	e := start(t, receiver.Config{})
	deps := receiver.Deps{JS: e.js, Configs: e.cache}
	cases := []struct {
		name    string
		cfg     receiver.Config
		deps    receiver.Deps
		setting string
	}{
		{"bad addr", receiver.Config{Addr: "localhost"}, deps, "Addr"},
		{"tolerance", receiver.Config{Tolerance: -time.Second}, deps, "Tolerance"},
		{"body limit", receiver.Config{MaxBodyBytes: -1}, deps, "MaxBodyBytes"},
		{"publish timeout", receiver.Config{PublishTimeout: -1}, deps, "PublishTimeout"},
		{"shutdown timeout", receiver.Config{ShutdownTimeout: -1}, deps, "ShutdownTimeout"},
		{"no JetStream", receiver.Config{}, receiver.Deps{Configs: e.cache}, "Deps.JS"},
		{"no config reader", receiver.Config{}, receiver.Deps{JS: e.js}, "Deps.Configs"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := receiver.New(tc.cfg, tc.deps)
			if !errors.Is(err, receiver.ErrConfig) || !strings.Contains(err.Error(), tc.setting) {
				t.Errorf("New: %v; want an ErrConfig naming %s", err, tc.setting)
			}
		})
	}
}

func TestRunStopsWhenContextEnds(t *testing.T) {
	e := start(t, receiver.Config{})
	srv, err := receiver.New(receiver.Config{Addr: "127.0.0.1:0"}, receiver.Deps{JS: e.js, Configs: e.cache})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	deadline := time.Now().Add(5 * time.Second)
	for srv.Addr() == "" && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	res, err := http.Get("http://" + srv.Addr() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if err := srv.Run(ctx); !errors.Is(err, receiver.ErrAlreadyRunning) {
		t.Errorf("second Run: %v, want ErrAlreadyRunning", err)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run after cancel: %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return within 10s of cancel")
	}
	if _, err := http.Get("http://" + srv.Addr() + "/healthz"); err == nil {
		t.Errorf("server still answers after Run returned")
	}
}

func TestReadyzFollowsTheConfigStore(t *testing.T) {
	e := start(t, receiver.Config{})
	if res := e.do(t, http.MethodGet, "/readyz", nil, nil); res.status != http.StatusOK {
		t.Fatalf("/readyz: %d %s, want 200", res.status, res.body)
	}
	e.configsReady.Store(false)
	res := e.do(t, http.MethodGet, "/readyz", nil, nil)
	if res.status != http.StatusServiceUnavailable || res.body != errorBody("not_ready", "not connected to NATS, or webhook configuration unreachable") {
		t.Errorf("/readyz with the config store unreachable: %d %s, want 503 not_ready", res.status, res.body)
	}
	if res := e.do(t, http.MethodGet, "/healthz", nil, nil); res.status != http.StatusOK {
		t.Errorf("/healthz: %d, want 200", res.status)
	}
}
