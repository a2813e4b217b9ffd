package gateway_test

import (
	"fmt"
	"html"
	"net/http"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/edgehook/edgehook/bench/cputime"
	"github.com/edgehook/edgehook/console/consoletest"
	"github.com/edgehook/edgehook/status"
)

// benchEvents is how many status records the portal benchmark loads for one tenant.
const benchEvents = 100_000

// loadRecords writes n status records of tenantID as the gateway and workers write
// them (asynchronous publishes, acks awaited in batches): a fifth failed, the rest
// delivered; one in a thousand has the type "order.refunded", the others cycle
// through three types. It returns the id of the newest failed one.
func loadRecords(b *testing.B, e *env, tenantID string, n int) string {
	b.Helper()
	start := time.Now().Add(-time.Duration(n) * time.Millisecond).UTC()
	types := []string{"order.created", "order.paid", "order.shipped"}
	var newestFailed string
	for i := 0; i < n; i += 1000 {
		for j := i; j < min(i+1000, n); j++ {
			at := start.Add(time.Duration(j) * time.Millisecond)
			rec := status.Record{EventID: fmt.Sprintf("evt_bench%08d", j), TenantID: tenantID, Type: types[j%3],
				Status: status.Delivered, Attempts: 1, LastStatusCode: 200, CreatedAt: at, UpdatedAt: at.Add(30 * time.Millisecond)}
			if j%1000 == 7 {
				rec.Type = "order.refunded"
			}
			if j%5 == 0 {
				rec.Status, rec.Attempts, rec.LastStatusCode, rec.LastError = status.Failed, 3, 503, "HTTP 503"
				newestFailed = rec.EventID
			}
			m, err := status.PutMsg(rec)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := e.js.PublishMsgAsync(m); err != nil {
				b.Fatal(err)
			}
		}
		select {
		case <-e.js.PublishAsyncComplete():
		case <-time.After(30 * time.Second):
			b.Fatal("status records not acked within 30s")
		}
	}
	return newestFailed
}

// olderLink finds the link to a list's next (older) page.
var olderLink = regexp.MustCompile(`href="([^"]+)" id="older"`)

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// BenchmarkPortalPages loads 100,000 status records of one tenant into a real NATS
// server, signs in to the portal over real HTTP, and measures the first events page
// (which starts the tenant's index and waits for its load) and then the pages a
// person opens: the events list, its second page, the failed filter, a filter one
// event in a thousand matches, and one event with its attempts. Each reports its p99
// and the process's CPU time per page.
func BenchmarkPortalPages(b *testing.B) {
	e := start(b, options{})
	tn := e.createTenant(`{"targetUrl":"https://bench.example/hook"}`)
	failedID := loadRecords(b, e, tn.TenantID, benchEvents)
	c := consoletest.NewClient(b, e.base)
	c.MustSignIn("/portal/", "key", tn.APIKey, "events")

	before := heapInUse()
	began := time.Now()
	first := c.Get("/portal/events")
	load := time.Since(began)
	if first.Status != http.StatusOK || !strings.Contains(first.Body, "evt_bench00099999") {
		b.Fatalf("first events page: %d\n%.2000s", first.Status, first.Body)
	}
	indexBytes := heapInUse() - before
	b.Logf("first load of %d events: %s, index heap %.1f MiB", benchEvents, load, float64(indexBytes)/(1<<20))

	older := olderLink.FindStringSubmatch(first.Body)
	if older == nil {
		b.Fatal("no older link on the first events page")
	}
	pages := []struct {
		name, path, want string
	}{
		{"events", "/portal/events", "evt_bench00099999"},
		{"events-page2", html.UnescapeString(older[1]), "evt_bench00099949"},
		{"failed", "/portal/events?status=failed", "evt_bench00099995"},
		{"rare-type", "/portal/events?type=order.refunded", "evt_bench00099007"},
		{"event", "/portal/events/" + failedID, "HTTP 503"},
	}
	b.Run("first-load", func(b *testing.B) {
		for b.Loop() {
		}
		b.ReportMetric(float64(load.Milliseconds()), "load-ms")
		b.ReportMetric(float64(indexBytes)/(1<<20), "index-MiB")
		b.ReportMetric(0, "ns/op")
	})
	for _, p := range pages {
		b.Run(p.name, func(b *testing.B) {
			var lat []time.Duration
			cpu0 := cputime.Self()
			for b.Loop() {
				t0 := time.Now()
				r := c.Get(p.path)
				lat = append(lat, time.Since(t0))
				if r.Status != http.StatusOK || !strings.Contains(r.Body, p.want) {
					b.Fatalf("GET %s: %d, no %q", p.path, r.Status, p.want)
				}
			}
			cpu := cputime.Self() - cpu0
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(cpu.Microseconds())/1000/float64(len(lat)), "cpu-ms/page")
		})
	}
}
