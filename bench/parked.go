package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/edgehook/edgehook/natsconf"
)

// The fairness scenario's parked phase: one tenant's endpoint is dead (its port
// refuses connections, the cheapest failure, so the worker's breaker parks it within
// a few attempts and the phase measures parking itself rather than HTTP timeouts),
// and Parked events of that tenant are published straight into EVENTS, as the
// gateway would, and left to the worker to park. Once every one of them has left the
// deliver consumer, the well-behaved tenants are measured as in the other phases, with
// the dead tenant sending its equal share through the gateway, so parking goes on.

// parkStall ends the wait for the backlog to be parked when the consumer's ack floor
// has not moved for it.
const parkStall = 60 * time.Second

// deadEndpoint is the parked phase's dead tenant and what was measured of it.
type deadEndpoint struct {
	tenant    tenant
	acceptedN atomic.Int64 // its events the gateway accepted in the window
	figures   parkedFigures
	notParked int64 // backlog events still in the consumer when the wait gave up
	firstErr  string

	// On a shared system, a sink answering 200 replaces the dead target afterwards.
	sink     *fasthttp.Server
	sinkDone chan error
	answered atomic.Int64
}

// parkedFigures are the parked phase's own measurements.
type parkedFigures struct {
	events    int64         // backlog events acked into EVENTS
	publish   time.Duration // publishing them
	park      time.Duration // first publish to the last of them out of the consumer
	rssBefore uint64        // process VmRSS before the backlog
	rss, peak uint64        // VmRSS and VmHWM at the backlog, after the window
	natsMem   int64         // the NATS server's varz mem, -1 unknown
	store     uint64        // the account's JetStream storage bytes
	parkedMsg uint64        // messages on PARKED
	// Retry lateness observed by the worker while parking and in the window.
	latParking, latWindow histogram
}

// parkAtDeadEndpoint creates the dead tenant, publishes Parked events for it and
// waits until the deliver consumer has settled every one of them (the worker parked
// them), which sampler watches.
func (b *Bench) parkAtDeadEndpoint(ctx context.Context, s *system, sampler *pendingSampler) (*deadEndpoint, error) {
	addr, err := refusedAddr()
	if err != nil {
		return nil, err
	}
	t, err := s.createTenant(ctx, "http://"+addr+"/dead/{tenantId}")
	if err != nil {
		return nil, err
	}
	d := &deadEndpoint{tenant: t}
	d.figures.rssBefore, _ = processRSS()
	events, err := s.js.Stream(ctx, natsconf.StreamEvents)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", natsconf.StreamEvents, err)
	}
	info, err := events.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", natsconf.StreamEvents, err)
	}
	seq0 := info.State.LastSeq
	lat0 := gatherHistogram(s.WorkerMetrics, latenessMetric)

	n := b.cfg.Parked
	pub, err := newEventPublisher(s, t.ID, b.runID+"_dead", b.cfg.PayloadBytes, n)
	if err != nil {
		return nil, err
	}
	defer pub.close()
	var settled counters
	stop := progress(b.cfg.Progress, fmt.Sprintf("fairness: park %d at a dead endpoint", n), &settled)
	defer stop()
	start := time.Now()
	published := make(chan error, 1)
	go func() {
		for i := 0; i < n && ctx.Err() == nil; i++ {
			if err := pub.publish(time.Now()); err != nil {
				published <- err
				return
			}
		}
		published <- pub.wait(ctx)
	}()

	var (
		lastSeq    uint64 // of EVENTS once the backlog is acked; 0 before
		floor      uint64
		lastChange = time.Now()
	)
	for {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case err := <-published:
			if err != nil {
				return nil, fmt.Errorf("publish the backlog: %w", err)
			}
			d.figures.publish = time.Since(start)
			if info, err = events.Info(ctx); err != nil {
				return nil, fmt.Errorf("stream %s: %w", natsconf.StreamEvents, err)
			}
			lastSeq = info.State.LastSeq
		case <-time.After(sampleEvery):
		}
		ci := sampler.latest()
		if ci == nil {
			continue
		}
		if f := ci.AckFloor.Stream; f != floor {
			floor, lastChange = f, time.Now()
		}
		settled.events.Store(int64(min(floor-min(floor, seq0), uint64(n))))
		if lastSeq > 0 && floor >= lastSeq {
			break
		}
		if time.Since(lastChange) > parkStall {
			d.notParked = int64(lastSeq - min(floor, lastSeq))
			d.firstErr = fmt.Sprintf("the deliver consumer's ack floor stopped at %d of the backlog's %d for %s: events not parked", floor, lastSeq, parkStall)
			break
		}
	}
	d.figures.park = time.Since(start)
	d.figures.events = int64(n)
	d.figures.latParking = gatherHistogram(s.WorkerMetrics, latenessMetric).minus(lat0)
	return d, nil
}

