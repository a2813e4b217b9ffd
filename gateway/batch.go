package gateway

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fastjson"

	"github.com/edgehook/edgehook/identity"
	"github.com/edgehook/edgehook/natsconf"
	"github.com/edgehook/edgehook/status"
)

// Limits of POST /v1/events/batch. Each event also has the limits of a single event
// (Config.MaxBodyBytes, MaxEventTypeLen).
const (
	// MaxBatchEvents is the most events one batch may hold; it is also JetStream's
	// default largest atomic batch.
	MaxBatchEvents = 1000
	// MaxBatchBytes is the largest accepted batch body.
	MaxBatchBytes = 1 << 20
)

// Headers of JetStream's atomic batch publish (ADR-50).
const (
	headerBatchID     = "Nats-Batch-Id"
	headerBatchSeq    = "Nats-Batch-Sequence"
	headerBatchCommit = "Nats-Batch-Commit"
)

// JetStream error codes (err_code) an atomic batch commit can answer with.
const (
	jsErrAtomicDuplicate       = 10201 // a message's Nats-Msg-Id is in the duplicate window
	jsErrAtomicTooManyInflight = 10210
)

var (
	errBatchTooLarge = newAPIError(fasthttp.StatusRequestEntityTooLarge, CodePayloadTooLarge,
		"batch body exceeds the limit of "+strconv.Itoa(MaxBatchBytes)+" bytes")
	errBatchNotObject     = newAPIError(fasthttp.StatusBadRequest, CodeInvalidJSON, `request body must be a JSON object {"events":[...]}`)
	errBatchNoEvents      = badRequest(`field "events" is missing; send {"events":[{"event":{...},"idempotencyKey":"..."}]}`)
	errBatchEventsNotList = badRequest(`field "events" must be an array`)
	errBatchEmpty         = badRequest(`field "events" is empty; a batch holds 1 to ` + strconv.Itoa(MaxBatchEvents) + ` events`)
	errBatchDupEvents     = badRequest(`field "events" appears more than once`)
	errBatchHeaderKey     = badRequest(`the Idempotency-Key header does not apply to a batch; give each event its own "idempotencyKey"`)
)

// errAtomicDuplicate is an atomic batch refused because one of its Nats-Msg-Ids was
// stored before.
var errAtomicDuplicate = errors.New("atomic batch holds a message id stored before")

// batchItem is one event of a batch.
type batchItem struct {
	// body is the "event" value, byte for byte as sent; it aliases the request body.
	body     []byte
	key      string // idempotencyKey, "" when absent
	typ      string
	eventID  string
	msgID    string // Nats-Msg-Id, "" without a key
	replayed bool   // stored before under the same key
}

// ingestBatch serves POST /v1/events/batch: up to MaxBatchEvents events, each
// validated as POST /v1/events validates one, stored all or none in one JetStream
// atomic batch, and answered 202 with each event's id once all are durable. A batch
// with any invalid event stores nothing and is a 400 listing each fault by index.
func (s *Server) ingestBatch(ctx *fasthttp.RequestCtx, _ string) error {
	t, err := s.authenticateActive(ctx)
	if err != nil {
		return err
	}
	body := ctx.PostBody()
	if len(body) > MaxBatchBytes {
		return errBatchTooLarge
	}
	if len(ctx.Request.Header.Peek(HeaderIdempotencyKey)) > 0 {
		return errBatchHeaderKey
	}
	p := s.parsers.Get()
	items, err := s.parseBatch(p, body)
	s.parsers.Put(p)
	if err != nil {
		return err
	}
	for i := range items {
		it := &items[i]
		if it.key != "" {
			it.eventID = idempotentEventID(t.TenantID, []byte(it.key))
			it.msgID = t.TenantID + ":" + it.key
		} else {
			it.eventID = newEventID()
		}
	}

	now := time.Now()
	pctx, cancel := context.WithTimeout(context.Background(), s.cfg.PublishTimeout)
	defer cancel()
	err = s.publishAtomic(pctx, t, items, now)
	if errors.Is(err, errAtomicDuplicate) {
		err = s.publishReplayed(pctx, t, items, now)
	}
	s.metrics.publish.Observe(time.Since(now).Seconds())
	if err != nil {
		s.log.Warn("event batch publish failed", "tenant", t.TenantID, "events", len(items), "error", err)
		return &unavailableError{what: "event store", err: err}
	}
	s.recordQueued(t, items, now)

	ctx.SetStatusCode(fasthttp.StatusAccepted)
	ctx.SetContentType("application/json")
	ctx.ResetBody()
	out := make([]byte, 0, 16+len(items)*(eventIDLen+48))
	out = append(out, `{"events":[`...)
	accepted := 0
	for i, it := range items {
		if i > 0 {
			out = append(out, ',')
		}
		out = append(out, `{"eventId":"`...)
		out = append(out, it.eventID...)
		out = append(out, `","status":"queued"`...)
		if it.replayed {
			out = append(out, `,"replayed":true`...)
		} else {
			accepted++
		}
		out = append(out, '}')
	}
	out = append(out, "]}"...)
	ctx.SetBody(out)
	s.metrics.accepted.Add(float64(accepted))
	return nil
}

