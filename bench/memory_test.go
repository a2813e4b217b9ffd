package bench_test

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/valyala/fasthttp"

	"github.com/edgehook/edgehook/identity"
	"github.com/edgehook/edgehook/natsconf"
	"github.com/edgehook/edgehook/natsconf/natstest"
	"github.com/edgehook/edgehook/webhook"
)

var (
	gatewayTenants = flag.Int("gateway-tenants", 100_000, "tenants in identity for BenchmarkGatewayMemory")
	workerBacklog  = flag.Int("worker-backlog", 1_000_000, "events queued for BenchmarkWorkerMemory's large case")
	workerRunFor   = flag.Duration("worker-run-for", 10*time.Second, "how long BenchmarkWorkerMemory's worker delivers")
)

// BenchmarkGatewayMemory measures the resident set of a gateway process (its own
// process: the NATS server stays in the test's) whose identity view holds no
// tenants, then -gateway-tenants tenants (100,000 by default; issue 3's target is at
// most 100 MB): the highest while the view loads, and after a GC once loaded. Each
// iteration starts a fresh gateway process.
func BenchmarkGatewayMemory(b *testing.B) {
	for _, n := range []int{0, *gatewayTenants} {
		b.Run(fmt.Sprintf("tenants=%d", n), func(b *testing.B) {
			srv := natstest.Start(b, nil)
			keys := loadTenants(b, srv, n)
			var res childResult
			for range b.N {
				res = runChild(b, "gateway",
					childNATS+"="+srv.URL, childTenants+"="+strconv.Itoa(n), childKeys+"="+strings.Join(keys, ","))
			}
			if res.Tenants != n {
				b.Fatalf("the gateway's view holds %d tenants, want %d", res.Tenants, n)
			}
			b.ReportMetric(float64(res.RSSBytes)/1e6, "rss-MB")
			b.ReportMetric(float64(res.PeakRSSBytes)/1e6, "peak-rss-MB")
			b.ReportMetric(float64(res.HeapBytes)/1e6, "heap-MB")
			b.ReportMetric(res.LoadSeconds, "load-s")
		})
	}
}

// BenchmarkWorkerMemory measures the peak resident set of a worker process draining a
// backlog of 10,000 events, then of -worker-backlog events (1,000,000 by default),
// each for -worker-run-for, against an endpoint answering 204. Bounded memory means
// the two peaks are alike: the consumer's MaxAckPending and the worker's pull batch
// (its concurrency) bound what it holds, whatever waits on the stream.
func BenchmarkWorkerMemory(b *testing.B) {
	for _, backlog := range []int{10_000, *workerBacklog} {
		b.Run(fmt.Sprintf("backlog=%d", backlog), func(b *testing.B) {
			srv := natstest.Start(b, nil)
			var delivered atomic.Int64
			url := serve204(b, &delivered)
			secret, err := webhook.NewSecret()
			if err != nil {
				b.Fatal(err)
			}
			const tenant = "ten_memory"
			js := srv.JetStream(b)
			start := time.Now()
			queueEvents(b, js, tenant, backlog)
			queued := time.Since(start)
			var res childResult
			for range b.N {
				res = runChild(b, "worker", childNATS+"="+srv.URL, childRun+"="+workerRunFor.String(),
					childTarget+"="+tenant+"="+url+"="+secret.Reveal())
			}
			cons, err := js.Consumer(context.Background(), natsconf.StreamEvents, natsconf.ConsumerDeliver)
			if err != nil {
				b.Fatal(err)
			}
			info, err := cons.Info(context.Background())
			if err != nil {
				b.Fatal(err)
			}
			if delivered.Load() == 0 {
				b.Fatal("the worker delivered nothing")
			}
			b.ReportMetric(float64(res.RSSBytes)/1e6, "peak-rss-MB")
			b.ReportMetric(float64(res.HeapBytes)/1e6, "heap-MB")
			b.ReportMetric(float64(delivered.Load())/workerRunFor.Seconds()/float64(b.N), "webhooks/s")
			b.ReportMetric(float64(info.NumPending), "still-queued")
			b.ReportMetric(queued.Seconds(), "queue-s")
		})
	}
}

