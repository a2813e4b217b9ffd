package console

import (
	"bytes"
	"net/http"
	"testing"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/valyala/fasthttp"

	"github.com/edgehook/edgehook/bench/cputime"
	"github.com/edgehook/edgehook/console/consoletest"
)

// benchEvents is how many events the benchmark tenant has; a page renders PageSize.
const benchEvents = 100_000

// BenchmarkEventsPage renders the events list (and one event's page) for a tenant with
// 100,000 events, calling the handler directly: the console's own cost per page.
func BenchmarkEventsPage(b *testing.B) {
	src := fixture()
	src.fillEvents("t_alpha", benchEvents)
	p, err := NewPortal(Config{}, src)
	if err != nil {
		b.Fatal(err)
	}
	_, cookie, err := p.sessions.create(Secret(keyManageA), time.Now())
	if err != nil {
		b.Fatal(err)
	}
	h := p.Handler()
	for _, bc := range []struct{ name, uri, want string }{
		{"newest", "/portal/events", "evt_bulk099999"},
		{"status=failed", "/portal/events?status=failed", "evt_bulk099995"},
		{"deep_page", "/portal/events?cursor=90000", "evt_bulk009999"},
		{"event", "/portal/events/evt_bulk050000", "503"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			var ctx fasthttp.RequestCtx
			var size int
			for b.Loop() {
				ctx.Request.Reset()
				ctx.Response.Reset()
				ctx.Request.SetRequestURI(bc.uri)
				ctx.Request.Header.SetCookie(p.cookieName, cookie)
				h(&ctx)
				if ctx.Response.StatusCode() != fasthttp.StatusOK || !bytes.Contains(ctx.Response.Body(), []byte(bc.want)) {
					b.Fatalf("GET %s: %d", bc.uri, ctx.Response.StatusCode())
				}
				size = len(ctx.Response.Body())
			}
			b.ReportMetric(float64(size), "bytes/page")
		})
	}
}

// BenchmarkEventsPageHTTP requests pages over real HTTP on 127.0.0.1, one after
// another on a kept-alive connection, with 100,000 events in the source, and reports
// the latency percentiles and the process's CPU time per page (from /proc/self/stat;
// client and server share the process).
func BenchmarkEventsPageHTTP(b *testing.B) {
	src := fixture()
	src.fillEvents("t_alpha", benchEvents)
	ts := startServer(b, Config{}, src)
	c := consoletest.NewClient(b, ts.URL)
	c.MustSignIn("/portal/", "key", keyManageA, "events")
	for _, bc := range []struct{ name, path string }{
		{"newest", "/portal/events"},
		{"status=failed", "/portal/events?status=failed"},
		{"deep_page", "/portal/events?cursor=90000"},
		{"event", "/portal/events/evt_bulk050000"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			hist := hdrhistogram.New(1, int64(10*time.Second/time.Microsecond), 3)
			cpu0 := cputime.Self()
			for b.Loop() {
				start := time.Now()
				p := c.Get(bc.path)
				if err := hist.RecordValue(time.Since(start).Microseconds()); err != nil {
					b.Fatal(err)
				}
				if p.Status != http.StatusOK {
					b.Fatalf("GET %s: %d", bc.path, p.Status)
				}
			}
			cpu := cputime.Self() - cpu0
			b.ReportMetric(float64(hist.ValueAtQuantile(50))/1000, "p50-ms")
			b.ReportMetric(float64(hist.ValueAtQuantile(99))/1000, "p99-ms")
			b.ReportMetric(float64(hist.Max())/1000, "max-ms")
			b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/page")
		})
	}
}
