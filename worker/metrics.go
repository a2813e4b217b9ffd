package worker

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Delivery outcomes, the values of the outcome label of edgehook_deliveries_total.
// Each handled attempt counts once.
const (
	outcomeDelivered = "delivered" // 2xx, acked
	outcomeRetry     = "retry"     // failed, will be retried
	outcomeFailed    = "failed"    // terminal: 410, attempts exhausted, no webhook config
	outcomeRefused   = "refused"   // SSRF guard refused the target; will be retried
)

// metrics are the worker's Prometheus collectors.
type metrics struct {
	deliveries *prometheus.CounterVec
	latency    prometheus.Histogram
	inFlight   prometheus.Gauge
}

// newMetrics creates the collectors and registers them on reg (nil: not registered).
func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edgehook_deliveries_total",
			Help: "Webhook delivery attempts by outcome (delivered, retry, failed, refused).",
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
	}
	for _, o := range []string{outcomeDelivered, outcomeRetry, outcomeFailed, outcomeRefused} {
		m.deliveries.WithLabelValues(o) // export zeros, so rates work from the start
	}
	if reg == nil {
		return m, nil
	}
	var err error
	if m.deliveries, err = register(reg, m.deliveries); err != nil {
		return nil, err
	}
	if m.latency, err = register(reg, m.latency); err != nil {
		return nil, err
	}
	if m.inFlight, err = register(reg, m.inFlight); err != nil {
		return nil, err
	}
	return m, nil
}

// register registers c on reg; when reg already holds an equal collector (two workers
// in one process), the existing one is returned and shared.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing, nil
			}
		}
		return c, fmt.Errorf("worker: register metrics: %w", err)
	}
	return c, nil
}