// parseBatch validates a batch body {"events":[{"event":{...},"idempotencyKey":"..."}]}
// and returns its items. Each "event" is checked as parseEvent checks a single
// event's body; all faults of the items are reported together, by index.
func (s *Server) parseBatch(p *fastjson.Parser, body []byte) ([]batchItem, error) {
	if len(body) == 0 {
		return nil, errEmptyBody
	}
	v, surrogateAt, err := parseJSON(p, body)
	if err != nil {
		return nil, err
	}
	top, err := v.Object()
	if err != nil {
		return nil, errBatchNotObject
	}
	var events *fastjson.Value
	var topErr error
	top.Visit(func(k []byte, v *fastjson.Value) {
		switch {
		case topErr != nil:
		case string(k) != "events":
			topErr = badRequest("unknown field " + quoteShort(k) + ` in the batch; it holds only "events"`)
		case events != nil:
			topErr = errBatchDupEvents
		default:
			events = v
		}
	})
	switch {
	case topErr != nil:
		return nil, topErr
	case events == nil:
		return nil, errBatchNoEvents
	case events.Type() != fastjson.TypeArray:
		return nil, errBatchEventsNotList
	}
	arr, _ := events.Array()
	switch {
	case len(arr) == 0:
		return nil, errBatchEmpty
	case len(arr) > MaxBatchEvents:
		return nil, badRequest("a batch holds at most " + strconv.Itoa(MaxBatchEvents) + " events; this one has " + strconv.Itoa(len(arr)))
	}
	spans := batchEventSpans(body)
	if len(spans) != len(arr) {
		return nil, fmt.Errorf("gateway: batch scanner found %d events where the parser found %d", len(spans), len(arr))
	}

	textFaults := surrogateAt >= 0 || !utf8.Valid(body)
	items := make([]batchItem, len(arr))
	var details []errorDetail
	keys := make(map[string]int)
	for i, el := range arr {
		msg := s.checkBatchItem(&items[i], el, body, spans[i], textFaults)
		if msg == "" && items[i].key != "" {
			if first, dup := keys[items[i].key]; dup {
				msg = "idempotencyKey repeats that of event " + strconv.Itoa(first)
			} else {
				keys[items[i].key] = i
			}
		}
		if msg != "" {
			details = append(details, errorDetail{Index: i, Message: msg})
		}
	}
	if len(details) > 0 {
		ae := badRequest(strconv.Itoa(len(details)) + " of " + strconv.Itoa(len(arr)) + " events are invalid; none was stored")
		ae.Details = details
		return nil, ae
	}
	// Text outside the events (in an idempotencyKey, which must be ASCII anyway).
	if err := checkText(body, surrogateAt, "request body"); err != nil {
		return nil, err
	}
	return items, nil
}

