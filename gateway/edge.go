package gateway

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/edgehook/edgehook/natsconf"
	"github.com/edgehook/edgehook/status"

	"github.com/edgehook/edgehook/promreg"
)

// An edge gateway (Config.Edge set) publishes into its edge's stream and records
// "queued" in its edge's bucket, both on the local leaf node, so it accepts events
// while the hub cannot be reached. The hub's status bucket is the truth once it has an
// event; until then, and while the hub is away, the local queued record answers
// GET /v1/events/{id}. A probe follows the hub link for /metrics and the log.

// Defaults of the edge settings.
const (
	DefaultHubTimeout        = 2 * time.Second
	DefaultLinkProbeInterval = time.Second
)

// getStatus returns tenantID's event eventID: the hub's record, or at an edge the local
// queued record while the hub has none or cannot be asked.
func (s *Server) getStatus(ctx context.Context, tenantID, eventID string) (status.Record, error) {
	if s.deps.Queued == nil {
		return s.deps.Status.Get(ctx, tenantID, eventID)
	}
	hctx, cancel := context.WithTimeout(ctx, s.cfg.HubTimeout)
	rec, err := s.deps.Status.Get(hctx, tenantID, eventID)
	cancel()
	if err == nil {
		return rec, nil
	}
	local, lerr := s.deps.Queued.Get(ctx, tenantID, eventID)
	switch {
	case lerr == nil:
		return local, nil
	case errors.Is(err, status.ErrNotFound) && errors.Is(lerr, status.ErrNotFound):
		return status.Record{}, status.ErrNotFound
	case errors.Is(err, status.ErrNotFound):
		return status.Record{}, lerr
	}
	return status.Record{}, err // the hub could not answer, and this edge never had it
}

// hubLink follows the edge's link to the hub: whether the hub's JetStream answers, and
// how many of the events this edge stored the hub has not sourced yet.
type hubLink struct {
	s      *Server
	up     prometheus.Gauge
	lag    prometheus.Gauge
	state  int    // -1 unknown, 0 down, 1 up
	last   uint64 // the edge stream's last sequence
	synced uint64 // the last sequence of the edge stream the hub is known to have
	known  bool   // whether the hub has answered since this gateway started
}

func newHubLink(s *Server, reg prometheus.Registerer) (*hubLink, error) {
	l := &hubLink{s: s, state: -1}
	var err error
	if l.up, err = promreg.Register(reg, prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "edgehook_edge_hub_link_up",
		Help: "1 while this edge gateway reaches the hub's JetStream across the leaf link, 0 while it does not.",
	})); err != nil {
		return nil, err
	}
	if l.lag, err = promreg.Register(reg, prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "edgehook_edge_sourcing_lag_messages",
		Help: "Events stored at this edge that the hub's EVENTS has not sourced yet (NaN until the hub has answered once since this gateway started).",
	})); err != nil {
		return nil, err
	}
	return l, nil
}

// run probes the link every interval until ctx ends.
func (l *hubLink) run(ctx context.Context) {
	t := time.NewTicker(l.s.cfg.LinkProbeInterval)
	defer t.Stop()
	for {
		l.probe(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// probe reads the local edge stream's last sequence and, from the hub, the last
// sequence of it the hub's EVENTS has sourced. The lag is their difference, against the
// last sequence the hub was known to have while it cannot be asked, so it keeps growing
// while the link is down.
func (l *hubLink) probe(ctx context.Context) {
	pctx, cancel := context.WithTimeout(ctx, l.s.cfg.HubTimeout)
	defer cancel()
	edge := l.s.cfg.Edge
	if st, err := l.s.deps.JS.Stream(pctx, natsconf.EdgeStream(edge)); err == nil {
		l.last = st.CachedInfo().State.LastSeq
	}
	ev, err := l.s.deps.Hub.Stream(pctx, natsconf.StreamEvents)
	if ctx.Err() != nil {
		return // shutting down
	}
	up := err == nil
	if err != nil {
		l.s.log.Debug("hub link probe", "edge", edge, "error", err)
	}
	if up {
		l.known = true
		for _, src := range ev.CachedInfo().Sources {
			if src != nil && src.Name == natsconf.EdgeStream(edge) {
				l.synced = max(l.synced, src.Seq)
			}
		}
	}
	lag := l.last - min(l.last, l.synced)
	if l.known {
		l.lag.Set(float64(lag))
	} else {
		l.lag.Set(math.NaN()) // a gateway started during a cut cannot know what the hub has
	}
	l.setState(up, lag)
}

// setState records the link state, logging each change once.
func (l *hubLink) setState(up bool, lag uint64) {
	st := 0
	if up {
		st = 1
	}
	l.up.Set(float64(st))
	if st == l.state {
		return
	}
	switch {
	case up && l.state == -1:
		l.s.log.Info("hub link up", "edge", l.s.cfg.Edge, "sourcing_lag", lag)
	case up:
		l.s.log.Info("hub link restored", "edge", l.s.cfg.Edge, "sourcing_lag", lag)
	default:
		l.s.log.Warn("hub link lost: still accepting events, stored at this edge until it heals", "edge", l.s.cfg.Edge, "sourcing_lag", lag)
	}
	l.state = st
}

// BindEdge fills in what a gateway at edge needs besides JS: its own queued bucket, the
// hub's JetStream (domain natsconf.HubDomain) and the hub's statuses, bound lazily so
// the gateway starts while the hub cannot be reached. JS must be connected to the
// edge's leaf node.
func (d *Deps) BindEdge(ctx context.Context, edge string) error {
	if d.JS == nil {
		return fmt.Errorf("%w: Deps.JS is required", ErrInvalidConfig)
	}
	qKV, err := d.JS.KeyValue(ctx, natsconf.EdgeQueuedBucket(edge))
	if err != nil {
		return fmt.Errorf("gateway: edge bucket %s: %w", natsconf.EdgeQueuedBucket(edge), err)
	}
	hub, err := jetstream.NewWithDomain(d.JS.Conn(), natsconf.HubDomain)
	if err != nil {
		return fmt.Errorf("gateway: jetstream in domain %s: %w", natsconf.HubDomain, err)
	}
	d.Queued, d.Hub = status.NewStore(qKV), hub
	d.Status = status.NewLazyStore(func(ctx context.Context) (jetstream.KeyValue, error) {
		return hub.KeyValue(ctx, natsconf.BucketStatus)
	})
	return nil
}
