package admin_test

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/edgehook/edgehook/admin"
	"github.com/edgehook/edgehook/admin/admintest"
	"github.com/edgehook/edgehook/bench/cputime"
	"github.com/edgehook/edgehook/identity"
	"github.com/edgehook/edgehook/natsconf"
	"github.com/edgehook/edgehook/worker/dlq"
)

// Sizes of the console benchmarks.
const (
	benchDeadLetters = 10_000
	benchTenants     = 10_000
	benchDLQTenants  = 10 // the dead letters are spread over this many tenants
)

// BenchmarkConsoleDeadLettersPage requests dead-letter pages over real HTTP on
// 127.0.0.1 from an admin connected as the NATS user admin, with 10,000 dead letters
// on DLQ (each after its advisory, as the DLQ processor leaves them; 1% terminated,
// one tenant with only 5), and reports latency percentiles and the process's CPU time
// per page (client, admin and NATS server share the process).
func BenchmarkConsoleDeadLettersPage(b *testing.B) {
	e := startConsole(b, admin.Config{})
	fillDLQ(b, e.op)
	br := signIn(b, e.srv.URL, admintest.Token)
	for _, bc := range []struct{ name, path string }{
		{"newest", "/console/dlq"},
		{"tenant", "/console/dlq?tenant=ten_bench03"},
		{"rare_tenant", "/console/dlq?tenant=ten_rare"},
		{"reason", "/console/dlq?reason=terminated"},
		{"deep_page", fmt.Sprintf("/console/dlq?cursor=%d", benchDeadLetters)},
	} {
		b.Run(bc.name, func(b *testing.B) { benchPage(b, br, bc.path) })
	}
}

// BenchmarkConsoleTenantsPage requests tenant pages over real HTTP with 10,000
// tenants in the identity bucket (a third on each plan), as the dead-letter benchmark.
func BenchmarkConsoleTenantsPage(b *testing.B) {
	e := startConsole(b, admin.Config{})
	ids := fillTenants(b, e.op)
	br := signIn(b, e.srv.URL, admintest.Token)
	for _, bc := range []struct{ name, path string }{
		{"first", "/console/tenants"},
		{"plan", "/console/tenants?q=enterprise"},
		{"one_id", "/console/tenants?q=" + ids[benchTenants/2]},
		{"id_part", "/console/tenants?q=" + ids[benchTenants/2][4:12]},
		{"deep_page", "/console/tenants?cursor=" + strconv.Itoa(3*benchTenants/2)}, // 3 records a tenant
	} {
		b.Run(bc.name, func(b *testing.B) { benchPage(b, br, bc.path) })
	}
}

func benchPage(b *testing.B, br *browser, path string) {
	hist := hdrhistogram.New(1, int64(10*time.Second/time.Microsecond), 3)
	cpu0 := cputime.Self()
	var size int
	for b.Loop() {
		start := time.Now()
		status, body := br.get(path)
		if err := hist.RecordValue(time.Since(start).Microseconds()); err != nil {
			b.Fatal(err)
		}
		if status != http.StatusOK {
			b.Fatalf("GET %s: %d\n%s", path, status, body)
		}
		size = len(body)
	}
	cpu := cputime.Self() - cpu0
	b.ReportMetric(float64(hist.ValueAtQuantile(50))/1000, "p50-ms")
	b.ReportMetric(float64(hist.ValueAtQuantile(99))/1000, "p99-ms")
	b.ReportMetric(float64(hist.Max())/1000, "max-ms")
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/page")
	b.ReportMetric(float64(size), "bytes/page")
}

// fillDLQ stores the dead letters of the benchmark, asynchronously.
func fillDLQ(b *testing.B, js jetstream.JetStream) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for i := range benchDeadLetters {
		tenant := fmt.Sprintf("ten_bench%02d", i%benchDLQTenants)
		if i%(benchDeadLetters/5) == 7 {
			tenant = "ten_rare"
		}
		d := dlq.DeadLetter{TenantID: tenant, EventID: fmt.Sprintf("evt_%06d", i), Type: "order.created",
			Attempts: 8, LastStatusCode: 503, LastError: "503 Service Unavailable", Reason: dlq.ReasonMaxDeliveries,
			StreamSeq: uint64(i + 1), Payload: []byte(`{"order":{"id":42,"items":[{"sku":"A-1","qty":2}]}}`)}
		if i%100 == 0 {
			d.Reason = "terminated: 410 Gone"
		}
		adv := nats.NewMsg(natsconf.AdvisoryMaxDeliveries)
		adv.Data = []byte(`{"type":"io.nats.jetstream.advisory.v1.max_deliver","stream":"EVENTS","consumer":"deliver"}`)
		for _, m := range []*nats.Msg{adv, d.Msg()} {
			if _, err := js.PublishMsgAsync(m); err != nil {
				b.Fatal(err)
			}
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-ctx.Done():
		b.Fatal("the dead letters were not all stored")
	}
}

// fillTenants writes the benchmark's tenants to the identity bucket (as the admin API
// does, without Vault: the tenants page does not read it) and returns their ids.
func fillTenants(b *testing.B, js jetstream.JetStream) []string {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	kv, err := js.KeyValue(ctx, natsconf.BucketIdentity)
	if err != nil {
		b.Fatal(err)
	}
	store := identity.NewStore(kv)
	ids := make([]string, benchTenants)
	for i := range ids {
		id, err := identity.NewTenantID()
		if err != nil {
			b.Fatal(err)
		}
		_, hash, err := identity.NewAPIKey()
		if err != nil {
			b.Fatal(err)
		}
		if err := store.Create(ctx, identity.Tenant{TenantID: id, Status: identity.StatusActive,
			Plan: identity.Plans[i%len(identity.Plans)], CreatedAt: time.Now().UTC()}, hash); err != nil {
			b.Fatal(err)
		}
		ids[i] = id
	}
	return ids
}
