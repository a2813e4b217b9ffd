package receiver

import (
	"fmt"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// Route labels: the pattern, never the raw path, so tenant ids do not become series.
const (
	routeWebhook = "/webhooks/{tenantId}"
	routeHealthz = "/healthz"
	routeReadyz  = "/readyz"
	routeMetrics = "/metrics"
	routeOther   = "other"
)

// Reasons a webhook is rejected, the values of edgehook_webhooks_rejected_total{reason}.
// Every answer that depends on the tenant counts as reasonUnauthorized: an unknown or
// malformed tenant id and a malformed or wrong signature get the same 401, and the
// same series, so /metrics does not tell which tenants exist. The other reasons are
// decided before the tenant's configuration is looked up.
const (
	reasonMissingHeaders    = "missing_headers"
	reasonInvalidHeaders    = "invalid_headers"
	reasonInvalidTimestamp  = "invalid_timestamp"
	reasonStaleTimestamp    = "stale_timestamp"
	reasonFutureTimestamp   = "future_timestamp"
	reasonUnauthorized      = "unauthorized"
	reasonBodyTooLarge      = "body_too_large"
	reasonThrottled         = "throttled"
	reasonConfigUnavailable = "config_unavailable"
)

var rejectReasons = [...]string{
	reasonMissingHeaders, reasonInvalidHeaders, reasonInvalidTimestamp, reasonStaleTimestamp,
	reasonFutureTimestamp, reasonUnauthorized, reasonBodyTooLarge, reasonThrottled,
	reasonConfigUnavailable,
}

// metrics are the receiver's Prometheus series, registered on Deps.Registerer.
type metrics struct {
	requests       *prometheus.CounterVec
	verified       prometheus.Counter
	duplicates     prometheus.Counter
	rejected       map[string]prometheus.Counter
	publishSeconds prometheus.Observer
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	server := prometheus.Labels{"server": "receiver"}
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name:        "edgehook_http_requests_total",
		Help:        "HTTP requests served, by server, route pattern and status code.",
		ConstLabels: server,
	}, []string{"route", "code"})
	verified := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "edgehook_webhooks_verified_total",
		Help: "Webhooks whose signature verified and that were stored in RECEIVED (duplicates included).",
	})
	duplicates := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "edgehook_webhooks_duplicate_total",
		Help: "Verified webhooks whose webhook-id RECEIVED already held (answered 204, not stored twice).",
	})
	rejected := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "edgehook_webhooks_rejected_total",
		Help: "Webhooks rejected before publishing, by reason (unauthorized: unknown tenant or bad signature; throttled: config reads over the limit, answered 503).",
	}, []string{"reason"})
	publish := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:        "edgehook_publish_seconds",
		Help:        "Time from publishing a message to JetStream until its ack.",
		ConstLabels: server,
		Buckets:     []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
	})
	for _, c := range []prometheus.Collector{requests, verified, duplicates, rejected, publish} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("receiver: register metrics: %w", err)
		}
	}
	m := &metrics{
		requests:       requests,
		verified:       verified,
		duplicates:     duplicates,
		rejected:       make(map[string]prometheus.Counter, len(rejectReasons)),
		publishSeconds: publish,
	}
	for _, r := range rejectReasons {
		m.rejected[r] = rejected.WithLabelValues(r) // every reason is exported from the start
	}
	return m, nil
}

// request counts one answered request.
func (m *metrics) request(route string, code int) {
	m.requests.WithLabelValues(route, codeLabel(code)).Inc()
}

// codeLabel is the decimal status code without allocating for the common ones.
func codeLabel(code int) string {
	switch code {
	case 200:
		return "200"
	case 204:
		return "204"
	case 400:
		return "400"
	case 401:
		return "401"
	case 404:
		return "404"
	case 405:
		return "405"
	case 413:
		return "413"
	case 500:
		return "500"
	case 503:
		return "503"
	}
	return strconv.Itoa(code)
}
