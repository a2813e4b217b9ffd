package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// Result is the outcome of one case. Its JSON form is the one line per scenario that
// `edgehook bench --json` prints.
type Result struct {
	Scenario string `json:"scenario"`
	// RatePerS is the offered load, 0 for flat out.
	RatePerS int `json:"rate_per_s"`
	// DurationS is the measured window in seconds.
	DurationS float64 `json:"duration_s"`
	// Events counts the events that succeeded: accepted (ingest), verified by the
	// receiver (deliver, e2e, fairness).
	Events int64 `json:"events"`
	// Errors counts failed requests, and for delivery scenarios events accepted but not
	// verified before the drain timeout.
	Errors int64 `json:"errors"`
	// ThroughputPerS is Events per second of the window.
	ThroughputPerS float64 `json:"throughput_per_s"`
	// CeilingPerS is what the throughput is compared with, measured in the same run
	// (see Ceiling).
	CeilingPerS float64 `json:"ceiling_per_s"`
	// Ratio is ThroughputPerS / CeilingPerS.
	Ratio float64 `json:"ratio"`
	// Ceiling names what CeilingPerS measured.
	Ceiling string `json:"ceiling"`
	// Latency says what the percentiles measure.
	Latency string  `json:"latency"`
	P50Ms   float64 `json:"p50_ms"`
	P90Ms   float64 `json:"p90_ms"`
	P99Ms   float64 `json:"p99_ms"`
	P999Ms  float64 `json:"p999_ms"`
	MaxMs   float64 `json:"max_ms"`
	// CPUMicrosPerEvent is the CPU time this process used in the window per event:
	// the bench plus, when it started the system itself, the whole system. Unlike
	// throughput it hardly moves when other processes compete for the CPU, so it is
	// the figure to compare runs by on a shared machine.
	CPUMicrosPerEvent float64 `json:"cpu_us_per_event"`
	// CPUMsPerEvent is the system's CPU time per event where a scenario measures it
	// apart from the figure above: pipeline, all the system's processes (from /proc)
	// per delivered event; edge, this process in the edge ingest's window.
	CPUMsPerEvent float64 `json:"cpu_ms_per_event,omitempty"`
	// Connections and PayloadBytes are the load's shape.
	Connections  int `json:"connections"`
	PayloadBytes int `json:"payload_bytes"`
	// Target is the target for this case, when it has one, and TargetMet
	// whether this run met it.
	Target    string `json:"target,omitempty"`
	TargetMet *bool  `json:"target_met,omitempty"`
	// FirstError describes the first failed request or lost event, if any.
	FirstError string `json:"first_error,omitempty"`
	// EdgeFigures are the edge scenario's own figures (nil, and absent from the JSON,
	// for the others).
	*EdgeFigures
	// FairnessFigures are the fairness scenario's own figures (nil, and absent from
	// the JSON, for the others).
	*FairnessFigures
	// PipelineFigures are the pipeline scenario's own figures, CeilingFigures the
	// ingest ceilings of the ingest scenario and the flat-out pipeline (nil, and
	// absent from the JSON, for the others).
	*PipelineFigures
	*CeilingFigures
	// BatchFigures are the batch scenario's own figures (nil, and absent from the
	// JSON, for the others).
	*BatchFigures
}

// setLatency fills the percentile fields from l.
func (r *Result) setLatency(what string, l *Latencies) {
	s := l.Summary()
	r.Latency = what
	r.P50Ms, r.P90Ms, r.P99Ms, r.P999Ms, r.MaxMs = ms(s.P50), ms(s.P90), ms(s.P99), ms(s.P999), ms(s.Max)
}

// setCPU fills CPUMicrosPerEvent from the CPU time used over the window.
func (r *Result) setCPU(used time.Duration) {
	if r.Events > 0 {
		r.CPUMicrosPerEvent = round(float64(used)/float64(time.Microsecond)/float64(r.Events), 1)
	}
}

// setErrors fills Errors and FirstError from the load's failures c and the lost
// accepted events that never arrived, described as lostWhat (after the count).
func (r *Result) setErrors(c *counters, lost int, lostWhat string) {
	r.Errors, r.FirstError = c.errors.Load()+int64(lost), c.firstError()
	if lost > 0 && r.FirstError == "" {
		r.FirstError = fmt.Sprintf("%d %s", lost, lostWhat)
	}
}

// setThroughput fills Events, DurationS, ThroughputPerS and, given a ceiling, Ratio.
func (r *Result) setThroughput(events int64, window time.Duration, ceiling float64, ceilingName string) {
	r.Events = events
	r.DurationS = round(window.Seconds(), 3)
	if window > 0 {
		r.ThroughputPerS = round(float64(events)/window.Seconds(), 1)
	}
	r.Ceiling = ceilingName
	r.CeilingPerS = round(ceiling, 1)
	if ceiling > 0 {
		r.Ratio = round(r.ThroughputPerS/ceiling, 3)
	}
}

