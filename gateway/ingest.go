package gateway

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fastjson"

	"github.com/edgehook/edgehook/identity"
	"github.com/edgehook/edgehook/natsconf"
	"github.com/edgehook/edgehook/natsconf/jsack"
	"github.com/edgehook/edgehook/status"
)

// HeaderIdempotencyKey is the request header that makes ingest idempotent.
const HeaderIdempotencyKey = "Idempotency-Key"

// HeaderIdempotentReplayed is set to "true" on a 202 answering a repeated
// Idempotency-Key: the event was accepted before and is not stored again.
const HeaderIdempotentReplayed = "Idempotent-Replayed"

// MaxEventTypeLen is the longest accepted "type" field of an event.
const MaxEventTypeLen = 256

// EventIDPrefix starts every event id. The rest is 32 lowercase hex digits: 128 bits
// from crypto/rand, or for an event with an Idempotency-Key the first 128 bits of a
// hash of the tenant and key. Either way an id says nothing about other events.
const EventIDPrefix = "evt_"

// eventIDLen is the length of every event id.
const eventIDLen = len(EventIDPrefix) + 32

// newEventID returns a fresh event id: EventIDPrefix and 128 random bits in hex,
// which is safe as a NATS subject token and a KV key part.
func newEventID() string {
	var raw [16]byte
	rand.Read(raw[:]) // never fails (crypto/rand.Read crashes the program instead)
	var id [eventIDLen]byte
	copy(id[:], EventIDPrefix)
	hex.Encode(id[len(EventIDPrefix):], raw[:])
	return string(id[:])
}

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
		eventID = newEventID()
	}
	now := time.Now()
	out := s.outs.Get().(*outgoing)
	if err := out.fill(s.subjectPrefix, s.queuedBucket, t, eventID, eventType, msgID, body, now); err != nil {
		return err
	}

	// Both messages go out before waiting, so the two acks cost one round trip, and
	// both waits end by the publish timeout.
	deadline := now.Add(s.cfg.PublishTimeout)
	if err := s.acks.Publish(&out.ev, out.evAck); err != nil {
		out.release(&s.outs)
		return s.publishFailed(t.TenantID, eventID, err)
	}
	stErr := s.acks.Publish(&out.st, out.stAck)
	ack := s.acks.Await(&out.ev, out.evAck, out.timer, deadline)
	s.metrics.publish.Observe(time.Since(now).Seconds())
	if stErr == nil {
		stErr = s.acks.Await(&out.st, out.stAck, out.timer, deadline).Err
	}
	// Both slots are settled and the connection copied both messages out.
	out.release(&s.outs)
	if ack.Err != nil {
		return s.publishFailed(t.TenantID, eventID, ack.Err)
	}
	if stErr != nil && !status.IsAlreadyWritten(stErr) {
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
// record, with the slots their acks arrive in and the timer bounding the wait, reused
// across requests through Server.outs: header maps, value slices and buffers are
// kept, so an event costs a handful of small allocations.
type outgoing struct {
	ev, st       nats.Msg
	evAck, stAck *jsack.Slot
	timer        *time.Timer // stopped between uses
	// the ev header's values, one element each
	id, tenant, typ, ingest, msgID []string
	// strs holds the subject and ingest time, converted to a string once per event
	strs []byte
}

// newOutgoing is the New function of Server.outs.
func newOutgoing() any {
	o := &outgoing{
		id: make([]string, 1), tenant: make([]string, 1), typ: make([]string, 1),
		ingest: make([]string, 1), msgID: make([]string, 1),
		evAck: jsack.NewSlot(), stAck: jsack.NewSlot(), timer: time.NewTimer(time.Hour),
	}
	o.timer.Stop()
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
	// The connection copies a message out as it publishes it, and nothing publishes
	// it after the handler returns (Acks.Await re-sends it from the handler),
	// so the message can point at the request's body.
	o.ev.Data = body
	utc := now.UTC()
	return status.FillQueuedMsgIn(&o.st, queuedBucket, status.Record{
		EventID: eventID, TenantID: t.TenantID, Type: eventType, CreatedAt: utc, UpdatedAt: utc,
	})
}

// release returns o to pool, holding no reference to the request's body.
func (o *outgoing) release(pool *sync.Pool) {
	o.ev.Data = nil
	pool.Put(o)
}

func (s *Server) publishFailed(tenantID, eventID string, err error) error {
	s.log.Warn("event publish failed", "tenant", tenantID, "event", eventID, "error", err)
	return &unavailableError{what: "event store", err: err}
}

// parseEvent checks that body is exactly one JSON object of valid UTF-8 whose
// top-level "type", if present, is a valid event type, and returns that type (""
// when absent). p is reused; the result does not reference it.
func parseEvent(p *fastjson.Parser, body []byte) (string, error) {
	if len(body) == 0 {
		return "", errEmptyBody
	}
	v, surrogateAt, err := parseJSON(p, body)
	if err != nil {
		return "", err
	}
	if v.Type() != fastjson.TypeObject {
		return "", errNotObject
	}
	typ, err := eventType(v.GetObject())
	if err != nil {
		return "", err
	}
	if err := checkText(body, surrogateAt, "request body"); err != nil {
		if te := typeTextFault(body); te != nil {
			return "", te
		}
		return "", err
	}
	return typ, nil
}

// parseJSON parses body with p and checks that it is RFC 8259 JSON: strictly
// well-formed, with no raw control character in a string. The text is checked by
// checkText, which takes the offset of the first unpaired surrogate escape that
// parseJSON returns (-1 for none).
func parseJSON(p *fastjson.Parser, body []byte) (*fastjson.Value, int, error) {
	// Parse first: it bounds nesting depth, which the strict validator below does not.
	v, err := p.ParseBytes(body)
	if err != nil {
		return nil, 0, newAPIError(fasthttp.StatusBadRequest, CodeInvalidJSON, "request body is not valid JSON: "+err.Error())
	}
	// The parser unescapes strings lazily; the validator checks every escape. It misses
	// a raw control character in a string that also holds an escape, so that is
	// checked here: only RFC 8259 JSON gets through.
	if err := fastjson.ValidateBytes(body); err != nil {
		return nil, 0, newAPIError(fasthttp.StatusBadRequest, CodeInvalidJSON, "request body is not valid JSON: "+err.Error())
	}
	off, fault := scanStrings(body)
	switch fault {
	case faultControlChar:
		return nil, 0, errControlChar
	case faultLoneSurrogate:
		return v, off, nil
	}
	return v, -1, nil
}

// eventType returns the "type" of the event object o ("" when absent), refusing a
// type that is not a valid event type or not valid UTF-8, and a second "type" key
// (parsers disagree on which of two a reader sees).
func eventType(o *fastjson.Object) (string, error) {
	var tv *fastjson.Value
	dup := false
	o.Visit(func(k []byte, v *fastjson.Value) {
		if string(k) != "type" {
			return
		}
		if tv != nil {
			dup = true
		}
		tv = v
	})
	switch {
	case dup:
		return "", errDuplicateType
	case tv == nil:
		return "", nil
	}
	tb, err := tv.StringBytes()
	if err != nil || !validEventType(tb) {
		return "", errBadType
	}
	if !utf8.Valid(tb) {
		return "", errTypeNotUTF8
	}
	return string(tb), nil
}

// checkText refuses JSON text (already well-formed) that is not valid UTF-8 or holds
// an escaped UTF-16 surrogate without its pair (\ud800 alone; the first at byte
// surrogateAt, -1 for none), which every decoder would turn into U+FFFD: an event is
// stored byte for byte as sent, so the gateway accepts only text that reads the same
// to every consumer. what names the text in the message.
func checkText(body []byte, surrogateAt int, what string) *apiError {
	if !utf8.Valid(body) {
		off := 0
		for off < len(body) {
			r, n := utf8.DecodeRune(body[off:])
			if r == utf8.RuneError && n <= 1 {
				break
			}
			off += n
		}
		return newAPIError(fasthttp.StatusBadRequest, CodeInvalidJSON, what+" is not valid UTF-8 (byte "+strconv.Itoa(off)+")")
	}
	if surrogateAt >= 0 {
		return newAPIError(fasthttp.StatusBadRequest, CodeInvalidJSON,
			what+" holds an escaped UTF-16 surrogate without its pair (byte "+strconv.Itoa(surrogateAt)+"), which is not a character")
	}
	return nil
}

// typeTextFault returns the error naming field "type" when the top-level "type" of
// the object body is what makes checkText refuse it, else nil. It is only called on
// that error path.
func typeTextFault(body []byte) *apiError {
	dec := json.NewDecoder(bytes.NewReader(body))
	if _, err := dec.Token(); err != nil {
		return nil
	}
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			return nil
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil
		}
		if _, fault := scanStrings(raw); k == "type" && (fault != faultNone || !utf8.Valid(raw)) {
			return errTypeNotUTF8
		}
	}
	return nil
}

