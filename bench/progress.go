package bench

import (
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// counters are a load's running totals, updated by its goroutines and read by the
// progress reporter.
type counters struct {
	events atomic.Int64
	errors atomic.Int64

	mu       sync.Mutex
	firstErr string
}

// fail counts one failure and keeps the first description.
func (c *counters) fail(format string, args ...any) {
	if c.errors.Add(1) == 1 {
		c.mu.Lock()
		c.firstErr = fmt.Sprintf(format, args...)
		c.mu.Unlock()
	}
}

// firstError is the description of the first failure, "" if none.
func (c *counters) firstError() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.firstErr
}

// progress prints c to w once a second, labelled, until the returned stop is called,
// and a last line then. Each line gives the elapsed time, the events so far, the rate
// since the line before and the errors so far.
func progress(w io.Writer, label string, c *counters) (stop func()) {
	return progressOf(w, label, &c.events, &c.errors)
}

// progressOf is progress with events and errors counted in different places.
func progressOf(w io.Writer, label string, events, errors *atomic.Int64) (stop func()) {
	if w == io.Discard {
		return func() {}
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	start := time.Now()
	go func() {
		defer close(finished)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		last, lastAt := events.Load(), start
		line := func(now time.Time, final string) {
			n := events.Load()
			rate := float64(n-last) / now.Sub(lastAt).Seconds()
			last, lastAt = n, now
			fmt.Fprintf(w, "%-42s %5.1fs  events %9d  rate %9.0f/s  errors %d%s\n",
				label, now.Sub(start).Seconds(), n, rate, errors.Load(), final)
		}
		for {
			select {
			case <-done:
				line(time.Now(), "  (done)")
				return
			case now := <-t.C:
				line(now, "")
			}
		}
	}()
	return func() { close(done); <-finished }
}
