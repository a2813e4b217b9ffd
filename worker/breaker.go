package worker

import (
	"fmt"
	"time"
)

// Breaker states, the values of the state label of edgehook_breaker_transitions_total.
const (
	breakerClosed   = "closed"    // attempts flow
	breakerOpen     = "open"      // the endpoint is parked: no attempts until the cooldown ends
	breakerHalfOpen = "half_open" // one probe attempt decides between closed and open
)

// signal is what an attempt says about the endpoint's health.
type signal int

const (
	signalNone    signal = iota // no request reached the endpoint (config error, SSRF refusal)
	signalAlive                 // the endpoint answered, and not with 5xx or 429
	signalFailure               // no answer (timeout, network error), 5xx or 429
)

// signalOf classifies an attempt's result for the breaker.
func signalOf(r result) signal {
	switch {
	case !r.sent || r.refused:
		return signalNone
	case r.statusCode == 0, r.statusCode >= 500, r.statusCode == 429:
		return signalFailure
	}
	return signalAlive
}

// breaker is one endpoint's circuit breaker. After threshold consecutive failures it
// opens for a cooldown, during which its tenant's events are parked: they wait for
// their next scheduled attempt without an HTTP request. When the cooldown ends one
// probe attempt is let through: success closes the breaker, failure reopens it with
// the cooldown doubled up to maxCooldown. It is not safe for concurrent use; the
// tenants table locks it.
type breaker struct {
	state     string
	failures  int // consecutive failures
	openUntil time.Time
	cooldown  time.Duration // of the current or last open period
	probing   bool          // a half-open probe is in flight
	last      result        // the latest failure, for parked records
}

// breakerConfig are the thresholds of every breaker.
type breakerConfig struct {
	threshold   int
	cooldown    time.Duration
	maxCooldown time.Duration
}

// admit decides what an attempt may do now: run (probe true when it is the half-open
// probe) or be parked (parkedFor is how long the breaker stays open, 0 when a probe is
// already in flight).
func (b *breaker) admit(now time.Time) (run, probe bool, parkedFor time.Duration) {
	switch b.state {
	case breakerOpen:
		if now.Before(b.openUntil) {
			return false, false, b.openUntil.Sub(now)
		}
		b.state = breakerHalfOpen
		fallthrough
	case breakerHalfOpen:
		if b.probing {
			return false, false, 0
		}
		b.probing = true
		return true, true, 0
	}
	return true, false, 0
}

// report feeds an attempt's outcome to the breaker and returns the state it moved to,
// or "" if it did not move. probe says whether the attempt was the half-open probe.
func (b *breaker) report(cfg breakerConfig, r result, probe bool, now time.Time) string {
	if probe {
		b.probing = false
	}
	switch signalOf(r) {
	case signalAlive:
		b.failures = 0
		if b.state != breakerClosed {
			b.state, b.cooldown = breakerClosed, 0
			return breakerClosed
		}
	case signalFailure:
		b.failures++
		b.last = r
		switch {
		case b.state == breakerHalfOpen && probe:
			b.cooldown = min(2*b.cooldown, cfg.maxCooldown)
			b.state, b.openUntil = breakerOpen, now.Add(b.cooldown)
			return breakerOpen
		case b.state == breakerClosed && b.failures >= cfg.threshold:
			b.cooldown = cfg.cooldown
			b.state, b.openUntil = breakerOpen, now.Add(b.cooldown)
			return breakerOpen
		}
	}
	return ""
}

// idle reports whether the breaker holds no state worth keeping.
func (b *breaker) idle() bool { return b.state == breakerClosed && b.failures == 0 }

// parkedError is the lastError of a parked event: why its endpoint is parked, with the
// failure that parked it.
func (b *breaker) parkedError() string {
	last := b.last.lastError
	if last == "" {
		last = "no answer"
	}
	return fmt.Sprintf("endpoint parked after %d consecutive failures (last: %s); no request sent", b.failures, last)
}
