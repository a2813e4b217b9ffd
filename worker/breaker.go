package worker

import (
	"fmt"
	"time"
)

// Breaker states, the values of the state label of edgehook_breaker_transitions_total.
const (
	breakerClosed   = "closed"    // attempts flow
	breakerOpen     = "open"      // the endpoint is parked: its events wait as parked copies
	breakerHalfOpen = "half_open" // a probe was sent: one parked event brought back to try it
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

// breaker is one endpoint's circuit breaker in this worker. After threshold
// consecutive failures it opens: the endpoint's events are parked (they leave the
// delivery consumer as parked copies) instead of being sent. When the cooldown ends
// the worker brings one parked event back as a probe: an answer closes the breaker
// (and every parked event comes back), a failure keeps it open with the cooldown
// doubled up to maxCooldown, as does a probe that never reports back. It is not safe
// for concurrent use; the endpoints table locks it.
type breaker struct {
	open      bool
	failures  int       // consecutive failures
	openUntil time.Time // when the next probe is due
	cooldown  time.Duration
	probeAt   time.Time // when the outstanding probe was sent; zero when none is
	last      result    // the latest failure, for parked records
}

// breakerConfig are the thresholds of every breaker.
type breakerConfig struct {
	threshold   int
	cooldown    time.Duration
	maxCooldown time.Duration
	// probeTimeout is how long a probe may take to report back before it counts as
	// failed (it may have been delivered by another worker, or lost).
	probeTimeout time.Duration
}

// report feeds an attempt's outcome to the breaker and returns the state it moved to,
// or "" if it did not move. probe says whether the attempt was a probe.
func (b *breaker) report(cfg breakerConfig, r result, probe bool, now time.Time) string {
	switch signalOf(r) {
	case signalAlive:
		b.failures = 0
		if b.open {
			b.open, b.cooldown, b.probeAt = false, 0, time.Time{}
			return breakerClosed
		}
	case signalFailure:
		b.failures++
		b.last = r
		switch {
		case b.open && probe:
			b.backOff(cfg, now)
			return breakerOpen
		case !b.open && b.failures >= cfg.threshold:
			b.open, b.cooldown = true, cfg.cooldown
			b.openUntil = now.Add(b.cooldown)
			return breakerOpen
		}
	}
	return ""
}

// backOff doubles the cooldown (capped) after a failed or lost probe.
func (b *breaker) backOff(cfg breakerConfig, now time.Time) {
	b.cooldown = min(2*b.cooldown, cfg.maxCooldown)
	b.openUntil, b.probeAt = now.Add(b.cooldown), time.Time{}
}

// probeDue reports whether a probe should be sent now, and if so records it as sent.
// A probe outstanding for longer than the probe timeout counts as failed.
func (b *breaker) probeDue(cfg breakerConfig, now time.Time) bool {
	if !b.open || now.Before(b.openUntil) {
		return false
	}
	if !b.probeAt.IsZero() {
		if now.Sub(b.probeAt) >= cfg.probeTimeout {
			b.backOff(cfg, now)
		}
		return false
	}
	b.probeAt = now
	return true
}

// idle reports whether the breaker holds no state worth keeping.
func (b *breaker) idle() bool { return !b.open && b.failures == 0 }

// parkedError is the lastError of a parked event: why its endpoint is parked, with the
// failure that parked it.
func (b *breaker) parkedError() string {
	last := b.last.lastError
	if last == "" {
		last = "no answer"
	}
	return fmt.Sprintf("endpoint parked after %d consecutive failures (last: %s); no request sent", b.failures, last)
}
