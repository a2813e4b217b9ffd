package gateway_test

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/edgehook/edgehook/gateway"
	"github.com/edgehook/edgehook/identity"
	"github.com/edgehook/edgehook/natsconf"
	"github.com/edgehook/edgehook/natsconf/natsproc"
	"github.com/edgehook/edgehook/natsconf/natstest"
	"github.com/edgehook/edgehook/status"
)

// edgeEnv is a gateway at edge "a": an embedded hub (domain hub) and an embedded edge
// server whose leaf link to the hub runs through a proxy the test cuts and heals.
type edgeEnv struct {
	*env
	link     *natsproc.Proxy
	hubJS    jetstream.JetStream
	hubIdent *identity.Store
	hubStat  *status.Store
}

const edgeTestPassword = "pw-operator"

func startEdge(t *testing.T) *edgeEnv {
	t.Helper()
	leafPort := natsproc.FreePort(t)
	users := []natsconf.User{{Name: natsconf.OperatorUser, Password: edgeTestPassword}}
	hub := natstest.Embedded(t, natsconf.ServerSpec{
		Name: "hub", Host: "127.0.0.1", Port: -1, StoreDir: t.TempDir(), Domain: natsconf.HubDomain, Users: users,
		LeafListen: &natsconf.LeafListenSpec{Host: "127.0.0.1", Port: leafPort, Password: "pw-leaf"},
	})
	link := natsproc.NewProxy(t, net.JoinHostPort("127.0.0.1", strconv.Itoa(leafPort)))
	edge := natstest.Embedded(t, natsconf.ServerSpec{
		Name: natsconf.EdgeDomain("a"), Host: "127.0.0.1", Port: -1, StoreDir: t.TempDir(), Domain: natsconf.EdgeDomain("a"), Users: users,
		LeafRemote: &natsconf.LeafRemoteSpec{URLs: []string{"nats-leaf://" + link.Addr()}, Password: "pw-leaf"},
	})
	hubJS := natstest.ConnectAs(t, hub, natsconf.OperatorUser, edgeTestPassword)
	edgeJS := natstest.ConnectAs(t, edge, natsconf.OperatorUser, edgeTestPassword)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	topo := natsconf.DefaultTopology()
	if err := natsconf.Setup(ctx, hubJS, topo); err != nil {
		t.Fatal(err)
	}
	hubDomain, err := jetstream.NewWithDomain(edgeJS.Conn(), natsconf.HubDomain)
	if err != nil {
		t.Fatal(err)
	}
	natsproc.Eventually(t, 20*time.Second, 100*time.Millisecond, "edge set up through its leaf link", func() error {
		return natsconf.SetupEdge(ctx, hubDomain, edgeJS, topo, "a")
	})
	kv := func(js jetstream.JetStream, bucket string) jetstream.KeyValue {
		b, err := js.KeyValue(ctx, bucket)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}

	logs := &syncBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("gateway logs:\n%s", logs.String())
		}
	})
	view := identity.NewView(kv(edgeJS, natsconf.BucketIdentity), log)
	reg := prometheus.NewRegistry()
	deps := gateway.Deps{JS: edgeJS, View: view, Logger: log, Registerer: reg, Gatherer: reg}
	if err := deps.BindEdge(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	srv, err := gateway.New(gateway.Config{Addr: "127.0.0.1:0", Edge: "a", LinkProbeInterval: 100 * time.Millisecond, HubTimeout: time.Second}, deps)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(context.Background())
	viewErr, serveErr := make(chan error, 1), make(chan error, 1)
	go func() { viewErr <- view.Run(runCtx) }()
	go func() { serveErr <- srv.Serve(runCtx, ln) }()
	e := &edgeEnv{
		env: &env{
			t: t, js: edgeJS, base: "http://" + ln.Addr().String(), logs: logs,
			client: &http.Client{Timeout: 15 * time.Second},
		},
		link: link, hubJS: hubJS,
		hubIdent: identity.NewStore(kv(hubJS, natsconf.BucketIdentity)),
		hubStat:  status.NewStore(kv(hubJS, natsconf.BucketStatus)),
	}
	t.Cleanup(func() {
		stop()
		if err := <-serveErr; err != nil {
			t.Errorf("Serve: %v", err)
		}
		if err := <-viewErr; err != nil {
			t.Errorf("View.Run: %v", err)
		}
	})
	e.eventually(10*time.Second, "identity view loaded", view.Loaded)
	return e
}

// metric returns the value of an unlabelled gauge on /metrics, as text.
// hubTenant creates an active tenant id at the hub and returns its API key.
func (e *edgeEnv) hubTenant(id string) (string, identity.Tenant) {
	e.t.Helper()
	key, hash, err := identity.NewAPIKey()
	if err != nil {
		e.t.Fatal(err)
	}
	tn := identity.Tenant{TenantID: id, Status: identity.StatusActive, Plan: "free", CreatedAt: time.Now().UTC()}
	if err := e.hubIdent.Create(context.Background(), tn, hash); err != nil {
		e.t.Fatal(err)
	}
	return key, tn
}

