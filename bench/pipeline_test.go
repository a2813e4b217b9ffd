package bench_test

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/edgehook/edgehook/bench"
)

// withProcesses names this test's process as the system's, so the pipeline reads its
// CPU time from /proc as it reads `edgehook up`'s.
func withProcesses(launch bench.Launcher, ps ...bench.Process) bench.Launcher {
	return func(ctx context.Context, needs bench.Needs) (bench.Target, func(), error) {
		t, release, err := launch(ctx, needs)
		t.Processes = ps
		return t, release, err
	}
}

func TestPipelineDeliversEveryAcceptedEventAndReportsCPUPerProcess(t *testing.T) {
	launch, calls := launcher(t)
	var progress bytes.Buffer
	cfg := shortConfig()
	cfg.Progress = &progress
	b, err := bench.New(cfg, withProcesses(launch, bench.Process{Name: "system", PID: os.Getpid()}))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cases := []bench.Case{{Scenario: bench.ScenarioPipeline}, {Scenario: bench.ScenarioPipeline, Rate: 1000}}
	results, err := b.Run(ctx, cases)
	if err != nil {
		t.Fatalf("Run: %v\nprogress:\n%s", err, progress.String())
	}
	if len(results) != len(cases) {
		t.Fatalf("%d results for %d cases", len(results), len(cases))
	}
	for _, n := range calls.all() {
		if !n.Worker {
			t.Error("the pipeline ran without a worker")
		}
	}

	lines, objects := jsonLines(t, results)
	for i, line := range lines {
		m := objects[i]
		if m["scenario"] != "pipeline" {
			t.Errorf("line %d: scenario %v, want pipeline", i, m["scenario"])
		}
		want := append(requiredFields, "cpu_ms_per_event", "cpu_ms_per_event_by_process", "ingest_per_s", "delivered_in_window", "ingest_p50_ms", "ingest_p99_ms")
		if cases[i].Rate == 0 {
			want = append(want, "target", "jetstream_ceiling_per_s", "http_ceiling_per_s", "combined_ceiling_per_s", "ratio_combined")
		}
		for _, k := range want {
			v, ok := m[k]
			if !ok {
				t.Errorf("%s: no %q in %s", cases[i], k, line)
				continue
			}
			if n, isNum := v.(float64); isNum && n <= 0 && k != "errors" {
				t.Errorf("%s: %s = %v, want a positive figure", cases[i], k, n)
			}
		}
	}

	for i, r := range results {
		c, f := cases[i], results[i].PipelineFigures
		if f == nil {
			t.Fatalf("%s: no pipeline figures", c)
		}
		// Every event answered 202 reached the endpoint, correctly signed.
		if r.Errors != 0 || f.SinkRejected != 0 || r.Events <= 0 {
			t.Errorf("%s: %d delivered, %d errors (%s), %d rejected by the endpoint", c, r.Events, r.Errors, r.FirstError, f.SinkRejected)
		}
		if f.CPUIncludesBench || r.CPUMsPerEvent != f.CPUMsByProcess["system"] || len(f.CPUMsByProcess) != 1 || f.BenchCPUMsPerEvent <= 0 {
			t.Errorf("%s: CPU not read per named process: total %v, by process %v, bench %v", c, r.CPUMsPerEvent, f.CPUMsByProcess, f.BenchCPUMsPerEvent)
		}
		if r.P50Ms <= 0 || r.P50Ms > r.P99Ms || r.P99Ms > r.MaxMs {
			t.Errorf("%s: percentiles out of order or empty: p50 %v p99 %v max %v", c, r.P50Ms, r.P99Ms, r.MaxMs)
		}
		// The ingest share of the latency (send to 202) is reported beside e2e.
		if f.IngestP50Ms <= 0 || f.IngestP50Ms > f.IngestP99Ms {
			t.Errorf("%s: ingest percentiles out of order or empty: p50 %v p99 %v", c, f.IngestP50Ms, f.IngestP99Ms)
		}
		if r.ThroughputPerS <= 0 || f.DeliveredInWindow > r.Events || f.IngestPerS <= 0 {
			t.Errorf("%s: implausible rates: %+v %+v", c, r, *f)
		}
	}
	// Flat out, ingest is related to the two ceilings and their combination, which is
	// below each.
	cf := results[0].CeilingFigures
	if cf == nil || cf.CombinedCeilingPerS >= cf.JetStreamCeilingPerS || cf.CombinedCeilingPerS >= cf.HTTPCeilingPerS || cf.RatioCombined <= cf.RatioHTTP {
		t.Errorf("ceilings: %+v", cf)
	}
	// At a fixed rate the load offers exactly rate x duration events, each delivered.
	if got, want := results[1].Events, int64(1000*cfg.Duration.Seconds()); got != want {
		t.Errorf("pipeline@1000 for %s delivered %d events, want every one of %d", cfg.Duration, got, want)
	}
	for _, want := range []string{"pipeline (delivered)", "pipeline@1000 (delivered)", "ceiling: http server", "ceiling: jetstream publish"} {
		if !strings.Contains(progress.String(), want) {
			t.Errorf("no progress line for %q in:\n%s", want, progress.String())
		}
	}
	var table bytes.Buffer
	if err := bench.WriteTable(&table, results); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"pipeline", "ms/event (system ", "combined"} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, table.String())
		}
	}
}

func TestPipelineWithoutNamedProcessesCountsItsOwn(t *testing.T) {
	launch, _ := launcher(t)
	cfg := shortConfig()
	b, err := bench.New(cfg, launch)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	results, err := b.Run(ctx, []bench.Case{{Scenario: bench.ScenarioPipeline, Rate: 500}})
	if err != nil {
		t.Fatal(err)
	}
	f := results[0].PipelineFigures
	if f == nil || !f.CPUIncludesBench || f.BenchCPUMsPerEvent != 0 || results[0].CPUMsPerEvent <= 0 || f.CPUMsByProcess["bench+system"] != results[0].CPUMsPerEvent {
		t.Errorf("an in-process system's CPU: %+v, total %v", f, results[0].CPUMsPerEvent)
	}
}
