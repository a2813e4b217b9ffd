package bench

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/edgehook/edgehook/bench/cputime"
	"github.com/edgehook/edgehook/natsconf"
)

const (
	latencyBacklog   = "time in the system under backlog: published into EVENTS to verified by the receiver, sampled 10 times a second"
	latencyDeliverAt = "published into EVENTS (intended time, fixed rate) to verified by the receiver"
)

// sampleEvery is how often the deliver scenario samples the latest verified webhook.
const sampleEvery = 100 * time.Millisecond

// deliver measures the worker delivering to the receiver, against the receiver's own
// ceiling. The events go straight into EVENTS (the bench's connection publishes them
// with the gateway's headers), so the gateway's cost is not part of the figure.
//
// Flat out, it queues a backlog first and then measures the steady drain rate over
// the window (ending early if the backlog runs out): the worker always has work, and
// nothing else competes for the CPU while it is measured. At a fixed rate it
// publishes open-loop at that rate and reports the latency of each event.
func (b *Bench) deliver(ctx context.Context, c Case) (Result, error) {
	s, release, err := b.open(ctx, Needs{Worker: true})
	if err != nil {
		return Result{}, err
	}
	defer release()
	t, err := s.createTenant(ctx, s.receiverTarget())
	if err != nil {
		return Result{}, err
	}
	ceiling, err := b.receiverCeiling(ctx, s, t, b.cfg.CeilingDuration)
	if err != nil {
		return Result{}, err
	}
	if c.Rate > 0 {
		return b.deliverAtRate(ctx, s, t, c, ceiling)
	}

	pub, err := newEventPublisher(s, t.ID, b.runID, b.cfg.PayloadBytes, b.cfg.Backlog)
	if err != nil {
		return Result{}, err
	}
	defer pub.close()
	var queued counters
	stop := progress(b.cfg.Progress, "deliver: queue backlog", &queued)
	for i := 0; i < b.cfg.Backlog && ctx.Err() == nil; i++ {
		if err := pub.publish(time.Now()); err != nil {
			stop()
			return Result{}, err
		}
		queued.events.Add(1)
	}
	err = pub.wait(ctx)
	stop()
	if err != nil {
		return Result{}, err
	}

	subject := natsconf.ReceivedSubject(t.ID)
	received, err := s.js.Stream(ctx, natsconf.StreamReceived)
	if err != nil {
		return Result{}, fmt.Errorf("stream %s: %w", natsconf.StreamReceived, err)
	}
	c0, err := subjectCount(ctx, received, subject)
	if err != nil {
		return Result{}, err
	}
	var cnt counters
	stop = progress(b.cfg.Progress, "deliver (verified)", &cnt)
	lat := NewLatencies()
	cpu0, start := cputime.Self(), time.Now()
	deadline := start.Add(b.cfg.Duration)
	var n uint64
	for ctx.Err() == nil && time.Now().Before(deadline) {
		time.Sleep(sampleEvery)
		if n, err = subjectCount(ctx, received, subject); err != nil {
			stop()
			return Result{}, err
		}
		cnt.events.Store(int64(n - c0))
		if d, ok := pub.sample(ctx, received, subject); ok {
			lat.Record(d)
		}
		if left, err := s.pending(ctx); err == nil && left == 0 {
			break // the backlog ran out: the window ends at the drain
		}
	}
	window, cpu := time.Since(start), cputime.Self()-cpu0
	stop()

	var r Result
	r.setThroughput(int64(n-c0), window, ceiling, ceilingReceiver)
	r.setCPU(cpu)
	r.setLatency(latencyBacklog, lat)
	return r, nil
}

// deliverAtRate publishes t's events into EVENTS at c.Rate for the window and pairs
// each with its verification.
func (b *Bench) deliverAtRate(ctx context.Context, s *system, t tenant, c Case, ceiling float64) (Result, error) {
	var cnt, verified counters
	m := newMatcher(&verified)
	stopFollow, err := followReceived(ctx, s.js, []string{natsconf.ReceivedSubject(t.ID)}, m)
	if err != nil {
		return Result{}, err
	}
	defer stopFollow()
	pub, err := newEventPublisher(s, t.ID, b.runID, b.cfg.PayloadBytes, int(float64(c.Rate)*b.cfg.Duration.Seconds())+1)
	if err != nil {
		return Result{}, err
	}
	defer pub.close()

	stop := progressOf(b.cfg.Progress, "deliver "+c.String()+" (verified)", &verified.events, &cnt.errors)
	cpu0, start := cputime.Self(), time.Now()
	m.window(start, start.Add(b.cfg.Duration))
	p := NewPacer(start, c.Rate, b.cfg.Duration)
	for {
		_, due, ok := p.Next()
		if !ok || !Wait(ctx, due) {
			break
		}
		id, err := pub.publishID(due)
		if err != nil {
			cnt.fail("%v", err)
			continue
		}
		m.accept(id, due)
	}
	window := time.Since(start)
	if err := pub.wait(ctx); err != nil {
		cnt.fail("%v", err)
	}
	drain(ctx, m, b.cfg.DrainTimeout)
	cpu := cputime.Self() - cpu0
	stop()
	stopFollow()

	lost := m.outstanding()
	matched, _, lat := m.results()
	var r Result
	r.setThroughput(matched, window, ceiling, ceilingReceiver)
	r.setCPU(cpu)
	r.Errors, r.FirstError = cnt.errors.Load()+int64(lost), cnt.firstError()
	if lost > 0 && r.FirstError == "" {
		r.FirstError = fmt.Sprintf("%d published events not verified by the receiver within %s", lost, b.cfg.DrainTimeout)
	}
	r.setLatency(latencyDeliverAt, lat)
	return r, nil
}