// accepted counts an event accepted for the dead tenant in the window.
func (d *deadEndpoint) accepted(string, time.Time) { d.acceptedN.Add(1) }

// lateness is the worker's retry lateness histogram now.
func (d *deadEndpoint) lateness(s *system) histogram {
	return gatherHistogram(s.WorkerMetrics, latenessMetric)
}

// atBacklog records the process's memory, the server's and the storage with the
// backlog parked, and the retry lateness since lat0.
func (d *deadEndpoint) atBacklog(ctx context.Context, s *system, lat0 histogram) {
	f := &d.figures
	f.latWindow = d.lateness(s).minus(lat0)
	f.rss, _ = processRSS()
	f.peak, _ = processPeakRSS()
	f.natsMem = -1
	if v, err := s.varz(ctx); err == nil {
		f.natsMem = v.Mem
	}
	if ai, err := s.js.AccountInfo(ctx); err == nil {
		f.store = ai.Store
	}
	if st, err := s.js.Stream(ctx, natsconf.StreamParked); err == nil {
		if info, err := st.Info(ctx); err == nil {
			f.parkedMsg = info.State.Msgs
		}
	}
}

// revive points the dead tenant at a sink that answers 200 (a config change, which
// brings its parked events back at once) and waits, as the hanging phase does, until
// the sink has answered as many requests as the tenant has events, nothing came for
// stallTimeout, or within passed: a shared system is not left holding them.
func (d *deadEndpoint) revive(ctx context.Context, s *system, within time.Duration) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		s.log("no sink for the dead tenant's parked events; they stay parked", "tenant", d.tenant.ID, "error", err)
		return
	}
	d.sink = &fasthttp.Server{
		Handler:              func(*fasthttp.RequestCtx) { d.answered.Add(1) },
		Name:                 "edgehook-bench-sink",
		NoDefaultContentType: true,
		CloseOnShutdown:      true,
	}
	d.sinkDone = make(chan error, 1)
	go func() { d.sinkDone <- d.sink.Serve(ln) }()
	url := "http://" + ln.Addr().String() + "/sink/{tenantId}"
	if err := s.admin(ctx, "PATCH", "/v1/tenants/"+d.tenant.ID, map[string]string{"targetUrl": url}, nil); err != nil {
		s.log("could not point the dead tenant at a sink; its parked events stay parked", "tenant", d.tenant.ID, "error", err)
		return
	}
	var total atomic.Int64
	total.Store(d.figures.events + d.acceptedN.Load())
	lingerFor(ctx, within, &d.answered, &total)
}

// close stops the sink, if revive started one.
func (d *deadEndpoint) close() {
	if d.sink == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = d.sink.ShutdownWithContext(ctx)
	<-d.sinkDone
}

// refusedAddr returns a loopback address nothing listens on (it was free a moment
// ago), so connections to it are refused.
func refusedAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("dead endpoint: %w", err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		return "", fmt.Errorf("dead endpoint: %w", err)
	}
	return addr, nil
}

// errNoMonitor is varz's error for a target without NATSMonitorURL.
var errNoMonitor = errors.New("no NATS monitoring URL")
