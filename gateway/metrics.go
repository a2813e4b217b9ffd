package gateway

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/edgehook/edgehook/promreg"
)

// serverLabel is the value of the "server" label on the shared HTTP request counter.
const serverLabel = "gateway"

// routeUnmatched labels requests that matched no route, so raw paths never become
// label values.
const routeUnmatched = "unmatched"

// metrics are the gateway's Prometheus collectors.
type metrics struct {
	requests *prometheus.CounterVec
	publish  prometheus.Histogram
	accepted prometheus.Counter
	// codes holds the decimal text of every HTTP status code, so counting a request
	// does not format one.
	codes [600]string
}

// HTTPRequestsHelp is the help text of edgehook_http_requests_total. Every edgehook
// HTTP server registers the counter with this exact text and the labels server,
// route, code, so they can share one registry.
const HTTPRequestsHelp = "HTTP requests served, by server, route pattern and status code."

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{}
	var err error
	if m.requests, err = promreg.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "edgehook_http_requests_total",
		Help: HTTPRequestsHelp,
	}, []string{"server", "route", "code"})); err != nil {
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
	for i := range m.codes {
		m.codes[i] = strconv.Itoa(i)
	}
	return m, nil
}

// observeRequest counts one request on route answered with code.
func (m *metrics) observeRequest(route string, code int) {
	c := "other"
	if code >= 0 && code < len(m.codes) {
		c = m.codes[code]
	}
	m.requests.WithLabelValues(serverLabel, route, c).Inc()
}
