package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/edgehook/edgehook/gateway"
	"github.com/edgehook/edgehook/natsconf"
	"github.com/edgehook/edgehook/status"
	"github.com/edgehook/edgehook/webhook"
	"github.com/edgehook/edgehook/worker/dlq"
)

// The parking test runs the fault tests' real processes (fault_test.go: the edgehook
// binary as gateway, worker and dlq, the real nats-server with file storage) with one
// tenant's endpoint dead and its events parked, and ten other tenants delivering.
//
// The dead endpoint refuses connections (its port is closed): that is an endpoint that
// is gone, the case the issue names, and the worker learns it at once, so its breaker
// opens within a few attempts and the test measures parking rather than HTTP timeouts
// (a 503 takes the same breaker path: both are failures to it). It comes back by
// listening on the same port again.
//
// The retry schedule (1s, then 10m, three attempts) keeps the budget longer than the
// test: a parked event comes back once after 1s (its second attempt, parked again) and
// then waits for its endpoint's recovery, which brings it back for its last attempt.
const (
	parkingDead          = 200_000 // events parked at the dead endpoint
	parkingOthers        = 10      // tenants delivering next to it
	parkingRate          = 1000    // events/s of the other tenants together
	parkingTrickle       = 20      // events/s of the dead tenant while the others are measured
	parkingWindow        = 10 * time.Second
	parkingMaxAckPending = 20000
	parkingSchedule      = "1s,10m"
	parkingMaxDeliver    = "3"
)

