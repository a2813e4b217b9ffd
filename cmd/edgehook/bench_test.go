package main

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
)

func TestBenchSelfStartedPrintsOneJSONLinePerScenario(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp) // where the self-started systems keep their data
	stdout, stderr, err := runArgs(t, nil, "bench",
		"--scenario", "ingest,deliver,e2e@500,pipeline@500,fairness@200,edge",
		"--duration", "500ms", "--ceiling-duration", "300ms",
		"--connections", "8", "--tenants", "2", "--backlog", "5000", "--parked", "2000", "--json")
	if err != nil {
		t.Fatalf("bench: %v\nstderr:\n%s", err, stderr)
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	want := []string{"ingest", "deliver", "e2e", "pipeline", "fairness", "edge"}
	if len(lines) != len(want) {
		t.Fatalf("%d lines, want %d:\n%s", len(lines), len(want), stdout)
	}
	for i, line := range lines {
		var r struct {
			Scenario       string   `json:"scenario"`
			Events         *int64   `json:"events"`
			Errors         *int64   `json:"errors"`
			ThroughputPerS *float64 `json:"throughput_per_s"`
			CeilingPerS    *float64 `json:"ceiling_per_s"`
			Ratio          *float64 `json:"ratio"`
			P50Ms          *float64 `json:"p50_ms"`
			P99Ms          *float64 `json:"p99_ms"`
			MaxMs          *float64 `json:"max_ms"`
		}
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("line %d is not a JSON object: %v\n%s", i, err, line)
		}
		if r.Scenario != want[i] || r.Events == nil || r.Errors == nil || r.ThroughputPerS == nil ||
			r.CeilingPerS == nil || r.Ratio == nil || r.P50Ms == nil || r.P99Ms == nil || r.MaxMs == nil {
			t.Fatalf("line %d lacks a required field or is not %s: %s", i, want[i], line)
		}
		if *r.Events <= 0 || *r.Errors != 0 || *r.ThroughputPerS <= 0 || *r.CeilingPerS <= 0 || *r.Ratio <= 0 || *r.P99Ms <= 0 {
			t.Errorf("implausible %s result: %s", r.Scenario, line)
		}
	}
	if !strings.Contains(stderr, "events") {
		t.Errorf("no progress on stderr:\n%s", stderr)
	}
	left, err := os.ReadDir(tmp)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range left {
		if strings.HasPrefix(e.Name(), "edgehook-bench-") {
			t.Errorf("self-started system's data directory %s not removed", e.Name())
		}
	}
}

func TestBenchTableIsTheDefaultOutput(t *testing.T) {
	stdout, stderr, err := runArgs(t, nil, "bench", "--scenario", "ingest@300",
		"--duration", "300ms", "--ceiling-duration", "200ms", "--connections", "4")
	if err != nil {
		t.Fatalf("bench: %v\nstderr:\n%s", err, stderr)
	}
	for _, want := range []string{"scenario", "throughput/s", "ceiling/s", "ratio", "p99 ms", "ingest", "300"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("table lacks %q:\n%s", want, stdout)
		}
	}
}

func TestBenchUsageMistakes(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"unknown scenario", nil, []string{"bench", "--scenario", "ingress"}, "ingress"},
		{"fairness flat out", nil, []string{"bench", "--scenario", "fairness", "--rate", "0"}, "fixed rate"},
		{"bad payload", nil, []string{"bench", "--payload", "8"}, "PayloadBytes"},
		{"running system without token", nil, []string{"bench", "--api-url", "http://127.0.0.1:1"}, "EDGEHOOK_ADMIN_TOKEN"},
		{"running system without receiver", map[string]string{"EDGEHOOK_ADMIN_TOKEN": "t"}, []string{"bench", "--api-url", "http://127.0.0.1:1"}, "--receiver-url"},
		{"bad duration env", map[string]string{"EDGEHOOK_BENCH_DURATION": "long"}, []string{"bench"}, "EDGEHOOK_BENCH_DURATION"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, stderr, err := runArgs(t, tc.env, tc.args...)
			if err == nil {
				t.Fatal("no error")
			}
			if code := exitCode(err); code != 2 {
				t.Errorf("exit code %d, want 2 (%v)", code, err)
			}
			if !strings.Contains(err.Error()+stderr, tc.want) {
				t.Errorf("error %q does not mention %q", err, tc.want)
			}
		})
	}
}

func TestBenchSystemPIDNeedsARunningSystemAndProcessIDs(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"bench", "--scenario", "pipeline", "--system-pid", "1"}, "--api-url"},
		{[]string{"bench", "--scenario", "pipeline", "--api-url", "http://127.0.0.1:1", "--admin-token", "t", "--receiver-url", "http://127.0.0.1:2",
			"--system-pid", "12,up"}, `"up" is not a process id`},
	} {
		_, stderr, err := runArgs(t, nil, tc.args...)
		if err == nil || exitCode(err) != 2 || !strings.Contains(err.Error()+stderr, tc.want) {
			t.Errorf("%v: error %v (exit %d), want a usage error mentioning %s", tc.args, err, exitCode(err), tc.want)
		}
	}
}
