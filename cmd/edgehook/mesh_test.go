package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgehook/edgehook/identity"
	"github.com/edgehook/edgehook/natsconf"
	"github.com/edgehook/edgehook/natsconf/natsproc"
)

// meshTestPropagationLimit is how quickly a change to a tenant at the hub must be in force
// at every edge.
const meshTestPropagationLimit = 2 * time.Second

// meshTestPollEvery is how often the propagation test asks each edge.
const meshTestPollEvery = 20 * time.Millisecond

// meshTestUntil asks every edge, each from its own goroutine every meshTestPollEvery, whether
// ok holds, and returns per edge how long after since it first did (or -1 if it never
// did within 10 s).
func meshTestUntil(edges map[string]*meshTestEdge, since time.Time, ok func(e *meshTestEdge) bool) map[string]time.Duration {
	var (
		mu  sync.Mutex
		got = map[string]time.Duration{}
		wg  sync.WaitGroup
	)
	for name, e := range edges {
		wg.Go(func() {
			tick := time.NewTicker(meshTestPollEvery)
			defer tick.Stop()
			took := time.Duration(-1)
			for time.Since(since) < 10*time.Second {
				if ok(e) {
					took = time.Since(since)
					break
				}
				<-tick.C
			}
			mu.Lock()
			got[name] = took
			mu.Unlock()
		})
	}
	wg.Wait()
	return got
}

// meshTestTook renders a duration meshTestUntil measured.
func meshTestTook(d time.Duration) string {
	if d < 0 {
		return "never (10s)"
	}
	return d.Round(time.Millisecond).String()
}

