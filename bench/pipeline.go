package bench

import (
	"context"
	"fmt"
	"maps"
	"net"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/edgehook/edgehook/bench/cputime"
	"github.com/edgehook/edgehook/webhook"
)

const (
	latencyPipeline  = "POST /v1/events sent (intended time at a fixed rate) to the signed webhook verified at the bench's endpoint, same clock"
	ceilingsCombined = "JetStream async publish and a bare HTTP server under the same load, combined (one event costs both)"
)

// sinkTolerance is how old a webhook's timestamp the pipeline's endpoint accepts.
const sinkTolerance = 5 * time.Minute

// PipelineFigures are the pipeline scenario's own figures.
type PipelineFigures struct {
	// IngestPerS is the events the gateway accepted per second of the window, and
	// DeliveredInWindow those verified at the endpoint within it (ThroughputPerS is
	// DeliveredInWindow per second: delivery keeping pace with ingest).
	IngestPerS        float64 `json:"ingest_per_s"`
	DeliveredInWindow int64   `json:"delivered_in_window"`
	// CPUMsByProcess is each of the system's processes' share of Result.CPUMsPerEvent.
	// CPUIncludesBench is true when the system runs in the bench's process, whose
	// figure then includes the load generator and endpoint; otherwise
	// BenchCPUMsPerEvent is the bench's own, apart.
	CPUMsByProcess     map[string]float64 `json:"cpu_ms_per_event_by_process"`
	BenchCPUMsPerEvent float64            `json:"bench_cpu_ms_per_event"`
	CPUIncludesBench   bool               `json:"cpu_includes_bench"`
	// SinkRejected counts webhooks the endpoint refused (bad signature or headers).
	SinkRejected int64 `json:"sink_rejected"`
	// IngestP50Ms and IngestP99Ms are the ingest part of the e2e latency: from the
	// send time (the intended one at a fixed rate) to the 202, so what the e2e figures
	// add to them is delivery's share.
	IngestP50Ms float64 `json:"ingest_p50_ms"`
	IngestP99Ms float64 `json:"ingest_p99_ms"`
}

// note is the pipeline's figures under the table; cpu is the result's CPUMsPerEvent.
func (f *PipelineFigures) note(cpu float64) string {
	var b strings.Builder
	fmt.Fprintf(&b, "; ingest %.0f/s (202 p50 %.3f ms, p99 %.3f ms), %d delivered in the window; cpu %.4f ms/event (",
		f.IngestPerS, f.IngestP50Ms, f.IngestP99Ms, f.DeliveredInWindow, cpu)
	for i, name := range slices.Sorted(maps.Keys(f.CPUMsByProcess)) {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s %.4f", name, f.CPUMsByProcess[name])
	}
	if f.CPUIncludesBench {
		b.WriteString("; the system runs in the bench's process: load generator included)")
	} else {
		fmt.Fprintf(&b, "), bench apart %.4f ms/event", f.BenchCPUMsPerEvent)
	}
	return b.String()
}

// CeilingFigures are the ceilings of ingest measured in the same run: raw JetStream
// async publish, a bare HTTP server under the same load, and the two combined (an
// event through the gateway costs both, on the same CPUs: 1/(1/a + 1/b)); with the
// ingest rate's ratio to each.
type CeilingFigures struct {
	JetStreamCeilingPerS float64 `json:"jetstream_ceiling_per_s"`
	HTTPCeilingPerS      float64 `json:"http_ceiling_per_s"`
	CombinedCeilingPerS  float64 `json:"combined_ceiling_per_s"`
	RatioJetStream       float64 `json:"ratio_jetstream"`
	RatioHTTP            float64 `json:"ratio_http"`
	RatioCombined        float64 `json:"ratio_combined"`
}

