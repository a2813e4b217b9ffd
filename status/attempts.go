package status

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/sync/errgroup"

	"github.com/edgehook/edgehook/natsconf"
	"github.com/edgehook/edgehook/natsconf/jsack"
)

// Attempt outcomes.
const (
	// OutcomeDelivered: the endpoint answered 2xx.
	OutcomeDelivered = "delivered"
	// OutcomeRetry: the attempt failed and the event will be retried.
	OutcomeRetry = "retry"
	// OutcomeFailed: the attempt failed and the event will not be retried (410, no
	// webhook config, attempts exhausted).
	OutcomeFailed = "failed"
	// OutcomeRefused: the target was refused by the SSRF guard; no request was sent.
	OutcomeRefused = "refused"
	// OutcomeParked: the endpoint's circuit breaker was open; no request was sent and
	// the event waits for its next scheduled attempt.
	OutcomeParked = "parked"
)

// MaxResponseBody is how much of an endpoint's response body an attempt keeps.
const MaxResponseBody = 1024

// MaxAttemptsRead bounds how many of an event's latest attempts Attempts returns.
const MaxAttemptsRead = 100

// attemptReadConcurrency bounds the parallel reads of one Attempts call.
const attemptReadConcurrency = 8

// Attempt is one entry of an event's attempt log.
type Attempt struct {
	TenantID string `json:"tenantId"`
	EventID  string `json:"eventId"`
	// N is the entry's index in the log, from 1, counted across replays.
	N int `json:"n"`
	// Attempt is the delivery number within its round (the original or one replay).
	Attempt int `json:"attempt"`
	// Replay is 0 for the original, k for the k-th replay.
	Replay int `json:"replay,omitempty"`
	// Seq is the EVENTS stream sequence of the message that was attempted.
	Seq uint64    `json:"seq"`
	At  time.Time `json:"at"`
	// Outcome is one of the Outcome constants.
	Outcome    string `json:"outcome"`
	StatusCode int    `json:"statusCode,omitempty"`
	// LatencyMs is the duration of the HTTP exchange in milliseconds (0 when no
	// request was sent).
	LatencyMs float64 `json:"latencyMs"`
	Error     string  `json:"error,omitempty"`
	// ResponseBody is the first MaxResponseBody bytes of the endpoint's answer.
	ResponseBody string `json:"responseBody,omitempty"`
}

// AttemptKey is the bucket key of entry n of an event's attempt log.
func AttemptKey(tenantID, eventID string, n int) string {
	return Key(tenantID, eventID) + "." + strconv.Itoa(n)
}

// AttemptMsg returns the message that stores a, to be published asynchronously next
// to the status record (see PutMsg) so a delivery pays one round trip for both. A
// longer response body is cut to MaxResponseBody bytes.
func AttemptMsg(a Attempt) (*nats.Msg, error) {
	if a.N < 1 {
		return nil, fmt.Errorf("status: attempt index %d of %s must be at least 1", a.N, a.EventID)
	}
	if len(a.ResponseBody) > MaxResponseBody {
		a.ResponseBody = a.ResponseBody[:MaxResponseBody]
	}
	b, err := encodeAttempt(make([]byte, 0, recordBufSize), &a)
	if err != nil {
		return nil, err
	}
	m := nats.NewMsg("$KV." + natsconf.BucketStatus + "." + AttemptKey(a.TenantID, a.EventID, a.N))
	m.Data = b
	return m, nil
}

// Attempts returns the attempt log of tenantID's event eventID, oldest first: at most
// the latest MaxAttemptsRead entries, the record's LastAttempt included. Attempts
// that were never recorded (a worker died mid-attempt) are absent. An event without a
// status record is ErrNotFound.
func (s *Store) Attempts(ctx context.Context, tenantID, eventID string) ([]Attempt, error) {
	rec, err := s.Get(ctx, tenantID, eventID)
	if err != nil {
		return nil, err
	}
	last := max(rec.TotalAttempts, rec.Attempts)
	log, err := s.AttemptRange(ctx, tenantID, eventID, max(1, last-MaxAttemptsRead+1), last)
	if err != nil {
		return nil, err
	}
	return withLast(log, rec.LastAttempt), nil
}

// withLast adds last to log, sorted, unless the log has its entry.
func withLast(log []Attempt, last *Attempt) []Attempt {
	if last == nil || slices.ContainsFunc(log, func(a Attempt) bool { return a.N == last.N }) {
		return log
	}
	log = append(log, *last)
	slices.SortFunc(log, func(a, b Attempt) int { return cmp.Compare(a.N, b.N) })
	return log
}