// String faults scanStrings finds.
const (
	faultNone = iota
	faultControlChar
	faultLoneSurrogate
)

// scanStrings finds the first fault in the strings of body, which the validator has
// found well-formed, and its byte offset: a raw control character (U+0000 to
// U+001F, which JSON allows only escaped; the validator misses one in a string that
// also holds an escape), or a \u escape of a UTF-16 surrogate that is not half of
// a high-low pair. Control characters are found first when both occur.
func scanStrings(body []byte) (int, int) {
	inString, surrogateAt := false, -1
	for i := 0; i < len(body); i++ {
		if inString {
			i = plainRun(body, i)
			if i == len(body) {
				break
			}
		}
		c := body[i]
		switch {
		case !inString:
			inString = c == '"'
		case c == '"':
			inString = false
		case c < 0x20:
			return i, faultControlChar
		case c == '\\':
			i++
			if i >= len(body) || body[i] != 'u' || surrogateAt >= 0 || i+4 >= len(body) {
				continue
			}
			if r := hex4(body[i+1 : i+5]); r >= 0xD800 && r <= 0xDFFF {
				// A high surrogate must be followed at once by a low one.
				if r >= 0xDC00 || i+10 >= len(body) || body[i+5] != '\\' || body[i+6] != 'u' {
					surrogateAt = i - 1
				} else if lo := hex4(body[i+7 : i+11]); lo < 0xDC00 || lo > 0xDFFF {
					surrogateAt = i - 1
				} else {
					i += 6 // the low half is consumed with its high half
				}
			}
			i += 4
		}
	}
	if surrogateAt >= 0 {
		return surrogateAt, faultLoneSurrogate
	}
	return 0, faultNone
}

