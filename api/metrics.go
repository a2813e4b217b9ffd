package api

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/edgehook/edgehook/promreg"
)

// HTTPRequestsHelp is the help text of edgehook_http_requests_total. Every edgehook
// HTTP server registers the counter with this exact text and the labels server,
// route, code, so they can share one registry.
const HTTPRequestsHelp = "HTTP requests served, by server, route pattern and status code."

// Requests counts one server's requests on edgehook_http_requests_total.
type Requests struct {
	server string
	vec    *prometheus.CounterVec
	// codes holds the decimal text of every HTTP status code, so counting a request
	// does not format one.
	codes [600]string
}

// NewRequests registers (or shares) the request counter on reg for server.
func NewRequests(reg prometheus.Registerer, server string) (*Requests, error) {
	vec, err := promreg.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "edgehook_http_requests_total",
		Help: HTTPRequestsHelp,
	}, []string{"server", "route", "code"}))
	if err != nil {
		return nil, err
	}
	r := &Requests{server: server, vec: vec}
	for i := range r.codes {
		r.codes[i] = strconv.Itoa(i)
	}
	return r, nil
}

// Observe counts one request on route answered with code.
func (r *Requests) Observe(route string, code int) {
	c := "other"
	if code >= 0 && code < len(r.codes) {
		c = r.codes[code]
	}
	r.vec.WithLabelValues(r.server, route, c).Inc()
}
