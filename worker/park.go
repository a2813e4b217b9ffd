package worker

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/edgehook/edgehook/natsconf"
	"github.com/edgehook/edgehook/status"
)

// Parking keeps the delivery consumer's pending set to what is in flight and to short
// retries. An event that must wait long (its retry is more than MaxNakDelay away, or
// its endpoint is parked) leaves the consumer: the worker writes a parked copy on
// parked.<endpoint>.<tenantId>.<eventId> in PARKED, scheduled by the server to come
// back (on due.<tenantId>, which EVENTS sources as events.<tenantId>) when its next
// attempt is due, and only then acks the
// message (a crash in between leaves both; the copy's subject makes a second one
// replace the first). A copy carries the attempts spent so far, so the budget runs
// out on the same timeline as with redeliveries, and the last attempt dead-letters
// through the consumer's advisory.
//
// When a parked endpoint's breaker lets a probe through, the worker brings one copy
// back early as the probe; when the endpoint answers, it brings every copy of the
// endpoint back at once. A copy whose event moved on meanwhile (its status record
// names a later message) is stale and is dropped when it comes back.

// parkedOutHeaders are dropped from a parked copy and from an event brought back: the
// server's and this worker's own bookkeeping. Nats-Msg-Id above all: the copy must not
// be taken for a duplicate of the event within the duplicate window.
func parkedOutHeader(k string) bool {
	return strings.HasPrefix(k, "Nats-") || k == natsconf.HeaderProbe || k == natsconf.HeaderDue
}

// parkCopy writes the parked copy of msg, event ev of endpoint ep, due at due (rounded
// up to the second, the schedule's precision, so it never comes back early).
//
// With untilLast, due is the event's last attempt (its endpoint is parked): the copy
// carries MaxDeliver-1 attempts, so when the schedule fires its attempt is the last,
// and the attempts really spent in HeaderParkedAttempts, which bringBack restores when
// the endpoint recovers first.
func (w *Worker) parkCopy(ctx context.Context, msg jetstream.Msg, ev *event, ep string, due time.Time, untilLast bool) error {
	if t := due.Truncate(time.Second); t.Before(due) {
		due = t.Add(time.Second)
	}
	m := nats.NewMsg(natsconf.ParkedSubject(orNone(ep), ev.tenant, ev.id))
	for k, v := range msg.Headers() {
		if !parkedOutHeader(k) {
			m.Header[k] = v
		}
	}
	m.Header.Set(natsconf.HeaderAttempts, strconv.Itoa(ev.attempt))
	m.Header.Del(natsconf.HeaderParkedAttempts)
	if untilLast {
		m.Header.Set(natsconf.HeaderAttempts, strconv.Itoa(max(w.cfg.MaxDeliver-1, ev.attempt)))
		m.Header.Set(natsconf.HeaderParkedAttempts, strconv.Itoa(ev.attempt))
	}
	m.Header.Set(natsconf.HeaderParkedFrom, strconv.FormatUint(ev.seq, 10))
	m.Header.Set(natsconf.HeaderDue, strconv.FormatInt(due.UnixNano(), 10))
	m.Data = msg.Data()
	ctx, cancel := context.WithTimeout(ctx, statusWriteTimeout)
	defer cancel()
	_, err := w.pub.PublishMsg(ctx, m,
		jetstream.WithScheduleAt(due), jetstream.WithScheduleTarget(natsconf.DueSubject(ev.tenant)),
		jetstream.WithExpectStream(natsconf.StreamParked))
	if err != nil {
		return fmt.Errorf("worker: park %s: %w", ev.id, err)
	}
	w.metrics.parkedCopies.Inc()
	return nil
}

// orNone is the endpoint key of a parked copy: "none" when the endpoint is unknown
// (the config could not be read).
func orNone(ep string) string {
	if ep == "" {
		return "none"
	}
	return ep
}