// checkBatchItem fills it from the batch element el, whose "event" value is
// body[span[0]:span[1]], and returns what is wrong with it ("" when nothing).
// textFaults says whether the body holds invalid text somewhere.
func (s *Server) checkBatchItem(it *batchItem, el *fastjson.Value, body []byte, span [2]int, textFaults bool) string {
	o, err := el.Object()
	if err != nil {
		return `must be an object {"event":{...},"idempotencyKey":"..."}`
	}
	var ev, key *fastjson.Value
	var fault string
	o.Visit(func(k []byte, v *fastjson.Value) {
		switch {
		case fault != "":
		case string(k) == "event" && ev == nil:
			ev = v
		case string(k) == "idempotencyKey" && key == nil:
			key = v
		case string(k) == "event" || string(k) == "idempotencyKey":
			fault = "field " + strconv.Quote(string(k)) + " appears more than once"
		default:
			fault = "unknown field " + quoteShort(k) + `; an item holds only "event" and "idempotencyKey"`
		}
	})
	switch {
	case fault != "":
		return fault
	case ev == nil:
		return `field "event" is missing`
	case ev.Type() != fastjson.TypeObject || span[0] < 0:
		return `field "event" must be a JSON object`
	}
	if key != nil {
		kb, err := key.StringBytes()
		if err != nil || !validIdempotencyKey(kb) {
			return "idempotencyKey must be a string of 1-255 printable ASCII characters"
		}
		it.key = string(kb)
	}
	raw := body[span[0]:span[1]]
	if len(raw) > s.cfg.MaxBodyBytes {
		return "event exceeds the limit of " + strconv.Itoa(s.cfg.MaxBodyBytes) + " bytes"
	}
	typ, err := eventType(ev.GetObject())
	if err != nil {
		var ae *apiError
		if errors.As(err, &ae) {
			return ae.Message
		}
		return `field "type" is not valid`
	}
	if textFaults {
		at := -1
		if off, fault := scanStrings(raw); fault == faultLoneSurrogate {
			at = off
		}
		if ae := checkText(raw, at, "event"); ae != nil {
			if te := typeTextFault(raw); te != nil {
				return te.Message
			}
			return ae.Message
		}
	}
	it.body, it.typ = raw, typ
	return ""
}

// quoteShort quotes the key k for a message, or gives only its length past 64 bytes.
func quoteShort(k []byte) string {
	if len(k) > 64 {
		return "(a key of " + strconv.Itoa(len(k)) + " bytes)"
	}
	return strconv.Quote(string(k))
}

// publishAtomic stores items in the stream as one atomic batch and returns once the
// commit is acked: all are stored, or (on any error) none. The messages before the
// commit are plain publishes the server acks only through the commit, so a batch
// costs one round trip. A Nats-Msg-Id stored before refuses the whole batch with
// errAtomicDuplicate.
func (s *Server) publishAtomic(ctx context.Context, t identity.Tenant, items []batchItem, now time.Time) error {
	if len(items) == 0 {
		return nil
	}
	nc := s.pub.Conn()
	var idRaw [16]byte
	rand.Read(idRaw[:])
	batchID := hex.EncodeToString(idRaw[:])
	// PublishMsg copies a message out before it returns, so one message and its
	// header map serve every event.
	m := &nats.Msg{Subject: s.subjectPrefix + t.TenantID, Header: nats.Header{
		natsconf.HeaderTenant:     {t.TenantID},
		natsconf.HeaderIngestTime: {strconv.FormatInt(now.UnixNano(), 10)},
		headerBatchID:             {batchID},
		natsconf.HeaderEventID:    {""},
		natsconf.HeaderEventType:  {""},
		headerBatchSeq:            {""},
	}}
	msgID := []string{""}
	for i, it := range items {
		m.Data = it.body
		m.Header[natsconf.HeaderEventID][0] = it.eventID
		m.Header[natsconf.HeaderEventType][0] = it.typ
		m.Header[headerBatchSeq][0] = strconv.Itoa(i + 1)
		if it.msgID != "" {
			msgID[0] = it.msgID
			m.Header[jetstream.MsgIDHeader] = msgID
		} else {
			delete(m.Header, jetstream.MsgIDHeader)
		}
		if i < len(items)-1 {
			if err := nc.PublishMsg(m); err != nil {
				return fmt.Errorf("atomic batch message %d: %w", i+1, err)
			}
		}
	}
	m.Header[headerBatchCommit] = []string{"1"}
	resp, err := nc.RequestMsgWithContext(ctx, m)
	if err != nil {
		return fmt.Errorf("atomic batch commit: %w", err)
	}
	var ack struct {
		Stream string `json:"stream"`
		Batch  string `json:"batch"`
		Count  int    `json:"count"`
		Error  *struct {
			Code        int    `json:"code"`
			ErrCode     int    `json:"err_code"`
			Description string `json:"description"`
		} `json:"error"`
	}
	if err := json.Unmarshal(resp.Data, &ack); err != nil {
		return fmt.Errorf("atomic batch commit: unreadable answer %.100q: %w", resp.Data, err)
	}
	switch {
	case ack.Error != nil && ack.Error.ErrCode == jsErrAtomicDuplicate:
		return errAtomicDuplicate
	case ack.Error != nil && ack.Error.ErrCode == jsErrAtomicTooManyInflight:
		return fmt.Errorf("atomic batch commit: %s: %w", ack.Error.Description, jetstream.ErrTooManyStalledMsgs)
	case ack.Error != nil:
		return fmt.Errorf("atomic batch commit: %s (err_code %d)", ack.Error.Description, ack.Error.ErrCode)
	case ack.Batch != batchID || ack.Count != len(items):
		return fmt.Errorf("atomic batch commit: acked batch %q of %d messages, sent %q of %d", ack.Batch, ack.Count, batchID, len(items))
	}
	return nil
}

