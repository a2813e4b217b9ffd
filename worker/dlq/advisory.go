package dlq

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/edgehook/edgehook/natsconf"
	"github.com/edgehook/edgehook/status"
)

// advisory is the part of a JetStream MAX_DELIVERIES or MSG_TERMINATED advisory the
// processor uses.
type advisory struct {
	Stream     string    `json:"stream"`
	Consumer   string    `json:"consumer"`
	StreamSeq  uint64    `json:"stream_seq"`
	Deliveries uint64    `json:"deliveries"`
	Reason     string    `json:"reason,omitempty"`
	Time       time.Time `json:"timestamp"`
}

// statusWriteTries bounds the optimistic retries of marking an event failed.
const statusWriteTries = 5

// advisory records the dead letter of the event an advisory names and marks it failed.
func (p *Processor) advisory(ctx context.Context, msg jetstream.Msg) error {
	var adv advisory
	if err := json.Unmarshal(msg.Data(), &adv); err != nil || adv.StreamSeq == 0 {
		p.log.Error("ignoring an advisory that cannot be read", "subject", msg.Subject(), "error", err)
		return nil
	}
	reason := ReasonMaxDeliveries
	// A worker terminates an event whose budget ran out over several messages (it was
	// parked): to its tenant and operator that is running out of attempts.
	if msg.Subject() == natsconf.AdvisoryTerminated && adv.Reason != natsconf.ReasonAttemptsExhausted {
		reason = reasonTerminated
		if adv.Reason != "" {
			reason += ": " + adv.Reason
		}
	}
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	d, result, err := p.record(cctx, adv, reason)
	if err != nil {
		return err
	}
	p.metrics.advisories.WithLabelValues(result).Inc()
	if result != advRecorded && result != advExisting {
		return nil
	}
	if err := p.markFailed(cctx, d); err != nil {
		return err
	}
	if result == advRecorded {
		p.log.Warn("event dead-lettered", "tenant", d.TenantID, "event", d.EventID, "attempts", d.Attempts,
			"reason", d.Reason, "lastStatusCode", d.LastStatusCode, "dlqSeq", d.Seq)
	}
	return nil
}

// record writes the dead letter of the advisory's event unless it exists already. It
// returns the dead letter and the advRecorded or advExisting result, or a result that
// means there is nothing to record.
func (p *Processor) record(ctx context.Context, adv advisory, reason string) (DeadLetter, string, error) {
	orig, err := p.events.GetMsg(ctx, adv.StreamSeq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		p.log.Error("event expired from EVENTS before it could be dead-lettered", "seq", adv.StreamSeq, "reason", reason)
		return DeadLetter{}, advExpired, nil
	}
	if err != nil {
		return DeadLetter{}, "", fmt.Errorf("dlq: get event seq %d: %w", adv.StreamSeq, err)
	}
	h := orig.Header
	d := DeadLetter{
		TenantID: h.Get(natsconf.HeaderTenant), EventID: h.Get(natsconf.HeaderEventID), Type: h.Get(natsconf.HeaderEventType),
		Attempts: int(adv.Deliveries), Reason: reason, StreamSeq: adv.StreamSeq, Payload: orig.Data,
	}
	if d.TenantID == "" || d.EventID == "" || orig.Subject != natsconf.EventSubject(d.TenantID) {
		p.log.Warn("terminated message is not an edgehook event; nothing to dead-letter", "seq", adv.StreamSeq, "subject", orig.Subject)
		return DeadLetter{}, advNotEvent, nil
	}
	d.Replay, _ = strconv.Atoi(h.Get(natsconf.HeaderReplay))
	d.PriorAttempts, _ = strconv.Atoi(h.Get(natsconf.HeaderPriorAttempts))
	// An event brought back from parking carries the attempts it spent before.
	if used, err := strconv.Atoi(h.Get(natsconf.HeaderAttempts)); err == nil && used > 0 {
		d.Attempts += used
	}
	if ns, err := strconv.ParseInt(h.Get(natsconf.HeaderIngestTime), 10, 64); err == nil {
		d.IngestTime = time.Unix(0, ns).UTC()
	} else {
		d.IngestTime = orig.Time.UTC()
	}

	// Seen already? The subject's last dead letter says, whatever the age of the first
	// handling; the expected-last-sequence check below settles a race with a second
	// processor.
	last, err := p.lastDeadLetter(ctx, d.Subject())
	if err != nil {
		return DeadLetter{}, "", err
	}
	if last != nil && last.StreamSeq == d.StreamSeq {
		return *last, advExisting, nil
	}
	if err := p.details(ctx, &d); err != nil {
		return DeadLetter{}, "", err
	}
	var lastSeq uint64
	if last != nil {
		lastSeq = last.Seq
	}
	ack, err := p.js.PublishMsg(ctx, d.Msg(),
		jetstream.WithMsgID("dl-"+strconv.FormatUint(d.StreamSeq, 10)),
		jetstream.WithExpectStream(natsconf.StreamDLQ),
		jetstream.WithExpectLastSequencePerSubject(lastSeq))
	if err != nil {
		if status.IsAlreadyWritten(err) {
			return DeadLetter{}, "", fmt.Errorf("dlq: dead letter of %s written concurrently, checking again: %w", d.EventID, err)
		}
		return DeadLetter{}, "", fmt.Errorf("dlq: write dead letter of %s: %w", d.EventID, err)
	}
	d.Seq = ack.Sequence
	if ack.Duplicate {
		return d, advExisting, nil
	}
	return d, advRecorded, nil
}

