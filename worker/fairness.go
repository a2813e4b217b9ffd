package worker

import (
	"sync"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/edgehook/edgehook/vault"
)

// job is one event on its way through the worker, with its tenant's webhook config as
// read when it arrived and the key of the endpoint that config names.
type job struct {
	msg    jetstream.Msg
	ev     event
	f      *flight
	cfg    vault.WebhookConfig
	cfgErr error
	origin string // the config's target origin (endpointOrigin)
	ep     string // its endpoint key (endpointKey); "" when the config could not be read
}

// admission is what the tenants table decided for a job.
type admission int

const (
	admitRun  admission = iota // a tenant slot is the job's: deliver it now
	admitHold                  // the tenant is at its cap: the job waits in its queue
	admitFull                  // the tenant is at its cap and the wait queue is full
)

// tenants keeps the worker fair between tenants: at most perTenant deliveries of one
// tenant run at once, the rest wait in a per-tenant queue (kept with InProgress, so no
// attempt is spent on waiting) without holding a delivery goroutine. maxHeld and
// maxHeldBytes bound the waiting events of all tenants together. (Endpoints that keep
// failing are the endpoints table's: see endpoint.go.)
type tenants struct {
	perTenant    int
	maxHeld      int
	maxHeldBytes int
	metrics      *metrics

	mu        sync.Mutex
	m         map[string]*tenantState
	held      int // waiting jobs, all tenants
	heldBytes int // their payload bytes
}

type tenantState struct {
	inFlight int
	queue    []*job
}

func newTenants(perTenant, maxHeld, maxHeldBytes int, m *metrics) *tenants {
	return &tenants{perTenant: perTenant, maxHeld: maxHeld, maxHeldBytes: maxHeldBytes, metrics: m, m: make(map[string]*tenantState)}
}

// admit decides what j may do now. On admitRun the job holds one of its tenant's slots
// until done; on admitHold the job is queued and done hands it to a slot later; on
// admitFull nothing changed and the caller tries again later.
func (t *tenants) admit(j *job) admission {
	t.mu.Lock()
	defer t.mu.Unlock()
	ts := t.state(j.ev.tenant)
	if ts.inFlight < t.perTenant {
		ts.inFlight++
		return admitRun
	}
	if t.held >= t.maxHeld || (t.held > 0 && t.heldBytes+len(j.ev.payload) > t.maxHeldBytes) {
		t.forgetIfIdle(j.ev.tenant, ts)
		return admitFull
	}
	ts.queue = append(ts.queue, j)
	t.held++
	t.heldBytes += len(j.ev.payload)
	t.metrics.held.Inc()
	t.metrics.heldTotal.Inc()
	return admitHold
}

// done frees j's slot or passes it on: it returns the next queued job of the tenant,
// which inherits the slot (nil when there is none, or when stopping).
func (t *tenants) done(j *job, stopping bool) *job {
	t.mu.Lock()
	defer t.mu.Unlock()
	ts := t.state(j.ev.tenant)
	var next *job
	if stopping || len(ts.queue) == 0 {
		ts.inFlight--
	} else {
		next = ts.queue[0]
		ts.queue[0] = nil
		ts.queue = ts.queue[1:]
		t.held--
		t.heldBytes -= len(next.ev.payload)
		t.metrics.held.Dec()
	}
	t.forgetIfIdle(j.ev.tenant, ts)
	return next
}

// state returns tenantID's state, creating it. Caller holds t.mu.
func (t *tenants) state(tenantID string) *tenantState {
	ts, ok := t.m[tenantID]
	if !ok {
		ts = &tenantState{}
		t.m[tenantID] = ts
	}
	return ts
}

// forgetIfIdle drops a tenant's state once nothing refers to it. Caller holds t.mu.
func (t *tenants) forgetIfIdle(tenantID string, ts *tenantState) {
	if ts.inFlight == 0 && len(ts.queue) == 0 {
		delete(t.m, tenantID)
	}
}
