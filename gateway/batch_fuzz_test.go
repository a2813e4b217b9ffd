package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"

	"github.com/valyala/fastjson"
)

// FuzzBatchBody checks the batch parser against encoding/json and the single-event
// validator: it never panics, every refusal is a 400 API error, and what it accepts
// is a batch whose items are, byte for byte, the "event" values encoding/json finds,
// each one a body POST /v1/events accepts with the same type.
func FuzzBatchBody(f *testing.F) {
	for _, s := range []string{
		`{"events":[{"event":{"type":"a"}}]}`,
		` { "events" : [ { "idempotencyKey" : "k1" , "event" : { "type" : "a", "x":[1,{"y":"}"}] } } , {"event":{}} ] } `,
		`{"events":[{"event":{"type":"a","type":"b"}}]}`, `{"events":[]}`, `{"events":{}}`, `{}`, `[]`,
		`{"events":[{"event":{"s":"\"}]}"}},{"event":{"t":"\\"}}]}`, `{"ev\u0065nts":[{"\u0065vent":{"a":1}}]}`,
		`{"events":[{"event":{}, "idempotencyKey":"k"},{"event":{}, "idempotencyKey":"k"}]}`,
		`{"events":[{"event":[1]}]}`, `{"events":[{"event":{"s":"\ud800"}}]}`, "{\"events\":[{\"event\":{\"s\":\"\xff\"}}]}",
		`{"events":[{"event":{}},1,"x",null]}`, `{"events":[{"event":{},"event":{}}]}`,
	} {
		f.Add([]byte(s))
	}
	s := &Server{cfg: Config{MaxBodyBytes: DefaultMaxBodyBytes}}
	var pool fastjson.ParserPool
	f.Fuzz(func(t *testing.T, body []byte) {
		p := pool.Get()
		items, err := s.parseBatch(p, body)
		pool.Put(p)
		if err != nil {
			var ae *apiError
			if !errors.As(err, &ae) || ae.Status != 400 {
				t.Fatalf("refused %q with %v, not a 400 API error", body, err)
			}
			return
		}
		var want struct {
			Events []struct {
				Event          json.RawMessage `json:"event"`
				IdempotencyKey *string         `json:"idempotencyKey"`
			} `json:"events"`
		}
		if err := json.Unmarshal(body, &want); err != nil {
			t.Fatalf("accepted %q, which encoding/json cannot read as a batch: %v", body, err)
		}
		if len(items) != len(want.Events) {
			t.Fatalf("%d items in %q, encoding/json finds %d", len(items), body, len(want.Events))
		}
		for i, it := range items {
			if !bytes.Equal(it.body, want.Events[i].Event) {
				t.Fatalf("item %d of %q is %q, encoding/json finds %q", i, body, it.body, want.Events[i].Event)
			}
			if k := want.Events[i].IdempotencyKey; (k == nil) != (it.key == "") || k != nil && *k != it.key {
				t.Fatalf("item %d of %q has key %q, encoding/json finds %v", i, body, it.key, k)
			}
			p := pool.Get()
			typ, err := parseEvent(p, it.body)
			pool.Put(p)
			if err != nil || typ != it.typ {
				t.Fatalf("item %d (%q) of an accepted batch: single ingest says type %q, %v; the batch %q", i, it.body, typ, err, it.typ)
			}
		}
	})
}
