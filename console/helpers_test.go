package console

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/edgehook/edgehook/api/apitest"
)

// testServer is both consoles on one real fasthttp server on 127.0.0.1, as the gateway
// and admin component mount them (on their own listeners, in production).
type testServer struct {
	URL      string
	src      *memSource
	portal   *Portal
	operator *Operator
	logs     *syncBuffer
}

// syncBuffer collects a logger's output for the test to read.
type syncBuffer = apitest.Logs

// startServer serves a portal and an operator console on src; cfg applies to both.
func startServer(t testing.TB, cfg Config, src *memSource) *testServer {
	t.Helper()
	logs := &syncBuffer{}
	cfg.Logger = slog.New(slog.NewJSONHandler(logs, nil))
	portal, err := NewPortal(cfg, src)
	if err != nil {
		t.Fatal(err)
	}
	operator, err := NewOperator(cfg, adminToken, src)
	if err != nil {
		t.Fatal(err)
	}
	ph, oh := portal.Handler(), operator.Handler()
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		if strings.HasPrefix(string(ctx.Path()), "/console") {
			oh(ctx)
			return
		}
		ph(ctx)
	}, ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.ShutdownWithContext(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-errc; err != nil && !errors.Is(err, net.ErrClosed) {
			t.Errorf("serve: %v", err)
		}
	})
	return &testServer{URL: "http://" + ln.Addr().String(), src: src, portal: portal, operator: operator, logs: logs}
}

// waitFor polls cond every interval until it returns nil or timeout passes.
func waitFor(t testing.TB, timeout, interval time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %v", timeout, err)
		}
		time.Sleep(interval)
	}
}
