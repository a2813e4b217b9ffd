package worker

import (
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// jitterFraction is the ± spread applied to scheduled retry delays, so events that
// failed together do not all come back at the same instant.
const jitterFraction = 0.10

// scheduledDelay returns the delay after failed attempt n (1-based):
// schedule[min(n-1, len-1)] with ±10% jitter.
func scheduledDelay(schedule []time.Duration, attempt int) time.Duration {
	i := min(max(attempt-1, 0), len(schedule)-1)
	return jitter(schedule[i], rand.Float64())
}

// jitter spreads d by ±jitterFraction; u is uniform in [0, 1).
func jitter(d time.Duration, u float64) time.Duration {
	return time.Duration(float64(d) * (1 - jitterFraction + 2*jitterFraction*u))
}

// parseRetryAfter reads a Retry-After value, either delay-seconds or an HTTP date,
// relative to now. A date in the past means no delay. It reports false for a missing
// or malformed value.
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs < 0 {
			return 0, false
		}
		if secs > int64(1<<62/time.Second) { // saturate instead of overflowing
			secs = int64(1 << 62 / time.Second)
		}
		return time.Duration(secs) * time.Second, true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	return max(t.Sub(now), 0), true
}

// retryDelay decides how long to wait after a failed attempt: the endpoint's
// Retry-After (429 and 503 only) capped at maxRetryAfter, else the schedule entry.
func retryDelay(r result, attempt int, schedule []time.Duration, maxRetryAfter time.Duration) time.Duration {
	if r.hasRetryAfter && (r.statusCode == http.StatusTooManyRequests || r.statusCode == http.StatusServiceUnavailable) {
		return min(r.retryAfter, maxRetryAfter)
	}
	return scheduledDelay(schedule, attempt)
}

// dueTimes remembers when events nak'd for a retry are due again, so the worker that
// gets one back can measure how late it came (edgehook_retry_lateness_seconds). It is
// bounded: past maxDueTimes entries it remembers nothing new.
type dueTimes struct {
	mu sync.Mutex
	m  map[dueKey]time.Time
}

type dueKey struct {
	id      string
	attempt int
}

const maxDueTimes = 100000

func (d *dueTimes) put(id string, attempt int, due time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.m == nil {
		d.m = make(map[dueKey]time.Time)
	}
	if len(d.m) < maxDueTimes {
		d.m[dueKey{id, attempt}] = due
	}
}

// take returns and forgets when attempt of event id was due.
func (d *dueTimes) take(id string, attempt int) (time.Time, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	k := dueKey{id, attempt}
	t, ok := d.m[k]
	if ok {
		delete(d.m, k)
	}
	return t, ok
}
