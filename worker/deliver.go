package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/edgehook/edgehook/natsconf"
	"github.com/edgehook/edgehook/status"
	"github.com/edgehook/edgehook/vault"
)

// Bounds on the calls around an attempt. With HTTPTimeout they make up the longest
// time one message can take, which decides whether it needs InProgress signals.
const (
	configReadTimeout  = 5 * time.Second
	statusWriteTimeout = 5 * time.Second
)

// statusRetryDelay paces the retries of a failed status write, and delays the
// redelivery of a delivered event whose status could not be written.
const statusRetryDelay = time.Second

// Terminal and retryable reasons that are not HTTP answers.
const (
	errTextNoConfig          = "tenant has no webhook config"
	errTextConfigUnavailable = "webhook config unavailable"
	errTextNoSecret          = "webhook config has no signing secret"
)

// errNotEvent marks a message on EVENTS that lacks the event headers.
var errNotEvent = errors.New("worker: message is not an event")

// event is one message of EVENTS as the worker sees it.
type event struct {
	id, tenant, typ string
	createdAt       time.Time
	attempt         int    // of the event's budget: 1 for its first delivery
	delivered       int    // deliveries of this message, counted by the server
	seq             uint64 // stream sequence on EVENTS
	replay          int    // 0 for the original, k for the k-th replay
	prior           int    // attempts logged before this replay
	payload         []byte
	// From parking (park.go): the attempts spent before this message, the EVENTS
	// sequence of the message its parked copy was made from (0 if none), the endpoint
	// it probes (""), whether the server's scheduler published it, and when it was due.
	used       int
	parkedFrom uint64
	probe      string
	fired      bool
	due        time.Time
}

// logIndex is the index of this delivery in the event's attempt log.
func (ev *event) logIndex() int { return ev.prior + ev.attempt }

// parseEvent reads the event headers the gateway (or a replay) sets. A message without
// an event id or tenant, or whose tenant does not match its subject, is not an event.
func parseEvent(msg jetstream.Msg) (event, error) {
	h := msg.Headers()
	ev := event{
		id:      h.Get(natsconf.HeaderEventID),
		tenant:  h.Get(natsconf.HeaderTenant),
		typ:     h.Get(natsconf.HeaderEventType),
		payload: msg.Data(),
	}
	if ev.id == "" || ev.tenant == "" {
		return ev, fmt.Errorf("%w: no %s or %s header", errNotEvent, natsconf.HeaderEventID, natsconf.HeaderTenant)
	}
	if msg.Subject() != natsconf.EventSubject(ev.tenant) {
		return ev, fmt.Errorf("%w: %s header does not match the subject", errNotEvent, natsconf.HeaderTenant)
	}
	meta, err := msg.Metadata()
	if err != nil {
		return ev, fmt.Errorf("%w: %w", errNotEvent, err)
	}
	// The headers of parking and replays are absent from most events: they are read
	// only when set, since a failed parse allocates its error.
	ev.used = headerInt(h, natsconf.HeaderAttempts)
	if v := h.Get(natsconf.HeaderParkedFrom); v != "" {
		ev.parkedFrom, _ = strconv.ParseUint(v, 10, 64)
	}
	ev.probe = h.Get(natsconf.HeaderProbe)
	ev.fired = h.Get(natsconf.HeaderScheduler) != ""
	if ns, ok := headerInt64(h, natsconf.HeaderDue); ok {
		ev.due = time.Unix(0, ns)
	}
	ev.delivered = int(meta.NumDelivered)
	ev.attempt = ev.used + ev.delivered
	ev.seq = meta.Sequence.Stream
	if ns, ok := headerInt64(h, natsconf.HeaderIngestTime); ok {
		ev.createdAt = time.Unix(0, ns).UTC()
	} else {
		ev.createdAt = meta.Timestamp.UTC()
	}
	ev.replay = headerInt(h, natsconf.HeaderReplay)
	ev.prior = headerInt(h, natsconf.HeaderPriorAttempts)
	return ev, nil
}

