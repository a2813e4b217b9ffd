package dlq

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/edgehook/edgehook/natsconf"
	"github.com/edgehook/edgehook/status"
)

// Replay errors.
var (
	// ErrNotReplayable: the event is queued or being retried; only failed and
	// delivered events are replayed.
	ErrNotReplayable = errors.New("dlq: only failed or delivered events can be replayed")
	// ErrNoPayload: the event is neither on EVENTS nor dead-lettered any more.
	ErrNoPayload = errors.New("dlq: the event is no longer stored")
	// ErrSuperseded: the dead letter is not the event's latest state (it was replayed
	// since, or a newer dead letter exists).
	ErrSuperseded = errors.New("dlq: the dead letter was superseded by a later replay")
)

// Replayed is the outcome of one replay.
type Replayed struct {
	TenantID, EventID string
	// Seq is the replayed message's sequence on EVENTS.
	Seq uint64
	// Replay is the event's replay count after this one.
	Replay int
	// Duplicate reports that this state of the event had been replayed already (by
	// another request, within the EVENTS duplicate window): nothing new was published.
	Duplicate bool
}

// Replayer republishes failed or delivered events to EVENTS for a fresh round of
// attempts. A replay keeps the event id (so webhook-id is unchanged and receivers can
// dedupe), its type, payload and ingest time; the server counts its deliveries from 1
// again, and its attempts are logged after the earlier ones. The published message's
// Nats-Msg-Id names the state it was replayed from, so concurrent replays of the same
// state (API and CLI, or a redelivered request) publish it once.
type Replayer struct {
	js     jetstream.JetStream
	status *status.Store
	events jetstream.Stream
	dlq    jetstream.Stream
}

// NewReplayer returns a Replayer reading from the EVENTS and DLQ streams through js.
func NewReplayer(ctx context.Context, js jetstream.JetStream, st *status.Store) (*Replayer, error) {
	events, err := js.Stream(ctx, natsconf.StreamEvents)
	if err != nil {
		return nil, fmt.Errorf("dlq: stream %s (run `edgehook setup nats`): %w", natsconf.StreamEvents, err)
	}
	dlq, err := js.Stream(ctx, natsconf.StreamDLQ)
	if err != nil {
		return nil, fmt.Errorf("dlq: stream %s (run `edgehook setup nats`): %w", natsconf.StreamDLQ, err)
	}
	return &Replayer{js: js, status: st, events: events, dlq: dlq}, nil
}

// source is what a replay republishes.
type source struct {
	tenantID, eventID, typ string
	ingestTime             time.Time
	payload                []byte
	seq                    uint64 // EVENTS sequence of the state replayed from
	replays                int    // replays before this one
	logged                 int    // attempts in the log before this one
	last                   *status.Attempt
}

// Replay replays tenantID's event eventID, which must be failed or delivered: from
// EVENTS while it holds the event, else from its latest dead letter. It returns
// status.ErrNotFound for an unknown event, ErrNotReplayable, or ErrNoPayload.
func (r *Replayer) Replay(ctx context.Context, tenantID, eventID string) (Replayed, error) {
	rec, rev, err := r.status.Entry(ctx, tenantID, eventID)
	if err != nil {
		return Replayed{}, err
	}
	if rec.Status != status.Failed && rec.Status != status.Delivered {
		return Replayed{}, fmt.Errorf("%w: event %s is %s", ErrNotReplayable, eventID, rec.Status)
	}
	src, err := r.fromEvents(ctx, rec)
	if errors.Is(err, ErrNoPayload) {
		src, err = r.fromDeadLetter(ctx, rec)
	}
	if err != nil {
		return Replayed{}, err
	}
	src.last = rec.LastAttempt
	return r.publish(ctx, src, rev)
}

// ReplayDeadLetter replays the event of dead letter d if d is still the event's latest
// state: its status record is gone (expired) or failed at d's message. Otherwise it
// returns ErrSuperseded, or ErrNotReplayable when the event is in flight. With dryRun
// it only checks.
func (r *Replayer) ReplayDeadLetter(ctx context.Context, d DeadLetter, dryRun bool) (Replayed, error) {
	rec, rev, err := r.status.Entry(ctx, d.TenantID, d.EventID)
	switch {
	case errors.Is(err, status.ErrNotFound):
		rev = 0
	case err != nil:
		return Replayed{}, err
	case rec.Seq != 0 && rec.Seq != d.StreamSeq:
		return Replayed{}, fmt.Errorf("%w: event %s", ErrSuperseded, d.EventID)
	case rec.Status != status.Failed:
		return Replayed{}, fmt.Errorf("%w: event %s is %s", ErrNotReplayable, d.EventID, rec.Status)
	}
	src := sourceOf(d)
	src.logged = max(src.logged, rec.TotalAttempts)
	src.last = rec.LastAttempt
	if dryRun {
		return Replayed{TenantID: d.TenantID, EventID: d.EventID, Replay: src.replays + 1}, nil
	}
	return r.publish(ctx, src, rev)
}

