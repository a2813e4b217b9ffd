package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/edgehook/edgehook/identity"
	"github.com/edgehook/edgehook/natsconf"
	"github.com/edgehook/edgehook/natsconf/natsproc"
	"github.com/edgehook/edgehook/vault"
	"github.com/edgehook/edgehook/vault/vaulttest"
	"github.com/edgehook/edgehook/webhook"
)

// The mesh tests run the topology of DESIGN.md ("Edge topology") as real processes: a
// hub of three nats-server nodes (JetStream domain hub, one cluster, leaf listeners),
// edges that are leaf nodes with their own domains, an `edgehook gateway` at each edge,
// and `edgehook worker` and `edgehook dlq` at the hub. Every server config is
// natsconf's rendering; the JetStream layout is made by `edgehook setup nats`, as an
// operator would. Tenants' endpoints verify every signature (faultEndpoint).

// meshTestOptions shape one mesh.
type meshTestOptions struct {
	// edges are the names of the edge nodes.
	edges []string
	// leafToEveryNode gives each edge the leaf listeners of all hub nodes, directly;
	// otherwise an edge's only leaf URL is a proxy to hub node 1 the test can cut.
	leafToEveryNode bool
	// delivery starts a worker and a DLQ processor at the hub.
	delivery bool
}

// meshTestSystem is one running mesh.
type meshTestSystem struct {
	t        *testing.T
	bin      string
	creds    natsconf.Credentials // the hub's users (and the operator's, everywhere)
	hub      []*natsproc.Server
	hubURLs  string // every hub node's client URL, comma-separated
	edges    map[string]*meshTestEdge
	nc       *nats.Conn // the operator, at the hub
	js       jetstream.JetStream
	vault    *vaulttest.Env
	comps    []*proc        // every edgehook component, stopped with SIGTERM and checked
	stopped  map[*proc]bool // the components stop has handled
	startDur time.Duration  // how long meshTestStart took
}

// meshTestEdge is one edge node and its gateway.
type meshTestEdge struct {
	name            string
	server          *natsproc.Server
	proxy           *natsproc.Proxy // nil with leafToEveryNode
	gatewayPassword string
	addr            string // the gateway's host:port
	gateway         *proc
}

// url is the gateway's URL for path.
func (e *meshTestEdge) url(path string) string { return "http://" + e.addr + path }

// meshTestClient is the HTTP client of the tests' tenants and probes.
var meshTestClient = &http.Client{
	Timeout:   10 * time.Second,
	Transport: &http.Transport{MaxIdleConnsPerHost: 16},
}

