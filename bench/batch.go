package bench

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/edgehook/edgehook/bench/cputime"
)

// ScenarioBatch is POST /v1/events/batch against single-event ingest measured on the
// same system in the same run.
const ScenarioBatch = "batch"

// BatchSize is the number of events in each batch the batch scenario sends.
const BatchSize = 100

// maxBatchConnections caps the batch load's connections: each in-flight batch is one
// of the stream's atomic batches in flight, which JetStream limits to 50 per stream
// by default.
const maxBatchConnections = 16

// latencyBatch is what the batch scenario's percentiles measure.
const latencyBatch = "POST /v1/events/batch of 100 events until its 202 (all durable), from the intended send time at a fixed rate"

// ceilingSingleEvents names the batch scenario's comparison.
const ceilingSingleEvents = "single-event POST /v1/events, flat out, same system and run"

// BatchFigures are the batch scenario's own figures: the single-event ingest it is
// compared with, measured just before it on the same system.
type BatchFigures struct {
	BatchSize int `json:"batch_size"`
	// BatchConnections is how many connections sent batches.
	BatchConnections int `json:"batch_connections"`
	// BatchesPerS is accepted batches per second.
	BatchesPerS float64 `json:"batches_per_s"`
	// SingleEventsPerS and SingleCPUMicrosPerEvent are single-event ingest's
	// throughput and CPU per event; CPURatio is the batch's CPU per event over it.
	SingleEventsPerS        float64 `json:"single_events_per_s"`
	SingleCPUMicrosPerEvent float64 `json:"single_cpu_us_per_event"`
	CPURatio                float64 `json:"cpu_ratio"`
	// SystemCPUMicrosPerEvent, SingleSystemCPUMicrosPerEvent and SystemCPURatio are the
	// same for the system's named processes (--system-pid, read from /proc), when the
	// system runs apart from the bench; the figures above are then the bench's own.
	// They count all the processes do: under `edgehook up`, its worker delivering the
	// events to the receiver as well, the single events' backlog partly in the batch
	// window.
	SystemCPUMicrosPerEvent       float64 `json:"system_cpu_us_per_event,omitempty"`
	SingleSystemCPUMicrosPerEvent float64 `json:"single_system_cpu_us_per_event,omitempty"`
	SystemCPURatio                float64 `json:"system_cpu_ratio,omitempty"`
}

func (f *BatchFigures) note() string {
	n := fmt.Sprintf("; batches of %d over %d connections: %.0f batches/s; single-event ingest %.0f events/s at %.1f µs CPU/event (batch CPU/event ratio %.3f)",
		f.BatchSize, f.BatchConnections, f.BatchesPerS, f.SingleEventsPerS, f.SingleCPUMicrosPerEvent, f.CPURatio)
	if f.SystemCPURatio > 0 {
		n += fmt.Sprintf("; system processes %.1f µs/event in batches, %.1f single (ratio %.3f)",
			f.SystemCPUMicrosPerEvent, f.SingleSystemCPUMicrosPerEvent, f.SystemCPURatio)
	}
	return n
}

// systemCPU is the CPU time the system's named processes used so far (0 when it runs
// in the bench's process).
func (s *system) systemCPU() (time.Duration, error) {
	if len(s.Processes) == 0 {
		return 0, nil
	}
	snap, err := s.cpuSnapshot()
	var total time.Duration
	for _, d := range snap {
		total += d
	}
	return total, err
}

