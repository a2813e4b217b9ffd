package gateway

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fastjson"

	"github.com/edgehook/edgehook/identity"
	"github.com/edgehook/edgehook/natsconf"
	"github.com/edgehook/edgehook/status"
)

// HeaderIdempotencyKey is the request header that makes ingest idempotent.
const HeaderIdempotencyKey = "Idempotency-Key"

// HeaderIdempotentReplayed is set to "true" on a 202 answering a repeated
// Idempotency-Key: the event was accepted before and is not stored again.
const HeaderIdempotentReplayed = "Idempotent-Replayed"

// MaxEventTypeLen is the longest accepted "type" field of an event.
const MaxEventTypeLen = 256

// EventIDPrefix starts every event id.
const EventIDPrefix = "evt_"

// ingest serves POST /v1/events: authenticate, validate, publish the event and its
// queued status record together, and answer 202 once JetStream has acked the event.
func (s *Server) ingest(ctx *fasthttp.RequestCtx, _ string) error {
	t, err := s.authenticateActive(ctx)
	if err != nil {
		return err
	}
	body := ctx.PostBody()
	if len(body) > s.cfg.MaxBodyBytes {
		return s.tooLarge
	}
	idemKey := ctx.Request.Header.Peek(HeaderIdempotencyKey)
	if len(idemKey) > 0 && !validIdempotencyKey(idemKey) {
		return errBadIdempotencyKey
	}
	p := s.parsers.Get()
	eventType, err := parseEvent(p, body)
	s.parsers.Put(p)
	if err != nil {
		return err
	}

	var eventID, msgID string
	if len(idemKey) > 0 {
		eventID = idempotentEventID(t.TenantID, idemKey)
		msgID = t.TenantID + ":" + string(idemKey)
	} else {
		eventID = EventIDPrefix + nuid.Next()
	}
	now := time.Now()
	out := s.outs.Get().(*outgoing)
	if err := out.fill(s.subjectPrefix, s.queuedBucket, t, eventID, eventType, msgID, body, now); err != nil {
		return err
	}

	// Both messages go out before waiting, so the two acks cost one round trip. The
	// publisher's async timeout (PublishTimeout) bounds both waits.
	evAck, err := s.pub.PublishMsgAsync(&out.ev)
	if err != nil {
		return s.publishFailed(t.TenantID, eventID, err)
	}
	stAck, stErr := s.pub.PublishMsgAsync(&out.st)
	ack, err := awaitAck(evAck)
	s.metrics.publish.Observe(time.Since(now).Seconds())
	if err != nil {
		return s.publishFailed(t.TenantID, eventID, err)
	}
	if stErr == nil {
		_, stErr = awaitAck(stAck)
	}
	if stErr == nil {
		// Both publishes ended in an ack, so the client holds neither message any more.
		// After an error or timeout the messages are left to the garbage collector: a
		// no-responders retry may still be about to re-send them.
		out.release(&s.outs)
	} else if !status.IsAlreadyWritten(stErr) {
		// The event is durable; the worker writes its status when it delivers.
		s.log.Warn("queued status not recorded", "tenant", t.TenantID, "event", eventID, "error", stErr)
	}

	if ack.Duplicate {
		ctx.Response.Header.Set(HeaderIdempotentReplayed, "true")
	} else {
		s.metrics.accepted.Inc()
	}
	ctx.SetStatusCode(fasthttp.StatusAccepted)
	ctx.SetContentType("application/json")
	ctx.ResetBody()
	ctx.WriteString(`{"eventId":"`)
	ctx.WriteString(eventID)
	ctx.WriteString(`","status":"queued"}`)
	return nil
}

// outgoing is one event's two messages, the event on EVENTS and its queued status
// record, reused across requests through Server.outs: header maps, value slices and
// buffers are kept, so an event costs a handful of small allocations.
type outgoing struct {
	ev, st nats.Msg
	// the ev header's values, one element each
	id, tenant, typ, ingest, msgID []string
	// strs holds the subject and ingest time, converted to a string once per event
	strs []byte
}

// maxPooledBody is the largest body buffer an outgoing keeps when it is pooled, so a
// rare large event does not pin its buffer in the pool.
const maxPooledBody = 64 << 10

// newOutgoing is the New function of Server.outs.
func newOutgoing() any {
	o := &outgoing{
		id: make([]string, 1), tenant: make([]string, 1), typ: make([]string, 1),
		ingest: make([]string, 1), msgID: make([]string, 1),
	}
	o.ev.Header = nats.Header{
		natsconf.HeaderEventID:    o.id,
		natsconf.HeaderTenant:     o.tenant,
		natsconf.HeaderEventType:  o.typ,
		natsconf.HeaderIngestTime: o.ingest,
	}
	o.st.Header = make(nats.Header, 1)
	return o
}

