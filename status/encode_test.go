package status_test

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/edgehook/edgehook/status"
)

// oddStrings are strings encoding/json escapes or rewrites: quotes, backslashes, HTML
// characters, every kind of control character, line and paragraph separators,
// invalid and truncated UTF-8, and plain multi-byte text.
var oddStrings = []string{
	"", "plain", `quote " and \ backslash`, "<script>alert(1)</script> & more",
	"\x00\x01\x07\x1f\x7f", "\b\f\n\r\t", "line\u2028para\u2029end", "bad \xff byte", "cut \xe2\x80",
	"ünïcødé ✓ 𝄞 😀", "\xed\xa0\x80 surrogate", `{"ok":true,"msg":"<b>hi</b>"}`, "HTTP 503",
}

func oddTimes() []time.Time {
	now := time.Now()
	return []time.Time{
		now.UTC(), now.Truncate(time.Second).UTC(), now.In(time.FixedZone("CET", 3600)),
		now.In(time.FixedZone("NPT", 5*3600+45*60)), now.In(time.FixedZone("west", -3*3600-30*60)),
		{}, time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC), time.Date(0, 1, 1, 0, 0, 0, 1, time.UTC),
	}
}

// Refused by encoding/json: the encoders must refuse them too (an error, not JSON).
var badTimes = []time.Time{
	time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC),
	time.Date(2024, 1, 1, 0, 0, 0, 0, time.FixedZone("LMT", 3600+7)),
}

var latencies = []float64{0, 1, 0.001, 12.345, 1234567.891, 1e-6, 9.99e-7, 1e-7, 1.5e-9, 1e20, 1e21, 1.234e25, -0.5, math.Copysign(0, -1), math.MaxFloat64}

func fullAttempt(s string, at time.Time, latency float64) status.Attempt {
	return status.Attempt{
		TenantID: "ten_" + s, EventID: "evt_" + s, N: 7, Attempt: 3, Replay: 2, Seq: math.MaxUint64, At: at,
		Outcome: s, StatusCode: 503, LatencyMs: latency, Error: s, ResponseBody: s,
	}
}

func fullRecord(s string, t time.Time, last *status.Attempt) status.Record {
	return status.Record{
		EventID: "evt_" + s, TenantID: "ten_" + s, Type: s, Status: s, Attempts: -4, LastStatusCode: 429,
		LastError: s, CreatedAt: t, UpdatedAt: t, Seq: 1 << 60, TotalAttempts: 9, Replays: 1, LastAttempt: last,
	}
}

// checkRecord asserts that PutMsg writes rec exactly as json.Marshal does, or fails
// exactly when it fails.
func checkRecord(t *testing.T, rec status.Record) {
	t.Helper()
	want, wantErr := json.Marshal(rec)
	m, err := status.PutMsg(rec)
	switch {
	case wantErr != nil && err == nil:
		t.Errorf("PutMsg(%#v) = %s, want an error like encoding/json's %v", rec, m.Data, wantErr)
	case wantErr == nil && err != nil:
		t.Errorf("PutMsg(%#v): %v", rec, err)
	case err == nil && !bytes.Equal(m.Data, want):
		t.Errorf("PutMsg data\n got %s\nwant %s", m.Data, want)
	}
}

func checkAttempt(t *testing.T, a status.Attempt) {
	t.Helper()
	want, wantErr := json.Marshal(a)
	m, err := status.AttemptMsg(a)
	switch {
	case wantErr != nil && err == nil:
		t.Errorf("AttemptMsg(%#v) = %s, want an error like encoding/json's %v", a, m.Data, wantErr)
	case wantErr == nil && err != nil:
		t.Errorf("AttemptMsg(%#v): %v", a, err)
	case err == nil && !bytes.Equal(m.Data, want):
		t.Errorf("AttemptMsg data\n got %s\nwant %s", m.Data, want)
	}
}