// publishReplayed stores a batch that JetStream refused because some of its
// idempotency keys were stored before, typically a batch sent again after a lost
// answer. The events with a key go one by one, each deduplicated on its own (those
// stored before are marked replayed); then the events without a key go as one
// atomic batch. Should this fail part way, sending the same batch again stores no
// event twice: the keyed ones dedupe and the unkeyed ones were not stored yet.
func (s *Server) publishReplayed(ctx context.Context, t identity.Tenant, items []batchItem, now time.Time) error {
	ingest := strconv.FormatInt(now.UnixNano(), 10)
	var unkeyed, keyed []int
	for i, it := range items {
		if it.msgID == "" {
			unkeyed = append(unkeyed, i)
		} else {
			keyed = append(keyed, i)
		}
	}
	err := publishChunked(len(keyed), func(n int) (jetstream.PubAckFuture, error) {
		it := items[keyed[n]]
		m := &nats.Msg{Subject: s.subjectPrefix + t.TenantID, Header: nats.Header{
			natsconf.HeaderEventID:    {it.eventID},
			natsconf.HeaderTenant:     {t.TenantID},
			natsconf.HeaderEventType:  {it.typ},
			natsconf.HeaderIngestTime: {ingest},
			jetstream.MsgIDHeader:     {it.msgID},
		}}
		// An async publish may be re-sent after the handler returns: own the body.
		m.Data = bytes.Clone(it.body)
		return s.pub.PublishMsgAsync(m)
	}, func(n int, ack *jetstream.PubAck, err error) error {
		if err != nil {
			return fmt.Errorf("event %d of the batch: %w", keyed[n], err)
		}
		items[keyed[n]].replayed = ack.Duplicate
		return nil
	})
	if err != nil {
		return err
	}
	rest := make([]batchItem, len(unkeyed))
	for n, i := range unkeyed {
		rest[n] = items[i]
	}
	return s.publishAtomic(ctx, t, rest, now)
}

// asyncChunk bounds how many async publishes a batch has in flight at once, well
// below the publisher's pending limit, so a large batch never stalls other requests'
// publishes.
const asyncChunk = 256

// publishChunked starts n async publishes with publish(i) and hands each outcome to
// done(i, ack, err), at most asyncChunk in flight at a time. It stops at the first
// error publish or done returns, after waiting for the publishes already started.
func publishChunked(n int, publish func(i int) (jetstream.PubAckFuture, error), done func(i int, ack *jetstream.PubAck, err error) error) error {
	type started struct {
		i int
		f jetstream.PubAckFuture
	}
	inFlight := make([]started, 0, min(n, asyncChunk))
	for start := 0; start < n; start += asyncChunk {
		inFlight = inFlight[:0]
		var firstErr error
		for i := start; i < min(n, start+asyncChunk); i++ {
			f, err := publish(i)
			if err != nil {
				if firstErr = done(i, nil, err); firstErr != nil {
					break
				}
				continue
			}
			inFlight = append(inFlight, started{i, f})
		}
		for _, p := range inFlight {
			ack, err := awaitAck(p.f)
			if err := done(p.i, ack, err); err != nil && firstErr == nil {
				firstErr = err
			}
		}
		if firstErr != nil {
			return firstErr
		}
	}
	return nil
}

