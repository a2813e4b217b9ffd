package dlq_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/edgehook/edgehook/natsconf"
	"github.com/edgehook/edgehook/natsconf/natstest"
	"github.com/edgehook/edgehook/status"
	"github.com/edgehook/edgehook/vault"
	"github.com/edgehook/edgehook/webhook"
	"github.com/edgehook/edgehook/worker"
	"github.com/edgehook/edgehook/worker/dlq"
)

// env is one test's JetStream server with the edgehook topology, an endpoint for all
// tenants and their webhook configs.
type env struct {
	srv     *natstest.Server
	js      jetstream.JetStream
	status  *status.Store
	configs *configMap
	ep      *endpoint
}

func newEnv(t *testing.T, edit func(*natsconf.Topology)) *env {
	t.Helper()
	srv := natstest.Start(t, func(tp *natsconf.Topology) {
		tp.HTTPTimeout = time.Second
		tp.MaxDeliver = 3
		tp.RetrySchedule = []time.Duration{20 * time.Millisecond}
		if edit != nil {
			edit(tp)
		}
	})
	js := srv.JetStream(t)
	kv, err := js.KeyValue(context.Background(), natsconf.BucketStatus)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{srv: srv, js: js, status: status.NewStore(kv), configs: &configMap{m: map[string]vault.WebhookConfig{}}}
	e.ep = newEndpoint(t, e.configs)
	return e
}

// tenant registers a tenant whose webhooks go to the env's endpoint.
func (e *env) tenant(t *testing.T) string {
	t.Helper()
	id := "t" + strings.ToLower(nuid.Next())
	sec, err := webhook.NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	e.configs.put(vault.WebhookConfig{TenantID: id, TargetURL: e.ep.srv.URL + "/hooks/" + id, Secret: sec})
	return id
}