// meshTestStart starts a mesh and waits until every part is ready.
func meshTestStart(t *testing.T, o meshTestOptions) *meshTestSystem {
	t.Helper()
	start := time.Now()
	bin, err := edgehookBinary()
	if err != nil {
		t.Fatal(err)
	}
	ms := &meshTestSystem{t: t, bin: bin, creds: natsconf.Credentials{}, edges: map[string]*meshTestEdge{}, stopped: map[*proc]bool{}}
	for _, name := range append(natsconf.HubCredentialNames(), natsconf.EdgeCredentialNames()...) {
		ms.creds[name] = "mesh-" + name + "-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	}
	dir := t.TempDir()

	// The hub: three nodes, started one after the other, each ready (JetStream on)
	// before the next; then the cluster must be healthy as a whole.
	layout := natsconf.HubLayout{StoreDir: filepath.Join(dir, "hub")}
	for range 3 {
		layout.Nodes = append(layout.Nodes, natsconf.HubNode{
			Host: "127.0.0.1", ClientPort: natsproc.FreePort(t), ClusterPort: natsproc.FreePort(t),
			LeafPort: natsproc.FreePort(t), MonitorPort: natsproc.FreePort(t),
		})
	}
	specs, err := layout.Servers(ms.creds)
	if err != nil {
		t.Fatal(err)
	}
	var urls []string
	for i, spec := range specs {
		conf, err := spec.Conf()
		if err != nil {
			t.Fatal(err)
		}
		s := natsproc.Start(t, dir, spec.Name, conf, layout.Nodes[i].ClientPort, layout.Nodes[i].MonitorPort)
		ms.hub = append(ms.hub, s)
		urls = append(urls, s.ClientURL)
	}
	ms.hubURLs = strings.Join(urls, ",")
	for _, s := range ms.hub {
		s.WaitHealthy(t, 30*time.Second)
	}
	ms.nc, err = nats.Connect(ms.hubURLs, nats.UserInfo(natsconf.OperatorUser, ms.creds[natsconf.OperatorUser]),
		nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ms.nc.Close)
	if ms.js, err = jetstream.New(ms.nc); err != nil {
		t.Fatal(err)
	}
	meshTestEventually(t, 30*time.Second, "the hub's JetStream answers (meta leader elected)", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, err := ms.js.AccountInfo(ctx)
		return err
	})
	ms.run(ms.operatorEnv(), "setup", "nats", "--replicas", "3")

	// The edges: each a leaf node of the hub, through a proxy to node 1 unless told
	// otherwise; its assets are added by `setup nats --edge` through the hub.
	for _, name := range o.edges {
		e := &meshTestEdge{name: name, gatewayPassword: "mesh-gateway-" + name + "-" + strconv.FormatInt(time.Now().UnixNano(), 36)}
		var leafURLs []string
		if o.leafToEveryNode {
			for _, n := range layout.Nodes {
				leafURLs = append(leafURLs, fmt.Sprintf("nats-leaf://127.0.0.1:%d", n.LeafPort))
			}
		} else {
			e.proxy = natsproc.NewProxy(t, fmt.Sprintf("127.0.0.1:%d", layout.Nodes[0].LeafPort))
			leafURLs = []string{"nats-leaf://" + e.proxy.Addr()}
		}
		creds := natsconf.Credentials{}
		for k, v := range ms.creds {
			creds[k] = v
		}
		creds[string(natsconf.Gateway)] = e.gatewayPassword
		clientPort, monitorPort := natsproc.FreePort(t), natsproc.FreePort(t)
		spec, err := natsconf.EdgeLayout{
			Name: name, Host: "127.0.0.1", ClientPort: clientPort, MonitorPort: monitorPort,
			HubURLs: leafURLs, StoreDir: filepath.Join(dir, "edge-"+name),
		}.Server(creds)
		if err != nil {
			t.Fatal(err)
		}
		conf, err := spec.Conf()
		if err != nil {
			t.Fatal(err)
		}
		e.server = natsproc.Start(t, dir, spec.Name, conf, clientPort, monitorPort)
		e.server.WaitHealthy(t, 30*time.Second)
		meshTestEventually(t, 30*time.Second, "edge "+name+"'s JetStream answers across its leaf link", func() error {
			ejs, err := jetstream.NewWithDomain(ms.nc, natsconf.EdgeDomain(name))
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			_, err = ejs.AccountInfo(ctx)
			return err
		})
		ms.run(ms.operatorEnv(), "setup", "nats", "--edge", name)
		ms.edges[name] = e
	}

	ms.vault = vaulttest.Setup(t)
	if o.delivery {
		workerTok := ms.vault.Token(t, vault.RoleWorker, 0)
		metrics := freeAddr(t)
		ms.start("edgehook worker", ms.hubEnv("worker", map[string]string{
			"VAULT_ADDR":                     ms.vault.Addr,
			"VAULT_TOKEN":                    workerTok,
			"EDGEHOOK_VAULT_MOUNT":           ms.vault.Mount,
			"EDGEHOOK_VAULT_PREFIX":          ms.vault.Prefix,
			"EDGEHOOK_ALLOW_PRIVATE_TARGETS": "true",
			"EDGEHOOK_BREAKER_COOLDOWN":      "1s",
			"EDGEHOOK_METRICS_ADDR":          metrics,
		}), "worker")
		waitHTTP(t, "http://"+metrics+"/readyz")
		dlqMetrics := freeAddr(t)
		ms.start("edgehook dlq", ms.hubEnv("dlq", map[string]string{"EDGEHOOK_METRICS_ADDR": dlqMetrics}), "dlq")
		waitHTTP(t, "http://"+dlqMetrics+"/readyz")
	}

	for _, name := range o.edges {
		e := ms.edges[name]
		e.addr = freeAddr(t)
		e.gateway = ms.start("edgehook gateway (edge "+name+")", map[string]string{
			"EDGEHOOK_EDGE":          name,
			"EDGEHOOK_NATS_URL":      e.server.ClientURL,
			"EDGEHOOK_NATS_USER":     string(natsconf.Gateway),
			"EDGEHOOK_NATS_PASSWORD": e.gatewayPassword,
			"EDGEHOOK_HTTP_ADDR":     e.addr,
			"EDGEHOOK_LOG_LEVEL":     "info",
		}, "gateway")
		waitHTTP(t, e.url("/readyz"))
	}
	ms.startDur = time.Since(start)
	return ms
}

