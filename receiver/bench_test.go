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

// BenchmarkRejected measures the cost of a rejected webhook through the handler, for a
// wrong signature to a known tenant and for an unknown tenant (both answered from the
// cache), so the two can be compared in one run: an unknown tenant should not answer
// measurably faster.
func BenchmarkRejected(b *testing.B) {
	e := start(b, receiver.Config{})
	secret, wrong := newSecret(b), newSecret(b)
	e.tenant("acme", secret)
	handler := e.srv.Handler()
	body := []byte(`{"n":1}`)
	for _, tenant := range []string{"acme", "ghost"} {
		name := map[string]string{"acme": "wrong_signature", "ghost": "unknown_tenant"}[tenant]
		b.Run(name, func(b *testing.B) {
			var req fasthttp.Request
			req.Header.SetMethod(fasthttp.MethodPost)
			req.SetRequestURI("/webhooks/" + tenant)
			req.SetBody(body)
			var ctx fasthttp.RequestCtx
			b.ReportAllocs()
			for b.Loop() {
				now := time.Now()
				req.Header.Set(webhook.HeaderID, "msg_1")
				req.Header.Set(webhook.HeaderTimestamp, strconv.FormatInt(now.Unix(), 10))
				req.Header.Set(webhook.HeaderSignature, webhook.Sign("msg_1", now, body, wrong))
				ctx.Init(&req, nil, nil)
				handler(&ctx)
				if ctx.Response.StatusCode() != fasthttp.StatusUnauthorized {
					b.Fatalf("status %d, want 401", ctx.Response.StatusCode())
				}
			}
		})
	}
}
