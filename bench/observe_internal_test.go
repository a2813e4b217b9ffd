package bench

import (
	"math"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestHistogramQuantileFollowsHistogramQuantile(t *testing.T) {
	reg := prometheus.NewRegistry()
	h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "x_seconds", Buckets: []float64{.1, 1, 10}})
	reg.MustRegister(h)
	if _, ok := gatherHistogram(reg, "missing").quantile(0.99); ok {
		t.Error("a missing histogram has a quantile")
	}
	if _, ok := gatherHistogram(nil, "x_seconds").quantile(0.5); ok {
		t.Error("no gatherer, yet a quantile")
	}
	before := gatherHistogram(reg, "x_seconds")
	if _, ok := before.quantile(0.5); ok {
		t.Error("an empty histogram has a quantile")
	}
	for range 90 {
		h.Observe(0.05) // first bucket
	}
	for range 10 {
		h.Observe(5) // third bucket
	}
	after := gatherHistogram(reg, "x_seconds")
	d := after.minus(before)
	for _, tc := range []struct{ q, want float64 }{
		{0.5, 0.1 * 50 / 90},       // within (0, 0.1]
		{0.9, 0.1},                 // the first bucket's top
		{0.99, 1 + 9*(99-90)/10.0}, // within (1, 10]
		{1, 10},
	} {
		got, ok := d.quantile(tc.q)
		if !ok || math.Abs(got-tc.want) > 1e-9 {
			t.Errorf("quantile(%v) = %v, %v; want %v", tc.q, got, ok, tc.want)
		}
	}
	h.Observe(100) // past the last bound
	for range 200 {
		h.Observe(100)
	}
	if got, _ := gatherHistogram(reg, "x_seconds").minus(after).quantile(0.99); got != 10 {
		t.Errorf("quantile past the last bound = %v, want the last bound 10", got)
	}
	if lo, hi, ok := d.bucket(0.99); !ok || lo != 1 || hi != 10 {
		t.Errorf("bucket(0.99) = (%v, %v], %v; want (1, 10]", lo, hi, ok)
	}
	if d.total != 100 {
		t.Errorf("difference holds %d observations, want 100", d.total)
	}
}

func TestProcessRSS(t *testing.T) {
	rss, err := processRSS()
	if err != nil {
		t.Skipf("no /proc/self/status: %v", err)
	}
	peak, err := processPeakRSS()
	if err != nil || rss == 0 || peak < rss {
		t.Errorf("rss %d, peak %d, %v", rss, peak, err)
	}
}
