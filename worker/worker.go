package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/valyala/fasthttp"

	"github.com/edgehook/edgehook/natsconf"
	"github.com/edgehook/edgehook/status"
	"github.com/edgehook/edgehook/vault"
	"github.com/edgehook/edgehook/worker/pull"
)

// ErrConsumingStopped is returned by Run when the message iterator ended while the
// context was still live (the consumer was deleted or the connection closed).
var ErrConsumingStopped = pull.ErrConsumingStopped

// bufferedNakTimeout bounds taking buffered messages back at shutdown, beyond
// DrainTimeout.
const bufferedNakTimeout = 500 * time.Millisecond

// waitingPoll is how often an event that found the waiting queue full looks again.
const waitingPoll = 50 * time.Millisecond

// Worker is a delivery worker. Create it with New and run it with Run; it is safe to
// call Ready from any goroutine.
type Worker struct {
	cfg       Config
	js        jetstream.JetStream
	rec       *status.Recorder
	configs   vault.ConfigReader
	peek      configPeeker // configs' hit path, if it has one
	log       *slog.Logger
	metrics   *metrics
	client    *fasthttp.Client
	tenants   *tenants
	endpoints *endpoints
	// endpointIDs is each target URL's origin and endpoint key, parsed once.
	endpointIDs endpointIDs
	pub         jetstream.JetStream // parked copies and events brought back
	lateness    dueTimes
	// Bound by Run: PARKED (parked copies are read back from it) and the status
	// bucket (whether a parked copy is stale).
	parked jetstream.Stream
	status statusStore

	ready         atomic.Bool
	progressEvery time.Duration // InProgress interval during long handling; 0 = never
	waitingEvery  time.Duration // InProgress interval of events waiting for their tenant

	mu      sync.Mutex
	flights map[*flight]struct{}
	buffers sync.Pool // *attemptBuffers, one per delivery in progress
	// background runs probes and bring-backs until Run returns; backgroundCtx, set by
	// Run before anything is delivered, ends them.
	backgroundMu  sync.Mutex
	background    sync.WaitGroup
	backgroundCtx context.Context
	// unparking holds the filters a bring-back is running for, each with whether it
	// was asked for again meanwhile (guarded by backgroundMu).
	unparking map[string]bool
}

// New validates cfg (naming the first bad setting, wrapped in ErrInvalidConfig) and
// deps, registers the worker's metrics, and returns a Worker that does nothing until
// Run. The checks that need the consumer (AckWait, MaxDeliver) happen in Run.
func New(cfg Config, deps Deps) (*Worker, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	switch {
	case deps.JS == nil:
		return nil, errors.New("worker: Deps.JS is required")
	case deps.Configs == nil:
		return nil, errors.New("worker: Deps.Configs is required")
	}
	rec, err := status.NewRecorder(deps.JS, statusWriteTimeout)
	if err != nil {
		return nil, fmt.Errorf("worker: %w", err)
	}
	log := deps.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m, err := newMetrics(deps.Registerer)
	if err != nil {
		return nil, err
	}
	bc := breakerConfig{
		threshold: cfg.BreakerThreshold, cooldown: cfg.BreakerCooldown, maxCooldown: cfg.BreakerMaxCooldown,
		probeTimeout: configReadTimeout + cfg.HTTPTimeout + statusWriteTimeout + natsconf.AckWaitMargin,
	}
	if bc.threshold < 0 {
		bc.threshold = math.MaxInt // off
	}
	pub, err := natsconf.Publisher(deps.JS, statusWriteTimeout)
	if err != nil {
		return nil, fmt.Errorf("worker: %w", err)
	}
	peek, _ := deps.Configs.(configPeeker)
	return &Worker{
		cfg:       cfg,
		js:        deps.JS,
		rec:       rec,
		configs:   deps.Configs,
		peek:      peek,
		log:       log,
		metrics:   m,
		client:    newHTTPClient(cfg, newDialGuard(cfg.AllowPrivateTargets, cfg.ConnectTimeout)),
		tenants:   newTenants(cfg.TenantConcurrency, cfg.MaxWaiting, cfg.MaxWaitingBytes, m),
		endpoints: newEndpoints(bc, m),
		pub:       pub,
		flights:   make(map[*flight]struct{}),
		buffers:   sync.Pool{New: func() any { return newAttemptBuffers() }},
	}, nil
}