// eventPublisher publishes one tenant's events straight into EVENTS, as the gateway
// would (same subject and headers), with async acks. Event ids carry a sequence
// number, so a verified webhook can be traced back to its publish time.
type eventPublisher struct {
	js      jetstream.JetStream
	tenant  string
	subject string
	prefix  string
	body    []byte

	mu       sync.Mutex
	sentAt   []int64 // unix nanoseconds by sequence number
	failures counters
}

func newEventPublisher(s *system, tenantID, runID string, payloadBytes, expected int) (*eventPublisher, error) {
	p := &eventPublisher{
		tenant:  tenantID,
		subject: natsconf.EventSubject(tenantID),
		prefix:  "evt_" + runID + "_",
		body:    payload(payloadBytes),
		sentAt:  make([]int64, 0, expected),
	}
	js, err := jetstream.New(s.nc,
		jetstream.WithPublishAsyncMaxPending(publishWindow),
		jetstream.WithPublishAsyncTimeout(30*time.Second),
		jetstream.WithPublishAsyncErrHandler(func(_ jetstream.JetStream, _ *nats.Msg, err error) { p.failures.fail("%v", err) }),
	)
	if err != nil {
		return nil, fmt.Errorf("publisher: %w", err)
	}
	p.js = js
	return p, nil
}

// publish queues one event, timestamped at.
func (p *eventPublisher) publish(at time.Time) error {
	_, err := p.publishID(at)
	return err
}

// publishID queues one event timestamped at and returns its id.
func (p *eventPublisher) publishID(at time.Time) (string, error) {
	p.mu.Lock()
	seq := len(p.sentAt)
	p.sentAt = append(p.sentAt, at.UnixNano())
	p.mu.Unlock()
	id := p.prefix + strconv.Itoa(seq)
	h := make(nats.Header, 4)
	h[natsconf.HeaderEventID] = []string{id}
	h[natsconf.HeaderTenant] = []string{p.tenant}
	h[natsconf.HeaderEventType] = []string{"bench.event"}
	h[natsconf.HeaderIngestTime] = []string{strconv.FormatInt(at.UnixNano(), 10)}
	msg := &nats.Msg{Subject: p.subject, Header: h, Data: p.body}
	if _, err := p.js.PublishMsgAsync(msg, jetstream.WithStallWait(stallWait)); err != nil {
		return "", fmt.Errorf("publish event: %w", err)
	}
	return id, nil
}

// wait waits for every queued event's ack; a failed publish is an error.
func (p *eventPublisher) wait(ctx context.Context) error {
	select {
	case <-p.js.PublishAsyncComplete():
	case <-time.After(30 * time.Second):
		return fmt.Errorf("publish events: %d not acked after 30s", p.js.PublishAsyncPending())
	case <-ctx.Done():
		return ctx.Err()
	}
	if n := p.failures.errors.Load(); n > 0 {
		return fmt.Errorf("publish events: %d failed: %s", n, p.failures.firstError())
	}
	return nil
}

// sample returns the time in the system of the latest webhook verified on subject,
// if it is one of this publisher's events.
func (p *eventPublisher) sample(ctx context.Context, received jetstream.Stream, subject string) (time.Duration, bool) {
	msg, err := received.GetLastMsgForSubject(ctx, subject)
	if err != nil {
		return 0, false
	}
	id, ok := strings.CutPrefix(msg.Header.Get(natsconf.HeaderEventID), p.prefix)
	if !ok {
		return 0, false
	}
	seq, err1 := strconv.Atoi(id)
	verified, err2 := strconv.ParseInt(msg.Header.Get(natsconf.HeaderVerifyTime), 10, 64)
	p.mu.Lock()
	defer p.mu.Unlock()
	if err1 != nil || err2 != nil || seq < 0 || seq >= len(p.sentAt) {
		return 0, false
	}
	return time.Duration(verified - p.sentAt[seq]), true
}

func (p *eventPublisher) close() { p.js.CleanupPublisher() }

// subjectCount is the number of messages stream holds on subject.
func subjectCount(ctx context.Context, stream jetstream.Stream, subject string) (uint64, error) {
	info, err := stream.Info(ctx, jetstream.WithSubjectFilter(subject))
	if err != nil {
		return 0, fmt.Errorf("stream info: %w", err)
	}
	return info.State.Subjects[subject], nil
}