// recordQueued writes each item's queued status record, as ingest does for one
// event: the events are durable already, so a failure is logged, not answered (the
// worker writes the status when it delivers), and a record already written (a
// replayed event's) is left as it is.
func (s *Server) recordQueued(t identity.Tenant, items []batchItem, now time.Time) {
	utc := now.UTC()
	var firstErr error
	failed := 0
	_ = publishChunked(len(items), func(i int) (jetstream.PubAckFuture, error) {
		m := &nats.Msg{Header: make(nats.Header, 1)}
		err := status.FillQueuedMsgIn(m, s.queuedBucket, status.Record{
			EventID: items[i].eventID, TenantID: t.TenantID, Type: items[i].typ, CreatedAt: utc, UpdatedAt: utc,
		})
		if err != nil {
			return nil, err
		}
		return s.pub.PublishMsgAsync(m)
	}, func(_ int, _ *jetstream.PubAck, err error) error {
		if err != nil && !status.IsAlreadyWritten(err) {
			failed++
			if firstErr == nil {
				firstErr = err
			}
		}
		return nil // every record is attempted
	})
	if failed > 0 {
		s.log.Warn("queued status not recorded", "tenant", t.TenantID, "events", failed, "error", firstErr)
	}
}

// batchEventSpans returns, for each element of the top-level "events" array of the
// JSON object body (already validated), the byte span of the value of its first
// "event" member, {-1, -1} where it has none; nil without an "events" array.
func batchEventSpans(body []byte) [][2]int {
	var spans [][2]int
	found := false
	forEachMember(body, skipSpace(body, 0), func(key []byte, vs, ve int) {
		if found || body[vs] != '[' || !keyIs(key, "events") {
			return
		}
		found = true
		forEachElement(body, vs, func(es, _ int) {
			span := [2]int{-1, -1}
			if body[es] == '{' {
				forEachMember(body, es, func(k []byte, s2, e2 int) {
					if span[0] < 0 && keyIs(k, "event") {
						span = [2]int{s2, e2}
					}
				})
			}
			spans = append(spans, span)
		})
	})
	return spans
}

// keyIs reports whether the raw (still escaped) key is name.
func keyIs(raw []byte, name string) bool {
	if bytes.IndexByte(raw, '\\') < 0 {
		return string(raw) == name
	}
	var k string
	quoted := append(append([]byte{'"'}, raw...), '"')
	return json.Unmarshal(quoted, &k) == nil && k == name
}

// The scanner below walks JSON text fastjson has validated, so it checks nothing.

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index after the string starting at b[i] == '"'.
func skipString(b []byte, i int) int {
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			j++
		case '"':
			return j + 1
		}
	}
	return len(b)
}

// skipValue returns the index after the value starting at b[i].
func skipValue(b []byte, i int) int {
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				j = skipString(b, j) - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return j + 1
				}
			}
		}
		return len(b)
	}
	j := i
	for j < len(b) && b[j] != ',' && b[j] != '}' && b[j] != ']' && b[j] != ' ' && b[j] != '\t' && b[j] != '\n' && b[j] != '\r' {
		j++
	}
	return j
}

// forEachMember calls fn with each member's raw key and value span of the object at
// b[i] == '{'.
func forEachMember(b []byte, i int, fn func(key []byte, vs, ve int)) {
	j := skipSpace(b, i+1)
	for j < len(b) && b[j] == '"' {
		ke := skipString(b, j)
		key := b[j+1 : ke-1]
		vs := skipSpace(b, skipSpace(b, ke)+1) // past the colon
		ve := skipValue(b, vs)
		fn(key, vs, ve)
		j = skipSpace(b, ve)
		if j >= len(b) || b[j] != ',' {
			return
		}
		j = skipSpace(b, j+1)
	}
}

// forEachElement calls fn with the span of each element of the array at b[i] == '['.
func forEachElement(b []byte, i int, fn func(es, ee int)) {
	j := skipSpace(b, i+1)
	for j < len(b) && b[j] != ']' {
		ee := skipValue(b, j)
		fn(j, ee)
		j = skipSpace(b, ee)
		if j >= len(b) || b[j] != ',' {
			return
		}
		j = skipSpace(b, j+1)
	}
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
