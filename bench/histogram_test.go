package bench_test

import (
	"context"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/edgehook/edgehook/bench"
)

// within reports whether got is within three significant digits (0.1%) of want.
func within(got, want time.Duration) bool {
	return math.Abs(float64(got-want)) <= 0.001*float64(want)+float64(time.Microsecond)
}

func TestLatenciesPercentiles(t *testing.T) {
	l := bench.NewLatencies()
	if s := l.Summary(); s != (bench.Summary{}) || l.Count() != 0 {
		t.Fatalf("empty histogram: %+v, count %d", s, l.Count())
	}
	// 1ms, 2ms, ..., 10000ms: the p-th percentile is p% of 10s.
	for i := 1; i <= 10000; i++ {
		l.Record(time.Duration(i) * time.Millisecond)
	}
	s := l.Summary()
	for _, c := range []struct {
		name      string
		got, want time.Duration
	}{
		{"p50", s.P50, 5000 * time.Millisecond},
		{"p90", s.P90, 9000 * time.Millisecond},
		{"p99", s.P99, 9900 * time.Millisecond},
		{"p99.9", s.P999, 9990 * time.Millisecond},
		{"max", s.Max, 10000 * time.Millisecond},
	} {
		if !within(c.got, c.want) {
			t.Errorf("%s = %s, want %s ±0.1%%", c.name, c.got, c.want)
		}
	}
	if l.Count() != 10000 {
		t.Errorf("count %d", l.Count())
	}
}

func TestLatenciesClampAndMerge(t *testing.T) {
	a, b := bench.NewLatencies(), bench.NewLatencies()
	a.Record(-time.Second) // clocks a hair apart: counts as the smallest value
	a.Record(0)
	b.Record(time.Hour) // beyond the range: counts as the largest
	b.Record(3 * time.Millisecond)
	a.Merge(b)
	if a.Count() != 4 {
		t.Fatalf("merged count %d, want 4", a.Count())
	}
	if got := a.Percentile(25); got != time.Microsecond {
		t.Errorf("p25 = %s, want 1µs (clamped)", got)
	}
	if got := a.Percentile(75); !within(got, 3*time.Millisecond) {
		t.Errorf("p75 = %s, want 3ms", got)
	}
	if got := a.Max(); !within(got, 5*time.Minute) {
		t.Errorf("max = %s, want 5m (clamped)", got)
	}
}

func TestPacerSchedulesAFixedRate(t *testing.T) {
	start := time.Now().Add(time.Hour) // in the future: Next must not wait
	p := bench.NewPacer(start, 1000, time.Second)
	var n int64
	for {
		seq, due, ok := p.Next()
		if !ok {
			break
		}
		if seq != n {
			t.Fatalf("sequence %d, want %d", seq, n)
		}
		if want := start.Add(time.Duration(seq) * time.Millisecond); !due.Equal(want) {
			t.Fatalf("op %d due %s after start, want %s", seq, due.Sub(start), want.Sub(start))
		}
		n++
	}
	if n != 1000 {
		t.Errorf("1000/s for 1s scheduled %d operations", n)
	}
	if _, _, ok := p.Next(); ok {
		t.Error("schedule resumed after its end")
	}
	if p.Rate() != 1000 {
		t.Errorf("Rate() = %v", p.Rate())
	}
}

func TestPacerHandsOutEachOperationOnceAcrossGoroutines(t *testing.T) {
	p := bench.NewPacer(time.Now(), 100_000, 100*time.Millisecond) // 10,000 operations
	seen := make([]int, 10_000)
	var (
		mu sync.Mutex
		wg sync.WaitGroup
	)
	for range 8 {
		wg.Go(func() {
			for {
				seq, _, ok := p.Next()
				if !ok {
					return
				}
				mu.Lock()
				seen[seq]++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	for i, n := range seen {
		if n != 1 {
			t.Fatalf("operation %d handed out %d times", i, n)
		}
	}
}

func TestPacerFlatOutEndsOnTime(t *testing.T) {
	start := time.Now()
	p := bench.NewPacer(start, 0, 50*time.Millisecond)
	n := 0
	for {
		_, due, ok := p.Next()
		if !ok {
			break
		}
		if due.Before(start) {
			t.Fatal("flat-out operation due before the start")
		}
		n++
	}
	if time.Since(start) < 50*time.Millisecond {
		t.Errorf("flat-out schedule ended after %s, before its 50ms", time.Since(start))
	}
	if n == 0 || p.Rate() != 0 {
		t.Errorf("flat out handed out %d operations, rate %v", n, p.Rate())
	}
}

func TestWaitNeverReturnsEarly(t *testing.T) {
	ctx := context.Background()
	for _, d := range []time.Duration{0, time.Millisecond, 7 * time.Millisecond} {
		due := time.Now().Add(d)
		if !bench.Wait(ctx, due) {
			t.Fatal("Wait returned false on a live context")
		}
		if now := time.Now(); now.Before(due) {
			t.Errorf("Wait returned %s before the due time", due.Sub(now))
		}
	}
	if !bench.Wait(ctx, time.Now().Add(-time.Hour)) {
		t.Error("Wait for a past due time returned false")
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if bench.Wait(cctx, time.Now().Add(time.Hour)) {
		t.Error("Wait on a cancelled context returned true")
	}
}
