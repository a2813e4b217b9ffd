package worker

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
	dto "github.com/prometheus/client_model/go"

	"github.com/edgehook/edgehook/natsconf"
	"github.com/edgehook/edgehook/natsconf/natstest"
	"github.com/edgehook/edgehook/status"
	"github.com/edgehook/edgehook/vault"
	"github.com/edgehook/edgehook/webhook"
)

// testHTTPTimeout keeps the consumer's AckWait (this plus natsconf.AckWaitMargin) short.
const testHTTPTimeout = 2 * time.Second

// testSchedule is the retry schedule of the tests' topology and workers.
var testSchedule = []time.Duration{20 * time.Millisecond}

// configMap is an in-memory vault.ConfigReader; fail, when set, can fail a read.
type configMap struct {
	mu   sync.Mutex
	m    map[string]vault.WebhookConfig
	fail func(tenantID string) error
}

func (c *configMap) WebhookConfig(_ context.Context, tenantID string) (vault.WebhookConfig, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fail != nil {
		if err := c.fail(tenantID); err != nil {
			return vault.WebhookConfig{}, err
		}
	}
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

// secrets returns the tenant's current and unexpired previous secrets, as a receiver
// would accept them.
func (c *configMap) secrets(tenantID string) []webhook.Secret {
	c.mu.Lock()
	defer c.mu.Unlock()
	cfg, ok := c.m[tenantID]
	if !ok {
		return nil
	}
	return cfg.ActiveSecrets(time.Now())
}

// env is one test's real JetStream server with the edgehook topology, a status store
// and a webhook config map.
type env struct {
	srv     *natstest.Server
	js      jetstream.JetStream
	status  *status.Store
	configs *configMap
	// reader, when set, is the workers' ConfigReader in front of configs (a
	// vault.Cache); else they read configs directly.
	reader vault.ConfigReader
	// logger, when set, is the workers' logger instead of testLogger's.
	logger *slog.Logger
}

func newEnv(t testing.TB, edit func(*natsconf.Topology)) *env {
	t.Helper()
	srv := natstest.Start(t, func(topo *natsconf.Topology) {
		topo.HTTPTimeout = testHTTPTimeout
		topo.RetrySchedule = testSchedule
		if edit != nil {
			edit(topo)
		}
	})
	js := srv.JetStream(t)
	kv, err := js.KeyValue(context.Background(), natsconf.BucketStatus)
	if err != nil {
		t.Fatalf("status bucket: %v", err)
	}
	return &env{srv: srv, js: js, status: status.NewStore(kv), configs: &configMap{m: map[string]vault.WebhookConfig{}}}
}

// config is a worker config that fits the env's topology and allows loopback targets.
func (e *env) config() Config {
	return Config{
		Concurrency:         16,
		HTTPTimeout:         testHTTPTimeout,
		ConnectTimeout:      time.Second,
		RetrySchedule:       e.srv.Topology.RetrySchedule,
		MaxDeliver:          e.srv.Topology.MaxDeliver,
		AllowPrivateTargets: true,
		DrainTimeout:        5 * time.Second,
	}
}

// tenant registers a tenant whose webhooks go to ep, with a fresh secret.
func (e *env) tenant(t testing.TB, ep *endpoint) string {
	t.Helper()
	id := "t" + strings.ToLower(nuid.Next())
	sec, err := webhook.NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	e.configs.put(vault.WebhookConfig{TenantID: id, TargetURL: ep.url(id), Secret: sec})
	return id
}

// publish stores an event the way the gateway does: the event with its headers plus
// its queued status record. It returns the event id.
func (e *env) publish(t testing.TB, tenantID string, payload []byte) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	id := "evt_" + nuid.Next()
	now := time.Now()
	if _, err := e.js.PublishMsg(ctx, eventMsg(tenantID, id, payload, now)); err != nil {
		t.Fatalf("publish event: %v", err)
	}
	q, err := status.QueuedMsg(status.Record{EventID: id, TenantID: tenantID, Type: "order.created", CreatedAt: now.UTC(), UpdatedAt: now.UTC()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.js.PublishMsg(ctx, q); err != nil && !status.IsAlreadyWritten(err) {
		t.Fatalf("publish queued status: %v", err)
	}
	return id
}

func eventMsg(tenantID, eventID string, payload []byte, now time.Time) *nats.Msg {
	m := nats.NewMsg(natsconf.EventSubject(tenantID))
	m.Header[natsconf.HeaderEventID] = []string{eventID}
	m.Header[natsconf.HeaderTenant] = []string{tenantID}
	m.Header[natsconf.HeaderEventType] = []string{"order.created"}
	m.Header[natsconf.HeaderIngestTime] = []string{strconv.FormatInt(now.UnixNano(), 10)}
	m.Data = payload
	return m
}

// running is a worker started by start.
type running struct {
	w       *Worker
	reg     *prometheus.Registry
	cancel  context.CancelFunc
	done    chan error
	stopped bool // only the test goroutine calls stop
}

// start runs a worker on the env until the test ends (or stop is called).
func (e *env) start(t testing.TB, cfg Config) *running {
	t.Helper()
	reg := prometheus.NewRegistry()
	var configs vault.ConfigReader = e.configs
	if e.reader != nil {
		configs = e.reader
	}
	log := e.logger
	if log == nil {
		log = testLogger()
	}
	w, err := New(cfg, Deps{JS: e.js, Configs: configs, Logger: log, Registerer: reg})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{w: w, reg: reg, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- w.Run(ctx) }()
	t.Cleanup(func() { _ = r.stop(t, 30*time.Second) })
	waitFor(t, 10*time.Second, "worker ready", func() bool {
		select {
		case err := <-r.done:
			r.done <- err
			t.Fatalf("Run returned early: %v", err)
		default:
		}
		return w.Ready()
	})
	return r
}

// stop cancels the worker and returns how long Run took to return. Stopping a stopped
// worker returns 0.
func (r *running) stop(t testing.TB, limit time.Duration) time.Duration {
	t.Helper()
	if r.stopped {
		return 0
	}
	r.stopped = true
	start := time.Now()
	r.cancel()
	select {
	case err := <-r.done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(limit):
		t.Fatalf("Run did not return within %s of cancel", limit)
	}
	return time.Since(start)
}

func testLogger() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// waitFor polls cond every 10ms until it holds or the deadline passes.
func waitFor(t testing.TB, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", limit, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitStatus waits until the event's status record says want, and returns it.
func (e *env) waitStatus(t testing.TB, tenantID, eventID, want string) status.Record {
	t.Helper()
	var rec status.Record
	waitFor(t, 15*time.Second, "status "+want+" of "+eventID, func() bool {
		r, err := e.status.Get(context.Background(), tenantID, eventID)
		if err != nil && !errors.Is(err, status.ErrNotFound) {
			t.Fatalf("status get: %v", err)
		}
		rec = r
		return err == nil && r.Status == want
	})
	return rec
}

// consumerInfo returns the delivery consumer's state.
func (e *env) consumerInfo(t testing.TB) *jetstream.ConsumerInfo {
	t.Helper()
	c, err := e.js.Consumer(context.Background(), natsconf.StreamEvents, natsconf.ConsumerDeliver)
	if err != nil {
		t.Fatalf("consumer: %v", err)
	}
	info, err := c.Info(context.Background())
	if err != nil {
		t.Fatalf("consumer info: %v", err)
	}
	return info
}

// waitSettled waits until the consumer has nothing pending and nothing unacked.
func (e *env) waitSettled(t testing.TB) *jetstream.ConsumerInfo {
	t.Helper()
	var info *jetstream.ConsumerInfo
	waitFor(t, 15*time.Second, "consumer with no pending and no unacked events", func() bool {
		info = e.consumerInfo(t)
		return info.NumPending == 0 && info.NumAckPending == 0
	})
	return info
}

// subscribeAdvisory collects the server's advisories of one kind
// (MAX_DELIVERIES, MSG_TERMINATED) for the delivery consumer.
func (e *env) subscribeAdvisory(t testing.TB, kind string) *nats.Subscription {
	t.Helper()
	nc := e.srv.Connect(t)
	sub, err := nc.SubscribeSync("$JS.EVENT.ADVISORY.CONSUMER." + kind + "." + natsconf.StreamEvents + "." + natsconf.ConsumerDeliver)
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return sub
}

// hit is one webhook request the test endpoint received.
type hit struct {
	tenant, id, timestamp, signature, contentType, userAgent string
	body                                                     []byte
	at                                                       time.Time
	verifyErr                                                error
	n                                                        int // 1-based count of hits for this webhook-id
}

// endpoint is a real HTTP server on 127.0.0.1 that verifies every webhook it receives
// against the tenant's secrets and answers as answer says (200 when nil).
type endpoint struct {
	srv     *httptest.Server
	configs *configMap

	mu     sync.Mutex
	hits   []hit
	perID  map[string]int
	answer func(w http.ResponseWriter, r *http.Request, h hit) // nil: 204
}

func newEndpoint(t testing.TB, configs *configMap) *endpoint {
	t.Helper()
	ep := &endpoint{configs: configs, perID: map[string]int{}}
	ep.srv = httptest.NewServer(http.HandlerFunc(ep.serve))
	t.Cleanup(ep.srv.Close)
	return ep
}

func (ep *endpoint) url(tenantID string) string { return ep.srv.URL + "/hooks/" + tenantID }

func (ep *endpoint) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	h := hit{
		tenant:      strings.TrimPrefix(r.URL.Path, "/hooks/"),
		id:          r.Header.Get(webhook.HeaderID),
		timestamp:   r.Header.Get(webhook.HeaderTimestamp),
		signature:   r.Header.Get(webhook.HeaderSignature),
		contentType: r.Header.Get("Content-Type"),
		userAgent:   r.Header.Get("User-Agent"),
		body:        body,
		at:          time.Now(),
	}
	h.verifyErr = webhook.Verify(h.id, h.timestamp, h.signature, body, time.Now(), webhook.DefaultTolerance, ep.configs.secrets(h.tenant)...)
	ep.mu.Lock()
	ep.perID[h.id]++
	h.n = ep.perID[h.id]
	ep.hits = append(ep.hits, h)
	answer := ep.answer
	ep.mu.Unlock()
	if answer == nil {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	answer(w, r, h)
}

func (ep *endpoint) setAnswer(f func(w http.ResponseWriter, r *http.Request, h hit)) {
	ep.mu.Lock()
	ep.answer = f
	ep.mu.Unlock()
}

func (ep *endpoint) all() []hit {
	ep.mu.Lock()
	defer ep.mu.Unlock()
	return append([]hit(nil), ep.hits...)
}

func (ep *endpoint) count() int {
	ep.mu.Lock()
	defer ep.mu.Unlock()
	return len(ep.hits)
}

// hitsFor returns the hits carrying webhook-id id, in arrival order.
func (ep *endpoint) hitsFor(id string) []hit {
	var out []hit
	for _, h := range ep.all() {
		if h.id == id {
			out = append(out, h)
		}
	}
	return out
}

// counterValue reads edgehook_deliveries_total{outcome} from reg.
func counterValue(t testing.TB, reg prometheus.Gatherer, name, label, value string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if matchLabel(m, label, value) {
				return m.GetCounter().GetValue()
			}
		}
	}
	t.Fatalf("metric %s{%s=%q} not found", name, label, value)
	return 0
}

// gaugeValue reads the gauge name from reg.
func gaugeValue(t testing.TB, reg prometheus.Gatherer, name string) float64 {
	t.Helper()
	return onlyMetric(t, reg, name).GetGauge().GetValue()
}

// histogramCount returns the sample count of the unlabelled histogram name.
func histogramCount(t testing.TB, reg prometheus.Gatherer, name string) uint64 {
	t.Helper()
	return onlyMetric(t, reg, name).GetHistogram().GetSampleCount()
}

// onlyMetric returns the one metric of the unlabelled family name in reg.
func onlyMetric(t testing.TB, reg prometheus.Gatherer, name string) *dto.Metric {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0]
		}
	}
	t.Fatalf("metric %s not found", name)
	return nil
}

func matchLabel(m *dto.Metric, label, value string) bool {
	if label == "" {
		return true
	}
	for _, lp := range m.GetLabel() {
		if lp.GetName() == label && lp.GetValue() == value {
			return true
		}
	}
	return false
}