// fill lays out the message of one event on subjectPrefix<tenantId> (with the
// Nats-Msg-Id header when msgID is set) and its queued record in queuedBucket.
func (o *outgoing) fill(subjectPrefix, queuedBucket string, t identity.Tenant, eventID, eventType, msgID string, body []byte, now time.Time) error {
	b := append(o.strs[:0], subjectPrefix...)
	b = append(b, t.TenantID...)
	subjectEnd := len(b)
	b = strconv.AppendInt(b, now.UnixNano(), 10)
	o.strs = b
	all := string(b)
	o.ev.Subject = all[:subjectEnd]
	o.ingest[0] = all[subjectEnd:]
	o.id[0], o.tenant[0], o.typ[0] = eventID, t.TenantID, eventType
	if msgID != "" {
		o.msgID[0] = msgID
		o.ev.Header[jetstream.MsgIDHeader] = o.msgID
	} else {
		delete(o.ev.Header, jetstream.MsgIDHeader)
	}
	// fasthttp reuses the request buffer once the handler returns, and a publish that
	// times out may still be re-sent by the client's no-responders retry, so the
	// message owns a copy of the body.
	o.ev.Data = append(o.ev.Data[:0], body...)
	utc := now.UTC()
	return status.FillQueuedMsgIn(&o.st, queuedBucket, status.Record{
		EventID: eventID, TenantID: t.TenantID, Type: eventType, CreatedAt: utc, UpdatedAt: utc,
	})
}

// release returns o to pool, dropping a body buffer grown past maxPooledBody.
func (o *outgoing) release(pool *sync.Pool) {
	if cap(o.ev.Data) > maxPooledBody {
		o.ev.Data = nil
	}
	pool.Put(o)
}

// awaitAck waits for a publish's ack or error; the publisher's async timeout
// guarantees one of them arrives.
func awaitAck(f jetstream.PubAckFuture) (*jetstream.PubAck, error) {
	select {
	case ack := <-f.Ok():
		return ack, nil
	case err := <-f.Err():
		return nil, err
	}
}

func (s *Server) publishFailed(tenantID, eventID string, err error) error {
	s.log.Warn("event publish failed", "tenant", tenantID, "event", eventID, "error", err)
	return &unavailableError{what: "event store", err: err}
}

// parseEvent checks that body is exactly one JSON object and returns its top-level
// "type" string ("" when absent). p is reused; the result does not reference it.
func parseEvent(p *fastjson.Parser, body []byte) (string, error) {
	if len(body) == 0 {
		return "", errEmptyBody
	}
	// Parse first: it bounds nesting depth, which the strict validator below does not.
	v, err := p.ParseBytes(body)
	if err != nil {
		return "", newAPIError(fasthttp.StatusBadRequest, CodeInvalidJSON, "request body is not valid JSON: "+err.Error())
	}
	if v.Type() != fastjson.TypeObject {
		return "", errNotObject
	}
	// The parser unescapes strings lazily; the validator checks every escape. It misses
	// a raw control character in a string that also holds an escape, so that is
	// checked here: only RFC 8259 JSON gets through.
	if err := fastjson.ValidateBytes(body); err != nil {
		return "", newAPIError(fasthttp.StatusBadRequest, CodeInvalidJSON, "request body is not valid JSON: "+err.Error())
	}
	if controlCharInString(body) {
		return "", errControlChar
	}
	tv := v.Get("type")
	if tv == nil {
		return "", nil
	}
	tb, err := tv.StringBytes()
	if err != nil || !validEventType(tb) {
		return "", errBadType
	}
	return string(tb), nil
}

// controlCharInString reports whether a string in body, which the validator has
// already found well-formed, holds a raw control character (U+0000 to U+001F), which
// JSON allows only escaped.
func controlCharInString(body []byte) bool {
	inString, escaped := false, false
	for _, c := range body {
		switch {
		case !inString:
			inString = c == '"'
		case escaped:
			escaped = false
		case c == '\\':
			escaped = true
		case c == '"':
			inString = false
		case c < 0x20:
			return true
		}
	}
	return false
}

// validEventType reports whether b fits a NATS header value: at most MaxEventTypeLen
// bytes and no control characters.
func validEventType(b []byte) bool {
	if len(b) > MaxEventTypeLen {
		return false
	}
	for _, c := range b {
		if c < 0x20 || c == 0x7f {
			return false
		}
	}
	return true
}

// validIdempotencyKey reports whether k is 1-255 printable ASCII characters.
func validIdempotencyKey(k []byte) bool {
	if len(k) == 0 || len(k) > 255 {
		return false
	}
	for _, c := range k {
		if c < 0x20 || c > 0x7e {
			return false
		}
	}
	return true
}

// idempotentEventID derives the event id of tenantID's Idempotency-Key key, so a
// repeated request gets the same id.
func idempotentEventID(tenantID string, key []byte) string {
	h := sha256.New()
	h.Write([]byte(tenantID))
	h.Write([]byte{0})
	h.Write(key)
	var sum [sha256.Size]byte
	return EventIDPrefix + hex.EncodeToString(h.Sum(sum[:0])[:16])
}