// TestParkingDeadEndpointDoesNotStallOthers measures the other tenants' throughput
// first without the dead tenant's load, then with its 200,000 events parked and more
// arriving, and checks they keep at least 90% of it; that the deliver consumer's
// NumAckPending, sampled throughout, stays below its bound; and that once the endpoint
// answers again every event is delivered (or dead-lettered), counted exactly.
func TestParkingDeadEndpointDoesNotStallOthers(t *testing.T) {
	if testing.Short() {
		t.Skip("parks 200,000 events on real processes")
	}
	testStart := time.Now()
	s := newFaultSystem(t)
	s.run(natsconf.OperatorUser, parkingEnv(s.natsEnv(natsconf.OperatorUser)), "setup", "nats")
	ctx := context.Background()
	cons, err := s.js.Consumer(ctx, natsconf.StreamEvents, natsconf.ConsumerDeliver)
	if err != nil {
		t.Fatal(err)
	}
	if got := cons.CachedInfo().Config.MaxAckPending; got != parkingMaxAckPending {
		t.Fatalf("deliver consumer MaxAckPending %d after setup, want %d", got, parkingMaxAckPending)
	}
	w, metricsURL := parkingStartWorker(s)

	others := make([]*parkingTenant, 0, parkingOthers)
	var otherEPs []*parkingEndpoint
	for range parkingOthers {
		ep := newParkingEndpoint(t, true)
		otherEPs = append(otherEPs, ep)
		others = append(others, parkingAddTenant(s, ep, ep.srv.URL+"/hook"))
	}
	deadEP := newParkingEndpoint(t, false)
	dead := parkingAddTenant(s, deadEP, "http://"+deadEP.addr+"/hook")

	sampler := startParkingSampler(t, cons)
	in := newParkingIngest(s)
	logPending := func(name string, from, to time.Time) {
		sp := sampler.span(from, to)
		t.Logf("deliver consumer %s: NumAckPending max %d (bound %d), NumPending max %d, %d samples",
			name, sp.maxAck, parkingMaxAckPending, sp.maxPending, sp.samples)
	}
	defer func() {
		logPending("over the whole test", testStart, time.Now())
		t.Logf("worker metrics: %s", parkingMetrics(metricsURL))
		t.Logf("worker: %s", parkingUnparkLog(w.out.String()))
		t.Logf("whole test %.0fs", time.Since(testStart).Seconds())
	}()

	// Baseline: the other tenants alone.
	baseStart := time.Now()
	baseIDs := in.paced(others, parkingRate, parkingWindow, nil)
	baseEnd := time.Now()
	base := parkingMeasure(t, "baseline", in, otherEPs, baseIDs, baseStart, baseEnd, 30*time.Second)
	t.Logf("baseline: %d other tenants at %d/s together for %s: %.1f/s delivered (p50 %s, p99 %s, max %s)",
		parkingOthers, parkingRate, parkingWindow, base.throughput, base.p50, base.p99, base.max)
	logPending("in the baseline", baseStart, baseEnd)

	// The dead tenant's 200,000 events, published straight to EVENTS as the gateway
	// does (POSTed through the gateway over 64 connections they took 49s on two cores,
	// about 4,000/s, most of it the test's own HTTP client and the gateway competing
	// with the worker; the other tenants' events do go through the gateway), parked by
	// the worker as they arrive.
	parkStart := time.Now()
	in.publish(dead, parkingDead)
	ingestTook := time.Since(parkStart)
	events, err := s.js.Stream(ctx, natsconf.StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	info, err := events.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	lastSeq := info.State.LastSeq
	t.Logf("ingest: %d events of the dead tenant published in %.1fs (%.0f/s)", parkingDead, ingestTook.Seconds(), parkingDead/ingestTook.Seconds())
	parkingWait(t, 3*time.Minute, "the dead tenant's events parked (the consumer's ack floor past them)", func() bool {
		ci := sampler.latest()
		return ci != nil && ci.AckFloor.Stream >= lastSeq
	})
	parkTook := time.Since(parkStart)
	// Their copies come back once, after 1s, and are parked again: wait for that too.
	parkingWait(t, 3*time.Minute, "the parked copies' first return parked again", func() bool {
		ci := sampler.latest()
		info, err := events.Info(ctx)
		return err == nil && ci != nil && ci.NumPending == 0 && ci.AckFloor.Stream >= info.State.LastSeq &&
			time.Since(sampler.lastFloorChange()) > 2*time.Second
	})
	settledTook := time.Since(parkStart)
	t.Logf("parking: %d events parked %.1fs after the first publish (%.0f/s: the consumer's ack floor passed them); their copies' return after 1s parked again by %.1fs; %d parked copies on PARKED",
		parkingDead, parkTook.Seconds(), parkingDead/parkTook.Seconds(), settledTook.Seconds(), parkingCount(t, s, natsconf.StreamParked, natsconf.ParkedSubjectPrefix+">"))
	logPending("while parking", parkStart, time.Now())
	t.Logf("RSS with %d parked: nats-server %.0f MB, worker %.0f MB", parkingDead, mib(procRSS(s.nats.cmd.Process.Pid)), mib(procRSS(w.cmd.Process.Pid)))

	// The other tenants again, with 200,000 parked and the dead tenant still sending.
	loadStart := time.Now()
	var trickleIDs []string
	trickleDone := make(chan struct{})
	go func() {
		defer close(trickleDone)
		trickleIDs = in.paced([]*parkingTenant{dead}, parkingTrickle, parkingWindow, nil)
	}()
	loadIDs := in.paced(others, parkingRate, parkingWindow, nil)
	loadEnd := time.Now()
	<-trickleDone
	loaded := parkingMeasure(t, "with 200,000 parked", in, otherEPs, loadIDs, loadStart, loadEnd, 60*time.Second)
	ratio := loaded.throughput / base.throughput
	t.Logf("with %d parked and the dead tenant sending %d/s (%d events): %.1f/s delivered (p50 %s, p99 %s, max %s), ratio %.3f to the baseline",
		parkingDead, parkingTrickle, len(trickleIDs), loaded.throughput, loaded.p50, loaded.p99, loaded.max, ratio)
	logPending("with 200,000 parked", loadStart, loadEnd)
	if ratio < 0.9 {
		t.Errorf("the other tenants kept %.1f%% of their baseline throughput with %d parked, want at least 90%%", 100*ratio, parkingDead)
	}

	// What bringing them back costs per copy, done as the worker's unpark does it (one
	// direct get by subject, then one status read, in sequence), against batched reads.
	t.Logf("unpark cost, from the test's connection: %s", parkingUnparkCost(t, s, dead.id, 2000))

	// The dead endpoint comes back; the others keep sending for a window meanwhile.
	deadEP.revive(t)
	revived := time.Now()
	var recIDs []string
	recDone := make(chan struct{})
	go func() { defer close(recDone); recIDs = in.paced(others, parkingRate, parkingWindow, nil) }()
	// (Each probe that failed before was its event's last attempt: that event is
	// dead-lettered.)
	deadIDs := in.ids(dead.id)
	deadLettered := func() int {
		n := 0
		dstream, err := s.js.Stream(ctx, natsconf.StreamDLQ)
		if err == nil {
			err = dlq.Scan(ctx, dstream, dlq.Filter{TenantID: dead.id}, func(dlq.DeadLetter) error { n++; return nil })
		}
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	var (
		lastDLQScan time.Time
		dl          int
		probeLogged bool
	)
	parkingWait(t, 8*time.Minute, "every event of the dead tenant delivered (or dead-lettered) after its endpoint came back", func() bool {
		if time.Since(lastDLQScan) > time.Second {
			dl, lastDLQScan = deadLettered(), time.Now()
		}
		if first := deadEP.first.Load(); first != 0 && !probeLogged {
			probeLogged = true
			t.Logf("recovery: the first request (the probe) came %.1fs after the endpoint came back", time.Duration(first-revived.UnixNano()).Seconds())
		}
		return deadEP.deliveredOf(deadIDs)+dl >= len(deadIDs)
	})
	recovered := time.Since(revived)
	<-recDone
	t.Logf("recovery: all %d events of the dead tenant delivered or dead-lettered (%d) %.1fs after it came back", len(deadIDs), dl, recovered.Seconds())
	recovery := parkingMeasure(t, "during recovery", in, otherEPs, recIDs, revived, revived.Add(parkingWindow), 60*time.Second)
	t.Logf("the other tenants in the first %s of the recovery: %.1f/s delivered (p50 %s, p99 %s, max %s), ratio %.3f to the baseline",
		parkingWindow, recovery.throughput, recovery.p50, recovery.p99, recovery.max, recovery.throughput/base.throughput)
	logPending("during the recovery", revived, time.Now())
	t.Logf("RSS peaks over the test: nats-server %.0f MB, worker %.0f MB", mib(procPeakRSS(s.nats.cmd.Process.Pid)), mib(procPeakRSS(w.cmd.Process.Pid)))
	w.running(t)

	// Counted exactly: every accepted event delivered or dead-lettered, nothing else.
	f := parkingAccount(t, s, in, append(slices.Clone(others), dead))
	t.Logf("accepted %d, delivered %d, dead-lettered %d, lost %d; %d duplicate deliveries (same webhook-id); %d gateway requests retried",
		f.accepted, f.delivered, f.dead, f.accepted-f.delivered-f.dead, f.duplicates, in.retried)
	if m := sampler.max(); m >= parkingMaxAckPending {
		t.Errorf("NumAckPending reached %d, the bound %d: the consumer stalled", m, parkingMaxAckPending)
	}
	if f.accepted != f.delivered+f.dead {
		t.Errorf("accepted %d != delivered %d + dead-lettered %d", f.accepted, f.delivered, f.dead)
	}
}

// parkingEnv is env with the parking test's delivery settings.
func parkingEnv(env map[string]string) map[string]string {
	env["EDGEHOOK_RETRY_SCHEDULE"] = parkingSchedule
	env["EDGEHOOK_MAX_DELIVER"] = parkingMaxDeliver
	env["EDGEHOOK_MAX_ACK_PENDING"] = strconv.Itoa(parkingMaxAckPending)
	return env
}

// parkingStartWorker starts a worker process as startWorker does, with the parking
// schedule and info logs (its unpark reports), and returns it with its metrics URL.
func parkingStartWorker(s *faultSystem) (*proc, string) {
	s.t.Helper()
	metrics := freeAddr(s.t)
	p := s.start("worker", parkingEnv(map[string]string{
		"VAULT_ADDR":                     s.vault.Addr,
		"VAULT_TOKEN":                    s.workerTok,
		"EDGEHOOK_VAULT_MOUNT":           s.vault.Mount,
		"EDGEHOOK_VAULT_PREFIX":          s.vault.Prefix,
		"EDGEHOOK_ALLOW_PRIVATE_TARGETS": "true",
		"EDGEHOOK_BREAKER_COOLDOWN":      "1s",
		"EDGEHOOK_METRICS_ADDR":          metrics,
		"EDGEHOOK_LOG_LEVEL":             "info",
	}), "worker")
	waitHTTP(s.t, "http://"+metrics+"/readyz")
	return p, "http://" + metrics + "/metrics"
}

// parkingEndpoint is a tenant's webhook endpoint: it verifies every request's
// signature, answers 200, and records per webhook-id its body's nonce, its 2xx
// answers and when it first gave one. A dead one is not listening until revived, on
// the address it holds.
type parkingEndpoint struct {
	srv    *httptest.Server
	addr   string // host:port
	secret webhook.Secret
	first  atomic.Int64 // unix nanoseconds of its first request

	mu      sync.Mutex
	ok      map[string]int       // webhook-id -> 2xx answers
	firstOK map[string]time.Time // webhook-id -> its first 2xx answer
	signedLog
}

func newParkingEndpoint(t *testing.T, live bool) *parkingEndpoint {
	ep := &parkingEndpoint{ok: map[string]int{}, firstOK: map[string]time.Time{}}
	ep.srv = httptest.NewUnstartedServer(http.HandlerFunc(ep.serve))
	ep.addr = ep.srv.Listener.Addr().String()
	if live {
		ep.srv.Start()
		t.Cleanup(ep.srv.Close)
	} else {
		ep.srv.Listener.Close() // connections to addr are refused until revive
	}
	return ep
}

// revive starts listening on the dead endpoint's address.
func (ep *parkingEndpoint) revive(t *testing.T) {
	t.Helper()
	ln, err := net.Listen("tcp", ep.addr)
	if err != nil {
		t.Fatalf("the dead endpoint cannot listen on its address %s again: %v", ep.addr, err)
	}
	ep.srv.Listener = ln
	ep.srv.Start()
	t.Cleanup(ep.srv.Close)
}

func (ep *parkingEndpoint) serve(w http.ResponseWriter, r *http.Request) {
	ep.first.CompareAndSwap(0, time.Now().UnixNano())
	id, _, ok := ep.verify(&ep.mu, ep.secret, w, r)
	if !ok {
		return
	}
	ep.mu.Lock()
	ep.ok[id]++
	if _, ok := ep.firstOK[id]; !ok {
		ep.firstOK[id] = time.Now()
	}
	ep.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

// deliveredOf is how many of ids the endpoint answered 2xx.
func (ep *parkingEndpoint) deliveredOf(ids []string) int {
	ep.mu.Lock()
	defer ep.mu.Unlock()
	n := 0
	for _, id := range ids {
		if _, ok := ep.firstOK[id]; ok {
			n++
		}
	}
	return n
}

// parkingTenant is a tenant with an API key and its endpoint.
type parkingTenant struct {
	id, apiKey string
	ep         *parkingEndpoint
}

// parkingAddTenant creates a tenant as addTenant does (identity record with an API
// key, webhook config in Vault), whose webhooks go to target and are verified by ep.
func parkingAddTenant(s *faultSystem, ep *parkingEndpoint, target string) *parkingTenant {
	s.t.Helper()
	id, key, _ := s.provisionTenant(func(secret webhook.Secret) string {
		ep.secret = secret
		return target
	})
	return &parkingTenant{id: id, apiKey: key, ep: ep}
}

// parkingIngest posts events through the gateway and remembers what was accepted.
type parkingIngest struct {
	s      *faultSystem
	client *http.Client
	seq    atomic.Int64

	mu       sync.Mutex
	accepted map[string]string    // event id -> nonce, for every 202
	tenant   map[string]string    // event id -> tenant id
	sent     map[string]time.Time // event id -> when its POST was due
	retried  int                  // requests sent again (not answered 202)
}

func newParkingIngest(s *faultSystem) *parkingIngest {
	tr := &http.Transport{MaxIdleConns: 256, MaxIdleConnsPerHost: 256, IdleConnTimeout: time.Minute}
	s.t.Cleanup(tr.CloseIdleConnections)
	return &parkingIngest{
		s: s, client: &http.Client{Transport: tr, Timeout: 10 * time.Second},
		accepted: map[string]string{}, tenant: map[string]string{}, sent: map[string]time.Time{},
	}
}

// post sends one event of tn, due at due, with a nonce as its Idempotency-Key, retrying
// a refused request (as a careful client does) up to 100 times; it returns the event
// id, or "" if it never was accepted.
func (in *parkingIngest) post(tn *parkingTenant, due time.Time) string {
	nonce := fmt.Sprintf("%s-%d", tn.id, in.seq.Add(1))
	body := fmt.Sprintf(`{"type":"parking.test","nonce":%q}`, nonce)
	for range 100 {
		req, _ := http.NewRequest("POST", "http://"+in.s.gateway+"/v1/events", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tn.apiKey)
		req.Header.Set("Idempotency-Key", nonce)
		resp, err := in.client.Do(req)
		if err == nil {
			var ack struct{ EventID string }
			_ = json.NewDecoder(resp.Body).Decode(&ack)
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusAccepted && ack.EventID != "" {
				in.mu.Lock()
				if prev, ok := in.accepted[ack.EventID]; ok && prev != nonce {
					in.s.t.Errorf("event id %s answered for two nonces", ack.EventID)
				}
				in.accepted[ack.EventID], in.tenant[ack.EventID], in.sent[ack.EventID] = nonce, tn.id, due
				in.mu.Unlock()
				return ack.EventID
			}
		}
		in.mu.Lock()
		in.retried++
		in.mu.Unlock()
		time.Sleep(100 * time.Millisecond)
	}
	in.s.t.Errorf("an event of tenant %s was never accepted", tn.id)
	return ""
}

// paced posts rate events per second for d (or until stop is closed), round robin
// over tns, each at its due time (open loop: a late POST goes out at once), and
// returns the accepted ids.
func (in *parkingIngest) paced(tns []*parkingTenant, rate int, d time.Duration, stop <-chan struct{}) []string {
	total := int(float64(rate) * d.Seconds())
	start := time.Now()
	var (
		next atomic.Int64
		mu   sync.Mutex
		ids  = make([]string, 0, total)
		wg   sync.WaitGroup
	)
	for range min(32, total) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= total {
					return
				}
				due := start.Add(time.Duration(float64(i) / float64(rate) * float64(time.Second)))
				select {
				case <-stop:
					return
				case <-time.After(time.Until(due)):
				}
				if id := in.post(tns[i%len(tns)], due); id != "" {
					mu.Lock()
					ids = append(ids, id)
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	return ids
}

// publish publishes n events of tn straight to EVENTS as the gateway does (the same
// subject, headers, Nats-Msg-Id and queued status record), with async acks, and
// records them as accepted once acked.
func (in *parkingIngest) publish(tn *parkingTenant, n int) {
	t := in.s.t
	js, err := jetstream.New(in.s.nc, jetstream.WithPublishAsyncMaxPending(4096))
	if err != nil {
		t.Fatal(err)
	}
	type sent struct {
		id, nonce string
		ev, st    jetstream.PubAckFuture
	}
	window := make(chan sent, 4096)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for p := range window {
			for i, f := range []jetstream.PubAckFuture{p.ev, p.st} {
				select {
				case <-f.Ok():
				case err := <-f.Err():
					// As at the gateway: the worker may have written the event's status
					// before its create-only queued record arrived.
					if i == 1 && status.IsAlreadyWritten(err) {
						continue
					}
					t.Errorf("publish of event %s: %v", p.id, err)
				case <-time.After(30 * time.Second):
					t.Errorf("publish of event %s not acked within 30s", p.id)
				}
			}
			in.mu.Lock()
			in.accepted[p.id], in.tenant[p.id], in.sent[p.id] = p.nonce, tn.id, time.Now()
			in.mu.Unlock()
		}
	}()
	for range n {
		nonce := fmt.Sprintf("%s-%d", tn.id, in.seq.Add(1))
		id, now := gateway.EventIDPrefix+nuid.Next(), time.Now()
		ev := nats.NewMsg(natsconf.EventSubject(tn.id))
		ev.Header.Set(natsconf.HeaderEventID, id)
		ev.Header.Set(natsconf.HeaderTenant, tn.id)
		ev.Header.Set(natsconf.HeaderEventType, "parking.test")
		ev.Header.Set(natsconf.HeaderIngestTime, strconv.FormatInt(now.UnixNano(), 10))
		ev.Header.Set(jetstream.MsgIDHeader, tn.id+":"+nonce)
		ev.Data = fmt.Appendf(nil, `{"type":"parking.test","nonce":%q}`, nonce)
		st, err := status.QueuedMsg(status.Record{EventID: id, TenantID: tn.id, Type: "parking.test", CreatedAt: now.UTC(), UpdatedAt: now.UTC()})
		if err != nil {
			t.Fatal(err)
		}
		fe, err := js.PublishMsgAsync(ev, jetstream.WithStallWait(10*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		fs, err := js.PublishMsgAsync(st, jetstream.WithStallWait(10*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		window <- sent{id, nonce, fe, fs}
	}
	close(window)
	<-done
}

// ids returns the accepted event ids of tenantID.
func (in *parkingIngest) ids(tenantID string) []string {
	in.mu.Lock()
	defer in.mu.Unlock()
	var ids []string
	for id, tn := range in.tenant {
		if tn == tenantID {
			ids = append(ids, id)
		}
	}
	return ids
}

// parkingPhase is what parkingMeasure found of one phase's events.
type parkingPhase struct {
	throughput     float64 // first 2xx answers within the window, per second of it
	p50, p99, max  time.Duration
	delivered, all int
}

// parkingMeasure waits (up to within) until every one of ids is delivered, then
// returns the phase's throughput (ids answered 2xx within [from, to], per second of
// the window) and latency from each POST's due time to its first 2xx.
func parkingMeasure(t *testing.T, name string, in *parkingIngest, eps []*parkingEndpoint, ids []string, from, to time.Time, within time.Duration) parkingPhase {
	t.Helper()
	firstOK := func(id string) (time.Time, bool) {
		for _, ep := range eps {
			ep.mu.Lock()
			at, ok := ep.firstOK[id]
			ep.mu.Unlock()
			if ok {
				return at, true
			}
		}
		return time.Time{}, false
	}
	deadline := time.Now().Add(within)
	for {
		n := 0
		for _, id := range ids {
			if _, ok := firstOK(id); ok {
				n++
			}
		}
		if n == len(ids) {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("%s: %d of %d events of the other tenants not delivered within %s", name, len(ids)-n, len(ids), within)
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	var (
		p    = parkingPhase{all: len(ids)}
		lats []time.Duration
		in0  int
	)
	in.mu.Lock()
	defer in.mu.Unlock()
	for _, id := range ids {
		at, ok := firstOK(id)
		if !ok {
			continue
		}
		p.delivered++
		if !at.After(to) {
			in0++
		}
		lats = append(lats, at.Sub(in.sent[id]))
	}
	p.throughput = float64(in0) / to.Sub(from).Seconds()
	slices.Sort(lats)
	q := func(f float64) time.Duration {
		if len(lats) == 0 {
			return 0
		}
		return lats[min(len(lats)-1, int(math.Ceil(f*float64(len(lats))))-1)].Round(100 * time.Microsecond)
	}
	p.p50, p.p99, p.max = q(0.5), q(0.99), q(1)
	return p
}

// parkingSampler reads the deliver consumer's info every 100ms.
type parkingSampler struct {
	mu          sync.Mutex
	last        *jetstream.ConsumerInfo
	floorChange time.Time
	samples     []parkingSample
}

type parkingSample struct {
	at      time.Time
	ack     int
	pending uint64
}

func startParkingSampler(t *testing.T, cons jetstream.Consumer) *parkingSampler {
	p := &parkingSampler{floorChange: time.Now()}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			ictx, c := context.WithTimeout(ctx, 5*time.Second)
			info, err := cons.Info(ictx)
			c()
			if err == nil {
				p.mu.Lock()
				if p.last == nil || p.last.AckFloor.Stream != info.AckFloor.Stream {
					p.floorChange = time.Now()
				}
				p.last = info
				p.samples = append(p.samples, parkingSample{time.Now(), info.NumAckPending, info.NumPending})
				p.mu.Unlock()
			}
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	return p
}

func (p *parkingSampler) latest() *jetstream.ConsumerInfo {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.last
}

func (p *parkingSampler) lastFloorChange() time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.floorChange
}

// max is the highest NumAckPending sampled.
func (p *parkingSampler) max() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	m := 0
	for _, s := range p.samples {
		m = max(m, s.ack)
	}
	return m
}

type parkingSpan struct {
	maxAck     int
	maxPending uint64
	samples    int
}

// span returns the highest counts sampled within [from, to].
func (p *parkingSampler) span(from, to time.Time) parkingSpan {
	p.mu.Lock()
	defer p.mu.Unlock()
	var sp parkingSpan
	for _, s := range p.samples {
		if !s.at.Before(from) && !s.at.After(to) {
			sp.maxAck, sp.maxPending = max(sp.maxAck, s.ack), max(sp.maxPending, s.pending)
			sp.samples++
		}
	}
	return sp
}

// parkingUnparkCost times n steps of the worker's unpark loop (eachParked's direct
// get of the next copy on the tenant's parked subjects, then stale's status read), and
// reading every parked copy of the tenant with batched direct gets instead.
func parkingUnparkCost(t *testing.T, s *faultSystem, tenantID string, n int) string {
	t.Helper()
	ctx := context.Background()
	parked, err := s.js.Stream(ctx, natsconf.StreamParked)
	if err != nil {
		t.Fatal(err)
	}
	kv, err := s.js.KeyValue(ctx, natsconf.BucketStatus)
	if err != nil {
		t.Fatal(err)
	}
	st := status.NewStore(kv)
	filter := natsconf.ParkedSubjectPrefix + "*." + tenantID + ".*"
	var getTook, statusTook time.Duration
	seq, done := uint64(1), 0
	for ; done < n; done++ {
		t0 := time.Now()
		m, err := parked.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(filter))
		if err != nil {
			t.Fatalf("direct get of a parked copy: %v", err)
		}
		t1 := time.Now()
		if _, err := st.Get(ctx, tenantID, m.Header.Get(natsconf.HeaderEventID)); err != nil {
			t.Fatalf("status of a parked copy's event: %v", err)
		}
		getTook, statusTook = getTook+t1.Sub(t0), statusTook+time.Since(t1)
		seq = m.Sequence + 1
	}
	total, read := parkingBatchGet(t, s, filter, 256)
	per := func(d time.Duration) time.Duration { return (d / time.Duration(done)).Round(time.Microsecond) }
	return fmt.Sprintf("%d copies: direct get %s each, status read %s each, so %s per copy in sequence (%.0fs for all %d); "+
		"direct gets in batches of 256 (the same API and permission) read all %d in %.1fs (%.0f/s)",
		done, per(getTook), per(statusTook), per(getTook+statusTook), (per(getTook+statusTook) * time.Duration(total)).Seconds(), total,
		total, read.Seconds(), float64(total)/read.Seconds())
}

// parkingBatchGet reads every message of PARKED on filter with batched direct gets
// ($JS.API.DIRECT.GET with next_by_subj and batch, each batch ending with a 204
// status) and returns how many and how long it took.
func parkingBatchGet(t *testing.T, s *faultSystem, filter string, batch int) (int, time.Duration) {
	t.Helper()
	inbox := nats.NewInbox()
	sub, err := s.nc.SubscribeSync(inbox)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	start := time.Now()
	n, seq := 0, uint64(1)
	for {
		req := fmt.Sprintf(`{"seq":%d,"next_by_subj":%q,"batch":%d}`, seq, filter, batch)
		if err := s.nc.PublishRequest("$JS.API.DIRECT.GET."+natsconf.StreamParked, inbox, []byte(req)); err != nil {
			t.Fatal(err)
		}
		got := 0
		for {
			m, err := sub.NextMsg(10 * time.Second)
			if err != nil {
				t.Fatalf("batched direct get on %s: %v", filter, err)
			}
			if st := m.Header.Get("Status"); st != "" {
				break // 204: end of this batch; 404: nothing (more) on the filter
			}
			got++
			if seq, err = strconv.ParseUint(m.Header.Get(jetstream.SequenceHeader), 10, 64); err != nil {
				t.Fatalf("batched direct get: no sequence: %v", m.Header)
			}
			seq++
		}
		if got == 0 {
			return n, time.Since(start)
		}
		n += got
	}
}

// parkingCount is the number of messages of stream on subjects matching filter (the
// pending count of an ordered consumer on it, which reads none of them).
func parkingCount(t *testing.T, s *faultSystem, stream, filter string) uint64 {
	t.Helper()
	ctx := context.Background()
	c, err := s.js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{filter}})
	if err != nil {
		t.Fatal(err)
	}
	info, err := c.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return info.NumPending
}

// procRSS and procPeakRSS are a process's VmRSS and VmHWM in bytes (0 if unknown).
func procRSS(pid int) uint64     { return procStatusField(pid, "VmRSS:") }
func procPeakRSS(pid int) uint64 { return procStatusField(pid, "VmHWM:") }

func procStatusField(pid int, field string) uint64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), field); ok {
			kb, _ := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }

// parkingUnparkLog returns the worker's log lines about bringing parked events back.
func parkingUnparkLog(out string) string {
	var lines []string
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "parked events") || strings.Contains(l, "endpoint answers again") {
			lines = append(lines, strings.TrimSpace(l))
		}
	}
	if len(lines) == 0 {
		return "no unpark logged"
	}
	return strings.Join(lines, " ")
}

