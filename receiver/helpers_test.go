package receiver_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/edgehook/edgehook/api/apitest"
	"github.com/edgehook/edgehook/natsconf"
	"github.com/edgehook/edgehook/natsconf/natstest"
	"github.com/edgehook/edgehook/receiver"
	"github.com/edgehook/edgehook/vault"
	"github.com/edgehook/edgehook/webhook"
)

// mapConfigs is a vault.ConfigReader backed by a map that counts its reads; err, when
// set, is returned for every read, as an unreachable Vault would.
type mapConfigs struct {
	mu    sync.Mutex
	cfgs  map[string]vault.WebhookConfig
	err   error
	reads atomic.Int64
}

func (m *mapConfigs) WebhookConfig(_ context.Context, tenantID string) (vault.WebhookConfig, error) {
	m.reads.Add(1)
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err != nil {
		return vault.WebhookConfig{}, m.err
	}
	c, ok := m.cfgs[tenantID]
	if !ok {
		return vault.WebhookConfig{}, fmt.Errorf("tenant %s: %w", tenantID, vault.ErrNotFound)
	}
	return c, nil
}

func (m *mapConfigs) put(c vault.WebhookConfig) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.cfgs[c.TenantID] = c
}

func (m *mapConfigs) fail(err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.err = err
}

// syncBuffer collects a logger's output for the test to read.
type syncBuffer = apitest.Logs

// env is one receiver on a real embedded JetStream server, reading configuration
// through a real vault.Cache in front of configs.
type env struct {
	nats    *natstest.Server
	js      jetstream.JetStream
	configs *mapConfigs
	cache   *vault.Cache
	srv     *receiver.Server
	url     string // http://127.0.0.1:port
	logs    *syncBuffer
	// configsReady is the extra readiness condition (the Vault client's, in production).
	configsReady *atomic.Bool
	// stop ends Run and waits for it, failing the test if it does not return cleanly;
	// the test's cleanup calls it too, and calls after the first do nothing.
	stop func()
}