// headerInt reads header key of h as a count: 0 when absent, negative or not a number.
func headerInt(h nats.Header, key string) int {
	v := h.Get(key)
	if v == "" {
		return 0
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0
	}
	return max(n, 0)
}

// headerInt64 reads header key of h as an int64, reporting whether it holds one.
func headerInt64(h nats.Header, key string) (int64, bool) {
	v := h.Get(key)
	if v == "" {
		return 0, false
	}
	n, err := strconv.ParseInt(v, 10, 64)
	return n, err == nil
}

// dispatch takes one message: a non-event is terminated, a stale parked copy dropped;
// an event runs now if its tenant has a free slot, is parked if its endpoint's breaker
// is open (unless it probes the endpoint or is its last attempt), or waits in its
// tenant's queue (kept alive with InProgress) for a slot. Only when the queue of all
// tenants is full does dispatch wait, polling, for room.
func (w *Worker) dispatch(ctx, workCtx context.Context, b *attemptBuffers, msg jetstream.Msg) {
	ev, err := parseEvent(msg)
	if err != nil {
		w.log.Warn("terminating a message that is not an event", "subject", msg.Subject(), "error", err)
		if err := msg.TermWithReason("not an edgehook event"); err != nil {
			w.log.Warn("term failed", "subject", msg.Subject(), "error", err)
		}
		return
	}
	if ev.fired && !ev.due.IsZero() {
		w.metrics.lateness.Observe(max(time.Since(ev.due), 0).Seconds())
	} else if ev.delivered > 1 { // a nak'd retry: the same message redelivered
		if due, ok := w.lateness.take(ev.id, ev.attempt); ok {
			w.metrics.lateness.Observe(max(time.Since(due), 0).Seconds())
		}
	}
	if w.stale(ctx, &ev) {
		w.metrics.staleCopies.Inc()
		if err := msg.Ack(); err != nil {
			w.log.Warn("ack of a stale parked copy failed", "tenant", ev.tenant, "event", ev.id, "error", err)
		}
		return
	}
	j := &job{msg: msg, ev: ev, f: w.track(msg)}
	w.readConfig(ctx, j)
	if w.parkNow(workCtx, j) {
		return
	}
	for {
		switch w.tenants.admit(j) {
		case admitRun:
			w.run(ctx, workCtx, b, j)
			return
		case admitHold:
			j.f.keepAlive(w.waitingEvery)
			return
		}
		j.f.keepAlive(w.waitingEvery)
		select {
		case <-ctx.Done():
			w.giveBack(j)
			return
		case <-time.After(waitingPoll):
		}
	}
}

// configPeeker is a ConfigReader with a hit path that never blocks (vault.Cache).
type configPeeker interface {
	Peek(tenantID string) (vault.WebhookConfig, bool)
}

// readConfig reads j's tenant's webhook config (through the cache) and the endpoint
// it names. A fresh cached config is taken as it is; only a read that may go upstream
// is bounded by a timeout of its own.
func (w *Worker) readConfig(ctx context.Context, j *job) {
	var hit bool
	if w.peek != nil {
		j.cfg, hit = w.peek.Peek(j.ev.tenant)
	}
	if !hit {
		cctx, cancel := context.WithTimeout(ctx, configReadTimeout)
		j.cfg, j.cfgErr = w.configs.WebhookConfig(cctx, j.ev.tenant)
		cancel()
	}
	if j.cfgErr == nil {
		if origin, ep, ok := w.endpointIDs.get(j.cfg.TargetURL); ok {
			j.origin, j.ep = origin, ep
		}
	}
}

// parkNow parks j without an attempt if its endpoint is parked, and reports whether it
// did. A probe of the endpoint and an event's last attempt are attempted anyway.
func (w *Worker) parkNow(ctx context.Context, j *job) bool {
	if j.ep == "" || j.ev.probe == j.ep || j.ev.attempt >= w.cfg.MaxDeliver {
		return false
	}
	parked, reason := w.endpoints.parking(j.ep, j.ev.tenant)
	if !parked {
		return false
	}
	w.park(ctx, j, reason)
	return true
}

