package worker

import (
	"context"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nuid"
	"github.com/valyala/fasthttp"

	"github.com/edgehook/edgehook/status"
	"github.com/edgehook/edgehook/vault"
	"github.com/edgehook/edgehook/webhook"
)

// BenchmarkFairness measures what one tenant whose endpoint hangs costs the others.
// Three well-behaved tenants get b.N events between them, delivered to a local
// endpoint that verifies every signature; the clock runs from the worker's start
// until all b.N are acked. The baseline phase has only them; in the second phase a
// fourth tenant sends the same share as each of them (a quarter of all events) to an
// endpoint that accepts connections and never answers, so each of its attempts runs
// into the HTTP timeout (1s). The worker runs with its defaults otherwise (64
// deliveries in flight, 16 per tenant, breaker after 5 failures). The phases alternate three times each (the machine is shared,
// so single runs are noisy); reported are the median throughputs, their ratio, which
// must stay at or above 0.8, and the longest pause between two well-behaved
// deliveries with the hanging tenant present (a stall would show there).
func BenchmarkFairness(b *testing.B) {
	for _, concurrency := range []int{64} {
		b.Run(fmt.Sprintf("concurrency=%d", concurrency), func(b *testing.B) {
			var base, with []float64
			var gap time.Duration
			for range 3 {
				r, _ := fairnessPhase(b, concurrency, false)
				base = append(base, r)
				r, g := fairnessPhase(b, concurrency, true)
				with = append(with, r)
				gap = max(gap, g)
			}
			mb, mw := median(base), median(with)
			b.ReportMetric(mb, "baseline_deliveries/s")
			b.ReportMetric(mw, "with_hanging_deliveries/s")
			b.ReportMetric(mw/mb, "ratio")
			b.ReportMetric(float64(gap.Milliseconds()), "max_gap_ms")
			b.ReportMetric(0, "ns/op")
		})
	}
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

// fairnessPhase returns the well-behaved tenants' deliveries per second and the
// longest pause between two of their deliveries.
func fairnessPhase(b *testing.B, concurrency int, hanging bool) (float64, time.Duration) {
	b.StopTimer()
	e := newEnv(b, nil)
	var (
		delivered atomic.Int64
		gapMu     sync.Mutex
		last      time.Time
		maxGap    time.Duration
	)
	all := make(chan struct{})
	target := int64(b.N)
	secrets := map[string]webhook.Secret{}
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		h := &ctx.Request.Header
		tenant := string(ctx.Path()[len("/hooks/"):])
		err := webhook.Verify(string(h.Peek(webhook.HeaderID)), string(h.Peek(webhook.HeaderTimestamp)),
			string(h.Peek(webhook.HeaderSignature)), ctx.PostBody(), time.Now(), webhook.DefaultTolerance, secrets[tenant])
		if err != nil {
			ctx.SetStatusCode(fasthttp.StatusUnauthorized)
			return
		}
		ctx.SetStatusCode(fasthttp.StatusNoContent)
		now := time.Now()
		gapMu.Lock()
		if !last.IsZero() {
			maxGap = max(maxGap, now.Sub(last))
		}
		last = now
		gapMu.Unlock()
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
	good := []string{"tgood1", "tgood2", "tgood3"}
	for _, tn := range good {
		secrets[tn] = mustSecret(b)
		e.configs.put(vault.WebhookConfig{TenantID: tn, TargetURL: "http://" + ln.Addr().String() + "/hooks/" + tn, Secret: secrets[tn]})
	}
	const bad = "thanging"
	if hanging {
		e.configs.put(vault.WebhookConfig{TenantID: bad, TargetURL: "http://" + hangingEndpoint(b) + "/hooks/" + bad, Secret: mustSecret(b)})
	}

	// Interleaved, as traffic arrives: good1, good2, good3, hanging, good1, ...
	var order []string
	for i := range b.N {
		order = append(order, good[i%len(good)])
		if hanging && i%len(good) == len(good)-1 {
			order = append(order, bad)
		}
	}
	publishOrder(b, e, order)

	cfg := e.config()
	cfg.Concurrency = concurrency
	cfg.HTTPTimeout = time.Second
	b.StartTimer()
	start := time.Now()
	r := e.start(b, cfg)
	select {
	case <-all:
	case <-time.After(5 * time.Minute):
		b.Fatalf("only %d of %d events delivered", delivered.Load(), b.N)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	r.stop(b, 30*time.Second) // the next phase has the machine to itself
	gapMu.Lock()
	defer gapMu.Unlock()
	return float64(b.N) / elapsed.Seconds(), maxGap
}

// hangingEndpoint listens on 127.0.0.1, reads whatever arrives and never answers,
// until the benchmark ends. It returns the address.
func hangingEndpoint(b *testing.B) string {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	var (
		mu    sync.Mutex
		conns []net.Conn
	)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			go func() { _, _ = io.Copy(io.Discard, c) }()
		}
	}()
	b.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return ln.Addr().String()
}

// publishOrder stores one event per entry of tenants, in that order, with its queued
// status record.
func publishOrder(b *testing.B, e *env, tenants []string) {
	b.Helper()
	payload := []byte(`{"type":"order.created","data":{"orderId":"ord_8f3a","amount":4200,"currency":"EUR"}}`)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	for i, tn := range tenants {
		id := "evt_" + nuid.Next()
		now := time.Now()
		if _, err := e.js.PublishMsgAsync(eventMsg(tn, id, payload, now)); err != nil {
			b.Fatal(err)
		}
		q, err := status.QueuedMsg(status.Record{EventID: id, TenantID: tn, Type: "order.created", CreatedAt: now, UpdatedAt: now})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := e.js.PublishMsgAsync(q); err != nil {
			b.Fatal(err)
		}
		if i%1000 == 999 {
			select {
			case <-e.js.PublishAsyncComplete():
			case <-ctx.Done():
				b.Fatal("publish timed out")
			}
		}
	}
	select {
	case <-e.js.PublishAsyncComplete():
	case <-ctx.Done():
		b.Fatal("publish timed out")
	}
}
