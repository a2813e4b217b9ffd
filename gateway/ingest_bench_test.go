package gateway

import (
	"strings"
	"testing"

	"github.com/nats-io/nuid"
	"github.com/valyala/fastjson"
)

// BenchmarkEventID is the cost of one event id: the random one ingest hands out
// next to the sequential nuid it replaced, measured in the same run.
func BenchmarkEventID(b *testing.B) {
	b.Run("crypto-rand", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = newEventID()
		}
	})
	b.Run("nuid", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = EventIDPrefix + nuid.Next()
		}
	})
}

// BenchmarkParseEvent is the validation of one 512-byte event body: parse, strict
// validation, type, duplicate keys and text checks.
func BenchmarkParseEvent(b *testing.B) {
	body := []byte(`{"type":"bench.event","pad":"` + strings.Repeat("x", 512-len(`{"type":"bench.event","pad":""}`)) + `"}`)
	var pool fastjson.ParserPool
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		p := pool.Get()
		if _, err := parseEvent(p, body); err != nil {
			b.Fatal(err)
		}
		pool.Put(p)
	}
}
