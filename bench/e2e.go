package bench

import (
	"context"
	"strings"
	"time"

	"github.com/edgehook/edgehook/bench/cputime"
	"github.com/edgehook/edgehook/natsconf"
)

// e2e measures end-to-end latency: the bench ingests through the API and follows
// RECEIVED, pairing each accepted event with its verification, and records the time
// from the event's send time (its intended time at a fixed rate) to the receiver's
// Edgehook-Verify-Time. Both are this machine's clock. The send time is used rather
// than the 202's arrival because on a local system the receiver usually verifies the
// webhook before the client has read the 202.
func (b *Bench) e2e(ctx context.Context, c Case) (Result, error) {
	s, release, err := b.open(ctx, Needs{Worker: true})
	if err != nil {
		return Result{}, err
	}
	defer release()
	t, err := s.createTenant(ctx, s.receiverTarget())
	if err != nil {
		return Result{}, err
	}
	var cnt, verified counters // requests; verified events
	m := newMatcher(&verified)
	stopFollow, err := followReceived(ctx, s.js, []string{natsconf.ReceivedSubject(t.ID)}, m)
	if err != nil {
		return Result{}, err
	}
	defer stopFollow()

	load, body, err := b.warmIngest(ctx, s, t)
	if err != nil {
		return Result{}, err
	}
	defer load.close()
	newReq := func() requester {
		return &ingestPost{auth: "Bearer " + t.APIKey, body: body, onAccepted: m.accept}
	}
	stop := progressOf(b.cfg.Progress, "e2e "+c.String()+" (verified)", &verified.events, &cnt.errors)
	cpu0, start := cputime.Self(), time.Now()
	m.window(start, start.Add(b.cfg.Duration))
	load.run(ctx, NewPacer(start, c.Rate, b.cfg.Duration), newReq, &cnt)
	window := time.Since(start)
	drain(ctx, m, b.cfg.DrainTimeout)
	cpu := cputime.Self() - cpu0
	stop()
	stopFollow()

	lost := m.outstanding()
	matched, _, lat := m.results()
	accepted := matched + int64(lost)
	var r Result
	r.setThroughput(matched, window, float64(accepted)/window.Seconds(), ceilingAccepted)
	r.setCPU(cpu)
	r.setErrors(&cnt, lost, "accepted events not verified by the receiver within "+b.cfg.DrainTimeout.String())
	r.setLatency(latencyE2E, lat)
	return r, nil
}

// warmIngest returns a load of POST /v1/events over the bench's connections, warmed
// up as t, and the event body to send; the warm-up's events, which are delivered too,
// have had a moment to pass before it returns.
func (b *Bench) warmIngest(ctx context.Context, s *system, t tenant) (*httpLoad, []byte, error) {
	load, err := newHTTPLoad(strings.TrimRight(s.APIURL, "/")+"/v1/events", b.cfg.Connections)
	if err != nil {
		return nil, nil, err
	}
	body := payload(b.cfg.PayloadBytes)
	if err := load.warmUp(ctx, func() requester { return &ingestPost{auth: "Bearer " + t.APIKey, body: body} }); err != nil {
		load.close()
		return nil, nil, err
	}
	time.Sleep(200 * time.Millisecond)
	return load, body, nil
}
