package gateway_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/edgehook/edgehook/gateway"
	"github.com/edgehook/edgehook/identity"
	"github.com/edgehook/edgehook/natsconf"
	"github.com/edgehook/edgehook/natsconf/natstest"
	"github.com/edgehook/edgehook/status"
)

// TestHealthAndMetrics: health endpoints answer, and /metrics counts requests by
// route pattern (never the raw path) and accepted events.
func TestHealthAndMetrics(t *testing.T) {
	e := start(t, options{})
	for _, p := range []string{"/healthz", "/readyz"} {
		if r := e.do("GET", p, "", ""); r.code != 200 || r.header.Get("Content-Type") != "application/json" {
			t.Errorf("%s: %d %s", p, r.code, r.body)
		}
	}
	c := e.createTenant(`{"targetUrl":"http://127.0.0.1:9/hook"}`)
	id, _ := e.ingest(c.APIKey, `{"a":1}`)
	e.ingest(c.APIKey, `{"a":1}`, "Idempotency-Key", "k")
	e.ingest(c.APIKey, `{"a":1}`, "Idempotency-Key", "k") // replay: not counted as accepted
	e.do("GET", "/v1/events/"+id, c.APIKey, "")
	e.do("GET", "/v1/raw/path/secret-looking", "", "")

	r := e.do("GET", "/metrics", "", "")
	if r.code != 200 {
		t.Fatalf("metrics: %d", r.code)
	}
	text := string(r.body)
	for _, want := range []string{
		`edgehook_http_requests_total{code="202",route="/v1/events",server="gateway"} 3`,
		`edgehook_http_requests_total{code="200",route="/v1/events/{id}",server="gateway"} 1`,
		`edgehook_http_requests_total{code="404",route="unmatched",server="gateway"} 1`,
		`edgehook_http_requests_total{code="200",route="/healthz",server="gateway"} 1`,
		`edgehook_events_accepted_total 2`,
		`edgehook_ingest_publish_seconds_count 3`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if strings.Contains(text, `route="/v1/tenants"`) {
		t.Errorf("the gateway counts admin API requests:\n%s", text)
	}
	for _, leak := range []string{"/v1/raw", id, c.TenantID} {
		if strings.Contains(text, leak) {
			t.Errorf("metrics contain %q", leak)
		}
	}
}

// TestRun: Run binds Config.Addr, serves, and returns promptly when its context is
// cancelled.
func TestRun(t *testing.T) {
	ns := natstest.Start(t, nil)
	js := ns.JetStream(t)
	_, view, st := newDeps(t, js)
	reg := prometheus.NewRegistry()
	g, err := gateway.New(gateway.Config{Addr: "127.0.0.1:0"}, gateway.Deps{JS: js, View: view, Status: st, Registerer: reg, Gatherer: reg})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	deadline := time.Now().Add(5 * time.Second)
	for g.Addr() == "" && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if g.Addr() == "" || strings.HasSuffix(g.Addr(), ":0") {
		t.Fatalf("Addr() = %q after Run started", g.Addr())
	}
	resp, err := http.Get("http://" + g.Addr() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("healthz %d", resp.StatusCode)
	}
	// Not loaded: the view is not running in this test.
	resp, err = http.Get("http://" + g.Addr() + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("readyz with an unloaded view: %d", resp.StatusCode)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(gateway.DefaultDrainTimeout + 5*time.Second):
		t.Fatal("Run did not return after cancel")
	}
	if _, err := http.Get("http://" + g.Addr() + "/healthz"); err == nil {
		t.Errorf("still serving after Run returned")
	}
}

func newDeps(t *testing.T, js jetstream.JetStream) (*identity.Store, *identity.View, *status.Store) {
	t.Helper()
	ctx := context.Background()
	idKV, err := js.KeyValue(ctx, natsconf.BucketIdentity)
	if err != nil {
		t.Fatal(err)
	}
	stKV, err := js.KeyValue(ctx, natsconf.BucketStatus)
	if err != nil {
		t.Fatal(err)
	}
	return identity.NewStore(idKV), identity.NewView(idKV, nil), status.NewStore(stKV)
}

// TestNewValidates: a configuration that cannot work is refused with an error naming
// the setting.
func TestNewValidates(t *testing.T) {
	ns := natstest.Start(t, nil)
	js := ns.JetStream(t)
	_, view, st := newDeps(t, js)
	reg := prometheus.NewRegistry()
	ok := gateway.Deps{JS: js, View: view, Status: st, Registerer: reg, Gatherer: reg}
	cases := []struct {
		name    string
		cfg     gateway.Config
		deps    func(d gateway.Deps) gateway.Deps
		setting string
	}{
		{"no addr", gateway.Config{}, nil, "Addr"},
		{"negative body limit", gateway.Config{Addr: ":0", MaxBodyBytes: -1}, nil, "MaxBodyBytes"},
		{"negative publish timeout", gateway.Config{Addr: ":0", PublishTimeout: -time.Second}, nil, "PublishTimeout"},
		{"negative store timeout", gateway.Config{Addr: ":0", StoreTimeout: -time.Second}, nil, "StoreTimeout"},
		{"no JetStream", gateway.Config{Addr: ":0"}, func(d gateway.Deps) gateway.Deps { d.JS = nil; return d }, "Deps.JS"},
		{"no view", gateway.Config{Addr: ":0"}, func(d gateway.Deps) gateway.Deps { d.View = nil; return d }, "Deps.View"},
		{"no status", gateway.Config{Addr: ":0"}, func(d gateway.Deps) gateway.Deps { d.Status = nil; return d }, "Deps.Status"},
		{"no registerer", gateway.Config{Addr: ":0"}, func(d gateway.Deps) gateway.Deps { d.Registerer = nil; return d }, "Deps.Registerer"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := ok
			if c.deps != nil {
				d = c.deps(d)
			}
			_, err := gateway.New(c.cfg, d)
			if !errors.Is(err, gateway.ErrInvalidConfig) || !strings.Contains(err.Error(), c.setting) {
				t.Fatalf("err = %v, want ErrInvalidConfig naming %s", err, c.setting)
			}
		})
	}
	// The same registry can back two gateways (e.g. in one test binary or process).
	for range 2 {
		if _, err := gateway.New(gateway.Config{Addr: ":0"}, ok); err != nil {
			t.Fatalf("valid config refused: %v", err)
		}
	}
}
