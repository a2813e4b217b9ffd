package worker

import (
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// job is one event on its way through the worker.
type job struct {
	msg   jetstream.Msg
	ev    event
	f     *flight
	probe bool // the half-open probe of its endpoint's breaker
}

// admission is what the tenants table decided for a job.
type admission int

const (
	admitRun  admission = iota // a tenant slot is the job's: deliver it now
	admitPark                  // the endpoint is parked: settle without an HTTP attempt
	admitHold                  // the tenant is at its cap: the job waits in its queue
	admitFull                  // the tenant is at its cap and the wait queue is full
)

// tenants keeps the worker fair between tenants: at most perTenant deliveries of one
// tenant run at once, the rest wait in a per-tenant queue (kept with InProgress, so no
// attempt is spent on waiting) without holding a delivery goroutine, and each tenant's
// endpoint has a breaker that parks its events while it keeps failing. maxHeld and
// maxHeldBytes bound the waiting events of all tenants together.
type tenants struct {
	perTenant    int
	maxHeld      int
	maxHeldBytes int
	cfg          breakerConfig
	metrics      *metrics

	mu        sync.Mutex
	m         map[string]*tenantState
	held      int // waiting jobs, all tenants
	heldBytes int // their payload bytes
	parked    int // tenants whose breaker is not closed (for the gauge)
}

type tenantState struct {
	inFlight int
	queue    []*job
	br       breaker
}

func newTenants(perTenant, maxHeld, maxHeldBytes int, cfg breakerConfig, m *metrics) *tenants {
	return &tenants{perTenant: perTenant, maxHeld: maxHeld, maxHeldBytes: maxHeldBytes, cfg: cfg, metrics: m, m: make(map[string]*tenantState)}
}

// admit decides what j may do now. On admitRun the job holds one of its tenant's slots
// until done; on admitPark, parkedFor is how much longer the endpoint stays parked and
// parkedErr says why; on admitHold the job is queued and done hands it to a slot later;
// on admitFull nothing changed and the caller tries again later.
func (t *tenants) admit(j *job, now time.Time) (a admission, parkedFor time.Duration, parkedErr string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	ts := t.state(j.ev.tenant)
	if ts.br.state != breakerClosed {
		before := ts.br.state
		run, probe, pf := ts.br.admit(now)
		if ts.br.state != before {
			t.metrics.breakerTransitions.WithLabelValues(ts.br.state).Inc()
		}
		if run && ts.inFlight >= t.perTenant {
			// Every slot is still held by attempts from before the breaker opened:
			// the probe waits for a free one.
			ts.br.probing, run = false, false
		}
		if !run {
			return admitPark, pf, ts.br.parkedError()
		}
		j.probe = probe
		ts.inFlight++
		return admitRun, 0, ""
	}
	if ts.inFlight < t.perTenant {
		ts.inFlight++
		return admitRun, 0, ""
	}
	if t.held >= t.maxHeld || (t.held > 0 && t.heldBytes+len(j.ev.payload) > t.maxHeldBytes) {
		t.forgetIfIdle(j.ev.tenant, ts)
		return admitFull, 0, ""
	}
	ts.queue = append(ts.queue, j)
	t.held++
	t.heldBytes += len(j.ev.payload)
	t.metrics.held.Inc()
	t.metrics.heldTotal.Inc()
	return admitHold, 0, ""
}

// done reports the result of j's attempt and frees or passes on its slot. It returns
// the next queued job of the tenant, which inherits the slot (nil when there is none
// or stopping), and the queued jobs to park because the endpoint's breaker is no
// longer closed, with how long it stays open and why.
func (t *tenants) done(j *job, r result, now time.Time, stopping bool) (next *job, park []*job, parkedFor time.Duration, parkedErr string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	ts := t.state(j.ev.tenant)
	wasParked, heldBefore := ts.br.state != breakerClosed, t.held
	if to := ts.br.report(t.cfg, r, j.probe, now); to != "" {
		t.metrics.breakerTransitions.WithLabelValues(to).Inc()
	}
	switch {
	case stopping || len(ts.queue) == 0:
		ts.inFlight--
	case ts.br.state == breakerClosed:
		next = ts.pop()
		t.held--
		t.heldBytes -= len(next.ev.payload)
	default:
		// The endpoint is parked. A cooldown that has run out lets the first waiting
		// job through as the probe; the others are parked.
		before := ts.br.state
		run, probe, pf := ts.br.admit(now)
		if ts.br.state != before {
			t.metrics.breakerTransitions.WithLabelValues(ts.br.state).Inc()
		}
		if run {
			next = ts.pop()
			next.probe = probe
			t.held--
			t.heldBytes -= len(next.ev.payload)
		} else {
			ts.inFlight--
		}
		park, ts.queue = ts.queue, nil
		t.held -= len(park)
		for _, p := range park {
			t.heldBytes -= len(p.ev.payload)
		}
		parkedFor, parkedErr = pf, ts.br.parkedError()
	}
	// Gauges move by deltas: two workers in one process share them.
	isParked := ts.br.state != breakerClosed
	switch {
	case isParked && !wasParked:
		t.parked++
		t.metrics.parked.Inc()
	case !isParked && wasParked:
		t.parked--
		t.metrics.parked.Dec()
	}
	t.metrics.held.Add(float64(t.held - heldBefore))
	t.forgetIfIdle(j.ev.tenant, ts)
	return next, park, parkedFor, parkedErr
}

// state returns tenantID's state, creating it. Caller holds t.mu.
func (t *tenants) state(tenantID string) *tenantState {
	ts, ok := t.m[tenantID]
	if !ok {
		ts = &tenantState{br: breaker{state: breakerClosed}}
		t.m[tenantID] = ts
	}
	return ts
}

// forgetIfIdle drops a tenant's state once nothing refers to it, so the table holds
// only tenants with work or a failing endpoint. Caller holds t.mu.
func (t *tenants) forgetIfIdle(tenantID string, ts *tenantState) {
	if ts.inFlight == 0 && len(ts.queue) == 0 && ts.br.idle() {
		delete(t.m, tenantID)
	}
}

func (ts *tenantState) pop() *job {
	j := ts.queue[0]
	ts.queue[0] = nil
	ts.queue = ts.queue[1:]
	return j
}
