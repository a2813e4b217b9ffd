package gateway_test

import (
	"context"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/edgehook/edgehook/natsconf"
)

// eventIDForm is every event id: the prefix and 128 bits in hex.
var eventIDForm = regexp.MustCompile(`^evt_[0-9a-f]{32}$`)

// TestEventIDsAreUnguessable: the ids of two tenants' events, sent one after the
// other, are distinct, 128 bits each, and share no structure a tenant could count
// from: no prefix beyond "evt_" across them, none between consecutive ones.
func TestEventIDsAreUnguessable(t *testing.T) {
	e := start(t, options{})
	a := e.createTenant(`{"targetUrl":"http://127.0.0.1:9/a"}`)
	b := e.createTenant(`{"targetUrl":"http://127.0.0.1:9/b"}`)
	const n = 60
	ids := make([]string, 0, n)
	seen := map[string]bool{}
	for i := range n {
		key := a.APIKey
		if i%2 == 1 {
			key = b.APIKey
		}
		id, _ := e.ingest(key, `{"type":"x"}`)
		if !eventIDForm.MatchString(id) {
			t.Errorf("event id %q is not evt_ and 32 hex digits", id)
		}
		if seen[id] {
			t.Fatalf("event id %s handed out twice", id)
		}
		seen[id] = true
		ids = append(ids, id)
	}
	// Random hex ids share a prefix of 6 digits with probability 16^-6 per pair; the
	// sequential ids of a counter share far more.
	for i := 1; i < n; i++ {
		if p := commonPrefix(ids[i-1], ids[i]); len(p) >= len("evt_")+6 {
			t.Errorf("consecutive ids %s and %s share the prefix %q", ids[i-1], ids[i], p)
		}
	}
	all := ids[0]
	for _, id := range ids[1:] {
		all = commonPrefix(all, id)
	}
	if all != "evt_" {
		t.Errorf("all %d ids share the prefix %q", n, all)
	}
	// Nor a suffix, nor any position: each hex digit position takes several values.
	for pos := len("evt_"); pos < len(ids[0]); pos++ {
		digits := map[byte]bool{}
		for _, id := range ids {
			digits[id[pos]] = true
		}
		if len(digits) < 4 {
			t.Errorf("position %d of %d ids takes only %d values", pos, n, len(digits))
		}
	}
}

func commonPrefix(a, b string) string {
	n := 0
	for n < len(a) && n < len(b) && a[n] == b[n] {
		n++
	}
	return a[:n]
}

// TestIngestRefusesWhatReadersWouldReadDifferently: invalid UTF-8 and unpaired
// surrogate escapes in the type or the body, and a repeated "type", are each a 400
// naming where, and nothing is stored; what passes is stored byte for byte.
func TestIngestRefusesWhatReadersWouldReadDifferently(t *testing.T) {
	e := start(t, options{})
	c := e.createTenant(`{"targetUrl":"http://127.0.0.1:9/hook"}`)
	typeUTF8 := `field "type" is not valid UTF-8 (invalid bytes, or an escaped UTF-16 surrogate without its pair)`
	for _, tc := range []struct {
		name, body, code, msg string
	}{
		{"invalid UTF-8 in type", "{\"type\":\"caf\xe9\"}", "invalid_request", typeUTF8},
		{"encoded surrogate in type", "{\"type\":\"\xed\xa0\x80\"}", "invalid_request", typeUTF8},
		{"lone high surrogate escape in type", `{"type":"order\ud83d"}`, "invalid_request", typeUTF8},
		{"lone low surrogate escape in type", `{"data":1,"type":"\udc00x"}`, "invalid_request", typeUTF8},
		{"invalid UTF-8 in the body", "{\"type\":\"ok\",\"name\":\"Jos\xe9\"}", "invalid_json", "request body is not valid UTF-8 (byte 24)"},
		{"invalid UTF-8 in a key", "{\"n\xff\":1}", "invalid_json", "request body is not valid UTF-8 (byte 3)"},
		{"lone surrogate escape in the body", `{"type":"ok","emoji":"\ud83d"}`, "invalid_json",
			"request body holds an escaped UTF-16 surrogate without its pair (byte 22), which is not a character"},
		{"reversed surrogate pair in the body", `{"s":"\ude00\ud83d"}`, "invalid_json",
			"request body holds an escaped UTF-16 surrogate without its pair (byte 6), which is not a character"},
		{"duplicate type", `{"type":"order.created","type":"order.deleted"}`, "invalid_request", `field "type" appears more than once`},
		{"duplicate type spelt with an escape", `{"type":"a","data":{},"t\u0079pe":"b"}`, "invalid_request", `field "type" appears more than once`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do("POST", "/v1/events", c.APIKey, tc.body)
			if r.code != http.StatusBadRequest {
				t.Fatalf("%d %s, want 400", r.code, r.body)
			}
			if code, msg := r.errorBody(t); code != tc.code || msg != tc.msg {
				t.Errorf("error %s %q, want %s %q", code, msg, tc.code, tc.msg)
			}
		})
	}
	if n := e.subjectCount(c.TenantID); n != 0 {
		t.Fatalf("EVENTS holds %d refused events", n)
	}

	// Text every reader reads alike passes, stored exactly as sent: a surrogate pair,
	// an escaped backslash before "ud800", U+FFFD sent as such, duplicate keys the
	// gateway does not read.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := e.js.Stream(ctx, natsconf.StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	for _, body := range []string{
		`{"type":"smile.\ud83d\ude00","s":"\\ud800"}`,
		"{\"type\":\"caf\u00e9\",\"r\":\"\ufffd\\ufffd\"}",
		`{"a":1,"a":2}`,
	} {
		id, _ := e.ingest(c.APIKey, body)
		msg, err := st.GetLastMsgForSubject(ctx, natsconf.EventSubject(c.TenantID))
		if err != nil {
			t.Fatal(err)
		}
		if msg.Header.Get(natsconf.HeaderEventID) != id || string(msg.Data) != body {
			t.Errorf("stored %q (event %s), want %q (event %s)", msg.Data, msg.Header.Get(natsconf.HeaderEventID), body, id)
		}
		if strings.HasPrefix(body, `{"type":"smile`) && msg.Header.Get(natsconf.HeaderEventType) != "smile.\U0001F600" {
			t.Errorf("type header %q, want the decoded pair", msg.Header.Get(natsconf.HeaderEventType))
		}
	}
}