// batch measures batch ingest flat out (or at c.Rate events/s) next to single-event
// ingest flat out, one after the other on one system without a worker, each for the
// configured duration, and reports events/s and CPU per event of both.
func (b *Bench) batch(ctx context.Context, c Case) (Result, error) {
	s, release, err := b.open(ctx, Needs{})
	if err != nil {
		return Result{}, err
	}
	defer release()
	t, err := s.createTenant(ctx, s.receiverTarget())
	if err != nil {
		return Result{}, err
	}
	base := strings.TrimRight(s.APIURL, "/")
	body := payload(b.cfg.PayloadBytes)
	auth := "Bearer " + t.APIKey

	// Single events first, as the ingest scenario sends them.
	single, err := newHTTPLoad(base+"/v1/events", b.cfg.Connections)
	if err != nil {
		return Result{}, err
	}
	defer single.close()
	newSingle := func() requester { return &ingestPost{auth: auth, body: body} }
	if err := single.warmUp(ctx, newSingle); err != nil {
		return Result{}, err
	}
	var one counters
	stop := progress(b.cfg.Progress, c.String()+" (single events)", &one)
	sys0, err := s.systemCPU()
	if err != nil {
		stop()
		return Result{}, err
	}
	cpu0, start := cputime.Self(), time.Now()
	single.run(ctx, NewPacer(start, 0, b.cfg.Duration), newSingle, &one)
	singleWindow, singleCPU := time.Since(start), cputime.Self()-cpu0
	sys1, err := s.systemCPU()
	stop()
	if err != nil {
		return Result{}, err
	}
	singleSys := sys1 - sys0
	if one.events.Load() == 0 {
		return Result{}, fmt.Errorf("no single event accepted: %s", one.firstError())
	}

	conns := min(b.cfg.Connections, maxBatchConnections)
	batches, err := newHTTPLoad(base+"/v1/events/batch", conns)
	if err != nil {
		return Result{}, err
	}
	defer batches.close()
	batchBody := batchPayload(body, BatchSize)
	var events atomic.Int64
	newBatch := func() requester { return &batchPost{auth: auth, body: batchBody, events: &events} }
	if err := batches.warmUp(ctx, newBatch); err != nil {
		return Result{}, err
	}
	events.Store(0)
	rate := 0
	if c.Rate > 0 {
		rate = max(1, c.Rate/BatchSize)
	}
	var reqs counters
	stop = progressOf(b.cfg.Progress, c.String()+" (events in batches)", &events, &reqs.errors)
	if sys0, err = s.systemCPU(); err != nil {
		stop()
		return Result{}, err
	}
	cpu0, start = cputime.Self(), time.Now()
	lat := batches.run(ctx, NewPacer(start, rate, b.cfg.Duration), newBatch, &reqs)
	window, cpu := time.Since(start), cputime.Self()-cpu0
	sys1, err = s.systemCPU()
	stop()
	if err != nil {
		return Result{}, err
	}

	var r Result
	singlePerS := float64(one.events.Load()) / singleWindow.Seconds()
	r.setThroughput(events.Load(), window, singlePerS, ceilingSingleEvents)
	r.setCPU(cpu)
	r.Errors, r.FirstError = reqs.errors.Load(), reqs.firstError()
	r.setLatency(latencyBatch, lat)
	f := &BatchFigures{
		BatchSize: BatchSize, BatchConnections: conns,
		BatchesPerS:             round(float64(reqs.events.Load())/window.Seconds(), 1),
		SingleEventsPerS:        round(singlePerS, 1),
		SingleCPUMicrosPerEvent: round(float64(singleCPU)/float64(time.Microsecond)/float64(one.events.Load()), 1),
	}
	if f.SingleCPUMicrosPerEvent > 0 {
		f.CPURatio = round(r.CPUMicrosPerEvent/f.SingleCPUMicrosPerEvent, 3)
	}
	if len(s.Processes) > 0 && r.Events > 0 {
		perEvent := func(d time.Duration, n int64) float64 {
			return round(float64(d)/float64(time.Microsecond)/float64(n), 1)
		}
		f.SystemCPUMicrosPerEvent = perEvent(sys1-sys0, r.Events)
		f.SingleSystemCPUMicrosPerEvent = perEvent(singleSys, one.events.Load())
		if f.SingleSystemCPUMicrosPerEvent > 0 {
			f.SystemCPURatio = round(f.SystemCPUMicrosPerEvent/f.SingleSystemCPUMicrosPerEvent, 3)
		}
	}
	r.BatchFigures = f
	return r, nil
}

// batchPayload is a batch body {"events":[{"event":<event>}, ...]} of n copies of
// event.
func batchPayload(event []byte, n int) []byte {
	b := make([]byte, 0, n*(len(event)+12)+16)
	b = append(b, `{"events":[`...)
	for i := range n {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"event":`...)
		b = append(b, event...)
		b = append(b, '}')
	}
	return append(b, "]}"...)
}

// batchPost is a requester of POST /v1/events/batch; each accepted batch adds its
// events to events.
type batchPost struct {
	auth   string
	body   []byte
	events *atomic.Int64
}

func (p *batchPost) fill(req *fasthttp.Request, _ int64) {
	req.Header.Set(fasthttp.HeaderAuthorization, p.auth)
	req.Header.SetContentType("application/json")
	req.SetBodyRaw(p.body)
}

func (p *batchPost) check(resp *fasthttp.Response, _ int64, _, _ time.Time) error {
	if resp.StatusCode() != fasthttp.StatusAccepted {
		return statusError(resp, fasthttp.StatusAccepted)
	}
	if n := strings.Count(string(resp.Body()), `"eventId"`); n != BatchSize {
		return fmt.Errorf("202 with %d event ids for a batch of %d", n, BatchSize)
	}
	p.events.Add(BatchSize)
	return nil
}
