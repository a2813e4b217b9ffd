package worker

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/edgehook/edgehook/promreg"
)

// Delivery outcomes, the values of the outcome label of edgehook_deliveries_total.
// Each handled delivery counts once.
const (
	outcomeDelivered = "delivered" // 2xx, acked
	outcomeRetry     = "retry"     // failed, will be retried
	outcomeFailed    = "failed"    // terminal: 410, attempts exhausted, no webhook config
	outcomeRefused   = "refused"   // SSRF guard refused the target; will be retried
	outcomeParked    = "parked"    // endpoint parked by its breaker; no request sent
)

// metrics are the worker's Prometheus collectors. None has a tenant label: tenants are
// unbounded, and their ids belong in logs.
type metrics struct {
	deliveries *prometheus.CounterVec
	// outcomes is deliveries' counter of each outcome, resolved once (after
	// registration) so a delivery does not hash its label.
	outcomes           map[string]prometheus.Counter
	latency            prometheus.Histogram
	inFlight           prometheus.Gauge
	breakerTransitions *prometheus.CounterVec
	parked             prometheus.Gauge
	held               prometheus.Gauge
	heldTotal          prometheus.Counter
	parkedCopies       prometheus.Counter
	unparked           prometheus.Counter
	staleCopies        prometheus.Counter
	lateness           prometheus.Histogram
}

// newMetrics creates the collectors and registers them on reg (nil: not registered).
func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edgehook_deliveries_total",
			Help: "Webhook deliveries by outcome (delivered, retry, failed, refused, parked).",
		}, []string{"outcome"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "edgehook_delivery_seconds",
			Help:    "Duration of one webhook HTTP attempt, from dial to response headers.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "edgehook_deliveries_in_flight",
			Help: "Events this worker is handling right now.",
		}),
		breakerTransitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edgehook_breaker_transitions_total",
			Help: "Endpoint circuit breaker transitions by the state entered (open, half_open, closed).",
		}, []string{"state"}),
		parked: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "edgehook_endpoints_parked",
			Help: "Endpoints whose circuit breaker is open in this worker: their events wait as parked copies, without HTTP attempts.",
		}),
		held: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "edgehook_deliveries_waiting",
			Help: "Events waiting because their tenant is at its concurrency cap.",
		}),
		heldTotal: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "edgehook_tenant_cap_waits_total",
			Help: "Events that had to wait because their tenant was at its concurrency cap.",
		}),
		parkedCopies: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "edgehook_events_parked_total",
			Help: "Events moved out of the delivery consumer as parked copies (a long retry, or a parked endpoint).",
		}),
		unparked: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "edgehook_events_unparked_total",
			Help: "Parked events brought back early because their endpoint answered again or their tenant's config changed.",
		}),
		staleCopies: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "edgehook_parked_copies_stale_total",
			Help: "Parked copies dropped when they came back because their event had moved on (brought back early, replayed).",
		}),
		lateness: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "edgehook_retry_lateness_seconds",
			Help:    "How late a retry came back: its arrival at this worker minus when it was due (parked copies, and naks this worker made).",
			Buckets: []float64{.01, .05, .1, .25, .5, 1, 2, 5, 10, 30, 60, 300},
		}),
	}
	for _, s := range []string{breakerOpen, breakerHalfOpen, breakerClosed} {
		m.breakerTransitions.WithLabelValues(s)
	}
	if reg == nil {
		m.resolveOutcomes()
		return m, nil
	}
	var err error
	if m.deliveries, err = promreg.Register(reg, m.deliveries); err != nil {
		return nil, err
	}
	if m.latency, err = promreg.Register(reg, m.latency); err != nil {
		return nil, err
	}
	if m.inFlight, err = promreg.Register(reg, m.inFlight); err != nil {
		return nil, err
	}
	if m.breakerTransitions, err = promreg.Register(reg, m.breakerTransitions); err != nil {
		return nil, err
	}
	if m.parked, err = promreg.Register(reg, m.parked); err != nil {
		return nil, err
	}
	if m.held, err = promreg.Register(reg, m.held); err != nil {
		return nil, err
	}
	if m.heldTotal, err = promreg.Register(reg, m.heldTotal); err != nil {
		return nil, err
	}
	for _, c := range []*prometheus.Counter{&m.parkedCopies, &m.unparked, &m.staleCopies} {
		if *c, err = promreg.Register(reg, *c); err != nil {
			return nil, err
		}
	}
	if m.lateness, err = promreg.Register(reg, m.lateness); err != nil {
		return nil, err
	}
	m.resolveOutcomes()
	return m, nil
}

// resolveOutcomes fills outcomes from deliveries (the registered vector), which then
// exports a zero for each, so rates work from the start.
func (m *metrics) resolveOutcomes() {
	m.outcomes = make(map[string]prometheus.Counter, 5)
	for _, o := range []string{outcomeDelivered, outcomeRetry, outcomeFailed, outcomeRefused, outcomeParked} {
		m.outcomes[o] = m.deliveries.WithLabelValues(o)
	}
}
