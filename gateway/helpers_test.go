package gateway_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/edgehook/edgehook/gateway"
	"github.com/edgehook/edgehook/identity"
	"github.com/edgehook/edgehook/natsconf"
	"github.com/edgehook/edgehook/natsconf/natstest"
	"github.com/edgehook/edgehook/status"
	"github.com/edgehook/edgehook/vault"
)

const testAdminToken = "admin-token-for-tests-0123456789"

// memConfigs is an in-memory vault.ConfigStore.
type memConfigs struct {
	mu sync.Mutex
	m  map[string]vault.WebhookConfig
}

func newMemConfigs() *memConfigs { return &memConfigs{m: make(map[string]vault.WebhookConfig)} }

func (c *memConfigs) WebhookConfig(_ context.Context, tenantID string) (vault.WebhookConfig, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	wc, ok := c.m[tenantID]
	if !ok {
		return vault.WebhookConfig{}, vault.ErrNotFound
	}
	wc.Previous = append([]vault.PreviousSecret(nil), wc.Previous...)
	wc.RotationHistory = append([]vault.Rotation(nil), wc.RotationHistory...)
	return wc, nil
}

func (c *memConfigs) PutWebhookConfig(_ context.Context, wc vault.WebhookConfig) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.m[wc.TenantID] = wc
	return nil
}

func (c *memConfigs) DeleteWebhookConfig(_ context.Context, tenantID string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, tenantID)
	return nil
}

func (c *memConfigs) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}

// failingPuts is a fault injector: a ConfigStore whose writes fail.
type failingPuts struct {
	vault.ConfigStore
	err error
}

func (f failingPuts) PutWebhookConfig(context.Context, vault.WebhookConfig) error { return f.err }

// syncBuffer collects log output from concurrent goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// options tweak the environment start builds.
type options struct {
	cfg      gateway.Config
	noAdmin  bool                                                    // no admin token, no Identity, no Configs
	configs  func(*memConfigs) vault.ConfigStore                     // wraps the in-memory store
	identity func(t testing.TB, def *identity.Store) *identity.Store // replaces the identity store
}

// env is a gateway serving on 127.0.0.1 over a real embedded JetStream server.
type env struct {
	t        testing.TB
	nats     *natstest.Server
	js       jetstream.JetStream
	base     string
	configs  *memConfigs
	identity *identity.Store
	status   *status.Store
	logs     *syncBuffer
	client   *http.Client
}

func start(t testing.TB, o options) *env {
	t.Helper()
	ns := natstest.Start(t, nil)
	js := ns.JetStream(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	idKV, err := js.KeyValue(ctx, natsconf.BucketIdentity)
	if err != nil {
		t.Fatal(err)
	}
	stKV, err := js.KeyValue(ctx, natsconf.BucketStatus)
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("gateway logs:\n%s", logs.String())
		}
	})

	view := identity.NewView(idKV, log)
	runCtx, stop := context.WithCancel(context.Background())
	viewErr := make(chan error, 1)
	go func() { viewErr <- view.Run(runCtx) }()

	e := &env{
		t: t, nats: ns, js: js, configs: newMemConfigs(), identity: identity.NewStore(idKV),
		status: status.NewStore(stKV), logs: logs,
		client: &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}},
	}
	cfg := o.cfg
	cfg.Addr = "127.0.0.1:0"
	deps := gateway.Deps{
		JS: js, View: view, Status: e.status, Logger: log,
	}
	reg := prometheus.NewRegistry()
	deps.Registerer, deps.Gatherer = reg, reg
	if !o.noAdmin {
		cfg.AdminToken = testAdminToken
		deps.Identity = e.identity
		if o.identity != nil {
			deps.Identity = o.identity(t, e.identity)
		}
		deps.Configs = e.configs
		if o.configs != nil {
			deps.Configs = o.configs(e.configs)
		}
	}
	srv, err := gateway.New(cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(runCtx, ln) }()
	t.Cleanup(func() {
		stop()
		if err := <-serveErr; err != nil {
			t.Errorf("Serve: %v", err)
		}
		if err := <-viewErr; err != nil {
			t.Errorf("View.Run: %v", err)
		}
		e.client.CloseIdleConnections()
	})
	e.base = "http://" + ln.Addr().String()
	if srv.Addr() != ln.Addr().String() {
		// Serve sets Addr before it accepts; give it the goroutine start.
		deadline := time.Now().Add(5 * time.Second)
		for srv.Addr() != ln.Addr().String() && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		if srv.Addr() != ln.Addr().String() {
			t.Fatalf("Addr() = %q, want %q", srv.Addr(), ln.Addr())
		}
	}
	e.eventually(5*time.Second, "identity view loaded", func() bool { return view.Loaded() })
	return e
}

