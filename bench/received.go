package bench

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/edgehook/edgehook/natsconf"
)

// stallTimeout ends a drain wait when no accepted event reached the receiver for it.
const stallTimeout = 5 * time.Second

// matcher pairs each event the bench got accepted with its verification by the
// receiver, and records the time from the event's send time to the verification.
// Either side may come first (a webhook is often verified before the bench has read
// the 202). Safe for concurrent use.
type matcher struct {
	mu       sync.Mutex
	accepted map[string]time.Time // accepted, not yet verified: send time
	early    map[string]time.Time // verified before the bench saw it accepted
	lat      *Latencies
	matched  int64
	from, to time.Time // the window verifications are counted in
	inWindow int64
	c        *counters // matched events, for progress
}

func newMatcher(c *counters) *matcher {
	return &matcher{accepted: map[string]time.Time{}, early: map[string]time.Time{}, lat: NewLatencies(), c: c}
}

// window sets the interval in which verifications are counted by verifiedInWindow.
func (m *matcher) window(from, to time.Time) {
	m.mu.Lock()
	m.from, m.to = from, to
	m.mu.Unlock()
}

// accept records that eventID, sent at at, was accepted.
func (m *matcher) accept(eventID string, at time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if v, ok := m.early[eventID]; ok {
		delete(m.early, eventID)
		m.match(v.Sub(at))
		return
	}
	m.accepted[eventID] = at
}

// verify records that the receiver verified eventID at at.
func (m *matcher) verify(eventID string, at time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !at.Before(m.from) && at.Before(m.to) {
		m.inWindow++
	}
	if a, ok := m.accepted[eventID]; ok {
		delete(m.accepted, eventID)
		m.match(at.Sub(a))
		return
	}
	m.early[eventID] = at
}

func (m *matcher) match(d time.Duration) {
	m.lat.Record(d)
	m.matched++
	m.c.events.Add(1)
}

// outstanding is the number of accepted events not verified yet.
func (m *matcher) outstanding() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.accepted)
}

// results returns the matched count, the verifications in the window, and the
// latencies (which the caller must no longer share with verify).
func (m *matcher) results() (matched, inWindow int64, lat *Latencies) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.matched, m.inWindow, m.lat
}

// followReceived feeds every webhook the receiver verifies on subjects (from now on)
// to m, through an ordered consumer on RECEIVED. Stop it with the returned function.
func followReceived(ctx context.Context, js jetstream.JetStream, subjects []string, m *matcher) (stop func(), err error) {
	cons, err := js.OrderedConsumer(ctx, natsconf.StreamReceived, jetstream.OrderedConsumerConfig{
		FilterSubjects: subjects,
		DeliverPolicy:  jetstream.DeliverNewPolicy,
	})
	if err != nil {
		return nil, fmt.Errorf("ordered consumer on %s: %w", natsconf.StreamReceived, err)
	}
	cc, err := cons.Consume(func(msg jetstream.Msg) {
		h := msg.Headers()
		ns, err := strconv.ParseInt(h.Get(natsconf.HeaderVerifyTime), 10, 64)
		if err != nil {
			return // not a receiver-verified webhook
		}
		m.verify(h.Get(natsconf.HeaderEventID), time.Unix(0, ns))
	}, jetstream.PullMaxMessages(4096))
	if err != nil {
		return nil, fmt.Errorf("consume %s: %w", natsconf.StreamReceived, err)
	}
	return cc.Stop, nil
}

// drain waits until every accepted event was verified, no event was verified for
// stallTimeout, within passed, or ctx ended.
func drain(ctx context.Context, m *matcher, within time.Duration) {
	drainWhile(ctx, m, within, func() bool { return false })
}

// drainWhile is drain where no verification for stallTimeout ends the wait only while
// busy reports false (the system has nothing else queued before those events).
func drainWhile(ctx context.Context, m *matcher, within time.Duration, busy func() bool) {
	deadline := time.Now().Add(within)
	last, lastChange := int64(-1), time.Now()
	for ctx.Err() == nil && time.Now().Before(deadline) {
		if m.outstanding() == 0 {
			return
		}
		if n, _, _ := m.results(); n != last || busy() {
			last, lastChange = n, time.Now()
		} else if time.Since(lastChange) > stallTimeout {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}
