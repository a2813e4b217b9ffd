package bench_test

import (
	"bytes"
	"context"
	"github.com/edgehook/edgehook/natsconf"
	"strings"
	"testing"
	"time"

	"github.com/edgehook/edgehook/bench"
)

// shortConfig keeps scenario runs short; their figures are not asserted, only their
// shape and sanity.
func shortConfig() bench.Config {
	return bench.Config{
		Duration:        500 * time.Millisecond,
		CeilingDuration: 300 * time.Millisecond,
		Connections:     8,
		Tenants:         2,
		Backlog:         5000,
		Parked:          2000,
		DrainTimeout:    20 * time.Second,
	}
}

// requiredFields are the keys every JSON result line must have (issue 3).
var requiredFields = []string{"scenario", "events", "errors", "throughput_per_s", "ceiling_per_s", "ratio", "p50_ms", "p99_ms", "max_ms"}

func TestEveryScenarioRunsAgainstARealSystem(t *testing.T) {
	launch, calls := launcher(t)
	var progress bytes.Buffer
	cfg := shortConfig()
	cfg.Progress = &progress
	b, err := bench.New(cfg, launch)
	if err != nil {
		t.Fatal(err)
	}
	cases := []bench.Case{
		{Scenario: bench.ScenarioIngest},
		{Scenario: bench.ScenarioIngest, Rate: 1000},
		{Scenario: bench.ScenarioDeliver},
		{Scenario: bench.ScenarioDeliver, Rate: 1000},
		{Scenario: bench.ScenarioE2E, Rate: 1000},
		{Scenario: bench.ScenarioFairness, Rate: 400},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	results, err := b.Run(ctx, cases)
	if err != nil {
		t.Fatalf("Run: %v (results so far %+v)", err, results)
	}
	if len(results) != len(cases) {
		t.Fatalf("%d results for %d cases", len(results), len(cases))
	}

	lines, objects := jsonLines(t, results)
	for i, line := range lines {
		c, m := cases[i], objects[i]
		for _, k := range requiredFields {
			if _, ok := m[k]; !ok {
				t.Errorf("%s: no %q in %s", c, k, line)
			}
		}
		if m["scenario"] != c.Scenario || m["rate_per_s"] != float64(c.Rate) {
			t.Errorf("line %d is %v@%v, want %s", i, m["scenario"], m["rate_per_s"], c)
		}
		r := results[i]
		if r.Events <= 0 || r.Errors != 0 || r.ThroughputPerS <= 0 || r.CeilingPerS <= 0 || r.Ratio <= 0 {
			t.Errorf("%s: implausible result %+v", c, r)
		}
		if r.P50Ms <= 0 || r.P50Ms > r.P99Ms || r.P99Ms > r.MaxMs {
			t.Errorf("%s: percentiles out of order or empty: p50 %v p99 %v max %v", c, r.P50Ms, r.P99Ms, r.MaxMs)
		}
		if r.Ceiling == "" || r.Latency == "" {
			t.Errorf("%s: result does not say what its ceiling and latency measure", c)
		}
	}

	// At a fixed rate the load offers exactly rate x duration events.
	if got, want := results[1].Events, int64(1000*cfg.Duration.Seconds()); got != want {
		t.Errorf("ingest@1000 for %s accepted %d events, want %d", cfg.Duration, got, want)
	}
	if got, want := results[4].Events, int64(1000*cfg.Duration.Seconds()); got != want {
		t.Errorf("e2e@1000 for %s verified %d events, want every one of %d", cfg.Duration, got, want)
	}
	// Ingest runs without a worker (as at an edge node); the fairness scenario starts a
	// fresh system for its baseline, its hanging phase and its parked phase.
	needs := calls.all()
	wantWorker := []bool{false, false, true, true, true, true, true, true}
	if len(needs) != len(wantWorker) {
		t.Fatalf("%d systems launched, want %d", len(needs), len(wantWorker))
	}
	for i, n := range needs {
		if n.Worker != wantWorker[i] {
			t.Errorf("launch %d: worker %v, want %v", i, n.Worker, wantWorker[i])
		}
	}
	// The ingest ceiling's scratch stream is gone afterwards.
	for i, srv := range calls.servers[:2] {
		for _, name := range streamNames(t, srv.JetStream(t)) {
			if strings.HasPrefix(name, "BENCH_") {
				t.Errorf("system %d still has scratch stream %s", i, name)
			}
		}
	}
	// The fairness scenario parked its backlog at the dead endpoint, measured the others
	// next to it, and sampled the consumer's pending count below its bound.
	f := results[5].FairnessFigures
	switch {
	case f == nil:
		t.Fatal("fairness: no fairness figures")
	case f.Parked != cfg.Parked || f.ParkedEvents != int64(cfg.Parked) || f.ParkS <= 0 || f.ParkPerS <= 0:
		t.Errorf("fairness: parked %d of %d in %vs (%v/s)", f.ParkedEvents, f.Parked, f.ParkS, f.ParkPerS)
	case f.ParkedThroughputPerS <= 0 || f.ParkedRatio <= 0 || f.ParkedP99Ms <= 0:
		t.Errorf("fairness: implausible figures next to the parked backlog: %+v", *f)
	case f.MaxAckPending != natsconf.DefaultMaxAckPending || f.ParkingAckPendingMax <= 0 || f.ParkingAckPendingMax >= f.MaxAckPending:
		t.Errorf("fairness: NumAckPending while parking %d, bound %d", f.ParkingAckPendingMax, f.MaxAckPending)
	case f.RSSMB <= 0 || f.JetStreamStoreMB <= 0 || f.ParkedStreamMsgs == 0:
		t.Errorf("fairness: no memory or storage figures: %+v", *f)
	case f.ParkingLatenessN+f.LatenessN == 0 || (f.ParkingLatenessP99Ms == nil && f.LatenessP99Ms == nil):
		t.Errorf("fairness: the worker's retry lateness was not read: %+v", *f)
	}
	if line := lines[5]; !strings.Contains(line, `"parked_ratio":`) || !strings.Contains(line, `"parking_ack_pending_max":`) {
		t.Errorf("fairness: JSON line lacks the parked figures: %s", line)
	}

	for _, want := range []string{"ceiling: jetstream publish", "ceiling: receiver direct", "fairness with a hanging tenant", "fairness with a dead endpoint", "park 2000 at a dead endpoint"} {
		if !strings.Contains(progress.String(), want) {
			t.Errorf("no progress line for %q in:\n%s", want, progress.String())
		}
	}

	var table bytes.Buffer
	if err := bench.WriteTable(&table, results); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"scenario", "throughput/s", "ceiling/s", "p99.9 ms", "ingest", "deliver", "e2e", "fairness", "ceiling = ", "dead endpoint (connection refused): 2000 events parked", "retry lateness"} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, table.String())
		}
	}
}