func ms(d time.Duration) float64 { return round(float64(d)/float64(time.Millisecond), 3) }

func round(x float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(x*p) / p
}

// applyTarget records the target for the case, if it has one.
func applyTarget(r *Result) {
	var (
		desc string
		met  bool
	)
	switch {
	case r.Scenario == ScenarioIngest && r.RatePerS == 0:
		desc, met = "ratio >= 0.5 (of the JetStream async-publish ceiling)", r.Ratio >= 0.5
	case r.Scenario == ScenarioIngest && r.RatePerS == StandardIngestLatencyRate:
		desc, met = "p99 <= 5 ms at 5,000/s", r.P99Ms <= 5 && r.Errors == 0
	case r.Scenario == ScenarioDeliver && r.RatePerS == 0:
		desc, met = ">= 10,000/s and ratio >= 0.5 (of the receiver's ceiling)", r.ThroughputPerS >= 10_000 && r.Ratio >= 0.5
	case r.Scenario == ScenarioE2E && r.RatePerS == StandardE2ERate:
		desc, met = "p99 <= 50 ms at 2,000/s", r.P99Ms <= 50 && r.Errors == 0
	case r.Scenario == ScenarioPipeline && r.RatePerS == 0 && r.PipelineFigures != nil:
		desc = ">= 10,000/s delivered while ingesting, cpu_ms_per_event <= 0.10 (gateway + worker + NATS server)"
		met = r.ThroughputPerS >= 10_000 && r.CPUMsPerEvent <= 0.10 && r.Errors == 0
	case r.Scenario == ScenarioPipeline && r.RatePerS == StandardPipelineLatencyRate:
		desc, met = "e2e p99 <= 20 ms at 5,000/s", r.P99Ms <= 20 && r.Errors == 0
	case r.Scenario == ScenarioFairness && r.FairnessFigures != nil:
		desc = "ratio >= 0.9 next to a hanging endpoint"
		if r.Parked > 0 {
			desc += " and parked_ratio >= 0.9 next to a dead one holding the parked backlog"
		}
		desc += ", NumAckPending below max_ack_pending throughout"
		met = r.FairnessFigures.met(r.Ratio) && r.Errors == 0
	default:
		return
	}
	r.Target, r.TargetMet = desc, &met
}

// WriteJSON writes one JSON object per result, one per line.
func WriteJSON(w io.Writer, results []Result) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false) // targets read ">= 0.5", not "\u003e= 0.5"
	for _, r := range results {
		if err := enc.Encode(r); err != nil {
			return err
		}
	}
	return nil
}

// WriteTable writes the results as an aligned table, with each target's verdict and
// what the ceilings and latencies measured underneath.
func WriteTable(w io.Writer, results []Result) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\trate/s\tevents\terrors\tthroughput/s\tceiling/s\tratio\tp50 ms\tp90 ms\tp99 ms\tp99.9 ms\tmax ms\tcpu µs/event\ttarget\t")
	for _, r := range results {
		rate := "max"
		if r.RatePerS > 0 {
			rate = strconv.Itoa(r.RatePerS)
		}
		verdict := "-"
		if r.TargetMet != nil {
			verdict = "MISSED"
			if *r.TargetMet {
				verdict = "met"
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%.0f\t%.0f\t%.3f\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\t%.1f\t%s\t\n",
			r.Scenario, rate, r.Events, r.Errors, r.ThroughputPerS, r.CeilingPerS, r.Ratio,
			r.P50Ms, r.P90Ms, r.P99Ms, r.P999Ms, r.MaxMs, r.CPUMicrosPerEvent, verdict)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	var notes strings.Builder
	for _, r := range results {
		label := Case{r.Scenario, r.RatePerS}.String()
		fmt.Fprintf(&notes, "\n%s: ceiling = %s; latency = %s", label, r.Ceiling, r.Latency)
		if r.Target != "" {
			fmt.Fprintf(&notes, "; target %s", r.Target)
		}
		if r.FirstError != "" {
			fmt.Fprintf(&notes, "; first error: %s", r.FirstError)
		}
		if r.EdgeFigures != nil {
			notes.WriteString(r.EdgeFigures.note(r.CPUMsPerEvent))
		}
		if r.FairnessFigures != nil {
			notes.WriteString(r.FairnessFigures.note())
		}
		if r.PipelineFigures != nil {
			notes.WriteString(r.PipelineFigures.note(r.CPUMsPerEvent))
		}
		if r.CeilingFigures != nil {
			notes.WriteString(r.CeilingFigures.note())
		}
		if r.BatchFigures != nil {
			notes.WriteString(r.BatchFigures.note())
		}
	}
	notes.WriteString("\n")
	_, err := io.WriteString(w, notes.String())
	return err
}
