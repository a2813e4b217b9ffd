package dlq

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/edgehook/edgehook/natsconf"
)

// Headers of a dead-letter record, beside the event headers of natsconf (event id,
// tenant, type, ingest time, replay count, prior attempts). Times are RFC 3339 UTC.
const (
	HeaderAttempts       = "Edgehook-Attempts"
	HeaderLastStatusCode = "Edgehook-Last-Status-Code"
	HeaderLastError      = "Edgehook-Last-Error"
	HeaderFirstAttempt   = "Edgehook-First-Attempt"
	HeaderLastAttempt    = "Edgehook-Last-Attempt"
	// HeaderReason is "max deliveries" or "terminated: <the worker's reason>".
	HeaderReason = "Edgehook-Dead-Reason"
	// HeaderStreamSeq is the EVENTS stream sequence of the dead-lettered message.
	HeaderStreamSeq = "Edgehook-Stream-Seq"
)

// Reasons an event is dead-lettered.
const (
	ReasonMaxDeliveries = "max deliveries"
	reasonTerminated    = "terminated"
)

// maxHeaderValue bounds the last error carried in a header.
const maxHeaderValue = 512

// ErrNotDeadLetter is returned by ParseDeadLetter for a message that is not one.
var ErrNotDeadLetter = errors.New("dlq: not a dead letter")

// DeadLetter is one record on DLQ: an event that exhausted its attempts or was
// terminated, with its payload, so it outlives the event's retention on EVENTS.
type DeadLetter struct {
	// Seq and Time locate the record on DLQ (zero before it is written).
	Seq  uint64
	Time time.Time

	TenantID, EventID, Type string
	IngestTime              time.Time
	// Attempts is the number of deliveries of the dead-lettered message.
	Attempts       int
	LastStatusCode int
	LastError      string
	// FirstAttempt and LastAttempt come from the attempt log (zero when it has none).
	FirstAttempt, LastAttempt time.Time
	Reason                    string
	// StreamSeq is the EVENTS sequence of the dead-lettered message.
	StreamSeq uint64
	// Replay is 0 when the original died, k when its k-th replay did.
	Replay int
	// PriorAttempts is how many attempts the event's log held before this round.
	PriorAttempts int
	Payload       []byte
}

// Subject is the dead letter's subject on DLQ: dlq.<tenantId>.<eventId>.
func (d DeadLetter) Subject() string { return natsconf.DeadLetterSubject(d.TenantID, d.EventID) }

// Msg returns the record as a message: the payload as body, everything else headers.
func (d DeadLetter) Msg() *nats.Msg {
	m := nats.NewMsg(d.Subject())
	h := m.Header
	h.Set(natsconf.HeaderTenant, d.TenantID)
	h.Set(natsconf.HeaderEventID, d.EventID)
	if d.Type != "" {
		h.Set(natsconf.HeaderEventType, d.Type)
	}
	if !d.IngestTime.IsZero() {
		h.Set(natsconf.HeaderIngestTime, strconv.FormatInt(d.IngestTime.UnixNano(), 10))
	}
	h.Set(HeaderAttempts, strconv.Itoa(d.Attempts))
	h.Set(HeaderLastStatusCode, strconv.Itoa(d.LastStatusCode))
	if d.LastError != "" {
		h.Set(HeaderLastError, headerValue(d.LastError))
	}
	if !d.FirstAttempt.IsZero() {
		h.Set(HeaderFirstAttempt, d.FirstAttempt.UTC().Format(time.RFC3339Nano))
	}
	if !d.LastAttempt.IsZero() {
		h.Set(HeaderLastAttempt, d.LastAttempt.UTC().Format(time.RFC3339Nano))
	}
	h.Set(HeaderReason, headerValue(d.Reason))
	h.Set(HeaderStreamSeq, strconv.FormatUint(d.StreamSeq, 10))
	if d.Replay > 0 {
		h.Set(natsconf.HeaderReplay, strconv.Itoa(d.Replay))
	}
	if d.PriorAttempts > 0 {
		h.Set(natsconf.HeaderPriorAttempts, strconv.Itoa(d.PriorAttempts))
	}
	m.Data = d.Payload
	return m
}

// ParseDeadLetter reads a dead letter from its stored message.
func ParseDeadLetter(m *jetstream.RawStreamMsg) (DeadLetter, error) {
	h := m.Header
	d := DeadLetter{
		Seq:       m.Sequence,
		Time:      m.Time,
		TenantID:  h.Get(natsconf.HeaderTenant),
		EventID:   h.Get(natsconf.HeaderEventID),
		Type:      h.Get(natsconf.HeaderEventType),
		LastError: h.Get(HeaderLastError),
		Reason:    h.Get(HeaderReason),
		Payload:   m.Data,
	}
	if d.TenantID == "" || d.EventID == "" || m.Subject != d.Subject() {
		return d, fmt.Errorf("%w: %s (seq %d)", ErrNotDeadLetter, m.Subject, m.Sequence)
	}
	var err error
	if d.StreamSeq, err = strconv.ParseUint(h.Get(HeaderStreamSeq), 10, 64); err != nil {
		return d, fmt.Errorf("%w: %s (seq %d) has no %s", ErrNotDeadLetter, m.Subject, m.Sequence, HeaderStreamSeq)
	}
	d.Attempts, _ = strconv.Atoi(h.Get(HeaderAttempts))
	d.LastStatusCode, _ = strconv.Atoi(h.Get(HeaderLastStatusCode))
	d.Replay, _ = strconv.Atoi(h.Get(natsconf.HeaderReplay))
	d.PriorAttempts, _ = strconv.Atoi(h.Get(natsconf.HeaderPriorAttempts))
	if ns, err := strconv.ParseInt(h.Get(natsconf.HeaderIngestTime), 10, 64); err == nil {
		d.IngestTime = time.Unix(0, ns).UTC()
	}
	d.FirstAttempt, _ = time.Parse(time.RFC3339Nano, h.Get(HeaderFirstAttempt))
	d.LastAttempt, _ = time.Parse(time.RFC3339Nano, h.Get(HeaderLastAttempt))
	return d, nil
}

// headerValue makes s safe as one header value: control characters become spaces
// and it is cut to maxHeaderValue bytes.
func headerValue(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	if len(s) > maxHeaderValue {
		s = s[:maxHeaderValue]
	}
	return strings.TrimSpace(s)
}
