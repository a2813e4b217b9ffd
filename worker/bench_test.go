package worker

import (
	"context"
	"fmt"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nuid"
	"github.com/valyala/fasthttp"

	"github.com/edgehook/edgehook/status"
	"github.com/edgehook/edgehook/vault"
	"github.com/edgehook/edgehook/webhook"
)

// BenchmarkDeliver measures delivery throughput: b.N events are stored first, then one
// worker delivers them to a local fasthttp endpoint that verifies every signature.
// The clock runs from the worker's start until every event is acked.
func BenchmarkDeliver(b *testing.B) {
	for _, concurrency := range []int{64, 256} {
		b.Run(fmt.Sprintf("concurrency=%d", concurrency), func(b *testing.B) {
			benchmarkDeliver(b, concurrency)
		})
	}
}

func benchmarkDeliver(b *testing.B, concurrency int) {
	e := newEnv(b, nil)
	secret := mustSecret(b)
	var delivered, rejected atomic.Int64
	all := make(chan struct{})
	target := int64(b.N)
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		h := &ctx.Request.Header
		err := webhook.Verify(string(h.Peek(webhook.HeaderID)), string(h.Peek(webhook.HeaderTimestamp)),
			string(h.Peek(webhook.HeaderSignature)), ctx.PostBody(), time.Now(), webhook.DefaultTolerance, secret)
		if err != nil {
			rejected.Add(1)
			ctx.SetStatusCode(fasthttp.StatusUnauthorized)
			return
		}
		ctx.SetStatusCode(fasthttp.StatusNoContent)
		if delivered.Add(1) == target {
			close(all)
		}
	}}
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	b.Cleanup(func() { _ = srv.Shutdown() })
	const tenant = "tbench"
	e.configs.put(vault.WebhookConfig{TenantID: tenant, TargetURL: "http://" + ln.Addr().String() + "/hooks/" + tenant, Secret: secret})

	ids := prepublish(b, e, tenant, b.N)
	cfg := e.config()
	cfg.Concurrency = concurrency
	b.ResetTimer()
	start := time.Now()
	e.start(b, cfg)
	select {
	case <-all:
	case <-time.After(5 * time.Minute):
		b.Fatalf("only %d of %d events delivered", delivered.Load(), b.N)
	}
	e.waitSettled(b)
	elapsed := time.Since(start)
	b.StopTimer()
	if n := rejected.Load(); n != 0 {
		b.Fatalf("%d webhooks failed verification", n)
	}
	for _, id := range []string{ids[0], ids[len(ids)/2], ids[len(ids)-1]} {
		if rec, err := e.status.Get(context.Background(), tenant, id); err != nil || rec.Status != status.Delivered {
			b.Fatalf("status of %s: %+v %v, want delivered", id, rec, err)
		}
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "deliveries/s")
	b.ReportMetric(float64(delivered.Load()-int64(b.N)), "duplicates")
}

// prepublish stores n events and their queued status records, as the gateway would,
// and returns their ids.
func prepublish(b *testing.B, e *env, tenant string, n int) []string {
	b.Helper()
	payload := []byte(`{"type":"order.created","data":{"orderId":"ord_8f3a","amount":4200,"currency":"EUR"}}`)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	const batch = 1000
	ids := make([]string, 0, n)
	for i := 0; i < n; i += batch {
		for j := i; j < min(i+batch, n); j++ {
			id := "evt_" + nuid.Next()
			ids = append(ids, id)
			now := time.Now()
			if _, err := e.js.PublishMsgAsync(eventMsg(tenant, id, payload, now)); err != nil {
				b.Fatal(err)
			}
			q, err := status.QueuedMsg(status.Record{EventID: id, TenantID: tenant, Type: "order.created", CreatedAt: now, UpdatedAt: now})
			if err != nil {
				b.Fatal(err)
			}
			if _, err := e.js.PublishMsgAsync(q); err != nil {
				b.Fatal(err)
			}
		}
		select {
		case <-e.js.PublishAsyncComplete():
		case <-ctx.Done():
			b.Fatal("prepublish timed out")
		}
	}
	return ids
}