// Ready reports whether the worker is consuming: true from the moment Run has
// subscribed until its context is cancelled.
func (w *Worker) Ready() bool { return w.ready.Load() }

// Run checks the delivery consumer against the config (HTTPTimeout must be below its
// ack waits, MaxDeliver must equal its MaxDeliver, its BackOff must follow
// RetrySchedule), then delivers events with at most Concurrency in flight, and at most
// TenantConcurrency of one tenant, until ctx is cancelled. At shutdown it stops
// pulling, gives back buffered and waiting events that were not started, waits up to
// DrainTimeout for in-flight deliveries, naks those still running so they are
// redelivered, and returns nil. An attempt abandoned this way may still finish in the
// background, bounded by HTTPTimeout; its outcome is discarded. Run returns an error
// wrapping ErrConsumingStopped if consuming ends while ctx is live. Call Run once.
func (w *Worker) Run(ctx context.Context) error {
	cons, err := w.js.Consumer(ctx, natsconf.StreamEvents, natsconf.ConsumerDeliver)
	if err != nil {
		if ctx.Err() != nil {
			return nil // shut down before consuming began
		}
		return fmt.Errorf("worker: consumer %s on stream %s (run `edgehook setup nats`): %w",
			natsconf.ConsumerDeliver, natsconf.StreamEvents, err)
	}
	cc := cons.CachedInfo().Config
	if err := w.checkConsumer(cc); err != nil {
		return err
	}
	if w.parked, err = w.js.Stream(ctx, natsconf.StreamParked); err != nil {
		return fmt.Errorf("worker: stream %s (run `edgehook setup nats`): %w", natsconf.StreamParked, err)
	}
	stKV, err := w.js.KeyValue(ctx, natsconf.BucketStatus)
	if err != nil {
		return fmt.Errorf("worker: bucket %s (run `edgehook setup nats`): %w", natsconf.BucketStatus, err)
	}
	w.status = status.NewStore(stKV)
	// One message's handling may take a config read, the attempt and a status write.
	// If that can come near the shortest ack wait, keep the message ours with
	// InProgress. Waiting events always are.
	ackWait := minAckWait(cc)
	if configReadTimeout+w.cfg.HTTPTimeout+statusWriteTimeout > ackWait/2 {
		w.progressEvery = ackWait / 3
	}
	w.waitingEvery = ackWait / 3
	iter, err := cons.Messages(jetstream.PullMaxMessages(w.cfg.Concurrency))
	if err != nil {
		return fmt.Errorf("worker: subscribe: %w", err)
	}

	loop := pull.Loop{
		Concurrency:  w.cfg.Concurrency,
		DrainTimeout: w.cfg.DrainTimeout,
		Ready:        &w.ready,
		Log:          w.log,
		Handle: func(ctx, work context.Context, msg jetstream.Msg) {
			b := w.buffers.Get().(*attemptBuffers)
			w.dispatch(ctx, work, b, msg)
			w.buffers.Put(b)
		},
		Stopped: func() {
			// Only events waiting for their tenant's cap are left: give them back.
			if n := w.nakInFlight(); n > 0 {
				w.log.Info("waiting events returned for redelivery", "count", n)
			}
		},
		DrainTimedOut: func(iter jetstream.MessagesContext) {
			n := w.nakInFlight()
			// The delivery goroutines are still in their abandoned attempts, so nobody
			// takes the buffered messages off the iterator: give them back from here.
			n += w.nakBuffered(iter)
			w.log.Warn("drain timeout: in-flight deliveries returned for redelivery", "count", n, "drainTimeout", w.cfg.DrainTimeout)
		},
	}
	// Probes, bringing parked events back and InProgress signals run beside the
	// deliveries until Run returns (after the drain), and Run waits for them.
	bgCtx, stopBackground := context.WithCancel(context.WithoutCancel(ctx))
	w.backgroundMu.Lock()
	w.backgroundCtx = bgCtx
	w.backgroundMu.Unlock()
	proberDone, progressDone := make(chan struct{}), make(chan struct{})
	go func() { w.runProber(bgCtx); close(proberDone) }()
	go func() { w.runProgress(bgCtx); close(progressDone) }()
	defer func() {
		w.backgroundMu.Lock()
		stopBackground() // under the lock: no bring-back starts after this
		w.backgroundMu.Unlock()
		<-proberDone
		<-progressDone
	}()
	w.log.Info("worker consuming", "concurrency", w.cfg.Concurrency, "ackWait", cc.AckWait,
		"maxDeliver", cc.MaxDeliver, "allowPrivateTargets", w.cfg.AllowPrivateTargets)
	if err := loop.Run(ctx, iter, w.js.Conn().FlushTimeout); err != nil {
		return fmt.Errorf("worker: %w", err)
	}
	w.log.Info("worker stopped")
	return nil
}

