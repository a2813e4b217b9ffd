package dlq

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/edgehook/edgehook/promreg"
)

// Results of handling one advisory, the values of edgehook_dlq_advisories_total.
const (
	advRecorded = "recorded"  // a dead letter was written
	advExisting = "duplicate" // the dead letter existed already (advisory seen twice)
	advNotEvent = "not_event" // the message was not an edgehook event; nothing to record
	advExpired  = "expired"   // the event was gone from EVENTS; nothing to record
)

// Results of a replay request, the values of edgehook_replays_total.
const (
	replayDone      = "replayed"
	replayDuplicate = "duplicate" // the same state was replayed already
	replayRejected  = "rejected"  // unknown event, not failed or delivered, or payload gone
)

// metrics are the DLQ processor's collectors.
type metrics struct {
	advisories *prometheus.CounterVec
	replays    *prometheus.CounterVec
	retries    prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		advisories: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edgehook_dlq_advisories_total",
			Help: "Max-deliveries and terminated advisories handled, by result (recorded, duplicate, not_event, expired).",
		}, []string{"result"}),
		replays: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edgehook_replays_total",
			Help: "Replay requests handled, by result (replayed, duplicate, rejected).",
		}, []string{"result"}),
		retries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "edgehook_dlq_retries_total",
			Help: "Advisories and replay requests put back after a transient failure.",
		}),
	}
	for _, r := range []string{advRecorded, advExisting, advNotEvent, advExpired} {
		m.advisories.WithLabelValues(r)
	}
	for _, r := range []string{replayDone, replayDuplicate, replayRejected} {
		m.replays.WithLabelValues(r)
	}
	var err error
	if m.advisories, err = promreg.Register(reg, m.advisories); err != nil {
		return nil, fmt.Errorf("dlq: %w", err)
	}
	if m.replays, err = promreg.Register(reg, m.replays); err != nil {
		return nil, fmt.Errorf("dlq: %w", err)
	}
	if m.retries, err = promreg.Register(reg, m.retries); err != nil {
		return nil, fmt.Errorf("dlq: %w", err)
	}
	return m, nil
}