// Eight copies of a byte, for plainRun's word-at-a-time tests.
const (
	ones8  = 0x0101010101010101
	highs8 = 0x8080808080808080
)

// plainRun returns the index of the first byte at or after i in body that may end a
// run of plain string text (a quote, a backslash or a control character), or
// len(body). It looks at eight bytes at a time: a word holds such a byte if one of
// its bytes is below 0x20, or is 0 after XOR with the quote or backslash, which the
// classic "has a byte less than n" test finds (exact for n <= 0x80; bytes of 0x80 and
// above, UTF-8 text, never match). A word that may hold one is looked at byte by byte.
func plainRun(body []byte, i int) int {
	const quotes, backslashes = '"' * ones8, '\\' * ones8
	for ; i+8 <= len(body); i += 8 {
		v := binary.LittleEndian.Uint64(body[i:])
		q, b := v^quotes, v^backslashes
		if ((v-0x20*ones8)&^v|(q-ones8)&^q|(b-ones8)&^b)&highs8 != 0 {
			break
		}
	}
	for ; i < len(body); i++ {
		if c := body[i]; c == '"' || c == '\\' || c < 0x20 {
			return i
		}
	}
	return i
}

// hex4 reads four hex digits (already validated) as a UTF-16 code unit.
func hex4(b []byte) rune {
	var r rune
	for _, c := range b {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return -1
		}
	}
	return r
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
