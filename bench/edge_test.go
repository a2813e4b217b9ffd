package bench_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/edgehook/edgehook/bench"
	"github.com/edgehook/edgehook/gateway"
	"github.com/edgehook/edgehook/identity"
	"github.com/edgehook/edgehook/natsconf"
)

func TestEdgeScenarioReportsIngestAndSourcingAndLosesNothing(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp) // where the mesh keeps its stores
	launch, calls := launcher(t)
	var progress bytes.Buffer
	cfg := shortConfig()
	cfg.Progress = &progress
	cfg.Edge = bench.EdgeConfig{StartGateway: edgeGateway()}
	b, err := bench.New(cfg, launch)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	results, err := b.Run(ctx, []bench.Case{{Scenario: bench.ScenarioEdge}})
	if err != nil {
		t.Fatalf("Run: %v\nprogress:\n%s", err, progress.String())
	}
	if len(results) != 1 {
		t.Fatalf("%d results, want 1", len(results))
	}
	r := results[0]

	var out bytes.Buffer
	if err := bench.WriteJSON(&out, results); err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(out.Bytes(), &m); err != nil {
		t.Fatalf("not one JSON object: %v\n%s", err, out.String())
	}
	if m["scenario"] != "edge" {
		t.Errorf("scenario %v, want edge", m["scenario"])
	}
	for _, k := range append(requiredFields, "single_ingest_per_s", "edge_ingest_per_s", "edge_ingest_ratio", "edge_p50_ms",
		"edge_p99_ms", "sourcing_per_s", "sourcing_ratio", "cpu_ms_per_event", "sourcing_method") {
		v, ok := m[k]
		if !ok {
			t.Errorf("no %q in %s", k, out.String())
			continue
		}
		if n, isNum := v.(float64); isNum && n <= 0 && k != "errors" {
			t.Errorf("%s = %v, want a positive figure", k, n)
		}
	}
	if r.Errors != 0 {
		t.Errorf("%d errors: %s", r.Errors, r.FirstError)
	}
	f := r.EdgeFigures
	if f == nil {
		t.Fatal("no edge figures")
	}
	// Every event the edge answered 202 is in the hub's EVENTS, by event id.
	if f.EdgeAccepted < r.Events || f.EdgeAccepted == 0 || f.AcceptedInHub != f.EdgeAccepted {
		t.Errorf("%d events accepted at the edge (%d in the window), %d of them in the hub's EVENTS", f.EdgeAccepted, r.Events, f.AcceptedInHub)
	}
	if f.SourcedEvents < f.EdgeAccepted {
		t.Errorf("the catch-up moved %d events, fewer than the %d the edge accepted", f.SourcedEvents, f.EdgeAccepted)
	}
	if r.CeilingPerS != f.SingleIngestPerS || r.ThroughputPerS != f.EdgeIngestPerS || r.Ratio != f.EdgeIngestRatio {
		t.Errorf("the common fields do not carry the edge figures: %+v", r)
	}
	if r.P50Ms > r.P99Ms || r.P99Ms > r.MaxMs {
		t.Errorf("percentiles out of order: p50 %v p99 %v max %v", r.P50Ms, r.P99Ms, r.MaxMs)
	}
	// The baseline is the ingest scenario on a system of its own, without a worker.
	if needs := calls.all(); len(needs) != 1 || needs[0].Worker {
		t.Errorf("launches %+v, want one without a worker", needs)
	}
	for _, want := range []string{"edge: single-server ingest", "edge: ingest at edge a", "edge: hub sourcing INGEST_a"} {
		if !strings.Contains(progress.String(), want) {
			t.Errorf("no progress line for %q in:\n%s", want, progress.String())
		}
	}
	var table bytes.Buffer
	if err := bench.WriteTable(&table, results); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"edge", "edge ingest", "hub sourcing", "catch-up"} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, table.String())
		}
	}
	left, err := os.ReadDir(tmp)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range left {
		if strings.HasPrefix(e.Name(), "edgehook-bench-") {
			t.Errorf("the mesh's store directory %s was not removed", e.Name())
		}
	}
}

