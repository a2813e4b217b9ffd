package bench

import (
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Latency range the histograms track: 1µs to 5 minutes, three significant digits.
// Values outside are clamped to the nearest end, so nothing is dropped silently.
const (
	minTrackable = time.Microsecond
	maxTrackable = 5 * time.Minute
)

// Latencies is an HDR histogram of durations with microsecond resolution. It is not
// safe for concurrent use: each load goroutine records into its own and Merge
// combines them.
type Latencies struct {
	h *hdrhistogram.Histogram
}

// NewLatencies returns an empty histogram.
func NewLatencies() *Latencies {
	return &Latencies{h: hdrhistogram.New(1, int64(maxTrackable/time.Microsecond), 3)}
}

// Record adds one duration. Durations below 1µs (including negative ones, from two
// clocks a hair apart) count as 1µs; durations above 5 minutes count as 5 minutes.
func (l *Latencies) Record(d time.Duration) {
	d = min(max(d, minTrackable), maxTrackable)
	_ = l.h.RecordValue(int64(d / time.Microsecond)) // in range by construction
}

// Merge adds every value recorded in o.
func (l *Latencies) Merge(o *Latencies) { l.h.Merge(o.h) }

// Count is the number of recorded values.
func (l *Latencies) Count() int64 { return l.h.TotalCount() }

// Percentile returns the value at or below which p percent of the recorded values
// fall (p in 0..100), with three significant digits; 0 when nothing was recorded.
func (l *Latencies) Percentile(p float64) time.Duration {
	if l.h.TotalCount() == 0 {
		return 0
	}
	return time.Duration(l.h.ValueAtQuantile(p)) * time.Microsecond
}

// Max returns the largest recorded value (to three significant digits), 0 when empty.
func (l *Latencies) Max() time.Duration {
	if l.h.TotalCount() == 0 {
		return 0
	}
	return time.Duration(l.h.Max()) * time.Microsecond
}

// Summary is the percentiles a result reports.
type Summary struct {
	P50, P90, P99, P999, Max time.Duration
}

// Summary returns p50, p90, p99, p99.9 and max.
func (l *Latencies) Summary() Summary {
	return Summary{
		P50:  l.Percentile(50),
		P90:  l.Percentile(90),
		P99:  l.Percentile(99),
		P999: l.Percentile(99.9),
		Max:  l.Max(),
	}
}