// AttemptRange returns the recorded entries from..to (inclusive) of an event's attempt
// log, oldest first, skipping entries that do not exist.
func (s *Store) AttemptRange(ctx context.Context, tenantID, eventID string, from, to int) ([]Attempt, error) {
	if !validToken(tenantID) || !validToken(eventID) {
		return nil, ErrNotFound
	}
	from = max(from, 1)
	kv, err := s.bucket(ctx)
	if err != nil {
		return nil, err
	}
	var (
		mu  sync.Mutex
		out []Attempt
	)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(attemptReadConcurrency)
	for n := from; n <= to; n++ {
		g.Go(func() error {
			e, err := kv.Get(gctx, AttemptKey(tenantID, eventID, n))
			if errors.Is(err, jetstream.ErrKeyNotFound) {
				return nil
			}
			if err != nil {
				return fmt.Errorf("status: get attempt %d of %s: %w", n, eventID, err)
			}
			var a Attempt
			if err := json.Unmarshal(e.Value(), &a); err != nil {
				return fmt.Errorf("status: decode attempt %d of %s: %w", n, eventID, err)
			}
			mu.Lock()
			out = append(out, a)
			mu.Unlock()
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b Attempt) int { return cmp.Compare(a.N, b.N) })
	return out, nil
}

// Recorder writes an event's status record together with attempt log entries: all are
// published at once and their acks awaited together, so a delivery pays one round trip.
// The entries are stored before the record.
type Recorder struct {
	pub jetstream.JetStream
	// acks awaits the write of a record alone (a delivery) on one subscription.
	acks    *jsack.Acks
	timeout time.Duration
	// single holds *singleWrite: the message, buffer, ack slot and timer of a
	// one-message Record.
	single sync.Pool
}

// singleWrite is the reusable state of a Record call that writes only the status
// record (a delivery).
type singleWrite struct {
	msg   nats.Msg
	buf   []byte
	slot  *jsack.Slot
	timer *time.Timer // stopped between uses
}

// NewRecorder returns a Recorder publishing on js's connection (same domain or API
// prefix) whose acks time out after timeout. It subscribes to its acks below the
// connection's inbox prefix.
func NewRecorder(js jetstream.JetStream, timeout time.Duration) (*Recorder, error) {
	pub, err := natsconf.Publisher(js, timeout)
	if err != nil {
		return nil, fmt.Errorf("status: recorder: %w", err)
	}
	acks, err := jsack.New(js.Conn())
	if err != nil {
		return nil, fmt.Errorf("status: recorder: %w", err)
	}
	r := &Recorder{pub: pub, acks: acks, timeout: timeout}
	r.single.New = func() any {
		t := time.NewTimer(time.Hour)
		t.Stop()
		return &singleWrite{buf: make([]byte, 0, recordBufSize), slot: jsack.NewSlot(), timer: t}
	}
	return r, nil
}

// Record stores the attempts log and rec and returns once all are acked, or the first
// error. When it returns an error any of them may or may not have been stored. Each
// write is bounded by the recorder's timeout or ctx's deadline, whichever is sooner;
// cancelling ctx stops waiting between retries, not a record write already sent.
func (r *Recorder) Record(ctx context.Context, rec Record, log ...Attempt) error {
	if len(log) == 0 {
		return r.recordOne(ctx, rec)
	}
	futures := make([]jetstream.PubAckFuture, 0, len(log)+1)
	for _, a := range log {
		am, err := AttemptMsg(a)
		if err != nil {
			return err
		}
		f, err := r.pub.PublishMsgAsync(am)
		if err != nil {
			return fmt.Errorf("status: record attempt %d of %s: %w", a.N, a.EventID, err)
		}
		futures = append(futures, f)
	}
	sm, err := PutMsg(rec)
	if err != nil {
		return err
	}
	fs, err := r.pub.PublishMsgAsync(sm)
	if err != nil {
		return fmt.Errorf("status: record %s: %w", rec.EventID, err)
	}
	for _, f := range append(futures, fs) {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return fmt.Errorf("status: record %s: %w", rec.EventID, err)
		case <-ctx.Done():
			return fmt.Errorf("status: record %s: %w", rec.EventID, ctx.Err())
		}
	}
	return nil
}

// recordOne writes rec alone from a pooled buffer, its ack awaited on the recorder's
// one subscription: the delivery path's write, which creates no context, timer or
// channel of its own.
func (r *Recorder) recordOne(ctx context.Context, rec Record) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("status: record %s: %w", rec.EventID, err)
	}
	w := r.single.Get().(*singleWrite)
	defer r.single.Put(w)
	b, err := encodeRecord(w.buf[:0], rec)
	if err != nil {
		return err
	}
	w.buf = b
	w.msg = nats.Msg{Subject: subject(rec.TenantID, rec.EventID), Data: b}
	defer func() { w.msg.Data = nil }()
	// Bounded by the timeout or ctx's deadline, whichever is sooner.
	deadline := time.Now().Add(r.timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if err := r.acks.Publish(&w.msg, w.slot); err != nil {
		return fmt.Errorf("status: record %s: %w", rec.EventID, err)
	}
	if res := r.acks.Await(&w.msg, w.slot, w.timer, deadline); res.Err != nil {
		return fmt.Errorf("status: record %s: %w", rec.EventID, res.Err)
	}
	return nil
}