// operatorEnv is the environment of an operator's edgehook command at the hub.
func (ms *meshTestSystem) operatorEnv() map[string]string {
	return ms.hubEnv(natsconf.OperatorUser, nil)
}

// hubEnv is the environment of an edgehook process connecting to the hub as user,
// with the fault tests' fast delivery settings, plus extra.
func (ms *meshTestSystem) hubEnv(user string, extra map[string]string) map[string]string {
	env := map[string]string{
		"EDGEHOOK_NATS_URL":       ms.hubURLs,
		"EDGEHOOK_NATS_USER":      user,
		"EDGEHOOK_NATS_PASSWORD":  ms.creds[user],
		"EDGEHOOK_HTTP_TIMEOUT":   faultHTTPTimeout,
		"EDGEHOOK_RETRY_SCHEDULE": faultSchedule,
		"EDGEHOOK_MAX_DELIVER":    faultMaxDeliver,
		"EDGEHOOK_LOG_LEVEL":      "warn",
	}
	for k, v := range extra {
		env[k] = v
	}
	return env
}

// run runs `edgehook <args>` to completion (at most a minute) and fails the test
// unless it exits 0.
func (ms *meshTestSystem) run(env map[string]string, args ...string) {
	ms.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, ms.bin, args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + ms.t.TempDir()}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		ms.t.Fatalf("edgehook %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// start runs a long-lived edgehook component. When the test ends it is stopped with
// SIGTERM (unless stopAll did it already) and must exit 0, having run until then.
func (ms *meshTestSystem) start(name string, env map[string]string, args ...string) *proc {
	ms.t.Helper()
	p := startProc(ms.t, name, ms.bin, true, env, args...)
	ms.comps = append(ms.comps, p)
	ms.t.Cleanup(func() { ms.stop(p) })
	return p
}

// stop stops p with SIGTERM and checks that it was still running and exits 0.
func (ms *meshTestSystem) stop(p *proc) {
	if ms.stopped[p] {
		return
	}
	ms.stopped[p] = true
	select {
	case <-p.exited:
		ms.t.Errorf("%s exited before the test stopped it: %v", p.name, p.err)
		return
	default:
	}
	p.stop(ms.t, syscall.SIGTERM)
	if p.err != nil {
		ms.t.Errorf("%s: exit after SIGTERM: %v, want status 0", p.name, p.err)
	}
}

// stopAll stops the gateways, then the worker and the DLQ processor, checking each
// exit status.
func (ms *meshTestSystem) stopAll() {
	for _, e := range ms.edges {
		ms.stop(e.gateway)
	}
	for _, p := range ms.comps {
		ms.stop(p)
	}
}

// running fails the test if any component has exited.
func (ms *meshTestSystem) running() {
	ms.t.Helper()
	for _, p := range ms.comps {
		p.running(ms.t)
	}
}

// identityStore is the hub's identity bucket, written as the operator.
func (ms *meshTestSystem) identityStore() *identity.Store {
	ms.t.Helper()
	kv, err := ms.js.KeyValue(context.Background(), natsconf.BucketIdentity)
	if err != nil {
		ms.t.Fatal(err)
	}
	return identity.NewStore(kv)
}

// newTenant writes a tenant's webhook config to Vault (target: a new verifying
// endpoint answering 200) and returns it with a fresh API key, without creating its
// identity yet.
func (ms *meshTestSystem) newTenant() (*faultTenant, identity.KeyHash) {
	ms.t.Helper()
	id, err := identity.NewTenantID()
	if err != nil {
		ms.t.Fatal(err)
	}
	key, hash, err := identity.NewAPIKey()
	if err != nil {
		ms.t.Fatal(err)
	}
	secret, err := webhook.NewSecret()
	if err != nil {
		ms.t.Fatal(err)
	}
	tn := &faultTenant{id: id, apiKey: key, secret: secret,
		ep: newFaultEndpoint(ms.t, secret, func(int) (int, time.Duration) { return 200, 0 })}
	admin, err := vault.NewClient(ms.vault.ClientConfig(ms.vault.Token(ms.t, vault.RoleAdmin, 0)))
	if err != nil {
		ms.t.Fatal(err)
	}
	if err := admin.PutWebhookConfig(context.Background(), vault.WebhookConfig{
		TenantID: id, TargetURL: tn.ep.srv.URL + "/hook", Secret: secret, LastUpdated: time.Now().UTC(),
	}); err != nil {
		ms.t.Fatal(err)
	}
	return tn, hash
}

// addTenant creates an active tenant at the hub and waits until every edge's gateway
// knows its key.
func (ms *meshTestSystem) addTenant() *faultTenant {
	ms.t.Helper()
	tn, hash := ms.newTenant()
	if err := ms.identityStore().Create(context.Background(), identity.Tenant{
		TenantID: tn.id, Status: identity.StatusActive, Plan: "pro", CreatedAt: time.Now().UTC(),
	}, hash); err != nil {
		ms.t.Fatal(err)
	}
	for _, e := range ms.edges {
		meshTestEventually(ms.t, 15*time.Second, "edge "+e.name+" knows the new tenant's key", func() error {
			code, body, err := meshTestDo(http.MethodGet, e.url("/v1/tenant"), tn.apiKey, nil, "")
			if err != nil {
				return err
			}
			if code != http.StatusOK {
				return fmt.Errorf("GET /v1/tenant: %d %s", code, body)
			}
			return nil
		})
	}
	return tn
}

// meshTestDo makes one request with key as the bearer token and returns the status and
// the body.
func meshTestDo(method, url, key string, header map[string]string, body string) (int, []byte, error) {
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := meshTestClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// meshTestEventStatus returns the status GET /v1/events/{id} answers at e, with the HTTP
// status code.
func meshTestEventStatus(e *meshTestEdge, key, eventID string) (int, string, error) {
	code, body, err := meshTestDo(http.MethodGet, e.url("/v1/events/"+eventID), key, nil, "")
	if err != nil {
		return 0, "", err
	}
	var ev struct {
		EventID string `json:"eventId"`
		Status  string `json:"status"`
	}
	if code == http.StatusOK {
		if err := json.Unmarshal(body, &ev); err != nil {
			return code, "", fmt.Errorf("GET /v1/events/%s: %w: %s", eventID, err, body)
		}
		if ev.EventID != eventID {
			return code, "", fmt.Errorf("GET /v1/events/%s answered event %q", eventID, ev.EventID)
		}
	}
	return code, ev.Status, nil
}

// meshTestLinkMetrics reads the edge gateway's hub-link gauges from its /metrics.
func meshTestLinkMetrics(e *meshTestEdge) (up, lag float64, err error) {
	resp, err := meshTestClient.Get(e.url("/metrics"))
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, 0, fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	found := 0
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		var dst *float64
		switch name {
		case "edgehook_edge_hub_link_up":
			dst = &up
		case "edgehook_edge_sourcing_lag_messages":
			dst = &lag
		default:
			continue
		}
		if *dst, err = strconv.ParseFloat(value, 64); err != nil {
			return 0, 0, fmt.Errorf("metric %s: %w", name, err)
		}
		found++
	}
	if err := sc.Err(); err != nil {
		return 0, 0, err
	}
	if found != 2 {
		return 0, 0, fmt.Errorf("/metrics lacks edgehook_edge_hub_link_up or edgehook_edge_sourcing_lag_messages")
	}
	return up, lag, nil
}

// meshTestEventually calls cond every 50ms until it returns nil, failing the test after
// timeout with what and the last error.
func meshTestEventually(t *testing.T, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	natsproc.Eventually(t, timeout, 50*time.Millisecond, what, cond)
}

// meshTestEvent is one event a sender got a 202 for.
type meshTestEvent struct {
	id, nonce, tenant, edge string
	sent                    time.Time // the first attempt began
	accepted                time.Time // the 202 arrived
}

// meshTestRefusal is an ingest attempt that was not answered 202.
type meshTestRefusal struct {
	edge string
	at   time.Time
	what string
}

// meshTestLedger is what the tenants were told, shared by the senders.
type meshTestLedger struct {
	mu       sync.Mutex
	sent     int                       // distinct events (Idempotency-Keys) sent
	events   map[string]*meshTestEvent // event id -> event, for every 202
	refused  []meshTestRefusal
	failures []string // events never answered 202
}

func meshTestNewLedger() *meshTestLedger { return &meshTestLedger{events: map[string]*meshTestEvent{}} }

// snapshot returns a copy of the accepted events.
func (l *meshTestLedger) snapshot() []meshTestEvent {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]meshTestEvent, 0, len(l.events))
	for _, ev := range l.events {
		out = append(out, *ev)
	}
	return out
}

