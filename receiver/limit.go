package receiver

import (
	"sync"
	"sync/atomic"
	"time"
)

// tokenBucket limits webhook config reads for tenants the cache does not hold: rate
// tokens a second, at most burst at once. It is safe for concurrent use.
type tokenBucket struct {
	mu     sync.Mutex
	rate   float64 // tokens per second
	burst  float64
	tokens float64
	last   time.Time
}

func newTokenBucket(rate float64, burst int, now time.Time) *tokenBucket {
	return &tokenBucket{rate: rate, burst: float64(burst), tokens: float64(burst), last: now}
}

// allow takes a token at now if one is left.
func (b *tokenBucket) allow(now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if d := now.Sub(b.last); d > 0 {
		b.tokens = min(b.burst, b.tokens+d.Seconds()*b.rate)
		b.last = now
	}
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// Kinds of sampled log lines: every rejection reason, and the failures a client can
// provoke at will.
const (
	logHTTPServer  = "http_server"
	logPublishFail = "publish_failed"
)

var logKinds = append(rejectReasons[:], logHTTPServer, logPublishFail)

// sampler lets one log line of each kind through per interval and counts the ones it
// holds back, so a flood of requests writes a bounded number of lines. It is safe for
// concurrent use and allocates nothing.
type sampler struct {
	interval time.Duration
	kinds    map[string]*sampled // fixed at creation: read-only afterwards
}

type sampled struct {
	next       atomic.Int64 // unix nanos before which lines are held back
	suppressed atomic.Int64 // lines held back since the last one let through
}

func newSampler(interval time.Duration, kinds []string) *sampler {
	s := &sampler{interval: interval, kinds: make(map[string]*sampled, len(kinds))}
	for _, k := range kinds {
		s.kinds[k] = &sampled{}
	}
	return s
}

// allow reports whether a line of kind may be written at now, and how many lines of
// that kind were held back since the last one.
func (s *sampler) allow(kind string, now time.Time) (suppressed int64, ok bool) {
	k := s.kinds[kind]
	t, next := now.UnixNano(), k.next.Load()
	if t < next || !k.next.CompareAndSwap(next, t+int64(s.interval)) {
		k.suppressed.Add(1)
		return 0, false
	}
	return k.suppressed.Swap(0), true
}

// drain returns, for each kind, the lines held back and not yet reported, and
// resets them.
func (s *sampler) drain(report func(kind string, suppressed int64)) {
	for kind, k := range s.kinds {
		if n := k.suppressed.Swap(0); n > 0 {
			report(kind, n)
		}
	}
}