// stale reports whether ev, a parked copy or an event brought back from one, belongs
// to a state its event has left: its status record names another, later message of
// EVENTS (the event was brought back again, replayed, or its schedule fired as well).
// A message brought back claims the record (its sequence) before its attempt, so of
// two returns of one copy arriving together, whichever claims second is stale; a
// redelivery of the claiming message is not. In doubt it is not stale: a duplicate
// with the same webhook-id, never a loss.
func (w *Worker) stale(ctx context.Context, ev *event) bool {
	if ev.parkedFrom == 0 {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, configReadTimeout)
	defer cancel()
	for range staleClaimTries {
		rec, rev, err := w.status.Entry(ctx, ev.tenant, ev.id)
		switch {
		case err != nil:
			return false
		case rec.Seq == ev.seq:
			return false // this message claimed it (a redelivery)
		case rec.Seq > ev.parkedFrom:
			return true
		case ev.seq == 0:
			return false // a copy still on PARKED: nothing to claim
		}
		rec.Seq, rec.UpdatedAt = ev.seq, time.Now().UTC()
		if err := w.status.Update(ctx, rec, rev); !errors.Is(err, status.ErrConflict) {
			return false
		}
	}
	return false
}

// staleClaimTries bounds the optimistic claims of stale.
const staleClaimTries = 3

// bringBack publishes the parked copy m on events.<tenantId> now (as the probe of
// endpoint probe, when set), so it is delivered before its schedule would bring it.
func (w *Worker) bringBack(ctx context.Context, m *jetstream.RawStreamMsg, probe string) (jetstream.PubAckFuture, error) {
	tenant := m.Header.Get(natsconf.HeaderTenant)
	out := nats.NewMsg(natsconf.EventSubject(tenant))
	for k, v := range m.Header {
		if !parkedOutHeader(k) {
			out.Header[k] = v
		}
	}
	// Back before its last attempt was due: it counts on from the attempts spent.
	if spent := m.Header.Get(natsconf.HeaderParkedAttempts); spent != "" {
		out.Header.Set(natsconf.HeaderAttempts, spent)
		out.Header.Del(natsconf.HeaderParkedAttempts)
	}
	if probe != "" {
		out.Header.Set(natsconf.HeaderProbe, probe)
	}
	out.Data = m.Data
	return w.pub.PublishMsgAsync(out, jetstream.WithExpectStream(natsconf.StreamEvents))
}

// eachParked calls fn with every parked copy on filter, oldest first, until fn returns
// false or there are no more.
func (w *Worker) eachParked(ctx context.Context, filter string, fn func(*jetstream.RawStreamMsg) bool) error {
	for seq := uint64(1); ; {
		gctx, cancel := context.WithTimeout(ctx, configReadTimeout)
		m, err := w.parked.GetMsg(gctx, seq, jetstream.WithGetMsgSubject(filter))
		cancel()
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("worker: read parked copies on %s: %w", filter, err)
		}
		if !fn(m) {
			return nil
		}
		seq = m.Sequence + 1
	}
}

// copyEvent is the part of a parked copy stale needs.
func copyEvent(m *jetstream.RawStreamMsg) *event {
	from, _ := strconv.ParseUint(m.Header.Get(natsconf.HeaderParkedFrom), 10, 64)
	return &event{id: m.Header.Get(natsconf.HeaderEventID), tenant: m.Header.Get(natsconf.HeaderTenant), parkedFrom: from}
}

// probe brings back the oldest live parked copy of ep as the probe of its breaker. With
// none left, the breaker closes: the endpoint's next event tries it.
func (w *Worker) probe(ctx context.Context, ep string) {
	var sent bool
	err := w.eachParked(ctx, natsconf.ParkedFilter(ep), func(m *jetstream.RawStreamMsg) bool {
		if w.stale(ctx, copyEvent(m)) {
			return true
		}
		f, err := w.bringBack(ctx, m, ep)
		if err == nil {
			_, err = awaitPub(ctx, f)
		}
		if err != nil {
			w.log.Warn("probe not sent; the breaker tries again", "endpoint", ep, "error", err)
		} else {
			sent = true
		}
		return false
	})
	switch {
	case err != nil:
		w.log.Warn("probe not sent; the breaker tries again", "endpoint", ep, "error", err)
	case !sent:
		if w.endpoints.close(ep) {
			w.log.Info("endpoint closed: nothing parked is left to probe it with", "endpoint", ep)
		}
	}
}

