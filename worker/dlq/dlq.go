// Package dlq is edgehook's dead-letter processor and replay. The DLQ stream captures
// the delivery consumer's MAX_DELIVERIES and MSG_TERMINATED advisories; the Processor
// consumes them, fetches each original event from EVENTS by stream sequence, writes a
// dead-letter record (payload plus headers: tenant, event id, type, attempts, last
// status code and error, first and last attempt times) on dlq.<tenantId>.<eventId>,
// marks the event failed, and acks the advisory. Handling an advisory twice writes one
// dead letter. The Processor also executes the tenant API's replay requests; operators
// replay with Scan and Replayer (`edgehook dlq replay`).
package dlq

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/edgehook/edgehook/natsconf"
	"github.com/edgehook/edgehook/status"
	"github.com/edgehook/edgehook/worker/pull"
)

// Defaults applied by New to zero-valued Config fields.
const (
	DefaultConcurrency  = 4
	DefaultRetryDelay   = 5 * time.Second
	DefaultDrainTimeout = 10 * time.Second
)

// callTimeout bounds each NATS call made while handling one message.
const callTimeout = 10 * time.Second

// ErrInvalidConfig is wrapped by every error New returns for a setting that cannot
// work; the message names the setting.
var ErrInvalidConfig = errors.New("dlq: invalid configuration")

// ErrConsumingStopped is returned by Run when consuming ended while its context was
// still live (the consumer was deleted or the connection closed).
var ErrConsumingStopped = pull.ErrConsumingStopped

// Config holds the processor's settings. Zero values take the defaults above.
type Config struct {
	// Concurrency is how many advisories and replay requests are handled at once.
	Concurrency int
	// RetryDelay is how long a message waits after a transient failure (a NATS call
	// timing out) before it is handled again.
	RetryDelay time.Duration
	// DrainTimeout bounds how long Run waits for messages being handled at shutdown.
	DrainTimeout time.Duration
}

// Deps are the processor's collaborators.
type Deps struct {
	// JS reaches the natsconf.ConsumerDLQ consumer, EVENTS (get by sequence) and DLQ.
	JS jetstream.JetStream
	// Status reads attempt logs and marks dead-lettered events failed.
	Status *status.Store
	// Logger gets one line per dead letter and replay (nil: discard).
	Logger *slog.Logger
	// Registerer receives the processor's metrics (nil: not registered).
	Registerer prometheus.Registerer
}

// Processor turns advisories into dead letters and executes replay requests. Create it
// with New and run it with Run; Ready is safe from any goroutine.
type Processor struct {
	cfg     Config
	js      jetstream.JetStream
	status  *status.Store
	log     *slog.Logger
	metrics *metrics
	ready   atomic.Bool

	// Set by Run.
	events, dlq jetstream.Stream
	replayer    *Replayer
}

// New validates cfg and deps, registers the metrics and returns a Processor that does
// nothing until Run.
func New(cfg Config, deps Deps) (*Processor, error) {
	if cfg.Concurrency == 0 {
		cfg.Concurrency = DefaultConcurrency
	}
	if cfg.RetryDelay == 0 {
		cfg.RetryDelay = DefaultRetryDelay
	}
	if cfg.DrainTimeout == 0 {
		cfg.DrainTimeout = DefaultDrainTimeout
	}
	switch {
	case cfg.Concurrency < 1:
		return nil, fmt.Errorf("%w: Concurrency must be at least 1, got %d", ErrInvalidConfig, cfg.Concurrency)
	case cfg.RetryDelay < 0:
		return nil, fmt.Errorf("%w: RetryDelay must not be negative, got %s", ErrInvalidConfig, cfg.RetryDelay)
	case cfg.DrainTimeout < 0:
		return nil, fmt.Errorf("%w: DrainTimeout must not be negative, got %s", ErrInvalidConfig, cfg.DrainTimeout)
	case deps.JS == nil:
		return nil, fmt.Errorf("%w: Deps.JS is required", ErrInvalidConfig)
	case deps.Status == nil:
		return nil, fmt.Errorf("%w: Deps.Status is required", ErrInvalidConfig)
	}
	log := deps.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m, err := newMetrics(deps.Registerer)
	if err != nil {
		return nil, err
	}
	return &Processor{cfg: cfg, js: deps.JS, status: deps.Status, log: log, metrics: m}, nil
}

// Ready reports whether the processor is consuming.
func (p *Processor) Ready() bool { return p.ready.Load() }