// checkConsumer verifies that the consumer's settings agree with the worker's: the
// HTTP timeout below every ack wait, the same MaxDeliver, and a BackOff that is the
// retry schedule raised to the consumer's shortest ack wait (natsconf.BackOff).
func (w *Worker) checkConsumer(cc jetstream.ConsumerConfig) error {
	ackWait := minAckWait(cc)
	switch {
	case cc.AckPolicy != jetstream.AckExplicitPolicy:
		return fmt.Errorf("%w: consumer %s must use explicit acks, has %s", ErrInvalidConfig, natsconf.ConsumerDeliver, cc.AckPolicy)
	case w.cfg.HTTPTimeout >= ackWait:
		return fmt.Errorf("%w: HTTPTimeout (EDGEHOOK_HTTP_TIMEOUT) %s must be less than the AckWait %s of consumer %s (run `edgehook setup nats` with the same timeout)",
			ErrInvalidConfig, w.cfg.HTTPTimeout, ackWait, natsconf.ConsumerDeliver)
	case cc.MaxDeliver != w.cfg.MaxDeliver:
		return fmt.Errorf("%w: MaxDeliver (EDGEHOOK_MAX_DELIVER) %d differs from MaxDeliver %d of consumer %s (run `edgehook setup nats` with the same value)",
			ErrInvalidConfig, w.cfg.MaxDeliver, cc.MaxDeliver, natsconf.ConsumerDeliver)
	}
	if want := natsconf.BackOff(w.cfg.RetrySchedule, w.cfg.MaxDeliver, ackWait); !slices.Equal(cc.BackOff, want) {
		return fmt.Errorf("%w: RetrySchedule (EDGEHOOK_RETRY_SCHEDULE) %s needs BackOff %s on consumer %s, which has %s (run `edgehook setup nats` with the same schedule)",
			ErrInvalidConfig, durations(w.cfg.RetrySchedule), durations(want), natsconf.ConsumerDeliver, durations(cc.BackOff))
	}
	return nil
}

// minAckWait is the shortest time the server waits for an ack of cc's messages: the
// least BackOff entry, or AckWait without BackOff.
func minAckWait(cc jetstream.ConsumerConfig) time.Duration {
	if len(cc.BackOff) == 0 {
		return cc.AckWait
	}
	return slices.Min(cc.BackOff)
}

// durations formats ds as the comma-separated form of EDGEHOOK_RETRY_SCHEDULE.
func durations(ds []time.Duration) string {
	if len(ds) == 0 {
		return "none"
	}
	parts := make([]string, len(ds))
	for i, d := range ds {
		parts[i] = d.String()
	}
	return strings.Join(parts, ",")
}

