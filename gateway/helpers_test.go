package gateway_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/edgehook/edgehook/admin"
	"github.com/edgehook/edgehook/admin/admintest"
	"github.com/edgehook/edgehook/api/apitest"
	"github.com/edgehook/edgehook/gateway"
	"github.com/edgehook/edgehook/identity"
	"github.com/edgehook/edgehook/natsconf"
	"github.com/edgehook/edgehook/natsconf/natstest"
	"github.com/edgehook/edgehook/status"
)

// testAdminToken is the admin token of the admin API every env runs beside its
// gateway.
const testAdminToken = admintest.Token

// syncBuffer collects log output from concurrent goroutines.
type syncBuffer = apitest.Logs

// options tweak the environment start builds.
type options struct {
	cfg     gateway.Config
	noAdmin bool // no admin API answers relayed requests
}

// env is a gateway serving on 127.0.0.1 over a real embedded JetStream server, and the
// admin API beside it on its own listener, as a deployment runs them.
type env struct {
	t        testing.TB
	nats     *natstest.Server
	js       jetstream.JetStream
	base     string
	admin    *admintest.Server
	view     *identity.View
	identity *identity.Store
	status   *status.Store
	logs     *apitest.Logs
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
	logs := &apitest.Logs{}
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
		t: t, nats: ns, js: js, identity: identity.NewStore(idKV), view: view,
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
	if !o.noAdmin {
		e.admin = admintest.Start(t, ns.Connect(t), admintest.Options{Logger: log})
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

func (r response) api() apitest.Response {
	return apitest.Response{Code: r.code, Header: r.header, Body: r.body}
}

func (r response) json(t testing.TB) map[string]any { t.Helper(); return r.api().JSON(t) }

// errorBody returns the code and message of a JSON error response, failing the test
// if the body is not exactly {"error":{"code","message"}}.
func (r response) errorBody(t testing.TB) (string, string) { t.Helper(); return r.api().ErrorBody(t) }

// do sends one request, to the admin API for its paths (/v1/tenants...) and to the
// gateway for all others; token goes into "Authorization: Bearer"; extra headers come
// in key, value pairs.
func (e *env) do(method, path, token, body string, headers ...string) response {
	e.t.Helper()
	base := e.base
	if path == "/v1/tenants" || strings.HasPrefix(path, "/v1/tenants/") {
		base = e.admin.URL
	}
	return e.doAt(base, method, path, token, body, headers...)
}

// doAt sends one request to the server at base.
func (e *env) doAt(base, method, path, token, body string, headers ...string) response {
	e.t.Helper()
	r := apitest.Do(e.t, e.client, method, base+path, token, body, headers...)
	return response{code: r.Code, header: r.Header, body: r.Body}
}

// created is the admin API's answer to POST /v1/tenants.
type created = admin.CreatedTenant

func (e *env) createTenant(body string) created {
	e.t.Helper()
	return e.admin.CreateTenant(e.t, e.client, body)
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
