package status

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"time"
	"unicode/utf8"
)

// The encoders below write records and attempt entries without reflection, byte for
// byte what encoding/json writes for them (pinned by tests, which also fail when a
// field is added to Record or Attempt without being added here). They report false,
// leaving the value to encoding/json, only for what encoding/json refuses or writes
// differently: a time outside years 0-9999 or with a sub-minute zone offset, a NaN
// or infinite latency.

// recordBufSize fits a typical record with its last attempt, or an attempt entry,
// in one allocation.
const recordBufSize = 512

// encodeRecord returns rec's JSON, appended to dst.
func encodeRecord(dst []byte, rec Record) ([]byte, error) {
	if b, ok := appendRecord(dst, &rec); ok {
		return b, nil
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return nil, fmt.Errorf("status: encode: %w", err)
	}
	return append(dst, b...), nil
}

// encodeAttempt returns a's JSON, appended to dst.
func encodeAttempt(dst []byte, a *Attempt) ([]byte, error) {
	if b, ok := appendAttempt(dst, a); ok {
		return b, nil
	}
	b, err := json.Marshal(*a) // a copy, so a itself stays off the heap
	if err != nil {
		return nil, fmt.Errorf("status: encode attempt: %w", err)
	}
	return append(dst, b...), nil
}

// appendRecord appends rec's JSON to dst; on false dst is returned unchanged in
// length (its spare capacity may have been written).
func appendRecord(dst []byte, rec *Record) ([]byte, bool) {
	if !jsonTime(rec.CreatedAt) || !jsonTime(rec.UpdatedAt) {
		return dst, false
	}
	start := len(dst)
	dst = append(dst, `{"eventId":`...)
	dst = appendString(dst, rec.EventID)
	dst = append(dst, `,"tenantId":`...)
	dst = appendString(dst, rec.TenantID)
	if rec.Type != "" {
		dst = append(dst, `,"type":`...)
		dst = appendString(dst, rec.Type)
	}
	dst = append(dst, `,"status":`...)
	dst = appendString(dst, rec.Status)
	dst = append(dst, `,"attempts":`...)
	dst = strconv.AppendInt(dst, int64(rec.Attempts), 10)
	if rec.LastStatusCode != 0 {
		dst = append(dst, `,"lastStatusCode":`...)
		dst = strconv.AppendInt(dst, int64(rec.LastStatusCode), 10)
	}
	if rec.LastError != "" {
		dst = append(dst, `,"lastError":`...)
		dst = appendString(dst, rec.LastError)
	}
	dst = append(dst, `,"createdAt":"`...)
	dst = rec.CreatedAt.AppendFormat(dst, time.RFC3339Nano)
	dst = append(dst, `","updatedAt":"`...)
	dst = rec.UpdatedAt.AppendFormat(dst, time.RFC3339Nano)
	dst = append(dst, '"')
	if rec.Seq != 0 {
		dst = append(dst, `,"seq":`...)
		dst = strconv.AppendUint(dst, rec.Seq, 10)
	}
	if rec.TotalAttempts != 0 {
		dst = append(dst, `,"totalAttempts":`...)
		dst = strconv.AppendInt(dst, int64(rec.TotalAttempts), 10)
	}
	if rec.Replays != 0 {
		dst = append(dst, `,"replays":`...)
		dst = strconv.AppendInt(dst, int64(rec.Replays), 10)
	}
	if rec.LastAttempt != nil {
		dst = append(dst, `,"lastAttempt":`...)
		var ok bool
		if dst, ok = appendAttempt(dst, rec.LastAttempt); !ok {
			return dst[:start], false
		}
	}
	return append(dst, '}'), true
}

// appendAttempt appends a's JSON to dst; on false dst is returned unchanged in length.
func appendAttempt(dst []byte, a *Attempt) ([]byte, bool) {
	if !jsonTime(a.At) || math.IsNaN(a.LatencyMs) || math.IsInf(a.LatencyMs, 0) {
		return dst, false
	}
	dst = append(dst, `{"tenantId":`...)
	dst = appendString(dst, a.TenantID)
	dst = append(dst, `,"eventId":`...)
	dst = appendString(dst, a.EventID)
	dst = append(dst, `,"n":`...)
	dst = strconv.AppendInt(dst, int64(a.N), 10)
	dst = append(dst, `,"attempt":`...)
	dst = strconv.AppendInt(dst, int64(a.Attempt), 10)
	if a.Replay != 0 {
		dst = append(dst, `,"replay":`...)
		dst = strconv.AppendInt(dst, int64(a.Replay), 10)
	}
	dst = append(dst, `,"seq":`...)
	dst = strconv.AppendUint(dst, a.Seq, 10)
	dst = append(dst, `,"at":"`...)
	dst = a.At.AppendFormat(dst, time.RFC3339Nano)
	dst = append(dst, `","outcome":`...)
	dst = appendString(dst, a.Outcome)
	if a.StatusCode != 0 {
		dst = append(dst, `,"statusCode":`...)
		dst = strconv.AppendInt(dst, int64(a.StatusCode), 10)
	}
	dst = append(dst, `,"latencyMs":`...)
	dst = appendFloat(dst, a.LatencyMs)
	if a.Error != "" {
		dst = append(dst, `,"error":`...)
		dst = appendString(dst, a.Error)
	}
	if a.ResponseBody != "" {
		dst = append(dst, `,"responseBody":`...)
		dst = appendString(dst, a.ResponseBody)
	}
	return append(dst, '}'), true
}

// appendFloat writes f as encoding/json does: shortest representation, exponent
// form only below 1e-6 or from 1e21, with a one-digit negative exponent unpadded. f
// must be finite.
func appendFloat(dst []byte, f float64) []byte {
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	dst = strconv.AppendFloat(dst, f, format, -1, 64)
	if format == 'e' {
		// clean up e-09 to e-9
		if n := len(dst); n >= 4 && dst[n-4] == 'e' && dst[n-3] == '-' && dst[n-2] == '0' {
			dst[n-2] = dst[n-1]
			dst = dst[:n-1]
		}
	}
	return dst
}

const hexDigits = "0123456789abcdef"

// appendString writes s as a JSON string as encoding/json does: HTML characters
// (< > &) and U+2028/U+2029 escaped as \u sequences, invalid UTF-8 replaced by
// \ufffd, control characters escaped.
func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
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
