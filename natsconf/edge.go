package natsconf

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
)

// The edge topology: the hub is one JetStream domain, each edge node its own. A gateway
// at an edge publishes into the edge's stream and records "queued" in the edge's own
// bucket, both local, so ingest needs no WAN round trip; the hub's EVENTS sources every
// edge stream across the leaf link. Each edge has its own subjects, so no message is
// captured twice across a link: the hub has no interest in ingest.<edge>.>, and one
// edge none in another's.
const (
	// HubDomain is the JetStream domain of the hub cluster.
	HubDomain = "hub"
	// EdgeSubjectRoot starts every edge ingest subject: ingest.<edge>.<tenantId>.
	EdgeSubjectRoot = "ingest."
)

// EdgeDomain is the JetStream domain of the edge called name.
func EdgeDomain(name string) string { return "edge-" + name }

// EdgeStream is the name of the ingest stream of the edge called name.
func EdgeStream(name string) string { return "INGEST_" + name }

// EdgeSubjectPrefix is followed by the tenant id on the edge called name.
func EdgeSubjectPrefix(name string) string { return EdgeSubjectRoot + name + "." }

// EdgeQueuedBucket is the key-value bucket of the edge called name that holds the
// "queued" records of the events it accepted, keyed like the status bucket.
func EdgeQueuedBucket(name string) string { return "queued_" + name }

// ErrInvalidEdgeName is wrapped by ValidateEdgeName's errors.
var ErrInvalidEdgeName = errors.New("invalid edge name")

// ValidateEdgeName checks that name can name an edge: 1 to 32 lower-case letters,
// digits and dashes, starting with a letter or digit (it becomes part of a domain, a
// stream, a bucket and a subject token).
func ValidateEdgeName(name string) error {
	if len(name) == 0 || len(name) > 32 {
		return fmt.Errorf("%w %q: want 1 to 32 characters", ErrInvalidEdgeName, name)
	}
	for i, c := range []byte(name) {
		ok := c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' && i > 0
		if !ok {
			return fmt.Errorf("%w %q: want lower-case letters, digits and dashes, not starting with a dash", ErrInvalidEdgeName, name)
		}
	}
	return nil
}

// EdgeStreamConfig is the configuration of the ingest stream of the edge called name.
// It keeps events for the retention, so an edge cut off from the hub holds what it
// accepted until the link heals, and dedupes Idempotency-Keys like EVENTS does.
func (t Topology) EdgeStreamConfig(name string) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        EdgeStream(name),
		Description: "events accepted at edge " + name + ", sourced into the hub's " + StreamEvents,
		Subjects:    []string{EdgeSubjectPrefix(name) + "*"},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    1,
		MaxAge:      t.Retention,
		Duplicates:  t.DuplicateWindow,
		Discard:     jetstream.DiscardOld,
		// POST /v1/events/batch at the edge stores its events in one atomic batch; the
		// hub's sourcing copies them one by one, which loses nothing once they are here.
		AllowAtomicPublish: true,
	}
}

// EdgeQueuedBucketConfig is the configuration of the queued-record bucket of the edge
// called name.
func (t Topology) EdgeQueuedBucketConfig(name string) jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket:      EdgeQueuedBucket(name),
		Description: "queued records of the events edge " + name + " accepted, keyed <tenantId>.<eventId>",
		History:     1,
		TTL:         t.Retention,
		Storage:     jetstream.FileStorage,
		Replicas:    1,
	}
}

// EdgeIdentityMirror is the configuration of an edge's identity bucket: a mirror of
// the hub's, so the edge gateway authenticates keys with no WAN round trip and keeps
// doing so while the link is down.
func (t Topology) EdgeIdentityMirror() jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket:      BucketIdentity,
		Description: "mirror of the hub's identity bucket",
		History:     1,
		Storage:     jetstream.FileStorage,
		Replicas:    1,
		Mirror:      &jetstream.StreamSource{Name: BucketIdentity, Domain: HubDomain},
	}
}

// EventsSource is the source of the hub's EVENTS that takes in the edge called name:
// its ingest stream in its domain, each subject ingest.<edge>.<tenantId> turned into
// events.<tenantId>. Headers travel unchanged, Nats-Msg-Id included, so EVENTS dedupes
// an Idempotency-Key whichever edge accepted it.
func EventsSource(name string) *jetstream.StreamSource {
	return &jetstream.StreamSource{
		Name:   EdgeStream(name),
		Domain: EdgeDomain(name),
		SubjectTransforms: []jetstream.SubjectTransformConfig{{
			Source:      EdgeSubjectPrefix(name) + "*",
			Destination: EventsSubjectPrefix + "{{wildcard(1)}}",
		}},
	}
}