func TestParseCases(t *testing.T) {
	for _, tc := range []struct {
		spec string
		rate int
		want []bench.Case
	}{
		{"all", -1, bench.StandardSet()},
		{"all", 300, []bench.Case{{"ingest", 300}, {"deliver", 300}, {"e2e", 300}, {"pipeline", 300}, {"fairness", 300}, {"batch", 300}, {"edge", 300}}},
		{"pipeline", -1, []bench.Case{{"pipeline", 0}}},
		{"ingest", -1, []bench.Case{{"ingest", 0}}},
		{"ingest", 0, []bench.Case{{"ingest", 0}}},
		{"e2e", -1, []bench.Case{{"e2e", bench.StandardE2ERate}}},
		{"e2e", 0, []bench.Case{{"e2e", 0}}},
		{"ingest@5000, deliver ,fairness", -1, []bench.Case{{"ingest", 5000}, {"deliver", 0}, {"fairness", bench.StandardFairnessRate}}},
		{"ingest@5000,e2e", 100, []bench.Case{{"ingest", 5000}, {"e2e", 100}}},
	} {
		got, err := bench.ParseCases(tc.spec, tc.rate)
		if err != nil {
			t.Errorf("ParseCases(%q, %d): %v", tc.spec, tc.rate, err)
			continue
		}
		if len(got) != len(tc.want) {
			t.Errorf("ParseCases(%q, %d) = %v, want %v", tc.spec, tc.rate, got, tc.want)
			continue
		}
		for i := range got {
			if got[i] != tc.want[i] {
				t.Errorf("ParseCases(%q, %d) = %v, want %v", tc.spec, tc.rate, got, tc.want)
				break
			}
		}
	}
	for _, bad := range []struct {
		spec string
		rate int
		want string
	}{
		{"ingress", -1, `"ingress"`},
		{"", -1, `""`},
		{"ingest@fast", -1, "rate"},
		{"ingest@-5", -1, "rate"},
		{"fairness", 0, "fixed rate"},
		{"fairness@0", -1, "fixed rate"},
	} {
		_, err := bench.ParseCases(bad.spec, bad.rate)
		if err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("ParseCases(%q, %d) = %v, want an error mentioning %s", bad.spec, bad.rate, err, bad.want)
		}
	}
}

func TestNewRejectsSettingsThatCannotWork(t *testing.T) {
	launch := bench.Existing(bench.Target{})
	for _, tc := range []struct {
		cfg  bench.Config
		want string
	}{
		{bench.Config{Duration: -time.Second}, "Duration"},
		{bench.Config{Connections: -1}, "Connections"},
		{bench.Config{PayloadBytes: 10}, "PayloadBytes"},
		{bench.Config{Tenants: -2}, "Tenants"},
		{bench.Config{Backlog: -1}, "Backlog"},
		{bench.Config{CeilingDuration: -time.Second}, "CeilingDuration"},
		{bench.Config{Parked: -2}, "Parked"},
	} {
		if _, err := bench.New(tc.cfg, launch); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%+v) = %v, want an error naming %s", tc.cfg, err, tc.want)
		}
	}
	if _, err := bench.New(bench.Config{}, nil); err == nil {
		t.Error("New without a launcher succeeded")
	}
	b, err := bench.New(bench.Config{}, launch)
	if err != nil {
		t.Fatal(err)
	}
	c := b.Config()
	if c.Duration != bench.DefaultDuration || c.CeilingDuration != bench.MaxCeilingDuration || c.PayloadBytes != 512 || c.Backlog != 200_000 || c.Parked != 1_000_000 {
		t.Errorf("defaults: %+v", c)
	}
}

func TestTableAndJSONShowTargets(t *testing.T) {
	results := []bench.Result{
		{Scenario: "ingest", Events: 10, ThroughputPerS: 10, CeilingPerS: 40, Ratio: 0.25, Ceiling: "c", Latency: "l"},
	}
	met := true
	results = append(results, bench.Result{Scenario: "e2e", RatePerS: 2000, Events: 5, P99Ms: 3, Target: "p99 <= 50 ms at 2,000/s", TargetMet: &met})
	var out bytes.Buffer
	if err := bench.WriteTable(&out, results); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "met") || !strings.Contains(out.String(), "2000") || !strings.Contains(out.String(), "0.250") {
		t.Errorf("table:\n%s", out.String())
	}
	out.Reset()
	if err := bench.WriteJSON(&out, results); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), `"target_met":true`) || strings.Count(out.String(), "\n") != 2 {
		t.Errorf("json:\n%s", out.String())
	}
}