// newCeilingFigures relates the ingest rate to the two ceilings and their combination.
func newCeilingFigures(rate, jetStream, http float64) *CeilingFigures {
	f := &CeilingFigures{JetStreamCeilingPerS: round(jetStream, 1), HTTPCeilingPerS: round(http, 1)}
	if jetStream > 0 && http > 0 {
		f.CombinedCeilingPerS = round(1/(1/jetStream+1/http), 1)
		f.RatioJetStream = round(rate/jetStream, 3)
		f.RatioHTTP = round(rate/http, 3)
		f.RatioCombined = round(rate/f.CombinedCeilingPerS, 3)
	}
	return f
}

func (f *CeilingFigures) note() string {
	return fmt.Sprintf("; ceilings: jetstream %.0f/s (ratio %.3f), http %.0f/s (%.3f), combined %.0f/s (%.3f)",
		f.JetStreamCeilingPerS, f.RatioJetStream, f.HTTPCeilingPerS, f.RatioHTTP, f.CombinedCeilingPerS, f.RatioCombined)
}

// ingestCeilings measures both ingest ceilings against s, the HTTP one first: the
// JetStream one leaves a scratch stream being deleted behind.
func (b *Bench) ingestCeilings(ctx context.Context, s *system) (jetStream, http float64, err error) {
	if http, err = b.httpCeiling(ctx, b.cfg.CeilingDuration); err != nil {
		return 0, 0, err
	}
	jetStream, err = b.publishCeiling(ctx, s, b.cfg.PayloadBytes, b.cfg.CeilingDuration)
	return jetStream, http, err
}

// pipeline measures sustained ingest with delivery running: POST /v1/events flat out
// (or at c.Rate) while the worker delivers every event to an endpoint in the bench
// that verifies its signature and answers 200, so no receiver's cost is in the
// system's figures. It reports the delivery rate during the window, the e2e latency
// of each event, and the CPU time of each of the system's processes per delivered
// event, read from /proc; flat out, the ingest rate against the JetStream and HTTP
// ceilings measured afterwards.
func (b *Bench) pipeline(ctx context.Context, c Case) (Result, error) {
	s, release, err := b.open(ctx, Needs{Worker: true})
	if err != nil {
		return Result{}, err
	}
	defer release()
	var verified counters
	m := newMatcher(&verified)
	sink, err := startSink(m.verify)
	if err != nil {
		return Result{}, err
	}
	defer sink.close()
	t, err := s.createTenant(ctx, sink.url+"/webhooks/{tenantId}")
	if err != nil {
		return Result{}, err
	}
	sink.secret.Store(&t.Secret)

	load, body, err := b.warmIngest(ctx, s, t)
	if err != nil {
		return Result{}, err
	}
	defer load.close()

	var cnt counters
	newReq := func() requester {
		return &ingestPost{auth: "Bearer " + t.APIKey, body: body, onAccepted: m.accept}
	}
	stop := progressOf(b.cfg.Progress, "pipeline "+c.String()+" (delivered)", &verified.events, &cnt.errors)
	cpu0, err := s.cpuSnapshot()
	if err != nil {
		stop()
		return Result{}, err
	}
	self0, start := cputime.Self(), time.Now()
	m.window(start, start.Add(b.cfg.Duration))
	ingestLat := load.run(ctx, NewPacer(start, c.Rate, b.cfg.Duration), newReq, &cnt)
	window := time.Since(start)
	drain(ctx, m, b.cfg.DrainTimeout)
	cpu1, err := s.cpuSnapshot()
	self := cputime.Self() - self0
	stop()
	if err != nil {
		return Result{}, err
	}

	lost := m.outstanding()
	matched, inWindow, lat := m.results()
	accepted := matched + int64(lost)
	f := &PipelineFigures{
		IngestPerS:        round(float64(accepted)/window.Seconds(), 1),
		DeliveredInWindow: inWindow,
		CPUMsByProcess:    map[string]float64{},
		CPUIncludesBench:  len(s.Processes) == 0,
		SinkRejected:      sink.rejected.Load(),
		IngestP50Ms:       ms(ingestLat.Percentile(50)),
		IngestP99Ms:       ms(ingestLat.Percentile(99)),
	}
	perEvent := func(d time.Duration) float64 {
		if matched == 0 {
			return 0
		}
		return round(float64(d)/float64(time.Millisecond)/float64(matched), 4)
	}
	var total time.Duration
	for name, d := range cpu1 {
		d -= cpu0[name]
		total += d
		f.CPUMsByProcess[name] = perEvent(d)
	}
	if !f.CPUIncludesBench {
		f.BenchCPUMsPerEvent = perEvent(self)
	}

	var r Result
	if c.Rate == 0 {
		jetStream, http, err := b.ingestCeilings(ctx, s)
		if err != nil {
			return Result{}, err
		}
		r.CeilingFigures = newCeilingFigures(f.IngestPerS, jetStream, http)
		r.setThroughput(inWindow, window, r.CeilingFigures.CombinedCeilingPerS, ceilingsCombined)
	} else {
		r.setThroughput(inWindow, window, f.IngestPerS, ceilingAccepted)
	}
	r.Events = matched
	r.PipelineFigures = f
	r.CPUMsPerEvent = perEvent(total)
	r.setCPU(self)
	r.setErrors(&cnt, lost, "accepted events not delivered within "+b.cfg.DrainTimeout.String())
	r.Errors += f.SinkRejected
	if f.SinkRejected > 0 && r.FirstError == "" {
		r.FirstError = fmt.Sprintf("the endpoint refused %d webhooks as badly signed", f.SinkRejected)
	}
	r.setLatency(latencyPipeline, lat)
	return r, nil
}

