package worker

import (
	"crypto/sha256"
	"encoding/hex"
	"net"
	"net/url"
	"strings"
	"sync"
	"time"
)

// An endpoint is a target URL's origin (scheme, host and port): tenants and URLs that
// share one share its health. Breakers are kept per endpoint, so fixing a tenant's
// target (a new origin) starts from a closed breaker, and one tenant's dead endpoint
// parks nobody else's.

// endpointOrigin returns the origin of target, lower-cased with the port explicit.
func endpointOrigin(target string) (string, bool) {
	u, err := url.Parse(target)
	if err != nil || u.Host == "" {
		return "", false
	}
	scheme, host, port := strings.ToLower(u.Scheme), strings.ToLower(u.Hostname()), u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[scheme]
	}
	return scheme + "://" + net.JoinHostPort(host, port), true
}

// endpointKey is the subject token naming an origin's endpoint: 16 hex digits of its
// SHA-256, so a URL never becomes a subject.
func endpointKey(origin string) string {
	sum := sha256.Sum256([]byte(origin))
	return hex.EncodeToString(sum[:8])
}

// maxCachedEndpoints bounds endpointIDs; past it the cache starts over.
const maxCachedEndpoints = 4096

// endpointIDs remembers each target URL's origin and endpoint key, which every event
// would otherwise parse and hash again. Bounded; safe for concurrent use.
type endpointIDs struct {
	mu sync.Mutex
	m  map[string]endpointID
}

type endpointID struct {
	origin, key string
	ok          bool // false: the target has no origin (not a URL with a host)
}

// get returns target's origin (endpointOrigin) and its key (endpointKey).
func (c *endpointIDs) get(target string) (origin, key string, ok bool) {
	c.mu.Lock()
	id, hit := c.m[target]
	c.mu.Unlock()
	if !hit {
		if id.origin, id.ok = endpointOrigin(target); id.ok {
			id.key = endpointKey(id.origin)
		}
		c.mu.Lock()
		if c.m == nil || len(c.m) >= maxCachedEndpoints {
			c.m = make(map[string]endpointID)
		}
		c.m[target] = id
		c.mu.Unlock()
	}
	return id.origin, id.key, id.ok
}

// endpoints is the worker's table of endpoint breakers, and of the tenants whose
// events it parked at each open endpoint (so a tenant's config change brings them
// back).
type endpoints struct {
	cfg     breakerConfig
	metrics *metrics

	mu sync.Mutex
	m  map[string]*endpointState
}

type endpointState struct {
	br      breaker
	origin  string
	tenants map[string]struct{} // tenants with events parked here by this worker
}

func newEndpoints(cfg breakerConfig, m *metrics) *endpoints {
	return &endpoints{cfg: cfg, metrics: m, m: make(map[string]*endpointState)}
}

// parking reports whether ep is parked, and if so records tenantID as having parked
// events there and returns why (the lastError of a parked attempt).
func (e *endpoints) parking(ep, tenantID string) (bool, string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	st, ok := e.m[ep]
	if !ok || !st.br.open {
		return false, ""
	}
	st.tenants[tenantID] = struct{}{}
	return true, st.br.parkedError()
}

// report feeds an attempt at ep (origin) to its breaker and returns the state it moved
// to, or "".
func (e *endpoints) report(ep, origin string, r result, probe bool, now time.Time) string {
	if ep == "" || signalOf(r) == signalNone {
		return ""
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	st, ok := e.m[ep]
	if !ok {
		if signalOf(r) == signalAlive {
			return "" // nothing to remember
		}
		st = &endpointState{origin: origin, tenants: map[string]struct{}{}}
		e.m[ep] = st
	}
	wasOpen := st.br.open
	to := st.br.report(e.cfg, r, probe, now)
	e.moved(ep, st, wasOpen, to)
	return to
}

// moved accounts a breaker transition and forgets an idle breaker. Caller holds e.mu.
func (e *endpoints) moved(ep string, st *endpointState, wasOpen bool, to string) {
	if to != "" {
		e.metrics.breakerTransitions.WithLabelValues(to).Inc()
	}
	switch {
	case st.br.open && !wasOpen:
		e.metrics.parked.Inc()
	case !st.br.open && wasOpen:
		e.metrics.parked.Dec()
		clear(st.tenants)
	}
	if st.br.idle() {
		delete(e.m, ep)
	}
}

// dueProbes returns the open endpoints whose next probe is due, marking it sent.
func (e *endpoints) dueProbes(now time.Time) []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var due []string
	for ep, st := range e.m {
		if st.br.probeDue(e.cfg, now) {
			e.metrics.breakerTransitions.WithLabelValues(breakerHalfOpen).Inc()
			due = append(due, ep)
		}
	}
	return due
}

// close closes ep's breaker (nothing left to probe it with, or its tenant's config
// changed) and reports whether it was open.
func (e *endpoints) close(ep string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	st, ok := e.m[ep]
	if !ok || !st.br.open {
		return false
	}
	st.br = breaker{}
	e.moved(ep, st, true, breakerClosed)
	return true
}

// tenantParkedAt returns the open endpoints where this worker parked tenantID's events,
// and forgets the tenant there.
func (e *endpoints) tenantParkedAt(tenantID string) []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var eps []string
	for ep, st := range e.m {
		if _, ok := st.tenants[tenantID]; ok {
			delete(st.tenants, tenantID)
			eps = append(eps, ep)
		}
	}
	return eps
}