// run delivers j, then the tenant's waiting events its slot passes to, until the
// tenant's queue is empty or the worker is stopping; a waiting event whose endpoint
// was parked meanwhile is parked instead.
func (w *Worker) run(ctx, workCtx context.Context, b *attemptBuffers, j *job) {
	for j != nil {
		w.metrics.inFlight.Inc()
		r := w.deliver(workCtx, b, j)
		w.metrics.inFlight.Dec()
		probe := j.ev.probe == j.ep
		switch w.endpoints.report(j.ep, j.origin, r, probe, time.Now()) {
		case breakerClosed:
			w.log.Info("endpoint answers again; its parked events come back", "tenant", j.ev.tenant, "endpoint", j.ep)
			w.unparkInBackground(natsconf.ParkedFilter(j.ep), "endpoint answers")
		case breakerOpen:
			if probe {
				w.log.Debug("probe failed; endpoint stays parked", "tenant", j.ev.tenant, "endpoint", j.ep, "error", r.lastError)
			} else {
				w.log.Warn("endpoint parked: its events wait until it answers again", "tenant", j.ev.tenant, "endpoint", j.ep, "error", r.lastError)
			}
		}
		next := w.tenants.done(j, ctx.Err() != nil)
		for next != nil && w.parkNow(workCtx, next) {
			next = w.tenants.done(next, ctx.Err() != nil)
		}
		j = next
	}
}

// deliver makes one attempt of j and settles it exactly once, unless shutdown has
// already given it back.
func (w *Worker) deliver(ctx context.Context, b *attemptBuffers, j *job) result {
	defer w.untrack(j.f)
	if j.f.isSettled() { // given back at shutdown while it waited
		return result{}
	}
	r := w.attempt(b, j)
	w.finish(ctx, j, r)
	return r
}

// park settles j without an HTTP attempt because its endpoint is parked: it is
// recorded as a parked attempt and waits, as a parked copy, for its next scheduled
// attempt or its endpoint's recovery, whichever comes first.
func (w *Worker) park(ctx context.Context, j *job, reason string) {
	defer w.untrack(j.f)
	w.finish(ctx, j, result{parked: true, lastError: reason, at: time.Now()})
}

// giveBack returns j to the server for immediate redelivery (shutdown).
func (w *Worker) giveBack(j *job) {
	defer w.untrack(j.f)
	if _, err := j.f.settle(jetstream.Msg.Nak); err != nil {
		w.log.Warn("nak at shutdown failed; the event is redelivered after the ack wait", "tenant", j.ev.tenant, "event", j.ev.id, "error", err)
	}
}

// attempt makes one HTTP attempt of j with its tenant's webhook config. It never sends
// an unsigned webhook.
func (w *Worker) attempt(b *attemptBuffers, j *job) result {
	cfg, err, ev := j.cfg, j.cfgErr, &j.ev
	now := time.Now()
	switch {
	case errors.Is(err, vault.ErrNotFound):
		return result{terminal: true, lastError: errTextNoConfig, at: now}
	case err != nil:
		w.log.Warn("webhook config read failed", "tenant", ev.tenant, "event", ev.id, "error", err)
		return result{lastError: errTextConfigUnavailable, at: now}
	case cfg.Secret.IsZero():
		return result{lastError: errTextNoSecret, at: now}
	}
	if err := b.tenants.checkURL(ev.tenant, cfg.TargetURL); err != nil {
		return result{refused: true, lastError: err.Error(), at: now}
	}
	r := w.post(b, cfg.TargetURL, cfg.ActiveSecrets(now), ev, now)
	w.metrics.latency.Observe(r.duration.Seconds())
	return r
}

