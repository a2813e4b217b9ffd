package bench

import (
	"fmt"
	"math"
	"strings"
)

// FairnessFigures are the fairness scenario's own figures. Its JSON line holds them
// next to the fields every scenario has, which are the hanging phase's.
type FairnessFigures struct {
	// MaxAckPending is the deliver consumer's bound; the AckPendingMax fields are the
	// highest NumAckPending sampled (every 100 ms) in the baseline's window, in the
	// hanging phase's window, while the dead endpoint's backlog was parked, and in the
	// parked phase's window. The NumPendingMax fields are the highest NumPending
	// (stored, not yet handed out: what a new event waits behind) over the same spans.
	MaxAckPending         int    `json:"max_ack_pending"`
	BaselineAckPendingMax int    `json:"baseline_ack_pending_max"`
	HangingAckPendingMax  int    `json:"hanging_ack_pending_max"`
	ParkingAckPendingMax  int    `json:"parking_ack_pending_max"`
	ParkedAckPendingMax   int    `json:"parked_ack_pending_max"`
	BaselineNumPendingMax uint64 `json:"baseline_num_pending_max"`
	HangingNumPendingMax  uint64 `json:"hanging_num_pending_max"`
	ParkingNumPendingMax  uint64 `json:"parking_num_pending_max"`
	ParkedNumPendingMax   uint64 `json:"parked_num_pending_max"`
	// Parked is the backlog asked for (-1: no parked phase, and the fields below are
	// zero); ParkedEvents were published and acked into EVENTS, and ParkS is the time
	// from the first publish until the deliver consumer had settled the last of them
	// (parked by the worker), ParkPerS their rate, ParkPublishS the publishing alone.
	Parked       int     `json:"parked"`
	ParkedEvents int64   `json:"parked_events"`
	ParkS        float64 `json:"park_s"`
	ParkPerS     float64 `json:"park_per_s"`
	ParkPublishS float64 `json:"park_publish_s"`
	// The well-behaved tenants in the parked phase's window: webhooks verified per
	// second, as a ratio to the baseline, their latency, and this process's CPU per
	// verified webhook.
	ParkedThroughputPerS    float64 `json:"parked_throughput_per_s"`
	ParkedRatio             float64 `json:"parked_ratio"`
	ParkedP50Ms             float64 `json:"parked_p50_ms"`
	ParkedP99Ms             float64 `json:"parked_p99_ms"`
	ParkedMaxMs             float64 `json:"parked_max_ms"`
	ParkedCPUMicrosPerEvent float64 `json:"parked_cpu_us_per_event"`
	// This process's resident set (the bench and, self-started, the whole system)
	// before the backlog, with it parked (after the window), and its peak.
	RSSBeforeMB float64 `json:"rss_before_mb"`
	RSSMB       float64 `json:"rss_mb"`
	PeakRSSMB   float64 `json:"peak_rss_mb"`
	// NATSMemMB is the NATS server's resident set from its varz (the same process as
	// RSSMB when it is embedded); absent without a monitoring URL.
	NATSMemMB *float64 `json:"nats_mem_mb,omitempty"`
	// JetStreamStoreMB is the account's JetStream storage, ParkedStreamMsgs the
	// messages on PARKED (parked copies, and copies that came due).
	JetStreamStoreMB float64 `json:"jetstream_store_mb"`
	ParkedStreamMsgs uint64  `json:"parked_stream_msgs"`
	// The worker's edgehook_retry_lateness_seconds while the backlog was parked and in
	// the window: p99 (histogram_quantile over its buckets), the bucket that holds it
	// (its resolution: the buckets are 10ms .. 5m), and the observations; absent
	// without the worker's metrics.
	ParkingLatenessP99Ms     *float64    `json:"parking_retry_lateness_p99_ms,omitempty"`
	ParkingLatenessP99Bucket *[2]float64 `json:"parking_retry_lateness_p99_bucket_ms,omitempty"`
	ParkingLatenessN         uint64      `json:"parking_retry_lateness_n"`
	LatenessP99Ms            *float64    `json:"retry_lateness_p99_ms,omitempty"`
	LatenessP99Bucket        *[2]float64 `json:"retry_lateness_p99_bucket_ms,omitempty"`
	LatenessN                uint64      `json:"retry_lateness_n"`
}