// TestRecordAndAttemptEncodeAsEncodingJSONDoes pins the hand-written encoders of
// status records and attempt entries to encoding/json: every field set and unset,
// odd strings, time zones, float forms, and the values encoding/json refuses.
func TestRecordAndAttemptEncodeAsEncodingJSONDoes(t *testing.T) {
	for _, s := range oddStrings {
		for _, at := range oddTimes() {
			a := fullAttempt(s, at, 12.5)
			checkAttempt(t, a)
			checkAttempt(t, status.Attempt{TenantID: s, EventID: s, N: 1, At: at, Outcome: s})
			checkRecord(t, fullRecord(s, at, nil))
			checkRecord(t, fullRecord(s, at, &a))
			checkRecord(t, status.Record{EventID: s, TenantID: s, CreatedAt: at, UpdatedAt: at})
		}
	}
	for _, l := range latencies {
		checkAttempt(t, fullAttempt("x", time.Now(), l))
	}
	for _, bad := range badTimes {
		checkAttempt(t, fullAttempt("x", bad, 1))
		checkRecord(t, fullRecord("x", bad, nil))
		a := fullAttempt("x", bad, 1)
		checkRecord(t, fullRecord("x", time.Now(), &a)) // refused inside lastAttempt
	}
	for _, l := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
		checkAttempt(t, fullAttempt("x", time.Now(), l))
	}
}

// TestEncodersMatchEncodingJSONOnRandomStrings compares the encoders with
// encoding/json on random strings drawn from bytes and runes that need care.
func TestEncodersMatchEncodingJSONOnRandomStrings(t *testing.T) {
	pieces := []string{"a", "Z", "0", " ", `"`, `\`, "/", "<", ">", "&", "\x00", "\x1f", "\x7f", "\n", "\t", "\b", "\f", "\r",
		"é", "✓", "😀", "\u2028", "\u2029", "\xff", "\xc3", "\xe2\x80", "\xf0\x9f", "\ufffd", "\ufeff"}
	r := rand.New(rand.NewPCG(1, 2))
	now := time.Now()
	for range 3000 {
		var b []byte
		for range r.IntN(12) {
			b = append(b, pieces[r.IntN(len(pieces))]...)
		}
		s := string(b)
		a := fullAttempt(s, now, r.Float64()*1000)
		checkRecord(t, fullRecord(s, now, &a))
	}
}

// TestEncodersKnowEveryField fails when a field is added to Record or Attempt: the
// hand-written encoders in status/encode.go must write it too (then update the counts).
func TestEncodersKnowEveryField(t *testing.T) {
	if n := reflect.TypeFor[status.Record]().NumField(); n != 13 {
		t.Errorf("Record has %d fields; appendRecord writes 13: teach it the new ones", n)
	}
	if n := reflect.TypeFor[status.Attempt]().NumField(); n != 12 {
		t.Errorf("Attempt has %d fields; appendAttempt writes 12: teach it the new ones", n)
	}
}

func TestPutMsgAllocatesLittle(t *testing.T) {
	now := time.Now().UTC()
	// A delivered record as a worker writes it, its attempt inside.
	a := status.Attempt{TenantID: "ten_2xQ8vJb3kR", EventID: "evt_9fK2mLq7WzX4pN1c", N: 1, Attempt: 1, Seq: 123456,
		At: now, Outcome: status.OutcomeDelivered, StatusCode: 204, LatencyMs: 1.234}
	rec := status.Record{EventID: a.EventID, TenantID: a.TenantID, Type: "order.created", Status: status.Delivered,
		Attempts: 1, LastStatusCode: 204, CreatedAt: now, UpdatedAt: now, Seq: 123456, TotalAttempts: 1, LastAttempt: &a}
	// The message, its data, its header map and the subject.
	if m, _ := status.PutMsg(rec); len(m.Data) > 500 {
		t.Fatalf("test record is %d bytes, more than PutMsg presizes", len(m.Data))
	}
	if allocs := testing.AllocsPerRun(100, func() { _, _ = status.PutMsg(rec) }); allocs > 4 {
		t.Errorf("PutMsg allocates %v times, want at most 4 (no reflection)", allocs)
	}
}