func TestEdgeScenarioNeedsAGatewayStarter(t *testing.T) {
	b, err := bench.New(shortConfig(), bench.Existing(bench.Target{}))
	if err != nil {
		t.Fatal(err)
	}
	_, err = b.Run(context.Background(), []bench.Case{{Scenario: bench.ScenarioEdge}})
	if !errors.Is(err, bench.ErrInvalidConfig) || !strings.Contains(err.Error(), "StartGateway") {
		t.Errorf("Run = %v, want an invalid-configuration error naming StartGateway", err)
	}
}

// edgeGateway starts an edge gateway for the bench as cmd/edgehook's startGateway does
// with EDGEHOOK_EDGE set (which the bench package cannot call): connected as the
// gateway user with its own inbox prefix, events and queued records local, keys from
// the edge's identity mirror, the hub's statuses bound lazily.
func edgeGateway() bench.EdgeGatewayFunc {
	return func(ctx context.Context, g bench.EdgeGateway) (string, func() error, error) {
		nc, err := nats.Connect(g.NATSURL, nats.UserInfo(string(natsconf.Gateway), g.Password),
			nats.CustomInboxPrefix(natsconf.InboxPrefix(natsconf.Gateway)))
		if err != nil {
			return "", nil, err
		}
		fail := func(err error) (string, func() error, error) { nc.Close(); return "", nil, err }
		js, err := jetstream.New(nc)
		if err != nil {
			return fail(err)
		}
		idKV, err := js.KeyValue(ctx, natsconf.BucketIdentity)
		if err != nil {
			return fail(err)
		}
		log := slog.New(slog.DiscardHandler)
		view := identity.NewView(idKV, log)
		reg := prometheus.NewRegistry()
		deps := gateway.Deps{JS: js, View: view, Logger: log, Registerer: reg, Gatherer: reg}
		if err := deps.BindEdge(ctx, g.Edge); err != nil {
			return fail(err)
		}
		srv, err := gateway.New(gateway.Config{Addr: "127.0.0.1:0", Edge: g.Edge}, deps)
		if err != nil {
			return fail(err)
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return fail(err)
		}
		runCtx, cancel := context.WithCancel(context.Background())
		viewErr, serveErr := make(chan error, 1), make(chan error, 1)
		go func() { viewErr <- view.Run(runCtx) }()
		go func() { serveErr <- srv.Serve(runCtx, ln) }()
		stop := func() error {
			cancel()
			err := errors.Join(<-serveErr, <-viewErr)
			nc.Close()
			return err
		}
		if !eventually(10*time.Second, view.Loaded) {
			stop()
			return "", nil, errors.New("the edge gateway's identity view did not load")
		}
		return "http://" + ln.Addr().String(), stop, nil
	}
}

func TestParseCasesKnowsEdge(t *testing.T) {
	for spec, want := range map[string][]bench.Case{
		"edge":            {{Scenario: "edge"}},
		"edge@2000":       {{Scenario: "edge", Rate: 2000}},
		"ingest,edge@300": {{Scenario: "ingest"}, {Scenario: "edge", Rate: 300}},
	} {
		got, err := bench.ParseCases(spec, -1)
		if err != nil || len(got) != len(want) {
			t.Errorf("ParseCases(%q) = %v, %v; want %v", spec, got, err, want)
			continue
		}
		for i := range got {
			if got[i] != want[i] {
				t.Errorf("ParseCases(%q) = %v, want %v", spec, got, want)
			}
		}
	}
	// all runs it last, flat out by default.
	for rate, want := range map[int]bench.Case{-1: {Scenario: "edge"}, 300: {Scenario: "edge", Rate: 300}} {
		all, err := bench.ParseCases("all", rate)
		if err != nil {
			t.Fatal(err)
		}
		if all[len(all)-1] != want {
			t.Errorf("all (rate %d) = %v, want %v last", rate, all, want)
		}
	}
	if _, err := bench.ParseCases("edges", -1); err == nil || !strings.Contains(err.Error(), "edge") {
		t.Errorf("ParseCases(edges) = %v, want an error listing edge", err)
	}
}
