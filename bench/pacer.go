package bench

import (
	"context"
	"sync/atomic"
	"time"
)

// Pacer is the schedule of an open-loop load: at a fixed rate, operation i is due at
// start + i/rate whatever happened to the operations before it, so a stalled system
// shows up as latency measured from the due time instead of as a quietly lower send
// rate (no coordinated omission). At rate 0 (flat out) every operation is due the
// moment it is asked for. The schedule ends at start + duration. Safe for concurrent
// use.
type Pacer struct {
	start    time.Time
	end      time.Time
	interval time.Duration // 0: flat out
	next     atomic.Int64
	now      func() time.Time
}

// NewPacer returns the schedule of rate operations per second (0 = flat out) from
// start for duration.
func NewPacer(start time.Time, rate int, duration time.Duration) *Pacer {
	p := &Pacer{start: start, end: start.Add(duration), now: time.Now}
	if rate > 0 {
		p.interval = time.Second / time.Duration(rate)
		if p.interval <= 0 {
			p.interval = 1
		}
	}
	return p
}

// Next claims the next operation and returns its sequence number (0, 1, 2, ...) and
// due time; ok is false once the schedule is over. Sequence numbers are handed out
// once each, in order.
func (p *Pacer) Next() (seq int64, due time.Time, ok bool) {
	if p.interval == 0 {
		now := p.now()
		if !now.Before(p.end) {
			return 0, time.Time{}, false
		}
		return p.next.Add(1) - 1, now, true
	}
	seq = p.next.Add(1) - 1
	due = p.start.Add(time.Duration(seq) * p.interval)
	if !due.Before(p.end) {
		return seq, time.Time{}, false
	}
	return seq, due, true
}

// Claimed is the number of operations handed out so far (including at most one per
// caller that found the schedule over).
func (p *Pacer) Claimed() int64 { return p.next.Load() }

// Rate is the schedule's rate in operations per second, 0 for flat out.
func (p *Pacer) Rate() float64 {
	if p.interval == 0 {
		return 0
	}
	return float64(time.Second) / float64(p.interval)
}

// Wait sleeps until due, or until ctx is done (then it returns false). It returns at
// once for a due time in the past, so a load that fell behind sends immediately.
func Wait(ctx context.Context, due time.Time) bool {
	d := time.Until(due)
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