// runChild runs this test binary as a child process in role with env and returns
// what it reported.
func runChild(b *testing.B, role string, env ...string) childResult {
	b.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(append(os.Environ(), childRole+"="+role), env...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		b.Fatalf("%s child: %v\n%s", role, err, stderr.String())
	}
	for _, line := range strings.Split(string(out), "\n") {
		if rest, ok := strings.CutPrefix(line, childDone); ok {
			var res childResult
			if err := json.Unmarshal([]byte(rest), &res); err != nil {
				b.Fatal(err)
			}
			return res
		}
	}
	b.Fatalf("%s child reported nothing:\n%s\n%s", role, out, stderr.String())
	return childResult{}
}

// loadTenants writes n active tenants with one API key each into the identity bucket
// (as identity.Store.Create does, published asynchronously) and returns a few of
// their keys.
func loadTenants(b *testing.B, srv *natstest.Server, n int) []string {
	b.Helper()
	js, err := jetstream.New(srv.Connect(b), jetstream.WithPublishAsyncMaxPending(4096))
	if err != nil {
		b.Fatal(err)
	}
	var samples []string
	now := time.Now().UTC()
	for i := range n {
		id, err := identity.NewTenantID()
		if err != nil {
			b.Fatal(err)
		}
		key, hash, err := identity.NewAPIKey()
		if err != nil {
			b.Fatal(err)
		}
		tb, _ := json.Marshal(identity.Tenant{TenantID: id, Status: identity.StatusActive, Plan: identity.DefaultPlan, CreatedAt: now})
		kb, _ := json.Marshal(struct {
			TenantID  string    `json:"tenantId"`
			CreatedAt time.Time `json:"createdAt"`
		}{id, now})
		if _, err := js.PublishAsync("$KV."+natsconf.BucketIdentity+".tenants."+id, tb); err != nil {
			b.Fatal(err)
		}
		if _, err := js.PublishAsync("$KV."+natsconf.BucketIdentity+".keys."+hash.String(), kb); err != nil {
			b.Fatal(err)
		}
		if i%(n/5+1) == 0 {
			samples = append(samples, key)
		}
	}
	waitPublished(b, js)
	return samples
}

// queueEvents publishes n events for tenant straight into EVENTS, with the headers
// the gateway sets.
func queueEvents(b *testing.B, js jetstream.JetStream, tenant string, n int) {
	b.Helper()
	pub, err := jetstream.New(js.Conn(), jetstream.WithPublishAsyncMaxPending(4096))
	if err != nil {
		b.Fatal(err)
	}
	body := []byte(`{"type":"bench.event","data":"` + strings.Repeat("x", 512-33) + `"}`)
	for i := range n {
		now := time.Now()
		m := &nats.Msg{Subject: natsconf.EventSubject(tenant), Data: body, Header: nats.Header{
			natsconf.HeaderEventID:    {"evt_mem" + strconv.Itoa(i)},
			natsconf.HeaderTenant:     {tenant},
			natsconf.HeaderEventType:  {"bench.event"},
			natsconf.HeaderIngestTime: {strconv.FormatInt(now.UnixNano(), 10)},
		}}
		if _, err := pub.PublishMsgAsync(m); err != nil {
			b.Fatal(err)
		}
	}
	waitPublished(b, pub)
}

func waitPublished(b *testing.B, js jetstream.JetStream) {
	b.Helper()
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(5 * time.Minute):
		b.Fatalf("%d publishes not acked after 5m", js.PublishAsyncPending())
	}
}

// serve204 runs a webhook endpoint on 127.0.0.1 that answers 204 and counts.
func serve204(b *testing.B, n *atomic.Int64) string {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		n.Add(1)
		ctx.SetStatusCode(fasthttp.StatusNoContent)
	}}
	go srv.Serve(ln)
	b.Cleanup(func() { srv.Shutdown() })
	return "http://" + ln.Addr().String() + "/hook"
}
