package bench

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/edgehook/edgehook/bench/cputime"
	"github.com/edgehook/edgehook/natsconf"
)

// The edge scenario measures ingest as DESIGN.md's edge topology runs it, against the
// single-server ingest of the same run:
//
//  1. the ingest scenario as it is (a fresh single-server system, same load), as the
//     baseline;
//  2. ingest at an edge gateway (EDGEHOOK_EDGE semantics) on edge a's leaf node, which
//     answers 202 once the edge's own stream has the event, while the hub does not
//     source the edge (as across a WAN link that is down, and so that the hub's work
//     does not compete with the edge for this machine's CPU);
//  3. the hub catching up: its source of INGEST_a restored, timed until the hub's
//     EVENTS holds every event the edge stored.
//
// Then it checks, by event id, that every event the edge answered 202 is in the
// hub's EVENTS.

// EdgeGateway is what the edge scenario hands the function that starts its gateway:
// which edge, where its leaf node is and the gateway user's password there.
type EdgeGateway struct {
	// Edge is the edge's name (gateway.Config.Edge, EDGEHOOK_EDGE).
	Edge string
	// NATSURL is the edge node's client URL.
	NATSURL string
	// Password is the password of the natsconf.Gateway user on the edge node.
	Password string
}

// EdgeGatewayFunc starts a gateway at the edge g describes, wired as a gateway with
// EDGEHOOK_EDGE set is (events into the edge's stream, queued records in its bucket,
// keys from its identity mirror, the hub's statuses read lazily), connected as the
// natsconf.Gateway user, without the admin API. It returns the gateway's base URL
// (http://host:port) and a function that stops it and reports how it stopped.
type EdgeGatewayFunc func(ctx context.Context, g EdgeGateway) (url string, stop func() error, err error)

// EdgeConfig is what the edge scenario needs besides Config's load settings.
type EdgeConfig struct {
	// StartGateway starts the edge gateway; without it the edge scenario cannot run.
	StartGateway EdgeGatewayFunc
	// Topology is the JetStream layout of the hub and the edge; a zero Topology
	// (Replicas 0) is natsconf.DefaultTopology().
	Topology natsconf.Topology
}

// EdgeFigures are the edge scenario's own figures. Its JSON line holds them next to
// the fields every scenario has, where throughput, latency and CPU are the edge
// ingest's and the ceiling is the single-server ingest.
type EdgeFigures struct {
	// SingleIngestPerS is the baseline: the ingest scenario's throughput on a
	// single-server system in this run.
	SingleIngestPerS float64 `json:"single_ingest_per_s"`
	// SingleCPUMsPerEvent is this process's CPU per event in the baseline's window.
	SingleCPUMsPerEvent float64 `json:"single_cpu_ms_per_event"`
	// EdgeIngestPerS is the edge gateway's accepted events per second, and
	// EdgeIngestRatio its ratio to SingleIngestPerS.
	EdgeIngestPerS  float64 `json:"edge_ingest_per_s"`
	EdgeIngestRatio float64 `json:"edge_ingest_ratio"`
	EdgeP50Ms       float64 `json:"edge_p50_ms"`
	EdgeP99Ms       float64 `json:"edge_p99_ms"`
	// SourcingPerS is how fast the hub's EVENTS took in the edge's events, measured as
	// SourcingMethod says, and SourcingRatio its ratio to SingleIngestPerS.
	SourcingPerS   float64 `json:"sourcing_per_s"`
	SourcingRatio  float64 `json:"sourcing_ratio"`
	SourcingMethod string  `json:"sourcing_method"`
	// SourcedEvents is the number of events the catch-up moved, in SourcingS seconds.
	SourcedEvents int64   `json:"sourced_events"`
	SourcingS     float64 `json:"sourcing_s"`
	// EdgeAccepted counts the edge gateway's 202s (warm-up included), and
	// AcceptedInHub those of them found by event id in the hub's EVENTS afterwards.
	EdgeAccepted  int64 `json:"edge_accepted"`
	AcceptedInHub int64 `json:"accepted_in_hub"`
}