func (e *edgeEnv) metric(name string) string {
	e.t.Helper()
	r := e.do("GET", "/metrics", "", "")
	for _, line := range strings.Split(string(r.body), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			return v
		}
	}
	e.t.Fatalf("/metrics has no %s", name)
	return ""
}

// healAndCountAtHub heals the leaf link, waits until the hub has sourced everything the
// edge stored (lag 0, link up), and returns how many of tenantID's events EVENTS holds.
func (e *edgeEnv) healAndCountAtHub(tenantID string) uint64 {
	e.t.Helper()
	e.link.Heal()
	e.eventually(90*time.Second, "hub has sourced every event after the heal", func() bool {
		return e.metric("edgehook_edge_sourcing_lag_messages") == "0" && e.metric("edgehook_edge_hub_link_up") == "1"
	})
	ctx := context.Background()
	st, err := e.hubJS.Stream(ctx, natsconf.StreamEvents)
	if err != nil {
		e.t.Fatal(err)
	}
	subject := natsconf.EventSubject(tenantID)
	info, err := st.Info(ctx, jetstream.WithSubjectFilter(subject))
	if err != nil {
		e.t.Fatal(err)
	}
	return info.State.Subjects[subject]
}

// eventStatus returns the status GET /v1/events/{id} answers at the edge.
func (e *edgeEnv) eventStatus(key, id string) (int, string) {
	e.t.Helper()
	r := e.do("GET", "/v1/events/"+id, key, "")
	if r.code != http.StatusOK {
		return r.code, string(r.body)
	}
	return r.code, r.json(e.t)["status"].(string)
}

// TestEdgeGatewayAcceptsWhileTheHubIsAway follows one edge through a cut of its leaf
// link: it keeps accepting and authenticating, answers GET from its own queued records,
// reports the link and the growing lag, and once healed the hub has every event and its
// view of an event's status takes over.
func TestEdgeGatewayAcceptsWhileTheHubIsAway(t *testing.T) {
	e := startEdge(t)
	ctx := context.Background()
	key, tn := e.hubTenant("ten_edge")
	e.eventually(5*time.Second, "tenant created at the hub accepted at the edge", func() bool {
		return e.do("POST", "/v1/events", key, `{"type":"probe"}`).code == http.StatusAccepted
	})
	e.eventually(5*time.Second, "link reported up", func() bool { return e.metric("edgehook_edge_hub_link_up") == "1" })
	before, _ := e.ingest(key, `{"type":"before.cut"}`)
	if code, st := e.eventStatus(key, before); code != 200 || st != status.Queued {
		t.Fatalf("before the cut: GET = %d %s, want 200 queued", code, st)
	}

	e.link.Cut()
	e.eventually(5*time.Second, "link reported down", func() bool { return e.metric("edgehook_edge_hub_link_up") == "0" })
	var during []string
	for i := range 20 {
		id, _ := e.ingest(key, `{"type":"during.cut","n":`+strconv.Itoa(i)+`}`)
		during = append(during, id)
	}
	if r := e.do("POST", "/v1/events", "ehk_not_a_key", `{}`); r.code != http.StatusUnauthorized {
		t.Errorf("bad key during the cut: %d, want 401", r.code)
	}
	if r := e.do("GET", "/readyz", "", ""); r.code != http.StatusOK {
		t.Errorf("/readyz during the cut: %d %s, want 200: the edge can still accept", r.code, r.body)
	}
	if code, st := e.eventStatus(key, during[0]); code != 200 || st != status.Queued {
		t.Errorf("during the cut: GET = %d %s, want 200 queued from the edge's own record", code, st)
	}
	if code, _ := e.eventStatus(key, "evt_unknown"); code != http.StatusServiceUnavailable {
		t.Errorf("during the cut: GET of an event the edge never had = %d, want 503 (the hub cannot be asked)", code)
	}
	e.eventually(5*time.Second, "lag counts the events accepted during the cut", func() bool {
		lag, err := strconv.Atoi(e.metric("edgehook_edge_sourcing_lag_messages"))
		return err == nil && lag >= len(during)
	})

	if got := e.healAndCountAtHub(tn.TenantID); got != 22 {
		t.Errorf("hub EVENTS holds %d of the tenant's events on %s, want 22", got, natsconf.EventSubject(tn.TenantID))
	}

	// Once the hub has a record for the event, its view answers at the edge.
	now := time.Now().UTC()
	if err := e.hubStat.Put(ctx, status.Record{EventID: during[0], TenantID: tn.TenantID, Status: status.Delivered, Attempts: 1, CreatedAt: now, UpdatedAt: now}); err != nil {
		t.Fatal(err)
	}
	if code, st := e.eventStatus(key, during[0]); code != 200 || st != status.Delivered {
		t.Errorf("after the heal: GET = %d %s, want 200 delivered from the hub", code, st)
	}
	logs := e.logs.String()
	for msg, want := range map[string]int{`"hub link up"`: 1, `"hub link lost`: 1, `"hub link restored"`: 1} {
		if n := strings.Count(logs, msg); n != want {
			t.Errorf("log has %d lines %s, want %d", n, msg, want)
		}
	}
}