// cpuSnapshot is the CPU time used so far by each of the system's processes, or, for
// a system in the bench's own process, by that process.
func (s *system) cpuSnapshot() (map[string]time.Duration, error) {
	out := make(map[string]time.Duration, max(len(s.Processes), 1))
	if len(s.Processes) == 0 {
		out["bench+system"] = cputime.Self()
		return out, nil
	}
	for _, p := range s.Processes {
		d, err := cputime.Of(p.PID)
		if err != nil {
			return nil, fmt.Errorf("system process %s: %w", p.Name, err)
		}
		out[p.Name] = d
	}
	return out, nil
}

// sink is the pipeline's webhook endpoint on 127.0.0.1: it verifies each webhook's
// signature with the tenant's secret (set once the tenant exists; until then it
// refuses), tells onVerified its webhook-id and arrival time, and answers 200.
type sink struct {
	url      string
	srv      *fasthttp.Server
	served   chan error
	secret   atomic.Pointer[webhook.Secret]
	rejected atomic.Int64
}

func startSink(onVerified func(id string, at time.Time)) (*sink, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("webhook endpoint: %w", err)
	}
	k := &sink{url: "http://" + ln.Addr().String(), served: make(chan error, 1)}
	k.srv = &fasthttp.Server{
		Handler: func(ctx *fasthttp.RequestCtx) {
			now := time.Now()
			secret := k.secret.Load()
			h := &ctx.Request.Header
			id := string(h.Peek(webhook.HeaderID))
			if secret == nil || webhook.Verify(id, string(h.Peek(webhook.HeaderTimestamp)), string(h.Peek(webhook.HeaderSignature)),
				ctx.Request.Body(), now, sinkTolerance, *secret) != nil {
				k.rejected.Add(1)
				ctx.SetStatusCode(fasthttp.StatusUnauthorized)
				return
			}
			onVerified(id, now)
			ctx.SetStatusCode(fasthttp.StatusOK)
		},
		Name:                 "edgehook-bench-endpoint",
		NoDefaultContentType: true,
		CloseOnShutdown:      true,
	}
	go func() { k.served <- k.srv.Serve(ln) }()
	return k, nil
}

func (k *sink) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = k.srv.ShutdownWithContext(ctx)
	<-k.served
}
