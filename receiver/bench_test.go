package receiver_test

import (
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/edgehook/edgehook/receiver"
	"github.com/edgehook/edgehook/webhook"
)

// BenchmarkReceive measures verified webhooks per second end to end: keep-alive HTTP
// clients POST signed webhooks, each answered 204 only after RECEIVED acked it.
func BenchmarkReceive(b *testing.B) {
	e := start(b, receiver.Config{})
	secret := newSecret(b)
	e.tenant("bench", secret)
	addr := e.srv.Addr()

	for _, clients := range []int{16, 64} {
		for _, size := range []int{256, 4096} {
			b.Run(fmt.Sprintf("clients=%d/body=%d", clients, size), func(b *testing.B) {
				body := []byte(`{"pad":"` + strings.Repeat("x", size-10) + `"}`)
				client := &fasthttp.HostClient{Addr: addr, MaxConns: clients}
				var seq, failed atomic.Int64
				run := strconv.FormatInt(time.Now().UnixNano(), 36) // fresh ids per run
				b.SetParallelism(max(1, clients/runtime.GOMAXPROCS(0)))
				b.SetBytes(int64(len(body)))
				b.ReportAllocs()
				b.ResetTimer()
				start := time.Now()
				b.RunParallel(func(pb *testing.PB) {
					signer := webhook.NewSigner(secret)
					req, res := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
					defer fasthttp.ReleaseRequest(req)
					defer fasthttp.ReleaseResponse(res)
					req.SetRequestURI("http://" + addr + "/webhooks/bench")
					req.Header.SetMethod(fasthttp.MethodPost)
					req.Header.SetContentType("application/json")
					req.SetBody(body)
					var sig, ts []byte
					for pb.Next() {
						id := "msg_" + run + "_" + strconv.FormatInt(seq.Add(1), 10)
						now := time.Now().Unix()
						ts = strconv.AppendInt(ts[:0], now, 10)
						sig = signer.AppendSignature(sig[:0], id, now, body)
						req.Header.Set(webhook.HeaderID, id)
						req.Header.SetBytesV(webhook.HeaderTimestamp, ts)
						req.Header.SetBytesV(webhook.HeaderSignature, sig)
						if err := client.Do(req, res); err != nil || res.StatusCode() != fasthttp.StatusNoContent {
							failed.Add(1)
						}
					}
				})
				elapsed := time.Since(start)
				b.StopTimer()
				if n := failed.Load(); n > 0 {
					b.Fatalf("%d of %d webhooks were not answered 204", n, b.N)
				}
				b.ReportMetric(float64(b.N)/elapsed.Seconds(), "webhooks/s")
			})
		}
	}
}