// meshTestEdgeNames returns the edge names in order.
func meshTestEdgeNames(edges map[string]*meshTestEdge) []string {
	names := make([]string, 0, len(edges))
	for n := range edges {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// TestMeshPropagation creates a tenant at the hub and suspends it, and measures how long
// each takes to be in force at every edge: the new key answered 202, then 403.
func TestMeshPropagation(t *testing.T) {
	ms := meshTestStart(t, meshTestOptions{edges: []string{"a", "b"}})
	t.Logf("mesh (3 hub nodes, 2 edges, gateways) up in %v", ms.startDur.Round(time.Millisecond))

	tn, hash := ms.newTenant()
	post := func(e *meshTestEdge) int {
		code, _, err := meshTestDo(http.MethodPost, e.url("/v1/events"), tn.apiKey, nil, `{"type":"mesh.propagation"}`)
		if err != nil {
			return 0
		}
		return code
	}
	for _, name := range meshTestEdgeNames(ms.edges) {
		if code := post(ms.edges[name]); code != http.StatusUnauthorized {
			t.Fatalf("edge %s answers %d to a key no tenant has yet, want 401", name, code)
		}
	}

	store := ms.identityStore()
	ctx := context.Background()
	created := time.Now()
	if err := store.Create(ctx, identity.Tenant{TenantID: tn.id, Status: identity.StatusActive, Plan: "pro", CreatedAt: created.UTC()}, hash); err != nil {
		t.Fatal(err)
	}
	accepted := meshTestUntil(ms.edges, created, func(e *meshTestEdge) bool { return post(e) == http.StatusAccepted })
	meshTestEdgePortals(t, ms, tn.id, tn.apiKey)

	rec, err := store.Get(ctx, tn.id)
	if err != nil {
		t.Fatal(err)
	}
	rec.Status = identity.StatusSuspended
	suspended := time.Now()
	if err := store.Update(ctx, rec); err != nil {
		t.Fatal(err)
	}
	refused := meshTestUntil(ms.edges, suspended, func(e *meshTestEdge) bool { return post(e) == http.StatusForbidden })

	var figs []string
	for _, name := range meshTestEdgeNames(ms.edges) {
		for what, took := range map[string]time.Duration{"new key answered 202": accepted[name], "suspended tenant answered 403": refused[name]} {
			switch {
			case took < 0:
				t.Errorf("edge %s: %s: not within 10s", name, what)
			case took > meshTestPropagationLimit:
				t.Errorf("edge %s: %s after %v, want within %v", name, what, took, meshTestPropagationLimit)
			}
		}
		figs = append(figs, fmt.Sprintf("%s: created→202 %s, suspended→403 %s", name, meshTestTook(accepted[name]), meshTestTook(refused[name])))
	}
	t.Logf("propagation (polled every %v): %s", meshTestPollEvery, strings.Join(figs, "; "))
	ms.stopAll()
}

// meshTestCutFor is how long the partition test keeps edge a cut off from the hub.
const meshTestCutFor = 22 * time.Second

// meshTestPace is how long each sender waits between events.
const meshTestPace = 40 * time.Millisecond

// TestMeshPartition cuts edge a's leaf link for meshTestCutFor while tenants keep sending
// to both edges. Edge a keeps accepting (202 to good keys, 401 to a bad one), stays
// ready, reports the link down and a growing sourcing lag, and answers "queued" for an
// event it accepted during the cut; edge b carries on delivering. After the heal every
// event answered 202 at either edge is delivered, exactly once per webhook-id apart from
// counted duplicates, edge a shows the hub's "delivered", and its link metrics recover.
func TestMeshPartition(t *testing.T) {
	ms := meshTestStart(t, meshTestOptions{edges: []string{"a", "b"}, delivery: true})
	a, b := ms.edges["a"], ms.edges["b"]
	t1, t2 := ms.addTenant(), ms.addTenant()
	tenants := []*faultTenant{t1, t2}
	l := meshTestNewLedger()
	stopSenders := meshTestSenders([]meshTestPair{{a, t1}, {a, t2}, {b, t1}, {b, t2}}, meshTestPace, l)
	defer stopSenders()

	// Before the cut: both edges deliver.
	meshTestEventually(t, 30*time.Second, "events from both edges delivered before the cut", func() error {
		n := map[string]int{}
		for _, ev := range l.snapshot() {
			if meshTestDelivered(tenants, ev) {
				n[ev.edge]++
			}
		}
		if n["a"] < 20 || n["b"] < 20 {
			return fmt.Errorf("delivered per edge %v, want 20 each", n)
		}
		return nil
	})
	if up, lag, err := meshTestLinkMetrics(a); err != nil || up != 1 {
		t.Fatalf("edge a before the cut: link_up %v lag %v (%v), want link_up 1", up, lag, err)
	}

	a.proxy.Cut()
	cutAt := time.Now()
	meshTestEventually(t, 10*time.Second, "edge a's /metrics shows edgehook_edge_hub_link_up 0 after the cut", func() error {
		up, _, err := meshTestLinkMetrics(a)
		if err == nil && up != 0 {
			err = fmt.Errorf("link_up %v", up)
		}
		return err
	})
	type lagSample struct {
		at  time.Time
		lag float64
	}
	var (
		lags       []lagSample
		checks     int
		queuedSeen int
	)
	const badKey = "ehk_this-key-belongs-to-nobody"
	for time.Since(cutAt) < meshTestCutFor {
		checks++
		if code, body, err := meshTestDo(http.MethodPost, a.url("/v1/events"), badKey, nil, `{"type":"mesh.test"}`); err != nil || code != http.StatusUnauthorized {
			t.Errorf("edge a during the cut: a bad key got %d %s (%v), want 401", code, body, err)
		}
		if code, body, err := meshTestDo(http.MethodGet, a.url("/readyz"), "", nil, ""); err != nil || code != http.StatusOK {
			t.Errorf("edge a during the cut: /readyz %d %s (%v), want 200", code, body, err)
		}
		up, lag, err := meshTestLinkMetrics(a)
		switch {
		case err != nil:
			t.Errorf("edge a during the cut: %v", err)
		case up != 0:
			t.Errorf("edge a during the cut: edgehook_edge_hub_link_up %v, want 0", up)
		default:
			lags = append(lags, lagSample{time.Now(), lag})
		}
		// An event edge a accepted during the cut: the hub cannot be asked, so edge a
		// answers from its own queued record.
		if checks%4 == 0 {
			var cutEvent *meshTestEvent
			for _, ev := range l.snapshot() {
				if ev.edge == "a" && ev.sent.After(cutAt) {
					cutEvent = &ev
					break
				}
			}
			if cutEvent == nil {
				t.Errorf("edge a accepted no event %v into the cut", time.Since(cutAt).Round(time.Second))
			} else {
				tn := t1
				if cutEvent.tenant == t2.id {
					tn = t2
				}
				code, st, err := meshTestEventStatus(a, tn.apiKey, cutEvent.id)
				if err != nil || code != http.StatusOK || st != "queued" {
					t.Errorf("edge a during the cut: GET /v1/events/%s: %d %q (%v), want 200 queued", cutEvent.id, code, st, err)
				} else {
					queuedSeen++
				}
			}
		}
		time.Sleep(500 * time.Millisecond)
	}

	// What the cut did, seen at the moment of the heal: edge a accepted throughout and
	// none of it reached the hub; edge b kept delivering.
	healAt := time.Now()
	a.proxy.Heal()
	cut := healAt.Sub(cutAt)
	var acceptedInCut, deliveredInCut, bInCut, bStale int
	for _, ev := range l.snapshot() {
		switch {
		case ev.edge == "a" && ev.sent.After(cutAt) && ev.accepted.Before(healAt):
			acceptedInCut++
			if meshTestDelivered(tenants, ev) {
				deliveredInCut++
			}
		case ev.edge == "b" && ev.sent.After(cutAt) && ev.accepted.Before(healAt.Add(-10*time.Second)):
			bInCut++
			if !meshTestDelivered(tenants, ev) {
				bStale++
			}
		}
	}
	if acceptedInCut < int(cut/meshTestPace) { // two senders at meshTestPace: at least half the pace
		t.Errorf("edge a accepted %d events during a cut of %v, want at least %d", acceptedInCut, cut, int(cut/meshTestPace))
	}
	if deliveredInCut > 0 {
		t.Errorf("%d events accepted at edge a during the cut were delivered before the heal: the link was not cut", deliveredInCut)
	}
	if bInCut == 0 || bStale > 0 {
		t.Errorf("edge b during a's cut: %d of %d events accepted more than 10s before the heal not delivered yet, want all delivered", bStale, bInCut)
	}
	if queuedSeen == 0 {
		t.Error("GET of an event accepted during the cut was never checked at edge a")
	}
	// The lag grows while the link is down: it never falls, and each reading covers at
	// least the events edge a accepted in the cut up to a few seconds before it (the
	// probe runs every second).
	if len(lags) < 2 || lags[len(lags)-1].lag <= lags[0].lag {
		t.Errorf("edge a's edgehook_edge_sourcing_lag_messages during the cut: %v, want it growing", lags)
	}
	for i, s := range lags {
		if i > 0 && s.lag < lags[i-1].lag {
			t.Errorf("edge a's sourcing lag fell during the cut: %v then %v", lags[i-1].lag, s.lag)
		}
		floor := 0
		for _, ev := range l.snapshot() {
			if ev.edge == "a" && ev.sent.After(cutAt) && ev.accepted.Before(s.at.Add(-5*time.Second)) {
				floor++
			}
		}
		if s.lag < float64(floor) {
			t.Errorf("edge a's sourcing lag %v at %v into the cut, but it had accepted %d events by 5s earlier", s.lag, s.at.Sub(cutAt).Round(time.Second), floor)
		}
	}

	// After the heal the senders go on until the hub sources edge a again (the first
	// event of the cut delivered), then every 202 must be delivered.
	var resumed time.Duration
	meshTestEventually(t, 2*time.Minute, "an event accepted at edge a during the cut delivered after the heal", func() error {
		for _, ev := range l.snapshot() {
			if ev.edge == "a" && ev.sent.After(cutAt) && ev.accepted.Before(healAt) && meshTestDelivered(tenants, ev) {
				resumed = time.Since(healAt)
				return nil
			}
		}
		return fmt.Errorf("none delivered %v after the heal", time.Since(healAt).Round(time.Second))
	})
	stopSenders()
	f := ms.account("partition", l, tenants, 2*time.Minute)
	drain := time.Since(healAt)

	// Edge a now shows the hub's view of an event it accepted during the cut.
	var cutEvent meshTestEvent
	for _, ev := range l.snapshot() {
		if ev.edge == "a" && ev.sent.After(cutAt) && ev.accepted.Before(healAt) {
			cutEvent = ev
			break
		}
	}
	tn := t1
	if cutEvent.tenant == t2.id {
		tn = t2
	}
	meshTestEventually(t, 30*time.Second, "edge a answers delivered for an event it accepted during the cut", func() error {
		code, st, err := meshTestEventStatus(a, tn.apiKey, cutEvent.id)
		if err == nil && (code != http.StatusOK || st != "delivered") {
			err = fmt.Errorf("GET /v1/events/%s: %d %q", cutEvent.id, code, st)
		}
		return err
	})
	meshTestEventually(t, 30*time.Second, "edge a's link metrics back to link_up 1, lag 0", func() error {
		up, lag, err := meshTestLinkMetrics(a)
		if err == nil && (up != 1 || lag != 0) {
			err = fmt.Errorf("link_up %v, lag %v", up, lag)
		}
		return err
	})
	for _, e := range []*meshTestEdge{a, b} {
		if up, lag, err := meshTestLinkMetrics(e); err != nil || up != 1 || lag != 0 {
			t.Errorf("edge %s after the heal: link_up %v, lag %v (%v), want 1 and 0", e.name, up, lag, err)
		}
	}

	l.mu.Lock()
	perEdge := map[string]int{}
	for _, ev := range l.events {
		perEdge[ev.edge]++
	}
	sent, refused := l.sent, len(l.refused)
	for _, r := range l.refused {
		t.Errorf("edge %s refused an event at %s: %s", r.edge, r.at.Format(time.TimeOnly), r.what)
	}
	l.mu.Unlock()

	ms.running()
	ms.stopAll()
	logA, logB := a.gateway.out.String(), b.gateway.out.String()
	for _, c := range []struct {
		log, edge, msg string
		want           int
	}{
		{logA, "a", "hub link lost", 1}, {logA, "a", "hub link restored", 1},
		{logB, "b", "hub link lost", 0}, {logB, "b", "hub link restored", 0},
	} {
		if n := strings.Count(c.log, c.msg); n != c.want {
			t.Errorf("edge %s's gateway logged %q %d times, want %d", c.edge, c.msg, n, c.want)
		}
	}
	t.Logf("partition: sent %d, 202 at a %d (%d during the cut), 202 at b %d, refused %d; delivered %d, duplicates %d (same webhook-id), lost %d; cut %.1fs; after the heal the first event of the cut delivered in %.1fs, all drained in %.1fs",
		sent, perEdge["a"], acceptedInCut, perEdge["b"], refused, f.delivered, f.duplicates, f.accepted-f.delivered, cut.Seconds(), resumed.Seconds(), drain.Seconds())
}

// meshTestConnNames returns the names of the client connections of hub node s.
func meshTestConnNames(s *natsproc.Server) ([]string, error) {
	resp, err := meshTestClient.Get(s.MonitorURL + "/connz?limit=1024")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var connz struct {
		Connections []struct {
			Name string `json:"name"`
		} `json:"connections"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&connz); err != nil {
		return nil, fmt.Errorf("%s /connz: %w", s.Name, err)
	}
	var names []string
	for _, c := range connz.Connections {
		names = append(names, c.Name)
	}
	return names, nil
}

// meshTestLeafCount returns how many leaf connections hub node s has.
func meshTestLeafCount(s *natsproc.Server) (int, error) {
	resp, err := meshTestClient.Get(s.MonitorURL + "/leafz")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var leafz struct {
		Leafs int `json:"leafnodes"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&leafz); err != nil {
		return 0, fmt.Errorf("%s /leafz: %w", s.Name, err)
	}
	return leafz.Leafs, nil
}

// meshTestNodeDown is the least time the node-loss test keeps a hub node down.
const meshTestNodeDown = 5 * time.Second

// TestMeshHubNodeLoss kills one of the hub's three nodes with SIGKILL while an edge
// takes events and the worker delivers them, keeps sending while it is down, and
// restarts it: the edge never refuses an event, delivery resumes while the node is
// down, and every event answered 202 is delivered.
func TestMeshHubNodeLoss(t *testing.T) {
	ms := meshTestStart(t, meshTestOptions{edges: []string{"a"}, leafToEveryNode: true, delivery: true})
	a := ms.edges["a"]
	t1, t2 := ms.addTenant(), ms.addTenant()
	tenants := []*faultTenant{t1, t2}
	ctx := context.Background()
	stream, err := ms.js.Stream(ctx, natsconf.StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.Config.Replicas != 3 || info.Cluster == nil || len(info.Cluster.Replicas) != 2 {
		t.Fatalf("EVENTS: %d replicas, cluster %+v; want R3 across the hub", info.Config.Replicas, info.Cluster)
	}

	l := meshTestNewLedger()
	stopSenders := meshTestSenders([]meshTestPair{{a, t1}, {a, t2}}, meshTestPace, l)
	defer stopSenders()
	meshTestEventually(t, 30*time.Second, "deliveries under way", func() error {
		n := 0
		for _, ev := range l.snapshot() {
			if meshTestDelivered(tenants, ev) {
				n++
			}
		}
		if n < 40 {
			return fmt.Errorf("%d delivered", n)
		}
		return nil
	})

	// The victim: a node the worker is not connected to, the EVENTS leader if it is
	// one of those (the harder loss: a leader election under load).
	if info, err = stream.Info(ctx); err != nil {
		t.Fatal(err)
	}
	victim := -1
	var roles []string
	for i, s := range ms.hub {
		conns, err := meshTestConnNames(s)
		if err != nil {
			t.Fatal(err)
		}
		hasWorker := false
		for _, c := range conns {
			hasWorker = hasWorker || c == "edgehook-worker"
		}
		leafs, err := meshTestLeafCount(s)
		if err != nil {
			t.Fatal(err)
		}
		leader := info.Cluster != nil && info.Cluster.Leader == s.Name
		roles = append(roles, fmt.Sprintf("%s: worker %v, EVENTS leader %v, leaf links %d", s.Name, hasWorker, leader, leafs))
		if !hasWorker && (victim < 0 || leader) {
			victim = i
		}
	}
	if victim < 0 { // not with one worker connection; the worker must survive it anyway
		victim = 0
	}
	node := ms.hub[victim]
	node.Kill(t)
	killAt := time.Now()
	// With two nodes of three the hub keeps its quorum: after the elections the node's
	// leaderships need, delivery resumes while it is still down. It stays down for at
	// least meshTestNodeDown and until events accepted after the kill are being delivered.
	var acceptedDown, deliveredDown int
	var resumed time.Duration
	meshTestEventually(t, meshTestNodeDown+45*time.Second, "events accepted after the kill delivered while the node is down", func() error {
		acceptedDown, deliveredDown = 0, 0
		for _, ev := range l.snapshot() {
			if ev.sent.After(killAt) {
				acceptedDown++
				if meshTestDelivered(tenants, ev) {
					deliveredDown++
				}
			}
		}
		if deliveredDown > 0 && resumed == 0 {
			resumed = time.Since(killAt)
		}
		if deliveredDown < 20 || time.Since(killAt) < meshTestNodeDown {
			return fmt.Errorf("%d of the %d events accepted since the kill %v ago delivered", deliveredDown, acceptedDown, time.Since(killAt).Round(time.Second))
		}
		return nil
	})
	node.Restart(t)
	down := time.Since(killAt)
	node.WaitHealthy(t, 60*time.Second)
	time.Sleep(3 * time.Second) // and after it is back
	stopSenders()
	f := ms.account("hub node loss", l, tenants, 2*time.Minute)

	l.mu.Lock()
	sent, refused := l.sent, len(l.refused)
	for _, r := range l.refused {
		t.Errorf("edge %s refused an event at %s: %s", r.edge, r.at.Format(time.TimeOnly), r.what)
	}
	l.mu.Unlock()
	ms.running()
	ms.stopAll()
	t.Logf("hub node loss: killed %s (%s), down %.1fs, delivery resumed %.1fs after the kill; sent %d, 202 %d (%d while the node was down, %d of them delivered before its restart), refused %d; delivered %d, duplicates %d (same webhook-id), lost %d; drained %.1fs after the last send",
		node.Name, strings.Join(roles, "; "), down.Seconds(), resumed.Seconds(), sent, f.accepted, acceptedDown, deliveredDown, refused, f.delivered, f.duplicates, f.accepted-f.delivered, f.drain.Seconds())
}