// Descriptions, as the edge scenario's result reports them.
const (
	ceilingSingleIngest = "single-server ingest (the ingest scenario: gateway and one NATS server), same load, measured first in this run"
	latencyEdgeIngest   = "POST /v1/events at the edge gateway until its 202 (stored in the edge's stream), from the intended send time at a fixed rate"
	sourcingCatchUp     = "catch-up: the hub's source of INGEST_a removed while the edge ingests, then restored (natsconf.SetupEdge); " +
		"events the edge stored / (time EVENTS stored the last of them - restore)"
)

// edge runs the edge scenario.
func (b *Bench) edge(ctx context.Context, c Case) (Result, error) {
	ec := b.cfg.Edge
	if ec.StartGateway == nil {
		return Result{}, fmt.Errorf("%w: the edge scenario needs Config.Edge.StartGateway (it starts its own hub and edge in this process)", ErrInvalidConfig)
	}
	topo := ec.Topology
	if topo.Replicas == 0 {
		topo = natsconf.DefaultTopology()
	}

	// 1. The baseline, exactly as the ingest scenario measures it (which labels its
	// progress with the case it is given).
	single, err := b.ingest(ctx, Case{Scenario: "edge: single-server ingest", Rate: c.Rate})
	if err != nil {
		return Result{}, fmt.Errorf("single-server baseline: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return Result{}, err
	}

	// 2. Ingest at the edge, the hub not sourcing it.
	m, err := startEdgeMesh(ctx, topo)
	if err != nil {
		return Result{}, err
	}
	defer m.close()
	sctx, cancel := context.WithTimeout(ctx, meshTimeout)
	err = natsconf.RemoveEdge(sctx, m.hubJS, benchEdge)
	cancel()
	if err != nil {
		return Result{}, fmt.Errorf("mesh: %w", err)
	}
	url, stopGateway, err := ec.StartGateway(ctx, EdgeGateway{
		Edge: benchEdge, NATSURL: m.edge.ClientURL(), Password: m.creds[string(natsconf.Gateway)],
	})
	if err != nil {
		return Result{}, fmt.Errorf("start the edge gateway: %w", err)
	}
	gw := &edgeGatewayRun{stop: stopGateway}
	defer gw.close(b)
	t, err := m.createTenant(ctx)
	if err != nil {
		return Result{}, err
	}
	if err := waitKnown(ctx, url, t.APIKey); err != nil {
		return Result{}, err
	}
	load, err := newHTTPLoad(strings.TrimRight(url, "/")+"/v1/events", b.cfg.Connections)
	if err != nil {
		return Result{}, err
	}
	defer load.close()
	var accepted acceptedIDs
	body := payload(b.cfg.PayloadBytes)
	newReq := func() requester {
		return &ingestPost{auth: "Bearer " + t.APIKey, body: body, onAccepted: accepted.list()}
	}
	if err := load.warmUp(ctx, newReq); err != nil {
		return Result{}, fmt.Errorf("edge gateway: %w", err)
	}
	var cnt counters
	stop := progress(b.cfg.Progress, "edge: ingest at edge "+benchEdge, &cnt)
	cpu0, start := cputime.Self(), time.Now()
	lat := load.run(ctx, NewPacer(start, c.Rate, b.cfg.Duration), newReq, &cnt)
	window, cpu := time.Since(start), cputime.Self()-cpu0
	stop()
	if err := gw.close(b); err != nil {
		return Result{}, fmt.Errorf("edge gateway: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return Result{}, err
	}

	// 3. The hub catches up.
	sourced, took, err := b.catchUp(ctx, m)
	if err != nil {
		return Result{}, err
	}
	ids := accepted.all()
	inHub, err := m.countInEvents(ctx, ids)
	if err != nil {
		return Result{}, err
	}

	var r Result
	r.setThroughput(cnt.events.Load(), window, single.ThroughputPerS, ceilingSingleIngest)
	r.setCPU(cpu)
	r.setLatency(latencyEdgeIngest, lat)
	r.Errors, r.FirstError = single.Errors+cnt.errors.Load(), single.FirstError
	if r.FirstError == "" {
		r.FirstError = cnt.firstError()
	}
	if missing := int64(len(ids)) - inHub; missing > 0 {
		r.Errors += missing
		if r.FirstError == "" {
			r.FirstError = fmt.Sprintf("%d events the edge accepted are not in the hub's %s", missing, natsconf.StreamEvents)
		}
	}
	f := &EdgeFigures{
		SingleIngestPerS:    single.ThroughputPerS,
		SingleCPUMsPerEvent: round(single.CPUMicrosPerEvent/1000, 4),
		EdgeIngestPerS:      r.ThroughputPerS,
		EdgeIngestRatio:     r.Ratio,
		EdgeP50Ms:           r.P50Ms,
		EdgeP99Ms:           r.P99Ms,
		SourcingMethod:      sourcingCatchUp,
		SourcedEvents:       int64(sourced),
		SourcingS:           round(took.Seconds(), 3),
		EdgeAccepted:        int64(len(ids)),
		AcceptedInHub:       inHub,
	}
	// Result.CPUMsPerEvent is this process's CPU (the bench, the edge gateway, the
	// edge and the idle hub) per event in the edge ingest's window.
	if n := cnt.events.Load(); n > 0 {
		r.CPUMsPerEvent = round(float64(cpu)/float64(time.Millisecond)/float64(n), 4)
	}
	if took > 0 {
		f.SourcingPerS = round(float64(sourced)/took.Seconds(), 1)
	}
	if single.ThroughputPerS > 0 {
		f.SourcingRatio = round(f.SourcingPerS/single.ThroughputPerS, 3)
	}
	r.EdgeFigures = f
	return r, nil
}

// catchUp restores the hub's source of the edge and waits until the hub's EVENTS holds
// every event the edge stored (it ends early when nothing arrives for stallTimeout, or
// after DrainTimeout). It returns how many events arrived and the time from the
// restore until EVENTS stored the last of them.
func (b *Bench) catchUp(ctx context.Context, m *edgeMesh) (uint64, time.Duration, error) {
	stored, err := m.edgeStored(ctx)
	if err != nil {
		return 0, 0, err
	}
	before, err := m.hubEvents(ctx)
	if err != nil {
		return 0, 0, err
	}
	var cnt counters
	stop := progress(b.cfg.Progress, "edge: hub sourcing "+natsconf.EdgeStream(benchEdge), &cnt)
	defer stop()
	start := time.Now()
	sctx, cancel := context.WithTimeout(ctx, meshTimeout)
	err = natsconf.SetupEdge(sctx, m.hubJS, m.edgeJS, m.topo, benchEdge)
	cancel()
	if err != nil {
		return 0, 0, fmt.Errorf("mesh: restore the hub's source: %w", err)
	}
	deadline := start.Add(b.cfg.DrainTimeout)
	st, last, lastChange := before, before.Msgs, time.Now()
	for ctx.Err() == nil && time.Now().Before(deadline) && time.Since(lastChange) < stallTimeout {
		if st, err = m.hubEvents(ctx); err != nil {
			return 0, 0, err
		}
		cnt.events.Store(int64(st.Msgs - before.Msgs))
		if st.Msgs-before.Msgs >= stored {
			break
		}
		if st.Msgs != last {
			last, lastChange = st.Msgs, time.Now()
		}
		time.Sleep(10 * time.Millisecond)
	}
	arrived := st.Msgs - before.Msgs
	if arrived == 0 {
		return 0, 0, fmt.Errorf("the hub's %s took in none of the %d events edge %s stored", natsconf.StreamEvents, stored, benchEdge)
	}
	// The server's own time of the last store (this machine's clock): the polling
	// interval does not count.
	took := st.LastTime.Sub(start)
	if took <= 0 {
		took = time.Since(start)
	}
	return arrived, took, nil
}

// countInEvents reads every message of the hub's EVENTS (headers only) and returns how
// many of ids it holds.
func (m *edgeMesh) countInEvents(ctx context.Context, ids []string) (int64, error) {
	want := make(map[string]struct{}, len(ids))
	for _, id := range ids {
		want[id] = struct{}{}
	}
	st, err := m.hubEvents(ctx)
	if err != nil {
		return 0, err
	}
	cons, err := m.hubJS.OrderedConsumer(ctx, natsconf.StreamEvents, jetstream.OrderedConsumerConfig{HeadersOnly: true})
	if err != nil {
		return 0, fmt.Errorf("ordered consumer on %s: %w", natsconf.StreamEvents, err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(4096))
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", natsconf.StreamEvents, err)
	}
	defer it.Stop()
	var found int64
	for range st.Msgs {
		msg, err := it.Next(jetstream.NextMaxWait(stallTimeout))
		if err != nil {
			return 0, fmt.Errorf("read %s: %w", natsconf.StreamEvents, err)
		}
		id := msg.Headers().Get(natsconf.HeaderEventID)
		if _, ok := want[id]; ok {
			delete(want, id)
			found++
		}
	}
	return found, nil
}

// waitKnown waits until the edge gateway authenticates apiKey (GET /v1/tenant answers
// 200): its identity view has the tenant from the edge's mirror.
func waitKnown(ctx context.Context, baseURL, apiKey string) error {
	client := &http.Client{Timeout: 5 * time.Second}
	wctx, cancel := context.WithTimeout(ctx, meshTimeout)
	defer cancel()
	return poll(wctx, "the edge gateway to know the tenant's key", func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(baseURL, "/")+"/v1/tenant", nil)
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+apiKey)
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET /v1/tenant: %s", resp.Status)
		}
		return nil
	})
}