func newSecret(t testing.TB) webhook.Secret {
	t.Helper()
	s, err := webhook.NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// start runs a receiver with cfg (Addr defaults to a random loopback port) and stops
// it when the test ends, failing the test if Run does not return cleanly.
func start(t testing.TB, cfg receiver.Config) *env {
	t.Helper()
	return startWith(t, cfg, setup{})
}

// setup is what startWith varies beyond the receiver's Config.
type setup struct {
	topology func(*natsconf.Topology) // edits the JetStream topology (nil: the default)
	cache    vault.CacheConfig
	logs     io.Writer // the JSON log sink (nil: env.logs)
	level    slog.Level
}

// startWith is start with a topology, cache configuration and log sink of the test's.
func startWith(t testing.TB, cfg receiver.Config, o setup) *env {
	t.Helper()
	ns := natstest.Start(t, o.topology)
	e := &env{
		nats:         ns,
		js:           ns.JetStream(t),
		configs:      &mapConfigs{cfgs: map[string]vault.WebhookConfig{}},
		logs:         &syncBuffer{},
		configsReady: &atomic.Bool{},
	}
	e.cache = vault.NewCache(e.configs, o.cache, nil)
	var sink io.Writer = e.logs
	if o.logs != nil {
		sink = o.logs
	}
	e.configsReady.Store(true)
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	srv, err := receiver.New(cfg, receiver.Deps{
		JS:      e.js,
		Configs: e.cache,
		Logger:  slog.New(slog.NewJSONHandler(sink, &slog.HandlerOptions{Level: o.level})),
		Ready:   e.configsReady.Load,
	})
	if err != nil {
		t.Fatalf("receiver.New: %v", err)
	}
	e.srv = srv
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	e.stop = sync.OnceFunc(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Errorf("Run did not return within 15s of cancel")
		}
	})
	t.Cleanup(e.stop)
	deadline := time.Now().Add(10 * time.Second)
	for srv.Addr() == "" {
		select {
		case err := <-done:
			done <- err // for stop
			t.Fatalf("Run: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("receiver did not bind within 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	e.url = "http://" + srv.Addr()
	return e
}

// tenant registers a tenant whose configuration holds current plus previous.
func (e *env) tenant(id string, current webhook.Secret, previous ...vault.PreviousSecret) {
	e.configs.put(vault.WebhookConfig{TenantID: id, TargetURL: "http://127.0.0.1:1/unused", Secret: current, Previous: previous})
}

// delivery is one webhook as a sender would POST it.
type delivery struct {
	tenant      string
	id          string
	timestamp   string
	signature   string
	body        []byte
	contentType string
}

// signed returns a delivery of body to tenant with id, signed at ts with secrets.
func signed(tenant, id string, ts time.Time, body []byte, secrets ...webhook.Secret) delivery {
	return delivery{
		tenant:      tenant,
		id:          id,
		timestamp:   strconv.FormatInt(ts.Unix(), 10),
		signature:   webhook.Sign(id, ts, body, secrets...),
		body:        body,
		contentType: "application/json",
	}
}

type response struct {
	status int
	header http.Header
	body   string
}

func (e *env) do(t testing.TB, method, path string, body []byte, header map[string]string) response {
	t.Helper()
	req, err := http.NewRequest(method, e.url+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{status: res.StatusCode, header: res.Header, body: string(b)}
}

// send POSTs d to /webhooks/{tenant}; empty header fields are left out.
func (e *env) send(t testing.TB, d delivery) response {
	t.Helper()
	h := map[string]string{}
	for k, v := range map[string]string{
		"webhook-id": d.id, "webhook-timestamp": d.timestamp, "webhook-signature": d.signature,
		"Content-Type": d.contentType,
	} {
		if v != "" {
			h[k] = v
		}
	}
	return e.do(t, http.MethodPost, "/webhooks/"+d.tenant, d.body, h)
}

// receivedCount is the number of messages in RECEIVED.
func (e *env) receivedCount(t testing.TB) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := e.js.Stream(ctx, natsconf.StreamReceived)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

// lastReceived returns the last message RECEIVED holds for tenant.
func (e *env) lastReceived(t testing.TB, tenant string) *jetstream.RawStreamMsg {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := e.js.Stream(ctx, natsconf.StreamReceived)
	if err != nil {
		t.Fatal(err)
	}
	m, err := st.GetLastMsgForSubject(ctx, natsconf.ReceivedSubject(tenant))
	if err != nil {
		t.Fatalf("RECEIVED has no message for %s: %v", tenant, err)
	}
	return m
}

// metric returns the value of the series whose text form (name{labels}) starts with
// series on /metrics, or -1 when it is absent.
func (e *env) metric(t testing.TB, series string) float64 {
	t.Helper()
	res := e.do(t, http.MethodGet, "/metrics", nil, nil)
	if res.status != http.StatusOK {
		t.Fatalf("/metrics: %d", res.status)
	}
	sc := bufio.NewScanner(strings.NewReader(res.body))
	for sc.Scan() {
		line := sc.Text()
		if name, value, ok := strings.Cut(line, " "); ok && name == series {
			f, err := strconv.ParseFloat(value, 64)
			if err != nil {
				t.Fatalf("metric line %q: %v", line, err)
			}
			return f
		}
	}
	return -1
}

// rawRequest writes raw to addr over TCP and returns everything the server answers
// before it closes the connection.
func rawRequest(t testing.TB, addr, raw string) string {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(conn, raw); err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(conn)
	if err != nil && len(b) == 0 {
		t.Fatalf("reading the answer: %v", err)
	}
	return string(b)
}

// errorBody is the receiver's JSON error shape.
func errorBody(code, message string) string {
	return `{"error":{"code":"` + code + `","message":"` + message + `"}}`
}

var errVaultDown = errors.New("vault: connection refused")
