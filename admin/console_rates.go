package admin

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/edgehook/edgehook/console"
	"github.com/edgehook/edgehook/natsconf"
)

// DefaultConsoleRatesStep is the step of the operator console's rate charts.
const DefaultConsoleRatesStep = time.Minute

// ratesSpan is how far back the sampler keeps samples: the charts' window.
const ratesSpan = time.Hour

// deadLetterAdvisories matches the delivery consumer's MAX_DELIVERIES and
// MSG_TERMINATED advisories on DLQ: one per dead letter.
const deadLetterAdvisories = "$JS.EVENT.ADVISORY.CONSUMER.*." + natsconf.StreamEvents + "." + natsconf.ConsumerDeliver

// rateSample is the counters at one instant: messages stored on EVENTS (its last
// sequence), messages the delivery consumer has settled (see consumerSettled), and
// dead-letter advisories on DLQ.
type rateSample struct {
	at                        time.Time
	ingested, settled, failed uint64
}

// rateSampler samples the counters every step into a ring that holds one hour, so
// the console can chart rates without the status access the admin does not have. The
// charts therefore cover only the time since this admin instance started.
type rateSampler struct {
	js   jetstream.JetStream
	step time.Duration
	log  *slog.Logger

	mu      sync.Mutex
	ring    []rateSample // oldest first
	max     int
	failing bool
	events  jetstream.Stream
	dlq     jetstream.Stream
}

func newRateSampler(js jetstream.JetStream, step time.Duration, log *slog.Logger) *rateSampler {
	return &rateSampler{js: js, step: step, log: log, max: int(ratesSpan/step) + 1}
}

// run samples at once and then every step until ctx is cancelled.
func (r *rateSampler) run(ctx context.Context) {
	t := time.NewTicker(r.step)
	defer t.Stop()
	for {
		r.record(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// record takes one sample into the ring, logging only when sampling starts or stops
// failing.
func (r *rateSampler) record(ctx context.Context) {
	sctx, cancel := context.WithTimeout(ctx, r.step)
	defer cancel()
	s, err := r.sample(sctx)
	if ctx.Err() != nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		if !r.failing {
			r.log.Warn("console rates: counters not sampled; the charts have a gap", "error", err)
		}
		r.failing = true
		return
	}
	if r.failing {
		r.log.Info("console rates: sampling again")
	}
	r.failing = false
	if len(r.ring) == r.max {
		r.ring = append(r.ring[:0], r.ring[1:]...)
	}
	r.ring = append(r.ring, s)
}

// sample reads the counters: EVENTS' and DLQ's stream info (DLQ filtered to the
// advisories) and the delivery consumer's info.
func (r *rateSampler) sample(ctx context.Context) (rateSample, error) {
	if err := r.bind(ctx); err != nil {
		return rateSample{}, err
	}
	ev, err := r.events.Info(ctx)
	if err != nil {
		return rateSample{}, err
	}
	cons, err := r.js.Consumer(ctx, natsconf.StreamEvents, natsconf.ConsumerDeliver)
	if err != nil {
		return rateSample{}, err
	}
	dl, err := r.dlq.Info(ctx, jetstream.WithSubjectFilter(deadLetterAdvisories))
	if err != nil {
		return rateSample{}, err
	}
	s := rateSample{at: time.Now(), ingested: ev.State.LastSeq, settled: consumerSettled(cons.CachedInfo())}
	for _, n := range dl.State.Subjects {
		s.failed += n
	}
	return s, nil
}

// consumerSettled is how many of EVENTS' messages the delivery consumer has settled:
// those up to the last sequence it delivered, less those still waiting for an ack. It
// reads the consumer's own state alone, taken at one instant. The stream's last
// sequence less the consumer's pending count would not do: the server counts a new
// message as pending only once its stream has signalled the consumer, after the
// publish ack, so for a moment every message just stored would count as settled.
func consumerSettled(ci *jetstream.ConsumerInfo) uint64 {
	if uint64(ci.NumAckPending) > ci.Delivered.Stream {
		return 0
	}
	return ci.Delivered.Stream - uint64(ci.NumAckPending)
}

// bind looks the two streams up once.
func (r *rateSampler) bind(ctx context.Context) error {
	r.mu.Lock()
	bound := r.events != nil && r.dlq != nil
	r.mu.Unlock()
	if bound {
		return nil
	}
	events, err := r.js.Stream(ctx, natsconf.StreamEvents)
	if err != nil {
		return err
	}
	dlq, err := r.js.Stream(ctx, natsconf.StreamDLQ)
	if err != nil {
		return err
	}
	r.mu.Lock()
	r.events, r.dlq = events, dlq
	r.mu.Unlock()
	return nil
}

// rates returns the deltas between consecutive samples taken within window before
// now: events ingested, deliveries settled but not dead-lettered, and dead letters.
func (r *rateSampler) rates(_ context.Context, window time.Duration) console.Rates {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := console.Rates{Window: window, Step: r.step}
	since := time.Now().Add(-window)
	for i := 1; i < len(r.ring); i++ {
		prev, cur := r.ring[i-1], r.ring[i]
		if !cur.at.After(since) {
			continue
		}
		failed := delta(prev.failed, cur.failed)
		out.Points = append(out.Points, console.RatePoint{
			At:        cur.at,
			Ingested:  delta(prev.ingested, cur.ingested),
			Delivered: max(delta(prev.settled, cur.settled)-failed, 0),
			Failed:    failed,
		})
	}
	return out
}

// delta is how much a counter grew, 0 when it shrank (messages aged out of DLQ).
func delta(prev, cur uint64) int {
	if cur < prev {
		return 0
	}
	return int(cur - prev)
}