// nakBuffered naks the messages left in a drained iterator's buffer and returns how
// many. It stops at the end of the buffer or after bufferedNakTimeout.
func (w *Worker) nakBuffered(iter jetstream.MessagesContext) int {
	n := 0
	deadline := time.Now().Add(bufferedNakTimeout)
	for time.Now().Before(deadline) {
		msg, err := iter.Next(jetstream.NextMaxWait(time.Until(deadline)))
		if err != nil {
			break
		}
		if err := msg.Nak(); err != nil {
			w.log.Warn("nak at shutdown failed; the event is redelivered after the ack wait", "error", err)
		}
		n++
	}
	return n
}

// flight is a message being handled. Exactly one of the handler (its outcome) and the
// shutdown (a nak) settles it; the mutex also stops InProgress signals once settled.
// Its InProgress signals are sent by the worker's progress loop (runProgress), not by
// a timer of its own: a delivery that ends within the interval costs no timer.
type flight struct {
	msg   jetstream.Msg
	mu    sync.Mutex
	done  bool
	every time.Duration // InProgress interval; 0 = none
	next  time.Time     // when the next InProgress is due
}

// settle applies ack to the message unless it is already settled. It reports whether
// it did, and ack's error.
func (f *flight) settle(ack func(jetstream.Msg) error) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.done {
		return false, nil
	}
	f.done = true
	return true, ack(f.msg)
}

// isSettled reports whether the message has been settled.
func (f *flight) isSettled() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.done
}

// keepAlive makes the message get InProgress signals every every, unless it gets them
// already or is settled.
func (f *flight) keepAlive(every time.Duration) {
	if every <= 0 {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.done || f.every > 0 {
		return
	}
	f.every, f.next = every, time.Now().Add(every)
}

// progress tells the server the message is still being worked on, if a signal is due
// at now.
func (f *flight) progress(now time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.done || f.every <= 0 || now.Before(f.next) {
		return
	}
	_ = f.msg.InProgress() // best effort: a lost signal only risks a duplicate
	f.next = now.Add(f.every)
}

// track registers msg as in flight, with InProgress signals if handling may be long.
func (w *Worker) track(msg jetstream.Msg) *flight {
	f := &flight{msg: msg, every: w.progressEvery}
	if f.every > 0 {
		f.next = time.Now().Add(f.every)
	}
	w.mu.Lock()
	w.flights[f] = struct{}{}
	w.mu.Unlock()
	return f
}

// progressTick is how often runProgress looks for due signals: a quarter of the
// shortest interval, so a signal is at most that late (the intervals are a third of
// the ack wait).
func (w *Worker) progressTick() time.Duration {
	every := w.waitingEvery
	if w.progressEvery > 0 {
		every = min(every, w.progressEvery)
	}
	return max(every/4, 10*time.Millisecond)
}

// runProgress sends the due InProgress signals of the tracked messages every
// progressTick until ctx ends.
func (w *Worker) runProgress(ctx context.Context) {
	t := time.NewTicker(w.progressTick())
	defer t.Stop()
	var fs []*flight
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			w.mu.Lock()
			fs = fs[:0]
			for f := range w.flights {
				fs = append(fs, f)
			}
			w.mu.Unlock()
			for _, f := range fs {
				f.progress(now)
			}
			clear(fs) // keep no settled flight alive until the next tick
		}
	}
}

// untrack forgets f; it settles nothing.
func (w *Worker) untrack(f *flight) {
	w.mu.Lock()
	delete(w.flights, f)
	w.mu.Unlock()
}

// nakInFlight naks every message still tracked (in flight, or waiting for its
// tenant's cap), so the server redelivers it, and returns how many it naked.
func (w *Worker) nakInFlight() int {
	w.mu.Lock()
	fs := make([]*flight, 0, len(w.flights))
	for f := range w.flights {
		fs = append(fs, f)
	}
	w.mu.Unlock()
	n := 0
	for _, f := range fs {
		settled, err := f.settle(jetstream.Msg.Nak)
		if err != nil {
			w.log.Warn("nak at shutdown failed; the event is redelivered after the ack wait", "error", err)
		}
		if settled {
			n++
		}
	}
	return n
}