// Run consumes advisories and replay requests until ctx is cancelled, then lets the
// messages being handled finish for up to DrainTimeout and returns nil. A message
// whose handling fails transiently is put back for RetryDelay; nothing is acked before
// its work is durable. Run returns an error wrapping ErrConsumingStopped if consuming
// ends while ctx is live. Call Run once.
func (p *Processor) Run(ctx context.Context) error {
	cons, err := p.js.Consumer(ctx, natsconf.StreamDLQ, natsconf.ConsumerDLQ)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("dlq: consumer %s on stream %s (run `edgehook setup nats`): %w", natsconf.ConsumerDLQ, natsconf.StreamDLQ, err)
	}
	if p.replayer, err = NewReplayer(ctx, p.js, p.status); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	p.events, p.dlq = p.replayer.events, p.replayer.dlq
	iter, err := cons.Messages(jetstream.PullMaxMessages(2 * p.cfg.Concurrency))
	if err != nil {
		return fmt.Errorf("dlq: subscribe: %w", err)
	}
	loop := pull.Loop{
		Concurrency:  p.cfg.Concurrency,
		DrainTimeout: p.cfg.DrainTimeout,
		Ready:        &p.ready,
		Log:          p.log,
		Handle:       func(_, work context.Context, msg jetstream.Msg) { p.handle(work, msg) },
		DrainTimedOut: func(jetstream.MessagesContext) {
			// Unfinished messages are redelivered after the ack wait.
			p.log.Warn("drain timeout: messages being handled are redelivered after the ack wait", "drainTimeout", p.cfg.DrainTimeout)
		},
	}
	p.log.Info("dlq processor consuming", "concurrency", p.cfg.Concurrency)
	if err := loop.Run(ctx, iter, p.js.Conn().FlushTimeout); err != nil {
		return fmt.Errorf("dlq: %w", err)
	}
	p.log.Info("dlq processor stopped")
	return nil
}

// handle processes one message and settles it: ack when done (or when there is
// nothing to do), nak with RetryDelay on a transient failure.
func (p *Processor) handle(ctx context.Context, msg jetstream.Msg) {
	var err error
	switch subj := msg.Subject(); {
	case subj == natsconf.AdvisoryMaxDeliveries || subj == natsconf.AdvisoryTerminated:
		err = p.advisory(ctx, msg)
	default:
		err = p.replayRequest(ctx, msg)
	}
	if err != nil {
		p.metrics.retries.Inc()
		p.log.Warn("dlq message not handled; retrying", "subject", msg.Subject(), "retryIn", p.cfg.RetryDelay, "error", err)
		if err := msg.NakWithDelay(p.cfg.RetryDelay); err != nil {
			p.log.Warn("nak failed; redelivered after the ack wait", "error", err)
		}
		return
	}
	if err := msg.Ack(); err != nil {
		p.log.Warn("ack failed; the message is handled again (idempotently)", "subject", msg.Subject(), "error", err)
	}
}

// replayRequest executes a replay request of the tenant API.
func (p *Processor) replayRequest(ctx context.Context, msg jetstream.Msg) error {
	tenantID, eventID := msg.Headers().Get(natsconf.HeaderTenant), msg.Headers().Get(natsconf.HeaderEventID)
	if tenantID == "" || eventID == "" || msg.Subject() != natsconf.ReplaySubject(tenantID) {
		p.metrics.replays.WithLabelValues(replayRejected).Inc()
		p.log.Warn("ignoring a malformed replay request", "subject", msg.Subject())
		return nil
	}
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	r, err := p.replayer.Replay(cctx, tenantID, eventID)
	switch {
	case errors.Is(err, status.ErrNotFound), errors.Is(err, ErrNotReplayable), errors.Is(err, ErrNoPayload):
		p.metrics.replays.WithLabelValues(replayRejected).Inc()
		p.log.Warn("replay request rejected", "tenant", tenantID, "event", eventID, "reason", err)
		return nil
	case err != nil:
		return err
	case r.Duplicate:
		p.metrics.replays.WithLabelValues(replayDuplicate).Inc()
		p.log.Info("replay request for a state replayed already", "tenant", tenantID, "event", eventID)
		return nil
	}
	p.metrics.replays.WithLabelValues(replayDone).Inc()
	p.log.Info("event replayed", "tenant", tenantID, "event", eventID, "replay", r.Replay, "seq", r.Seq, "by", "api")
	return nil
}