// eventually polls cond until it holds or the deadline passes.
func (e *env) eventually(within time.Duration, what string, cond func() bool) time.Duration {
	e.t.Helper()
	begin := time.Now()
	for {
		if cond() {
			return time.Since(begin)
		}
		if time.Since(begin) > within {
			e.t.Fatalf("%s: not within %s", what, within)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// response is what a client observed.
type response struct {
	code   int
	header http.Header
	body   []byte
}

func (r response) json(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("response body %q is not a JSON object: %v", r.body, err)
	}
	return m
}

// errorBody returns the code and message of a JSON error response, failing the test
// if the body is not exactly {"error":{"code","message"}}.
func (r response) errorBody(t testing.TB) (string, string) {
	t.Helper()
	var eb struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	dec := json.NewDecoder(bytes.NewReader(r.body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&eb); err != nil || eb.Error.Code == "" || eb.Error.Message == "" {
		t.Fatalf("error body %q is not {\"error\":{\"code\",\"message\"}}: %v", r.body, err)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("error Content-Type = %q, want application/json", ct)
	}
	return eb.Error.Code, eb.Error.Message
}

// do sends one request; token goes into "Authorization: Bearer"; extra headers come in
// key, value pairs.
func (e *env) do(method, path, token, body string, headers ...string) response {
	e.t.Helper()
	req, err := http.NewRequest(method, e.base+path, strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := e.client.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return response{code: resp.StatusCode, header: resp.Header, body: b}
}

// created is the admin API's answer to POST /v1/tenants.
type created struct {
	TenantID      string    `json:"tenantId"`
	APIKey        string    `json:"apiKey"`
	WebhookSecret string    `json:"webhookSecret"`
	TargetURL     string    `json:"targetUrl"`
	Plan          string    `json:"plan"`
	Status        string    `json:"status"`
	CreatedAt     time.Time `json:"createdAt"`
}

func (e *env) createTenant(body string) created {
	e.t.Helper()
	r := e.do("POST", "/v1/tenants", testAdminToken, body)
	if r.code != http.StatusCreated {
		e.t.Fatalf("create tenant: %d %s", r.code, r.body)
	}
	var c created
	if err := json.Unmarshal(r.body, &c); err != nil {
		e.t.Fatalf("create tenant: %v in %s", err, r.body)
	}
	return c
}

// ingest posts body as tenant key and returns the event id of a 202.
func (e *env) ingest(key, body string, headers ...string) (string, response) {
	e.t.Helper()
	r := e.do("POST", "/v1/events", key, body, headers...)
	if r.code != http.StatusAccepted {
		e.t.Fatalf("ingest: %d %s", r.code, r.body)
	}
	var a struct {
		EventID string `json:"eventId"`
		Status  string `json:"status"`
	}
	if err := json.Unmarshal(r.body, &a); err != nil || a.Status != "queued" || !strings.HasPrefix(a.EventID, "evt_") {
		e.t.Fatalf("ingest answer %s: %v", r.body, err)
	}
	return a.EventID, r
}

// subjectCount returns how many messages EVENTS holds for tenantID.
func (e *env) subjectCount(tenantID string) uint64 {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := e.js.Stream(ctx, natsconf.StreamEvents)
	if err != nil {
		e.t.Fatal(err)
	}
	subj := natsconf.EventSubject(tenantID)
	info, err := st.Info(ctx, jetstream.WithSubjectFilter(subj))
	if err != nil {
		e.t.Fatal(err)
	}
	return info.State.Subjects[subj]
}