// finish records the attempt in the event's status record, and a failed one in its
// attempt log (one round trip), then settles the message: 2xx ack; 410 or no config term; attempts exhausted
// nak (the server then emits its MAX_DELIVERIES advisory and does not redeliver);
// otherwise nak with the retry delay (for a parked endpoint, at least until its
// cooldown ends).
func (w *Worker) finish(ctx context.Context, j *job, r result) {
	f, ev := j.f, &j.ev
	rec := status.Record{
		EventID:        ev.id,
		TenantID:       ev.tenant,
		Type:           ev.typ,
		Attempts:       ev.attempt,
		LastStatusCode: r.statusCode,
		LastError:      r.lastError,
		CreatedAt:      ev.createdAt,
		UpdatedAt:      time.Now().UTC(),
		Seq:            ev.seq,
		TotalAttempts:  ev.logIndex(),
		Replays:        ev.replay,
	}
	var (
		outcome   string
		settle    func(jetstream.Msg) error
		due       time.Time // of the next attempt, when it waits as a parked copy
		untilLast bool      // that attempt is its last (see parkCopy)
		delay     time.Duration
	)
	switch {
	case r.delivered():
		rec.Status, outcome, settle = status.Delivered, outcomeDelivered, jetstream.Msg.Ack
		if w.log.Enabled(ctx, slog.LevelDebug) { // its attributes would allocate per delivery
			w.log.Debug("webhook delivered", "tenant", ev.tenant, "event", ev.id, "attempt", ev.attempt,
				"statusCode", r.statusCode, "duration", r.duration)
		}
	case r.terminal:
		rec.Status, outcome = status.Failed, outcomeFailed
		settle = func(m jetstream.Msg) error { return m.TermWithReason(r.lastError) }
		w.log.Warn("webhook delivery failed permanently", "tenant", ev.tenant, "event", ev.id, "attempt", ev.attempt,
			"statusCode", r.statusCode, "reason", r.lastError)
	case ev.attempt >= w.cfg.MaxDeliver:
		rec.Status, outcome = status.Failed, outcomeFailed
		// The consumer dead-letters a message it delivered MaxDeliver times; an event
		// that spent part of its budget as an earlier message (before parking) is
		// terminated, which dead-letters it just the same.
		settle = jetstream.Msg.Nak
		if ev.delivered < w.cfg.MaxDeliver {
			settle = func(m jetstream.Msg) error { return m.TermWithReason(natsconf.ReasonAttemptsExhausted) }
		}
		w.log.Warn("webhook delivery failed: attempts exhausted", "tenant", ev.tenant, "event", ev.id, "attempt", ev.attempt,
			"statusCode", r.statusCode, "reason", r.lastError, "parked", r.parked)
	default:
		delay = retryDelay(r, ev.attempt, w.cfg.RetrySchedule, w.cfg.MaxRetryAfter)
		rec.Status, outcome = status.Retrying, outcomeRetry
		switch {
		case r.parked:
			outcome = outcomeParked
		case r.refused:
			outcome = outcomeRefused
		}
		// An event of a parked endpoint, and a failed probe (its copy is no probe), waits
		// for the endpoint's recovery or its last attempt, whichever comes first: one
		// schedule, not one per retry, so a parked backlog does not pass through the
		// consumer again at every retry (see parkCopy).
		switch {
		case r.parked || ev.probe != "":
			untilLast = true
			due = time.Now().Add(jitter(natsconf.RemainingBudget(w.cfg.RetrySchedule, w.cfg.MaxDeliver, ev.attempt), rand.Float64()))
		case delay > w.cfg.MaxNakDelay:
			due = time.Now().Add(delay)
		}
		settle = func(m jetstream.Msg) error { return m.NakWithDelay(delay) }
		if r.parked {
			w.log.Debug("endpoint parked, event waits", "tenant", ev.tenant, "event", ev.id, "attempt", ev.attempt, "retryIn", delay)
		} else {
			w.log.Warn("webhook attempt failed, will retry", "tenant", ev.tenant, "event", ev.id, "attempt", ev.attempt,
				"statusCode", r.statusCode, "reason", r.lastError, "retryIn", delay)
		}
	}
	w.metrics.outcomes[outcome].Inc()

	if f.isSettled() { // shutdown gave the event back; the next worker records it
		w.log.Info("attempt finished after shutdown returned the event for redelivery",
			"tenant", ev.tenant, "event", ev.id, "attempt", ev.attempt)
		return
	}
	if !due.IsZero() {
		// The copy is written before the message is acked: nothing is lost between.
		if err := w.parkCopy(ctx, j.msg, ev, j.ep, due, untilLast); err != nil {
			w.log.Warn("parked copy not written; the event waits in the consumer instead", "tenant", ev.tenant, "event", ev.id, "error", err)
		} else {
			settle = jetstream.Msg.Ack
		}
	}
	if due.IsZero() && rec.Status == status.Retrying {
		w.lateness.put(ev.id, ev.attempt+1, time.Now().Add(delay))
	}
	att := status.Attempt{
		TenantID: ev.tenant, EventID: ev.id, N: ev.logIndex(), Attempt: ev.attempt, Replay: ev.replay, Seq: ev.seq,
		At: r.at.UTC(), Outcome: attemptOutcome(outcome), StatusCode: r.statusCode,
		LatencyMs: float64(r.duration.Microseconds()) / 1000, Error: r.lastError, ResponseBody: string(r.bodyPrefix),
	}
	// A delivery is the event's last attempt (until a replay, which logs it): the
	// status record carries it, one write. Any other attempt joins the log.
	var log []status.Attempt
	if r.delivered() {
		rec.LastAttempt = &att
	} else {
		log = []status.Attempt{att}
	}
	if err := w.record(ctx, rec, log); err != nil {
		w.log.Error("status not recorded", "tenant", ev.tenant, "event", ev.id, "status", rec.Status, "error", err)
		if r.delivered() {
			// An ack now would leave the event "retrying" forever. Redeliver it instead:
			// the endpoint sees it again, with the same webhook-id, and the next attempt
			// records it.
			settle = func(m jetstream.Msg) error { return m.NakWithDelay(statusRetryDelay) }
		}
	}
	if settled, err := f.settle(settle); err != nil {
		w.log.Error("settling message failed; it will be redelivered after the ack wait",
			"tenant", ev.tenant, "event", ev.id, "error", err)
	} else if !settled {
		w.log.Info("attempt finished after shutdown returned the event for redelivery",
			"tenant", ev.tenant, "event", ev.id, "attempt", ev.attempt)
	}
}