// publish stores an event as the gateway does and returns its id.
func (e *env) publish(t *testing.T, tenantID string, payload []byte) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	id := "evt_" + nuid.Next()
	now := time.Now()
	m := nats.NewMsg(natsconf.EventSubject(tenantID))
	m.Header.Set(natsconf.HeaderEventID, id)
	m.Header.Set(natsconf.HeaderTenant, tenantID)
	m.Header.Set(natsconf.HeaderEventType, "order.created")
	m.Header.Set(natsconf.HeaderIngestTime, strconv.FormatInt(now.UnixNano(), 10))
	m.Data = payload
	if _, err := e.js.PublishMsg(ctx, m); err != nil {
		t.Fatal(err)
	}
	q, err := status.QueuedMsg(status.Record{EventID: id, TenantID: tenantID, Type: "order.created", CreatedAt: now.UTC(), UpdatedAt: now.UTC()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.js.PublishMsg(ctx, q); err != nil && !status.IsAlreadyWritten(err) {
		t.Fatal(err)
	}
	return id
}

// startWorker runs a delivery worker fitting the env's topology until the test ends.
func (e *env) startWorker(t *testing.T) { e.startWorkerWith(t, nil) }

// startWorkerWith runs a worker whose config edit (may be nil) changed.
func (e *env) startWorkerWith(t *testing.T, edit func(*worker.Config)) {
	t.Helper()
	tp := e.srv.Topology
	cfg := worker.Config{
		Concurrency: 16, HTTPTimeout: tp.HTTPTimeout, ConnectTimeout: time.Second, RetrySchedule: tp.RetrySchedule,
		MaxDeliver: tp.MaxDeliver, AllowPrivateTargets: true, DrainTimeout: 2 * time.Second,
	}
	if edit != nil {
		edit(&cfg)
	}
	w, err := worker.New(cfg, worker.Deps{JS: e.js, Configs: e.configs, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	run(t, "worker", w.Run, w.Ready)
}

// startProcessor runs a DLQ processor until the test ends and returns its metrics.
func (e *env) startProcessor(t *testing.T) *prometheus.Registry {
	t.Helper()
	reg := prometheus.NewRegistry()
	p, err := dlq.New(dlq.Config{RetryDelay: 200 * time.Millisecond}, dlq.Deps{JS: e.js, Status: e.status, Logger: testLogger(), Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	run(t, "dlq processor", p.Run, p.Ready)
	return reg
}

// run runs a component until the test ends, checking it stops cleanly.
func run(t *testing.T, name string, runFn func(context.Context) error, ready func() bool) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- runFn(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("%s: %v", name, err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("%s did not stop", name)
		}
	})
	waitFor(t, 10*time.Second, name+" ready", func() bool {
		select {
		case err := <-done:
			t.Fatalf("%s stopped early: %v", name, err)
		default:
		}
		return ready()
	})
}

func (e *env) stream(t *testing.T, name string) jetstream.Stream {
	t.Helper()
	s, err := e.js.Stream(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// deadLetters returns every dead letter of one event.
func (e *env) deadLetters(t *testing.T, tenantID, eventID string) []dlq.DeadLetter {
	t.Helper()
	var out []dlq.DeadLetter
	err := dlq.Scan(context.Background(), e.stream(t, natsconf.StreamDLQ), dlq.Filter{TenantID: tenantID}, func(d dlq.DeadLetter) error {
		if d.EventID == eventID {
			out = append(out, d)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// waitDeadLetter waits for the event's first dead letter.
func (e *env) waitDeadLetter(t *testing.T, tenantID, eventID string) dlq.DeadLetter {
	t.Helper()
	var d []dlq.DeadLetter
	waitFor(t, 20*time.Second, "dead letter of "+eventID, func() bool {
		d = e.deadLetters(t, tenantID, eventID)
		return len(d) > 0
	})
	return d[0]
}

// waitStatus waits until the event's status is want.
func (e *env) waitStatus(t *testing.T, tenantID, eventID, want string) status.Record {
	t.Helper()
	var rec status.Record
	waitFor(t, 20*time.Second, "status "+want+" of "+eventID, func() bool {
		r, err := e.status.Get(context.Background(), tenantID, eventID)
		if err != nil && !errors.Is(err, status.ErrNotFound) {
			t.Fatal(err)
		}
		rec = r
		return err == nil && r.Status == want
	})
	return rec
}

func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", limit, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func testLogger() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// configMap is an in-memory vault.ConfigReader.
type configMap struct {
	mu sync.Mutex
	m  map[string]vault.WebhookConfig
}

func (c *configMap) WebhookConfig(_ context.Context, tenantID string) (vault.WebhookConfig, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cfg, ok := c.m[tenantID]
	if !ok {
		return vault.WebhookConfig{}, vault.ErrNotFound
	}
	return cfg, nil
}

func (c *configMap) put(cfg vault.WebhookConfig) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.m[cfg.TenantID] = cfg
}

func (c *configMap) secrets(tenantID string) []webhook.Secret {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[tenantID].ActiveSecrets(time.Now())
}

// hit is one webhook the endpoint received.
type hit struct {
	tenant, id string
	body       []byte
	verifyErr  error
}

// endpoint verifies every webhook and answers with the status code its tenant is set
// to (200 by default).
type endpoint struct {
	srv     *httptest.Server
	configs *configMap
	mu      sync.Mutex
	hits    []hit
	codes   map[string]int
}

func newEndpoint(t *testing.T, configs *configMap) *endpoint {
	ep := &endpoint{configs: configs, codes: map[string]int{}}
	ep.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		h := hit{tenant: strings.TrimPrefix(r.URL.Path, "/hooks/"), id: r.Header.Get(webhook.HeaderID), body: body}
		h.verifyErr = webhook.Verify(h.id, r.Header.Get(webhook.HeaderTimestamp), r.Header.Get(webhook.HeaderSignature), body,
			time.Now(), webhook.DefaultTolerance, configs.secrets(h.tenant)...)
		ep.mu.Lock()
		ep.hits = append(ep.hits, h)
		code, ok := ep.codes[h.tenant]
		ep.mu.Unlock()
		if !ok {
			code = http.StatusOK
		}
		w.WriteHeader(code)
		io.WriteString(w, `{"answer":"from the endpoint"}`)
	}))
	t.Cleanup(ep.srv.Close)
	return ep
}

func (ep *endpoint) answer(tenantID string, code int) {
	ep.mu.Lock()
	defer ep.mu.Unlock()
	ep.codes[tenantID] = code
}

func (ep *endpoint) hitsFor(id string) []hit {
	ep.mu.Lock()
	defer ep.mu.Unlock()
	var out []hit
	for _, h := range ep.hits {
		if h.id == id {
			out = append(out, h)
		}
	}
	return out
}