// parkingMetrics scrapes the worker's parking metrics and its retry lateness p99.
func parkingMetrics(url string) string {
	resp, err := http.Get(url)
	if err != nil {
		return fmt.Sprintf("metrics unavailable: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var (
		parts   []string
		bounds  []float64
		buckets []float64
	)
	for _, l := range strings.Split(string(body), "\n") {
		switch {
		case strings.HasPrefix(l, "edgehook_events_parked_total"), strings.HasPrefix(l, "edgehook_events_unparked_total"),
			strings.HasPrefix(l, "edgehook_parked_copies_stale_total"), strings.HasPrefix(l, "edgehook_breaker_transitions_total"),
			strings.HasPrefix(l, "edgehook_deliveries_total"), strings.HasPrefix(l, "edgehook_retry_lateness_seconds_count"):
			parts = append(parts, strings.TrimPrefix(l, "edgehook_"))
		case strings.HasPrefix(l, `edgehook_retry_lateness_seconds_bucket{le="`):
			le, count, _ := strings.Cut(strings.TrimPrefix(l, `edgehook_retry_lateness_seconds_bucket{le="`), `"} `)
			b, err1 := strconv.ParseFloat(le, 64)
			c, err2 := strconv.ParseFloat(count, 64)
			if err1 == nil && err2 == nil {
				bounds, buckets = append(bounds, b), append(buckets, c)
			}
		}
	}
	if n := len(buckets); n > 0 && buckets[n-1] > 0 {
		rank, lower, below := 0.99*buckets[n-1], 0.0, 0.0
		for i, ub := range bounds {
			if buckets[i] >= rank {
				p99 := ub
				if !math.IsInf(ub, 1) && buckets[i] > below {
					p99 = lower + (ub-lower)*(rank-below)/(buckets[i]-below)
				} else if math.IsInf(ub, 1) {
					p99 = lower
				}
				parts = append(parts, fmt.Sprintf("retry lateness p99 %.0f ms (in its (%g, %g] s bucket)", p99*1000, lower, ub))
				break
			}
			lower, below = ub, buckets[i]
		}
	}
	return strings.Join(parts, ", ")
}

// parkingFigures are what parkingAccount counted.
type parkingFigures struct {
	accepted, delivered, dead, duplicates int
}

// parkingAccount checks, as account does (reading the status records in parallel), that
// every accepted event is delivered (its endpoint answered 2xx to its webhook-id and
// its status says delivered) or dead-lettered; that no webhook came for an event that
// was not accepted or with another event's body; and that every signature verified.
func parkingAccount(t *testing.T, s *faultSystem, in *parkingIngest, tenants []*parkingTenant) parkingFigures {
	t.Helper()
	start := time.Now()
	defer func() { t.Logf("accounting took %.1fs", time.Since(start).Seconds()) }()
	ctx := context.Background()
	// The status records, read by key from 32 goroutines: a consumer filtered on the
	// records' subjects costs the server minutes here, among the attempt logs'
	// hundreds of thousands of subjects.
	kv, err := s.js.KeyValue(ctx, natsconf.BucketStatus)
	if err != nil {
		t.Fatal(err)
	}
	st := status.NewStore(kv)
	in.mu.Lock()
	ids := make([]string, 0, len(in.accepted))
	for id := range in.accepted {
		ids = append(ids, id)
	}
	in.mu.Unlock()
	var (
		records = make(map[string]status.Record, len(ids))
		recMu   sync.Mutex
		next    atomic.Int64
		wg      sync.WaitGroup
	)
	for range 32 {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < len(ids); i = int(next.Add(1) - 1) {
				in.mu.Lock()
				tenant := in.tenant[ids[i]]
				in.mu.Unlock()
				rec, err := st.Get(ctx, tenant, ids[i])
				if err != nil && !errors.Is(err, status.ErrNotFound) {
					t.Errorf("status of %s: %v", ids[i], err)
					return
				}
				recMu.Lock()
				records[ids[i]] = rec
				recMu.Unlock()
			}
		})
	}
	wg.Wait()
	stream, err := s.js.Stream(ctx, natsconf.StreamDLQ)
	if err != nil {
		t.Fatal(err)
	}
	dead := map[string]bool{}
	if err := dlq.Scan(ctx, stream, dlq.Filter{}, func(d dlq.DeadLetter) error {
		dead[d.EventID] = true
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	var f parkingFigures
	in.mu.Lock()
	defer in.mu.Unlock()
	f.accepted = len(in.accepted)
	answered := map[string]int{}
	for _, tn := range tenants {
		tn.ep.mu.Lock()
		for id, n := range tn.ep.ok {
			answered[id] += n
			if _, ok := in.accepted[id]; !ok {
				t.Errorf("webhook-id %s delivered but never answered 202", id)
			}
		}
		for id, nonce := range tn.ep.nonces {
			if want, ok := in.accepted[id]; ok && want != nonce {
				t.Errorf("webhook-id %s carried nonce %s, accepted as %s", id, nonce, want)
			}
		}
		if len(tn.ep.conflicts) > 0 {
			t.Errorf("webhook-ids with two different bodies: %v", tn.ep.conflicts)
		}
		if tn.ep.badSigs > 0 {
			t.Errorf("%d webhooks to tenant %s failed signature verification", tn.ep.badSigs, tn.id)
		}
		tn.ep.mu.Unlock()
	}
	var lost []string
	for id := range in.accepted {
		switch {
		case answered[id] > 0 && records[id].Status == status.Delivered:
			f.delivered++
			f.duplicates += answered[id] - 1
		case dead[id]:
			f.dead++
		default:
			lost = append(lost, id)
		}
	}
	if len(lost) > 0 {
		t.Errorf("%d accepted events neither delivered nor dead-lettered (LOST), e.g. %s: status %+v, answered %d",
			len(lost), lost[0], records[lost[0]], answered[lost[0]])
	}
	return f
}

// parkingWait polls cond every 10ms until it holds or limit passes.
func parkingWait(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", limit, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
