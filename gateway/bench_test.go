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

// BenchmarkIngest measures POST /v1/events end to end: HTTP over keep-alive
// connections from parallel clients, auth, validation, and both JetStream acks on a
// real embedded server with file storage. It reports events/s and p99 latency.
func BenchmarkIngest(b *testing.B) {
	for _, clients := range []int{16, 64} {
		b.Run(fmt.Sprintf("clients=%d/body=512B", clients), func(b *testing.B) {
			e := start(b, options{})
			c := e.createTenant(`{"targetUrl":"http://127.0.0.1:9/hook"}`)
			body := []byte(`{"type":"bench.event","pad":"` + strings.Repeat("x", 512-len(`{"type":"bench.event","pad":""}`)) + `"}`)
			if len(body) != 512 {
				b.Fatalf("body is %d bytes", len(body))
			}
			hc := &fasthttp.HostClient{Addr: strings.TrimPrefix(e.base, "http://"), MaxConns: clients}
			url := e.base + "/v1/events"
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
				b.Fatalf("%d of %d requests not answered 202", n, b.N)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
			if len(lat) > 0 {
				slices.Sort(lat)
				b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
			}
		})
	}
}

// BenchmarkIngestBatch measures POST /v1/events/batch end to end, as BenchmarkIngest
// does single events: each operation is one batch of size events of 512 bytes, all
// durable in one atomic batch before the 202. It reports events/s and the batch's p99.
func BenchmarkIngestBatch(b *testing.B) {
	for _, tc := range []struct{ clients, size int }{{4, 100}, {16, 100}, {4, 1000}} {
		b.Run(fmt.Sprintf("clients=%d/events=%d/body=512B", tc.clients, tc.size), func(b *testing.B) {
			e := start(b, options{})
			c := e.createTenant(`{"targetUrl":"http://127.0.0.1:9/hook"}`)
			ev := `{"type":"bench.event","pad":"` + strings.Repeat("x", 512-len(`{"type":"bench.event","pad":""}`)) + `"}`
			evs := make([]string, tc.size)
			for i := range evs {
				evs[i] = ev
			}
			body := []byte(batchBody(evs, nil))
			hc := &fasthttp.HostClient{Addr: strings.TrimPrefix(e.base, "http://"), MaxConns: tc.clients}
			url := e.base + "/v1/events/batch"
			auth := "Bearer " + c.APIKey
			var (
				failures atomic.Int64
				mu       sync.Mutex
				lat      []time.Duration
			)
			b.SetParallelism(max(1, tc.clients/runtime.GOMAXPROCS(0)))
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
				var local []time.Duration
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
				b.Fatalf("%d of %d batches not answered 202", n, b.N)
			}
			b.ReportMetric(float64(b.N*tc.size)/b.Elapsed().Seconds(), "events/s")
			if len(lat) > 0 {
				slices.Sort(lat)
				b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
			}
		})
	}
}
