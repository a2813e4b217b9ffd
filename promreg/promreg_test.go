package promreg_test

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/edgehook/edgehook/promreg"
)

func TestRegisterSharesAnIdenticalCollectorAndRefusesAConflict(t *testing.T) {
	reg := prometheus.NewRegistry()
	opts := prometheus.CounterOpts{Name: "edgehook_test_total", Help: "a test counter"}
	first, err := promreg.Register(reg, prometheus.NewCounter(opts))
	if err != nil {
		t.Fatal(err)
	}
	second, err := promreg.Register(reg, prometheus.NewCounter(opts))
	if err != nil || second != first {
		t.Fatalf("second registration: %v, shared %v; want the first counter back", err, second == first)
	}
	second.Inc()
	if got := testCounterValue(t, reg); got != 1 {
		t.Errorf("the shared counter reads %v, want 1", got)
	}
	if _, err := promreg.Register(reg, prometheus.NewGauge(prometheus.GaugeOpts{Name: "edgehook_test_total", Help: "other help"})); err == nil {
		t.Error("a different collector under the same name was accepted")
	}
	if c, err := promreg.Register[prometheus.Counter](nil, prometheus.NewCounter(opts)); err != nil || c == nil {
		t.Errorf("nil registry: %v", err)
	}
}

func testCounterValue(t *testing.T, reg *prometheus.Registry) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil || len(mfs) != 1 {
		t.Fatalf("gather: %v, %d families", err, len(mfs))
	}
	return mfs[0].GetMetric()[0].GetCounter().GetValue()
}