// record writes the attempt and status record, trying again while the write fails (a
// reconnect to NATS takes a moment) for up to statusWriteTimeout in all. The first try
// is bounded by the recorder's own timeout (statusWriteTimeout), so the usual case, a
// write that succeeds, needs no context of its own.
func (w *Worker) record(ctx context.Context, rec status.Record, log []status.Attempt) error {
	start := time.Now()
	err := w.rec.Record(ctx, rec, log...)
	if err == nil || ctx.Err() != nil {
		return err
	}
	ctx, cancel := context.WithDeadline(ctx, start.Add(statusWriteTimeout))
	defer cancel()
	for {
		select {
		case <-ctx.Done():
			return err
		case <-time.After(statusRetryDelay / 4):
		}
		if err = w.rec.Record(ctx, rec, log...); err == nil || ctx.Err() != nil {
			return err
		}
	}
}

// attemptOutcome maps a delivery outcome to the attempt log's vocabulary.
func attemptOutcome(outcome string) string {
	switch outcome {
	case outcomeDelivered:
		return status.OutcomeDelivered
	case outcomeFailed:
		return status.OutcomeFailed
	case outcomeRefused:
		return status.OutcomeRefused
	case outcomeParked:
		return status.OutcomeParked
	}
	return status.OutcomeRetry
}
