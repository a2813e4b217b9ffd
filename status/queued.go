package status

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// expectNoRecord is the ExpectedLastSubjSeq header value of a queued write: create
// only. Shared by every message; never modified.
var expectNoRecord = []string{"0"}

// FillQueuedMsg turns m into the message QueuedMsg returns for rec, reusing m's Data
// buffer and Header map (which must not be nil), so a caller that pools its messages
// encodes a record with a single small allocation, for the subject. m must not be in
// flight.
func FillQueuedMsg(m *nats.Msg, rec Record) error {
	rec.Status = Queued
	b, ok := appendJSON(m.Data[:0], rec)
	if !ok {
		var err error
		if b, err = json.Marshal(rec); err != nil {
			return fmt.Errorf("status: encode: %w", err)
		}
	}
	m.Subject = subject(rec.TenantID, rec.EventID)
	m.Data = b
	m.Header[jetstream.ExpectedLastSubjSeqHeader] = expectNoRecord
	return nil
}

// appendJSON appends rec's JSON, byte for byte what json.Marshal(rec) gives, to dst
// without reflection. It reports false, leaving the encoding to encoding/json, for
// what it does not handle: a string that needs escaping, a time outside years
// 0-9999, or a field other than the ones a queued record carries.
func appendJSON(dst []byte, rec Record) ([]byte, bool) {
	// Only the fields below are encoded here; any other field set sends the record
	// to encoding/json, so a field added to Record later cannot be dropped silently.
	known := Record{
		EventID: rec.EventID, TenantID: rec.TenantID, Type: rec.Type, Status: rec.Status,
		Attempts: rec.Attempts, LastStatusCode: rec.LastStatusCode, LastError: rec.LastError,
		CreatedAt: rec.CreatedAt, UpdatedAt: rec.UpdatedAt,
	}
	if rec != known || !plain(rec.EventID) || !plain(rec.TenantID) || !plain(rec.Type) ||
		!plain(rec.Status) || !plain(rec.LastError) || !jsonTime(rec.CreatedAt) || !jsonTime(rec.UpdatedAt) {
		return dst, false
	}
	dst = append(dst, `{"eventId":"`...)
	dst = append(dst, rec.EventID...)
	dst = append(dst, `","tenantId":"`...)
	dst = append(dst, rec.TenantID...)
	if rec.Type != "" {
		dst = append(dst, `","type":"`...)
		dst = append(dst, rec.Type...)
	}
	dst = append(dst, `","status":"`...)
	dst = append(dst, rec.Status...)
	dst = append(dst, `","attempts":`...)
	dst = strconv.AppendInt(dst, int64(rec.Attempts), 10)
	if rec.LastStatusCode != 0 {
		dst = append(dst, `,"lastStatusCode":`...)
		dst = strconv.AppendInt(dst, int64(rec.LastStatusCode), 10)
	}
	if rec.LastError != "" {
		dst = append(dst, `,"lastError":"`...)
		dst = append(dst, rec.LastError...)
		dst = append(dst, '"')
	}
	dst = append(dst, `,"createdAt":"`...)
	dst = rec.CreatedAt.AppendFormat(dst, time.RFC3339Nano)
	dst = append(dst, `","updatedAt":"`...)
	dst = rec.UpdatedAt.AppendFormat(dst, time.RFC3339Nano)
	return append(dst, `"}`...), true
}

// plain reports whether encoding/json writes s unchanged between quotes: printable
// ASCII other than the characters it escapes (" \ < > &).
func plain(s string) bool {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c < 0x20 || c > 0x7e, c == '"', c == '\\', c == '<', c == '>', c == '&':
			return false
		}
	}
	return true
}

// jsonTime reports whether encoding/json writes t as its RFC 3339 form with
// nanoseconds (it refuses years outside 0-9999).
func jsonTime(t time.Time) bool {
	y := t.Year()
	if y < 0 || y > 9999 {
		return false
	}
	// A zone offset with seconds is written by AppendFormat but not by MarshalJSON.
	_, offset := t.Zone()
	return offset%60 == 0
}
