package gateway_test

import (
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// benchEvent is the 512-byte event both ingest benchmarks send.
var benchEvent = `{"type":"bench.event","pad":"` + strings.Repeat("x", 512-len(`{"type":"bench.event","pad":""}`)) + `"}`

// BenchmarkIngest measures POST /v1/events end to end: HTTP over keep-alive
// connections from parallel clients, auth, validation, and both JetStream acks on a
// real embedded server with file storage. It reports events/s and p99 latency.
func BenchmarkIngest(b *testing.B) {
	if len(benchEvent) != 512 {
		b.Fatalf("body is %d bytes", len(benchEvent))
	}
	for _, clients := range []int{16, 64} {
		b.Run(fmt.Sprintf("clients=%d/body=512B", clients), func(b *testing.B) {
			postFlatOut(b, "/v1/events", []byte(benchEvent), clients, 1)
		})
	}
}

// BenchmarkIngestBatch measures POST /v1/events/batch end to end, as BenchmarkIngest
// does single events: each operation is one batch of size events of 512 bytes, all
// durable in one atomic batch before the 202. It reports events/s and the batch's p99.
func BenchmarkIngestBatch(b *testing.B) {
	for _, tc := range []struct{ clients, size int }{{4, 100}, {16, 100}, {4, 1000}} {
		b.Run(fmt.Sprintf("clients=%d/events=%d/body=512B", tc.clients, tc.size), func(b *testing.B) {
			evs := make([]string, tc.size)
			for i := range evs {
				evs[i] = benchEvent
			}
			postFlatOut(b, "/v1/events/batch", []byte(batchBody(evs, nil)), tc.clients, tc.size)
		})
	}
}

// postFlatOut POSTs body to path on a fresh gateway from clients parallel keep-alive
// clients, b.N times in all, each answered 202; it reports events/s (events per
// request) and the requests' p99.
func postFlatOut(b *testing.B, path string, body []byte, clients, events int) {
	e := start(b, options{})
	c := e.createTenant(`{"targetUrl":"http://127.0.0.1:9/hook"}`)
	hc := &fasthttp.HostClient{Addr: strings.TrimPrefix(e.base, "http://"), MaxConns: clients}
	url := e.base + path
	auth := "Bearer " + c.APIKey

	var (
		failures atomic.Int64
		mu       sync.Mutex
		lat      []time.Duration
	)
	// RunParallel starts parallelism × GOMAXPROCS goroutines, one client each.
	b.SetParallelism(max(1, clients/runtime.GOMAXPROCS(0)))
	b.SetBytes(int64(len(body)))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		defer fasthttp.ReleaseRequest(req)
		defer fasthttp.ReleaseResponse(resp)
		req.SetRequestURI(url)
		req.Header.SetMethod(fasthttp.MethodPost)
		req.Header.Set("Authorization", auth)
		req.Header.SetContentType("application/json")
		req.SetBodyRaw(body)
		local := make([]time.Duration, 0, 1024)
		for pb.Next() {
			t0 := time.Now()
			if err := hc.Do(req, resp); err != nil || resp.StatusCode() != fasthttp.StatusAccepted {
				failures.Add(1)
				continue
			}
			local = append(local, time.Since(t0))
		}
		mu.Lock()
		lat = append(lat, local...)
		mu.Unlock()
	})
	b.StopTimer()
	if n := failures.Load(); n > 0 {
		b.Fatalf("%d of %d requests to %s not answered 202", n, b.N, path)
	}
	b.ReportMetric(float64(b.N*events)/b.Elapsed().Seconds(), "events/s")
	if len(lat) > 0 {
		slices.Sort(lat)
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	}
}