// meshTestGiveUp is how long a sender keeps retrying one event before it counts the event
// as never accepted.
const meshTestGiveUp = 30 * time.Second

// meshTestSend posts events for tn to e, one every pace, until stop is closed; each has a
// nonce in its body used as its Idempotency-Key. A refused attempt (any answer but 202,
// or no answer) is recorded and retried with the same key every 100ms, as a careful
// client does; an event that gets no 202 within meshTestGiveUp is recorded as a failure,
// never dropped silently. It returns when the event in progress is settled.
func meshTestSend(e *meshTestEdge, tn *faultTenant, pace time.Duration, stop <-chan struct{}, l *meshTestLedger) {
	tick := time.NewTicker(pace)
	defer tick.Stop()
	for i := 0; ; i++ {
		select {
		case <-stop:
			return
		default:
		}
		nonce := fmt.Sprintf("%s-%s-%d-%d", e.name, tn.id, time.Now().UnixNano(), i)
		body := fmt.Sprintf(`{"type":"mesh.test","nonce":%q}`, nonce)
		l.mu.Lock()
		l.sent++
		l.mu.Unlock()
		sent := time.Now()
		for {
			code, resp, err := meshTestDo(http.MethodPost, e.url("/v1/events"), tn.apiKey, map[string]string{"Idempotency-Key": nonce}, body)
			var ack struct {
				EventID string `json:"eventId"`
				Status  string `json:"status"`
			}
			if err == nil && code == http.StatusAccepted {
				err = json.Unmarshal(resp, &ack)
			}
			if err == nil && code == http.StatusAccepted && ack.EventID != "" && ack.Status == "queued" {
				l.mu.Lock()
				if prev, ok := l.events[ack.EventID]; ok && prev.nonce != nonce {
					l.failures = append(l.failures, fmt.Sprintf("event id %s answered for nonces %s and %s", ack.EventID, prev.nonce, nonce))
				} else if !ok {
					l.events[ack.EventID] = &meshTestEvent{id: ack.EventID, nonce: nonce, tenant: tn.id, edge: e.name, sent: sent, accepted: time.Now()}
				}
				l.mu.Unlock()
				break
			}
			what := fmt.Sprintf("%d %s", code, resp)
			if err != nil {
				what = err.Error()
			}
			l.mu.Lock()
			l.refused = append(l.refused, meshTestRefusal{edge: e.name, at: time.Now(), what: what})
			if time.Since(sent) > meshTestGiveUp {
				l.failures = append(l.failures, fmt.Sprintf("edge %s: event %s never answered 202 in %v (last: %s)", e.name, nonce, meshTestGiveUp, what))
				l.mu.Unlock()
				break
			}
			l.mu.Unlock()
			time.Sleep(100 * time.Millisecond)
		}
		select {
		case <-stop:
			return
		case <-tick.C:
		}
	}
}