// setParked fills the parked phase's figures from dead, against the baseline's rate.
func (f *FairnessFigures) setParked(dead phase, baseRate float64) {
	f.ParkingAckPendingMax = dead.pending.parking.maxAck
	f.ParkedAckPendingMax = dead.pending.window.maxAck
	f.ParkingNumPendingMax, f.ParkedNumPendingMax = dead.pending.parking.maxPending, dead.pending.window.maxPending
	pf := dead.parked
	f.ParkedEvents = pf.events
	f.ParkS, f.ParkPublishS = round(pf.park.Seconds(), 3), round(pf.publish.Seconds(), 3)
	if pf.park > 0 {
		f.ParkPerS = round(float64(pf.events)/pf.park.Seconds(), 1)
	}
	var r Result
	r.setThroughput(dead.inWindow, dead.window, baseRate, "")
	r.setCPU(dead.cpu)
	r.setLatency("", dead.lat)
	f.ParkedThroughputPerS, f.ParkedRatio = r.ThroughputPerS, r.Ratio
	f.ParkedP50Ms, f.ParkedP99Ms, f.ParkedMaxMs, f.ParkedCPUMicrosPerEvent = r.P50Ms, r.P99Ms, r.MaxMs, r.CPUMicrosPerEvent
	f.RSSBeforeMB, f.RSSMB, f.PeakRSSMB = mb(pf.rssBefore), mb(pf.rss), mb(pf.peak)
	if pf.natsMem >= 0 {
		v := mb(uint64(pf.natsMem))
		f.NATSMemMB = &v
	}
	f.JetStreamStoreMB, f.ParkedStreamMsgs = mb(pf.store), pf.parkedMsg
	f.ParkingLatenessP99Ms, f.ParkingLatenessP99Bucket, f.ParkingLatenessN = p99Ms(pf.latParking)
	f.LatenessP99Ms, f.LatenessP99Bucket, f.LatenessN = p99Ms(pf.latWindow)
}

func mb(b uint64) float64 { return round(float64(b)/(1<<20), 1) }

// p99Ms is h's p99 and the bounds of its bucket in milliseconds (+Inf as -1: JSON
// has no infinity), nil when h is absent or empty.
func p99Ms(h histogram) (*float64, *[2]float64, uint64) {
	q, ok := h.quantile(0.99)
	lo, hi, _ := h.bucket(0.99)
	if !ok {
		return nil, nil, h.total
	}
	v := round(q*1000, 1)
	b := [2]float64{round(lo*1000, 1), round(hi*1000, 1)}
	if math.IsInf(hi, 1) {
		b[1] = -1
	}
	return &v, &b, h.total
}

// met reports whether the fairness target holds: both ratios at least 0.9 and the
// consumer never at its bound.
func (f *FairnessFigures) met(ratio float64) bool {
	ok := ratio >= 0.9 && f.HangingAckPendingMax < f.MaxAckPending
	if f.Parked > 0 {
		ok = ok && f.ParkedRatio >= 0.9 && f.ParkingAckPendingMax < f.MaxAckPending && f.ParkedAckPendingMax < f.MaxAckPending
	}
	return ok
}

// note is the table's line of the fairness figures.
func (f *FairnessFigures) note() string {
	var b strings.Builder
	fmt.Fprintf(&b, "\n  deliver consumer, highest sampled NumAckPending (bound %d) / NumPending: baseline %d / %d, hanging %d / %d",
		f.MaxAckPending, f.BaselineAckPendingMax, f.BaselineNumPendingMax, f.HangingAckPendingMax, f.HangingNumPendingMax)
	if f.Parked <= 0 {
		return b.String()
	}
	fmt.Fprintf(&b, ", parking %d / %d, parked %d / %d", f.ParkingAckPendingMax, f.ParkingNumPendingMax, f.ParkedAckPendingMax, f.ParkedNumPendingMax)
	fmt.Fprintf(&b, "\n  dead endpoint (connection refused): %d events parked in %.1fs (%.0f/s; published in %.1fs); "+
		"well-behaved tenants next to them %.0f/s, ratio %.3f to the baseline, p50 %.2f ms, p99 %.2f ms, max %.0f ms, %.1f cpu µs/event",
		f.ParkedEvents, f.ParkS, f.ParkPerS, f.ParkPublishS, f.ParkedThroughputPerS, f.ParkedRatio, f.ParkedP50Ms, f.ParkedP99Ms, f.ParkedMaxMs, f.ParkedCPUMicrosPerEvent)
	fmt.Fprintf(&b, "\n  at that backlog: process RSS %.0f MB (%.0f MB before it, peak %.0f MB)", f.RSSMB, f.RSSBeforeMB, f.PeakRSSMB)
	if f.NATSMemMB != nil {
		fmt.Fprintf(&b, ", NATS varz mem %.0f MB", *f.NATSMemMB)
	}
	fmt.Fprintf(&b, ", JetStream storage %.0f MB, %d messages on PARKED", f.JetStreamStoreMB, f.ParkedStreamMsgs)
	lat := func(p *float64, bk *[2]float64, n uint64) string {
		if p == nil {
			return fmt.Sprintf("n/a (%d observations)", n)
		}
		hi := fmt.Sprintf("%.0f", bk[1])
		if bk[1] < 0 {
			hi = "inf"
		}
		return fmt.Sprintf("p99 %.0f ms, in its (%.0f, %s] ms bucket (%d observations)", *p, bk[0], hi, n)
	}
	fmt.Fprintf(&b, "\n  retry lateness: while parking %s; in the window %s",
		lat(f.ParkingLatenessP99Ms, f.ParkingLatenessP99Bucket, f.ParkingLatenessN), lat(f.LatenessP99Ms, f.LatenessP99Bucket, f.LatenessN))
	return b.String()
}