// fromEvents reads the message rec describes from EVENTS.
func (r *Replayer) fromEvents(ctx context.Context, rec status.Record) (source, error) {
	if rec.Seq == 0 {
		return source{}, ErrNoPayload
	}
	m, err := r.events.GetMsg(ctx, rec.Seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return source{}, ErrNoPayload
	}
	if err != nil {
		return source{}, fmt.Errorf("dlq: get event %s: %w", rec.EventID, err)
	}
	h := m.Header
	if h.Get(natsconf.HeaderEventID) != rec.EventID || h.Get(natsconf.HeaderTenant) != rec.TenantID ||
		m.Subject != natsconf.EventSubject(rec.TenantID) {
		return source{}, ErrNoPayload
	}
	src := source{
		tenantID: rec.TenantID, eventID: rec.EventID, typ: h.Get(natsconf.HeaderEventType),
		payload: m.Data, seq: m.Sequence, ingestTime: rec.CreatedAt,
	}
	src.replays, _ = strconv.Atoi(h.Get(natsconf.HeaderReplay))
	prior, _ := strconv.Atoi(h.Get(natsconf.HeaderPriorAttempts))
	src.logged = max(rec.TotalAttempts, prior+rec.Attempts)
	if ns, err := strconv.ParseInt(h.Get(natsconf.HeaderIngestTime), 10, 64); err == nil {
		src.ingestTime = time.Unix(0, ns).UTC()
	}
	return src, nil
}

// fromDeadLetter reads the event's latest dead letter.
func (r *Replayer) fromDeadLetter(ctx context.Context, rec status.Record) (source, error) {
	m, err := r.dlq.GetLastMsgForSubject(ctx, natsconf.DeadLetterSubject(rec.TenantID, rec.EventID))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return source{}, fmt.Errorf("%w: event %s", ErrNoPayload, rec.EventID)
	}
	if err != nil {
		return source{}, fmt.Errorf("dlq: get dead letter of %s: %w", rec.EventID, err)
	}
	d, err := ParseDeadLetter(m)
	if err != nil {
		return source{}, err
	}
	src := sourceOf(d)
	if rec.Seq != 0 {
		src.seq = rec.Seq // the state replayed from is the record's, whatever round died last
	}
	src.logged = max(src.logged, rec.TotalAttempts)
	return src, nil
}

func sourceOf(d DeadLetter) source {
	return source{
		tenantID: d.TenantID, eventID: d.EventID, typ: d.Type, ingestTime: d.IngestTime,
		payload: d.Payload, seq: d.StreamSeq, replays: d.Replay, logged: d.PriorAttempts + d.Attempts,
	}
}

// publish puts the replay on EVENTS, then records it as queued unless the record moved
// on since revision rev (a worker may already have delivered it). The record's last
// attempt, kept only in the record, joins the attempt log first.
func (r *Replayer) publish(ctx context.Context, src source, rev uint64) (Replayed, error) {
	if src.last != nil {
		am, err := status.AttemptMsg(*src.last)
		if err != nil {
			return Replayed{}, err
		}
		if _, err := r.js.PublishMsg(ctx, am); err != nil {
			return Replayed{}, fmt.Errorf("dlq: log the last attempt of %s: %w", src.eventID, err)
		}
	}
	m := nats.NewMsg(natsconf.EventSubject(src.tenantID))
	h := m.Header
	h.Set(natsconf.HeaderEventID, src.eventID)
	h.Set(natsconf.HeaderTenant, src.tenantID)
	h.Set(natsconf.HeaderEventType, src.typ)
	ingest := src.ingestTime
	if ingest.IsZero() {
		ingest = time.Now()
	}
	h.Set(natsconf.HeaderIngestTime, strconv.FormatInt(ingest.UnixNano(), 10))
	h.Set(natsconf.HeaderReplay, strconv.Itoa(src.replays+1))
	h.Set(natsconf.HeaderPriorAttempts, strconv.Itoa(src.logged))
	m.Data = src.payload
	ack, err := r.js.PublishMsg(ctx, m,
		jetstream.WithMsgID("replay-"+strconv.FormatUint(src.seq, 10)),
		jetstream.WithExpectStream(natsconf.StreamEvents))
	if err != nil {
		return Replayed{}, fmt.Errorf("dlq: publish replay of %s: %w", src.eventID, err)
	}
	out := Replayed{TenantID: src.tenantID, EventID: src.eventID, Seq: ack.Sequence, Replay: src.replays + 1, Duplicate: ack.Duplicate}
	if ack.Duplicate {
		return out, nil
	}
	now := time.Now().UTC()
	rec := status.Record{
		EventID: src.eventID, TenantID: src.tenantID, Type: src.typ, Status: status.Queued,
		CreatedAt: ingest.UTC(), UpdatedAt: now, Seq: ack.Sequence, TotalAttempts: src.logged, Replays: src.replays + 1,
	}
	if err := r.status.Update(ctx, rec, rev); err != nil && !errors.Is(err, status.ErrConflict) {
		// The replay is on EVENTS; the worker records its status when it delivers.
		return out, fmt.Errorf("dlq: record replay of %s as queued: %w", src.eventID, err)
	}
	return out, nil
}
