package worker

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

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
	attempt         int // 1 for the first delivery, counted by the server
	payload         []byte
}

// parseEvent reads the event headers the gateway sets. A message without an event id
// or tenant, or whose tenant does not match its subject, is not an event.
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
	ev.attempt = int(meta.NumDelivered)
	if ns, err := strconv.ParseInt(h.Get(natsconf.HeaderIngestTime), 10, 64); err == nil {
		ev.createdAt = time.Unix(0, ns).UTC()
	} else {
		ev.createdAt = meta.Timestamp.UTC()
	}
	return ev, nil
}

// handle delivers one message and settles it (ack, nak or term) exactly once, unless
// shutdown has already given it back.
func (w *Worker) handle(ctx context.Context, b *attemptBuffers, msg jetstream.Msg) {
	ev, err := parseEvent(msg)
	if err != nil {
		w.log.Warn("terminating a message that is not an event", "subject", msg.Subject(), "error", err)
		if err := msg.TermWithReason("not an edgehook event"); err != nil {
			w.log.Warn("term failed", "subject", msg.Subject(), "error", err)
		}
		return
	}
	f := w.track(msg)
	defer w.untrack(f)
	r := w.attempt(ctx, b, &ev)
	w.finish(ctx, f, &ev, r)
}

// attempt reads the tenant's webhook config and makes one HTTP attempt. It never
// sends an unsigned webhook.
func (w *Worker) attempt(ctx context.Context, b *attemptBuffers, ev *event) result {
	cctx, cancel := context.WithTimeout(ctx, configReadTimeout)
	cfg, err := w.configs.WebhookConfig(cctx, ev.tenant)
	cancel()
	switch {
	case errors.Is(err, vault.ErrNotFound):
		return result{terminal: true, lastError: errTextNoConfig}
	case err != nil:
		w.log.Warn("webhook config read failed", "tenant", ev.tenant, "event", ev.id, "error", err)
		return result{lastError: errTextConfigUnavailable}
	case cfg.Secret.IsZero():
		return result{lastError: errTextNoSecret}
	}
	if err := checkTargetURL(cfg.TargetURL); err != nil {
		return result{refused: true, lastError: err.Error()}
	}
	now := time.Now()
	r := w.post(b, cfg.TargetURL, cfg.ActiveSecrets(now), ev, now)
	w.metrics.latency.Observe(r.duration.Seconds())
	return r
}

// finish records the attempt's outcome in the status bucket, then settles the message:
// 2xx ack; 410 or no config term; attempts exhausted nak (the server then emits its
// MAX_DELIVERIES advisory and does not redeliver); otherwise nak with the retry delay.
func (w *Worker) finish(ctx context.Context, f *flight, ev *event, r result) {
	rec := status.Record{
		EventID:        ev.id,
		TenantID:       ev.tenant,
		Type:           ev.typ,
		Attempts:       ev.attempt,
		LastStatusCode: r.statusCode,
		LastError:      r.lastError,
		CreatedAt:      ev.createdAt,
		UpdatedAt:      time.Now().UTC(),
	}
	var (
		outcome string
		settle  func(jetstream.Msg) error
	)
	switch {
	case r.delivered():
		rec.Status, outcome, settle = status.Delivered, outcomeDelivered, jetstream.Msg.Ack
		w.log.Debug("webhook delivered", "tenant", ev.tenant, "event", ev.id, "attempt", ev.attempt,
			"statusCode", r.statusCode, "duration", r.duration)
	case r.terminal:
		rec.Status, outcome = status.Failed, outcomeFailed
		settle = func(m jetstream.Msg) error { return m.TermWithReason(r.lastError) }
		w.log.Warn("webhook delivery failed permanently", "tenant", ev.tenant, "event", ev.id, "attempt", ev.attempt,
			"statusCode", r.statusCode, "reason", r.lastError)
	case ev.attempt >= w.cfg.MaxDeliver:
		rec.Status, outcome, settle = status.Failed, outcomeFailed, jetstream.Msg.Nak
		w.log.Warn("webhook delivery failed: attempts exhausted", "tenant", ev.tenant, "event", ev.id, "attempt", ev.attempt,
			"statusCode", r.statusCode, "reason", r.lastError)
	default:
		delay := retryDelay(r, ev.attempt, w.cfg.RetrySchedule, w.cfg.MaxRetryAfter)
		rec.Status, outcome = status.Retrying, outcomeRetry
		if r.refused {
			outcome = outcomeRefused
		}
		settle = func(m jetstream.Msg) error { return m.NakWithDelay(delay) }
		w.log.Warn("webhook attempt failed, will retry", "tenant", ev.tenant, "event", ev.id, "attempt", ev.attempt,
			"statusCode", r.statusCode, "reason", r.lastError, "retryIn", delay)
	}
	w.metrics.deliveries.WithLabelValues(outcome).Inc()

	if f.isSettled() { // shutdown gave the event back; the next worker records it
		w.log.Info("attempt finished after shutdown returned the event for redelivery",
			"tenant", ev.tenant, "event", ev.id, "attempt", ev.attempt)
		return
	}
	sctx, cancel := context.WithTimeout(ctx, statusWriteTimeout)
	if err := w.status.Put(sctx, rec); err != nil {
		w.log.Error("status not recorded", "tenant", ev.tenant, "event", ev.id, "status", rec.Status, "error", err)
	}
	cancel()
	if settled, err := f.settle(settle); err != nil {
		w.log.Error("settling message failed; it will be redelivered after the ack wait",
			"tenant", ev.tenant, "event", ev.id, "error", err)
	} else if !settled {
		w.log.Info("attempt finished after shutdown returned the event for redelivery",
			"tenant", ev.tenant, "event", ev.id, "attempt", ev.attempt)
	}
}
