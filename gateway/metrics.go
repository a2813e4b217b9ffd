package gateway

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/edgehook/edgehook/api"
	"github.com/edgehook/edgehook/promreg"
)

// serverLabel is the value of the "server" label on the shared HTTP request counter.
const serverLabel = "gateway"

// metrics are the gateway's Prometheus collectors.
type metrics struct {
	requests *api.Requests
	publish  prometheus.Histogram
	accepted prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{}
	var err error
	if m.requests, err = api.NewRequests(reg, serverLabel); err != nil {
		return nil, err
	}
	if m.publish, err = promreg.Register(reg, prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "edgehook_ingest_publish_seconds",
		Help:    "Time from publishing an event to its JetStream ack (or failure), in seconds.",
		Buckets: prometheus.ExponentialBuckets(0.00025, 2, 15), // 250µs .. ~4s
	})); err != nil {
		return nil, err
	}
	if m.accepted, err = promreg.Register(reg, prometheus.NewCounter(prometheus.CounterOpts{
		Name: "edgehook_events_accepted_total",
		Help: "Events accepted (acked by JetStream and answered 202), not counting idempotent replays.",
	})); err != nil {
		return nil, err
	}
	return m, nil
}

// observeRequest counts one request on route answered with code.
func (m *metrics) observeRequest(route string, code int) { m.requests.Observe(route, code) }
