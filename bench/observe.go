package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/edgehook/edgehook/natsconf"
)

// What the bench watches of a system besides its public surface: the deliver
// consumer's pending counts, this process's memory, the NATS server's varz and the
// worker's metrics.

// pendingEvery is how often the pending sampler reads the deliver consumer.
const pendingEvery = 100 * time.Millisecond

// pendingMax is what the sampler saw over a stretch of time.
type pendingMax struct {
	maxAck     int    // highest NumAckPending
	maxPending uint64 // highest NumPending (stored, not yet handed out)
	samples    int
}

// pendingSampler reads the deliver consumer's info every pendingEvery until stopped,
// keeping the latest and the highest counts since the last take.
type pendingSampler struct {
	cons          jetstream.Consumer
	maxAckPending int // the consumer's bound

	mu     sync.Mutex
	last   *jetstream.ConsumerInfo
	cur    pendingMax
	cancel context.CancelFunc
	done   chan struct{}
}

func startPendingSampler(ctx context.Context, s *system) (*pendingSampler, error) {
	cons, err := s.js.Consumer(ctx, natsconf.StreamEvents, natsconf.ConsumerDeliver)
	if err != nil {
		return nil, fmt.Errorf("consumer %s: %w", natsconf.ConsumerDeliver, err)
	}
	ctx, cancel := context.WithCancel(ctx)
	p := &pendingSampler{cons: cons, maxAckPending: cons.CachedInfo().Config.MaxAckPending, cancel: cancel, done: make(chan struct{})}
	go p.run(ctx)
	return p, nil
}

func (p *pendingSampler) run(ctx context.Context) {
	defer close(p.done)
	t := time.NewTicker(pendingEvery)
	defer t.Stop()
	for {
		ictx, cancel := context.WithTimeout(ctx, 5*time.Second)
		info, err := p.cons.Info(ictx)
		cancel()
		if err == nil {
			p.mu.Lock()
			p.last = info
			p.cur.maxAck = max(p.cur.maxAck, info.NumAckPending)
			p.cur.maxPending = max(p.cur.maxPending, info.NumPending)
			p.cur.samples++
			p.mu.Unlock()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// latest is the consumer info read last (nil before the first).
func (p *pendingSampler) latest() *jetstream.ConsumerInfo {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.last
}

// take returns the highest counts since the last take and starts over.
func (p *pendingSampler) take() pendingMax {
	p.mu.Lock()
	defer p.mu.Unlock()
	m := p.cur
	p.cur = pendingMax{}
	return m
}

func (p *pendingSampler) stop() { p.cancel(); <-p.done }

// processRSS is this process's resident set (VmRSS), processPeakRSS its highest
// (VmHWM), from /proc/self/status; 0 and an error where there is none.
func processRSS() (uint64, error)     { return procStatus("VmRSS:") }
func processPeakRSS() (uint64, error) { return procStatus("VmHWM:") }

func procStatus(field string) (uint64, error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, err
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), field); ok {
			kb, err := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no %s in /proc/self/status", field)
}

// varz is the part of the NATS server's /varz the bench reports.
type varz struct {
	Mem       int64 `json:"mem"` // the server process's resident set
	JetStream struct {
		Stats struct {
			Store uint64 `json:"storage"`
		} `json:"stats"`
	} `json:"jetstream"`
}

// varz reads the NATS server's /varz from the target's monitoring URL.
func (s *system) varz(ctx context.Context) (varz, error) {
	var v varz
	if s.NATSMonitorURL == "" {
		return v, errNoMonitor
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(s.NATSMonitorURL, "/")+"/varz", nil)
	if err != nil {
		return v, err
	}
	resp, err := s.http.Do(req)
	if err != nil {
		return v, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return v, fmt.Errorf("varz: %s", resp.Status)
	}
	return v, json.NewDecoder(resp.Body).Decode(&v)
}

// latenessMetric is the worker's histogram of how late retries come back.
const latenessMetric = "edgehook_retry_lateness_seconds"

// histogram is a cumulative Prometheus histogram as gathered: each bucket's upper
// bound and the observations at or below it. The zero value is an absent histogram.
type histogram struct {
	bounds []float64
	counts []uint64
	total  uint64
}

// gatherHistogram reads the histogram name from g (absent when g is nil or has none).
func gatherHistogram(g prometheus.Gatherer, name string) histogram {
	if g == nil {
		return histogram{}
	}
	mfs, err := g.Gather()
	if err != nil {
		return histogram{}
	}
	for _, mf := range mfs {
		if mf.GetName() != name || len(mf.GetMetric()) == 0 {
			continue
		}
		ph := mf.GetMetric()[0].GetHistogram()
		h := histogram{total: ph.GetSampleCount()}
		for _, b := range ph.GetBucket() {
			h.bounds = append(h.bounds, b.GetUpperBound())
			h.counts = append(h.counts, b.GetCumulativeCount())
		}
		return h
	}
	return histogram{}
}

// minus is the observations of h not in the earlier snapshot o.
func (h histogram) minus(o histogram) histogram {
	if len(o.counts) != len(h.counts) {
		return h
	}
	d := histogram{bounds: h.bounds, counts: make([]uint64, len(h.counts)), total: h.total - o.total}
	for i := range h.counts {
		d.counts[i] = h.counts[i] - o.counts[i]
	}
	return d
}

// bucket returns the bounds of the bucket that holds the q-quantile (the upper one is
// +Inf past the last bound), and false when the histogram is absent or empty.
func (h histogram) bucket(q float64) (lo, hi float64, ok bool) {
	if h.total == 0 || len(h.bounds) == 0 {
		return 0, 0, false
	}
	rank := q * float64(h.total)
	for i, ub := range h.bounds {
		if float64(h.counts[i]) >= rank {
			return lo, ub, true
		}
		lo = ub
	}
	return lo, math.Inf(1), true
}

// quantile estimates the q-quantile as PromQL's histogram_quantile does: linear
// interpolation within the bucket that holds it; past the last bound it is the last
// bound. It reports false when the histogram is absent or empty.
func (h histogram) quantile(q float64) (float64, bool) {
	if h.total == 0 || len(h.bounds) == 0 {
		return 0, false
	}
	rank := q * float64(h.total)
	lower, below := 0.0, uint64(0)
	for i, ub := range h.bounds {
		if float64(h.counts[i]) >= rank {
			if math.IsInf(ub, 1) {
				return lower, true
			}
			in := h.counts[i] - below
			if in == 0 {
				return ub, true
			}
			return lower + (ub-lower)*(rank-float64(below))/float64(in), true
		}
		lower, below = ub, h.counts[i]
	}
	return lower, true // in the implicit +Inf bucket
}