// edgeGatewayRun stops the edge gateway once.
type edgeGatewayRun struct {
	stop    func() error
	stopped bool
}

// close stops the gateway the first time it is called and returns how it stopped; a
// deferred second call does nothing.
func (g *edgeGatewayRun) close(b *Bench) error {
	if g.stopped {
		return nil
	}
	g.stopped = true
	if err := g.stop(); err != nil && !errors.Is(err, context.Canceled) {
		b.log.Warn("the edge gateway stopped with an error", "error", err)
		return err
	}
	return nil
}

// acceptedIDs collects the ids of accepted events, in one list per load goroutine so
// recording one takes no lock.
type acceptedIDs struct {
	mu    sync.Mutex
	lists []*[]string
}

// list returns a new list's recorder, for one requester (one goroutine).
func (a *acceptedIDs) list() func(eventID string, _ time.Time) {
	l := new([]string)
	a.mu.Lock()
	a.lists = append(a.lists, l)
	a.mu.Unlock()
	return func(eventID string, _ time.Time) { *l = append(*l, eventID) }
}

// all returns every recorded id; the loads must have returned.
func (a *acceptedIDs) all() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var ids []string
	for _, l := range a.lists {
		ids = append(ids, *l...)
	}
	return ids
}

// note is the edge scenario's line under the table; cpu is the result's CPUMsPerEvent.
func (f *EdgeFigures) note(cpu float64) string {
	return fmt.Sprintf("\nedge: single-server ingest %.0f/s (%.4f ms CPU/event); edge ingest %.0f/s, ratio %.3f, p50 %.2f ms, p99 %.2f ms (%.4f ms CPU/event); "+
		"hub sourcing %.0f/s, ratio %.3f (%d events in %.3fs; method = %s); %d of %d events the edge accepted are in the hub's %s",
		f.SingleIngestPerS, f.SingleCPUMsPerEvent, f.EdgeIngestPerS, f.EdgeIngestRatio, f.EdgeP50Ms, f.EdgeP99Ms, cpu,
		f.SourcingPerS, f.SourcingRatio, f.SourcedEvents, f.SourcingS, f.SourcingMethod, f.AcceptedInHub, f.EdgeAccepted, natsconf.StreamEvents)
}
