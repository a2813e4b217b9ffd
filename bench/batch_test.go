package bench_test

import (
	"bytes"
	"context"
	"math"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/edgehook/edgehook/bench"
)

// TestBatchScenarioReportsBatchAndSingleIngest: the batch scenario sends whole
// batches, flat out and at a fixed rate, and reports its events/s and CPU per event
// next to single-event ingest measured on the same system.
func TestBatchScenarioReportsBatchAndSingleIngest(t *testing.T) {
	launch, calls := launcher(t)
	cfg := shortConfig()
	b, err := bench.New(cfg, launch)
	if err != nil {
		t.Fatal(err)
	}
	cases := []bench.Case{{Scenario: bench.ScenarioBatch}, {Scenario: bench.ScenarioBatch, Rate: 2000}}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	results, err := b.Run(ctx, cases)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	for i, r := range results {
		f := r.BatchFigures
		switch {
		case f == nil:
			t.Fatalf("%s: no batch figures", cases[i])
		case r.Events <= 0 || r.Events%bench.BatchSize != 0 || r.Errors != 0:
			t.Errorf("%s: %d events, %d errors; want whole batches of %d and no error (%s)", cases[i], r.Events, r.Errors, bench.BatchSize, r.FirstError)
		case r.CPUMicrosPerEvent <= 0 || f.SingleCPUMicrosPerEvent <= 0 || f.CPURatio <= 0:
			t.Errorf("%s: CPU per event %v, single %v, ratio %v", cases[i], r.CPUMicrosPerEvent, f.SingleCPUMicrosPerEvent, f.CPURatio)
		case f.SingleEventsPerS <= 0 || r.CeilingPerS != f.SingleEventsPerS || f.BatchesPerS <= 0 || f.BatchSize != bench.BatchSize:
			t.Errorf("%s: implausible figures %+v (ceiling %v)", cases[i], *f, r.CeilingPerS)
		case r.P50Ms <= 0 || r.P50Ms > r.P99Ms:
			t.Errorf("%s: percentiles p50 %v p99 %v", cases[i], r.P50Ms, r.P99Ms)
		}
	}
	// 2,000 events/s is 20 batches/s: every one of them over the window.
	if got, want := results[1].Events, int64(2000*cfg.Duration.Seconds()); got != want {
		t.Errorf("batch@2000 for %s stored %d events, want %d", cfg.Duration, got, want)
	}
	if n := len(calls.all()); n != 2 {
		t.Errorf("%d systems launched, want one per case", n)
	}
	var out, table bytes.Buffer
	if err := bench.WriteJSON(&out, results); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{`"scenario":"batch"`, `"batch_size":100`, `"single_events_per_s":`, `"single_cpu_us_per_event":`, `"cpu_ratio":`} {
		if !strings.Contains(out.String(), k) {
			t.Errorf("JSON lacks %s:\n%s", k, out.String())
		}
	}
	if err := bench.WriteTable(&table, results); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(table.String(), "batches of 100") || !strings.Contains(table.String(), "single-event ingest") {
		t.Errorf("table lacks the batch note:\n%s", table.String())
	}
	if strings.Contains(out.String(), "system_cpu") {
		t.Errorf("system CPU figures for a system in the bench's process:\n%s", out.String())
	}
}

// TestBatchScenarioReadsTheSystemsCPU: with the system's processes named, the batch
// scenario also reports their CPU per event, batched and single, and its ratio.
func TestBatchScenarioReadsTheSystemsCPU(t *testing.T) {
	launch, _ := launcher(t)
	b, err := bench.New(shortConfig(), withProcesses(launch, bench.Process{Name: "system", PID: os.Getpid()}))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	results, err := b.Run(ctx, []bench.Case{{Scenario: bench.ScenarioBatch}})
	if err != nil {
		t.Fatal(err)
	}
	f := results[0].BatchFigures
	if f == nil || f.SystemCPUMicrosPerEvent <= 0 || f.SingleSystemCPUMicrosPerEvent <= 0 ||
		f.SystemCPURatio != round3(f.SystemCPUMicrosPerEvent/f.SingleSystemCPUMicrosPerEvent) {
		t.Fatalf("system CPU figures: %+v", f)
	}
	var table bytes.Buffer
	if err := bench.WriteTable(&table, results); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(table.String(), "system processes") {
		t.Errorf("table lacks the system's CPU:\n%s", table.String())
	}
}

// round3 rounds v to three decimals, as the bench's ratios are.
func round3(v float64) float64 { return math.Round(v*1000) / 1000 }