// unpark brings back every live parked copy on filter (an endpoint's, or one tenant's
// at an endpoint) and returns how many.
func (w *Worker) unpark(ctx context.Context, filter string) (int, error) {
	var (
		n       int
		pending []jetstream.PubAckFuture
		pubErr  error
	)
	flush := func() {
		for _, f := range pending {
			if _, err := awaitPub(ctx, f); err != nil && pubErr == nil {
				pubErr = err
			}
		}
		pending = pending[:0]
	}
	// No stale check here: dispatch drops an event brought back from a stale copy.
	err := w.eachParked(ctx, filter, func(m *jetstream.RawStreamMsg) bool {
		f, err := w.bringBack(ctx, m, "")
		if err != nil {
			pubErr = err
			return false
		}
		pending = append(pending, f)
		n++
		if len(pending) >= 256 {
			flush()
		}
		return pubErr == nil
	})
	flush()
	w.metrics.unparked.Add(float64(n))
	return n, errors.Join(err, pubErr)
}

// unparkInBackground runs unpark(filter) beside the deliveries, until it is done or Run
// returns, logging the outcome. What it has not brought back by then comes back on its
// schedule. Asked again for a filter whose bring-back is running (an endpoint whose
// breaker closed, opened and closed again meanwhile), it runs that filter once more
// when the running one ends, for copies parked after its scan passed them, instead
// of a second scan of the same copies beside the first.
func (w *Worker) unparkInBackground(filter, why string) {
	w.backgroundMu.Lock()
	defer w.backgroundMu.Unlock()
	if w.backgroundCtx == nil || w.backgroundCtx.Err() != nil {
		return // not running (yet, or any more): they come back on their schedule
	}
	if _, running := w.unparking[filter]; running {
		w.unparking[filter] = true
		return
	}
	if w.unparking == nil {
		w.unparking = make(map[string]bool)
	}
	w.unparking[filter] = false
	ctx := w.backgroundCtx
	w.background.Go(func() {
		for {
			start := time.Now()
			n, err := w.unpark(ctx, filter)
			if err != nil {
				w.log.Warn("bringing parked events back stopped; the rest come back on their schedule", "filter", filter, "brought", n, "error", err)
			} else {
				w.log.Info("parked events brought back", "filter", filter, "count", n, "reason", why, "took", time.Since(start))
			}
			w.backgroundMu.Lock()
			again := w.unparking[filter] && err == nil && ctx.Err() == nil
			if !again {
				delete(w.unparking, filter)
			} else {
				w.unparking[filter] = false
			}
			w.backgroundMu.Unlock()
			if !again {
				return
			}
		}
	})
}

// ConfigChanged tells the worker that tenantID's webhook configuration changed (a new
// target or secret): the breakers of the endpoints where this worker parked the
// tenant's events are reset and those events come back, so a fixed target is tried at
// once.
func (w *Worker) ConfigChanged(tenantID string) {
	for _, ep := range w.endpoints.tenantParkedAt(tenantID) {
		w.endpoints.close(ep)
		w.unparkInBackground(natsconf.ParkedSubjectPrefix+ep+"."+tenantID+".*", "config changed")
	}
}

// runProber sends the probes of open breakers as they come due, until ctx ends.
func (w *Worker) runProber(ctx context.Context) {
	defer w.background.Wait() // probes sent from here
	t := time.NewTicker(proberTick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			for _, ep := range w.endpoints.dueProbes(now) {
				w.background.Go(func() { w.probe(ctx, ep) })
			}
		}
	}
}

// proberTick is how often due probes are looked for.
const proberTick = 100 * time.Millisecond

// awaitPub waits for an async publish's ack.
func awaitPub(ctx context.Context, f jetstream.PubAckFuture) (*jetstream.PubAck, error) {
	select {
	case ack := <-f.Ok():
		return ack, nil
	case err := <-f.Err():
		return nil, err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// statusStore is what stale needs of the status bucket.
type statusStore interface {
	Entry(ctx context.Context, tenantID, eventID string) (status.Record, uint64, error)
	Update(ctx context.Context, rec status.Record, revision uint64) error
}