// lastDeadLetter returns the latest dead letter on subject, or nil.
func (p *Processor) lastDeadLetter(ctx context.Context, subject string) (*DeadLetter, error) {
	m, err := p.dlq.GetLastMsgForSubject(ctx, subject)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("dlq: get last dead letter on %s: %w", subject, err)
	}
	d, err := ParseDeadLetter(m)
	if err != nil {
		return nil, err
	}
	return &d, nil
}

// details fills the last status code and error and the first and last attempt times
// from the event's status record and attempt log.
func (p *Processor) details(ctx context.Context, d *DeadLetter) error {
	rec, err := p.status.Get(ctx, d.TenantID, d.EventID)
	switch {
	case errors.Is(err, status.ErrNotFound):
	case err != nil:
		return fmt.Errorf("dlq: status of %s: %w", d.EventID, err)
	case rec.Seq == d.StreamSeq:
		d.LastStatusCode, d.LastError = rec.LastStatusCode, rec.LastError
	}
	log, err := p.status.AttemptRange(ctx, d.TenantID, d.EventID, d.PriorAttempts+1, d.PriorAttempts+d.Attempts)
	if err != nil {
		return fmt.Errorf("dlq: attempt log of %s: %w", d.EventID, err)
	}
	// This round's attempts: those of this replay (or the original), over every
	// message the event was (parked copies are new messages of the same round).
	var round []status.Attempt
	for _, a := range log {
		if a.Replay == d.Replay {
			round = append(round, a)
		}
	}
	if len(round) > 0 {
		first, last := round[0], round[len(round)-1]
		d.FirstAttempt, d.LastAttempt = first.At, last.At
		if d.LastError == "" && d.LastStatusCode == 0 {
			d.LastStatusCode, d.LastError = last.StatusCode, last.Error
		}
	}
	if d.LastError == "" {
		d.LastError = d.Reason
	}
	return nil
}

// markFailed records the dead-lettered event as failed, unless its status has moved
// on to a later message (a replay) or says so already.
func (p *Processor) markFailed(ctx context.Context, d DeadLetter) error {
	for range statusWriteTries {
		rec, rev, err := p.status.Entry(ctx, d.TenantID, d.EventID)
		switch {
		case errors.Is(err, status.ErrNotFound):
			rec, rev = status.Record{EventID: d.EventID, TenantID: d.TenantID, CreatedAt: d.IngestTime}, 0
		case err != nil:
			return fmt.Errorf("dlq: status of %s: %w", d.EventID, err)
		case rec.Seq > d.StreamSeq:
			return nil
		case rec.Status == status.Failed && rec.Seq == d.StreamSeq && rec.Attempts >= d.Attempts:
			return nil
		}
		if rec.Seq != d.StreamSeq {
			rec.Attempts = 0 // the record was about no message yet (queued)
		}
		rec.Status, rec.Type, rec.Seq, rec.Replays = status.Failed, d.Type, d.StreamSeq, d.Replay
		rec.Attempts = max(rec.Attempts, d.Attempts)
		rec.LastStatusCode, rec.LastError = d.LastStatusCode, d.LastError
		rec.TotalAttempts = max(rec.TotalAttempts, d.PriorAttempts+d.Attempts)
		rec.UpdatedAt = time.Now().UTC()
		err = p.status.Update(ctx, rec, rev)
		if errors.Is(err, status.ErrConflict) {
			continue
		}
		return err
	}
	return fmt.Errorf("dlq: status of %s kept changing", d.EventID)
}