// meshTestSenders runs meshTestSend for each (edge, tenant) pair until the returned stop
// function is called; stop waits for the senders to settle their last events.
func meshTestSenders(pairs []meshTestPair, pace time.Duration, l *meshTestLedger) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	for _, p := range pairs {
		wg.Go(func() { meshTestSend(p.edge, p.tenant, pace, done, l) })
	}
	var once sync.Once
	return func() {
		once.Do(func() { close(done) })
		wg.Wait()
	}
}

// meshTestPair is a tenant sending to an edge.
type meshTestPair struct {
	edge   *meshTestEdge
	tenant *faultTenant
}

// meshTestFigures are what account counted.
type meshTestFigures struct {
	accepted, delivered, duplicates int
	drain                           time.Duration
}

// account waits (at most within) until every event of l has reached its tenant's
// endpoint with a 2xx, then checks that the endpoints got exactly those events: no
// webhook-id that was never answered 202, each webhook-id with the body of the event it
// names, each body under one webhook-id only, every signature valid. Duplicates (an
// event delivered again, with its webhook-id) are counted. It fails the test on any
// failure the senders recorded.
func (ms *meshTestSystem) account(name string, l *meshTestLedger, tenants []*faultTenant, within time.Duration) meshTestFigures {
	t := ms.t
	t.Helper()
	l.mu.Lock()
	for _, f := range l.failures {
		t.Errorf("%s: %s", name, f)
	}
	l.mu.Unlock()
	events := l.snapshot()
	byTenant := map[string]*faultTenant{}
	for _, tn := range tenants {
		byTenant[tn.id] = tn
	}
	start := time.Now()
	deadline := start.Add(within)
	for {
		var missing []meshTestEvent
		for _, ev := range events {
			tn := byTenant[ev.tenant]
			tn.ep.mu.Lock()
			n := tn.ep.accepted[ev.id]
			tn.ep.mu.Unlock()
			if n == 0 {
				missing = append(missing, ev)
			}
		}
		if len(missing) == 0 {
			break
		}
		if time.Now().After(deadline) {
			perEdge := map[string]int{}
			for _, ev := range missing {
				perEdge[ev.edge]++
			}
			t.Fatalf("%s: %d of %d events answered 202 not delivered within %v (LOST), per edge %v; e.g. %s (edge %s, accepted %s)",
				name, len(missing), len(events), within, perEdge, missing[0].id, missing[0].edge, missing[0].accepted.Format(time.TimeOnly))
		}
		time.Sleep(100 * time.Millisecond)
	}
	drain := time.Since(start)

	want := map[string]meshTestEvent{}
	for _, ev := range events {
		want[ev.id] = ev
	}
	f := meshTestFigures{accepted: len(events), drain: drain}
	for _, tn := range tenants {
		tn.ep.mu.Lock()
		idsOfNonce := map[string][]string{}
		for id, n := range tn.ep.accepted {
			ev, ok := want[id]
			switch {
			case !ok:
				t.Errorf("%s: webhook-id %s delivered to tenant %s but never answered 202", name, id, tn.id)
			case ev.tenant != tn.id:
				t.Errorf("%s: event %s of tenant %s delivered to tenant %s", name, id, ev.tenant, tn.id)
			case tn.ep.nonces[id] != ev.nonce:
				t.Errorf("%s: webhook-id %s carried the body of %q, accepted as %q", name, id, tn.ep.nonces[id], ev.nonce)
			}
			f.delivered++
			f.duplicates += n - 1
		}
		for id, nonce := range tn.ep.nonces {
			idsOfNonce[nonce] = append(idsOfNonce[nonce], id)
		}
		for nonce, ids := range idsOfNonce {
			if len(ids) > 1 {
				t.Errorf("%s: the event with nonce %s was delivered under %d webhook-ids: %v", name, nonce, len(ids), ids)
			}
		}
		if tn.ep.badSigs > 0 {
			t.Errorf("%s: tenant %s: %d webhooks failed signature verification", name, tn.id, tn.ep.badSigs)
		}
		if len(tn.ep.conflicts) > 0 {
			t.Errorf("%s: webhook-ids with two different bodies: %v", name, tn.ep.conflicts)
		}
		tn.ep.mu.Unlock()
	}
	if f.delivered != f.accepted {
		t.Errorf("%s: %d distinct events delivered, %d answered 202: want exactly the 202'd set", name, f.delivered, f.accepted)
	}
	return f
}

// meshTestDelivered reports whether ev has reached its tenant's endpoint.
func meshTestDelivered(tenants []*faultTenant, ev meshTestEvent) bool {
	for _, tn := range tenants {
		if tn.id != ev.tenant {
			continue
		}
		tn.ep.mu.Lock()
		defer tn.ep.mu.Unlock()
		return tn.ep.accepted[ev.id] > 0
	}
	return false
}