// sourceOfEdge reports whether src (as the server returns it, the domain turned into
// an API prefix) is the source EventsSource(name) describes.
func sourceOfEdge(src *jetstream.StreamSource, name string) bool {
	if src == nil || src.Name != EdgeStream(name) {
		return false
	}
	if src.Domain != "" {
		return src.Domain == EdgeDomain(name)
	}
	return src.External != nil && src.External.APIPrefix == DomainAPI(EdgeDomain(name))
}

// EdgeNames returns the names of the edges the hub's EVENTS stream sources, from its
// configuration.
func EdgeNames(cfg jetstream.StreamConfig) []string {
	var names []string
	for _, src := range cfg.Sources {
		if src == nil {
			continue
		}
		if name, ok := strings.CutPrefix(src.Name, EdgeStream("")); ok && sourceOfEdge(src, name) {
			names = append(names, name)
		}
	}
	return names
}

// SetupEdge adds the edge called name: on the edge (edge is a JetStream context in its
// domain) its ingest stream, its queued bucket and its identity mirror; on the hub (hub,
// in the hub's domain) a source of EVENTS. It is idempotent, and it needs the edge's leaf
// link up (the edge's assets are created through it).
func SetupEdge(ctx context.Context, hub, edge jetstream.JetStream, t Topology, name string) error {
	if err := ValidateEdgeName(name); err != nil {
		return fmt.Errorf("natsconf: %w", err)
	}
	if err := t.Validate(); err != nil {
		return fmt.Errorf("natsconf: %w", err)
	}
	sc := t.EdgeStreamConfig(name)
	if _, err := edge.CreateOrUpdateStream(ctx, sc); err != nil {
		return fmt.Errorf("natsconf: edge %s: stream %s: %w", name, sc.Name, err)
	}
	for _, kc := range []jetstream.KeyValueConfig{t.EdgeQueuedBucketConfig(name), t.EdgeIdentityMirror()} {
		if _, err := edge.CreateOrUpdateKeyValue(ctx, kc); err != nil {
			return fmt.Errorf("natsconf: edge %s: bucket %s: %w", name, kc.Bucket, err)
		}
	}
	return editEventsSources(ctx, hub, func(srcs []*jetstream.StreamSource) []*jetstream.StreamSource {
		if slices.ContainsFunc(srcs, func(s *jetstream.StreamSource) bool { return sourceOfEdge(s, name) }) {
			return srcs
		}
		return append(srcs, EventsSource(name))
	})
}

// RemoveEdge stops the hub's EVENTS from sourcing the edge called name. Events the edge
// accepted and the hub has not yet sourced stay in the edge's stream; check its lag
// (`nats stream info EVENTS`) before removing an edge that still takes events. The
// edge's own assets are left alone: they go with the edge's server.
func RemoveEdge(ctx context.Context, hub jetstream.JetStream, name string) error {
	if err := ValidateEdgeName(name); err != nil {
		return fmt.Errorf("natsconf: %w", err)
	}
	return editEventsSources(ctx, hub, func(srcs []*jetstream.StreamSource) []*jetstream.StreamSource {
		return slices.DeleteFunc(srcs, func(s *jetstream.StreamSource) bool { return sourceOfEdge(s, name) })
	})
}

// editEventsSources applies edit to the sources of the hub's EVENTS stream and updates
// it when they changed.
func editEventsSources(ctx context.Context, hub jetstream.JetStream, edit func([]*jetstream.StreamSource) []*jetstream.StreamSource) error {
	s, err := hub.Stream(ctx, StreamEvents)
	if err != nil {
		return fmt.Errorf("natsconf: hub stream %s (run `edgehook setup nats` at the hub first): %w", StreamEvents, err)
	}
	cfg := s.CachedInfo().Config
	before := len(cfg.Sources)
	cfg.Sources = edit(slices.Clone(cfg.Sources))
	if len(cfg.Sources) == before {
		return nil
	}
	if _, err := hub.UpdateStream(ctx, cfg); err != nil {
		return fmt.Errorf("natsconf: hub stream %s: sources: %w", StreamEvents, err)
	}
	return nil
}
