// Package natsconf is the one source of truth for edgehook's JetStream layout:
// the streams, key-value buckets and consumers every component relies on, and the
// embedded server that `edgehook up` and the tests run.
package natsconf

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Names of the JetStream assets. Other components refer to these constants, never to
// string literals, so a rename happens in one place.
const (
	// StreamEvents holds every accepted event until it is delivered or expires.
	StreamEvents = "EVENTS"
	// EventsSubjectPrefix is followed by the tenant id: events.<tenantId>.
	EventsSubjectPrefix = "events."
	// ConsumerDeliver is the durable pull consumer the workers share.
	ConsumerDeliver = "deliver"
	// StreamReceived holds webhooks the receiver verified, for the consuming side.
	StreamReceived = "RECEIVED"
	// ReceivedSubjectPrefix is followed by the tenant id: received.<tenantId>.
	ReceivedSubjectPrefix = "received."
	// BucketIdentity maps API-key hashes and tenant ids to tenant identity records.
	BucketIdentity = "identity"
	// BucketStatus holds one status record per event, keyed <tenantId>.<eventId>.
	BucketStatus = "status"
)

// Message headers carried by events on EVENTS and by verified webhooks on RECEIVED.
const (
	HeaderEventID    = "Edgehook-Event-Id"
	HeaderTenant     = "Edgehook-Tenant"
	HeaderEventType  = "Edgehook-Event-Type"
	HeaderIngestTime = "Edgehook-Ingest-Time" // unix nanoseconds, decimal
	HeaderVerifyTime = "Edgehook-Verify-Time" // unix nanoseconds, decimal
)

// EventSubject is the subject an event of tenantID is published on.
func EventSubject(tenantID string) string { return EventsSubjectPrefix + tenantID }

// ReceivedSubject is the subject a verified webhook for tenantID is published on.
func ReceivedSubject(tenantID string) string { return ReceivedSubjectPrefix + tenantID }

// Topology holds the tunable parts of the JetStream layout. The zero value is not
// valid; start from DefaultTopology.
type Topology struct {
	// Replicas is the replication factor of every stream and bucket (1 for a single
	// server, 3 for a production hub cluster).
	Replicas int
	// Retention is how long events, their status records and received webhooks are kept.
	Retention time.Duration
	// DuplicateWindow is how long an Idempotency-Key is remembered on EVENTS.
	DuplicateWindow time.Duration
	// ReceivedDuplicateWindow is how long the receiver remembers a webhook-id.
	ReceivedDuplicateWindow time.Duration
	// HTTPTimeout is the workers' total timeout for one delivery attempt. AckWait is
	// derived from it so a slow delivery is never handed to a second worker mid-flight.
	HTTPTimeout time.Duration
	// MaxDeliver is the number of delivery attempts before an event is dead-lettered.
	MaxDeliver int
	// MaxAckPending bounds the number of events in flight across all workers.
	MaxAckPending int
}

// AckWaitMargin is added to the HTTP timeout to get the consumer's AckWait.
const AckWaitMargin = 10 * time.Second

// DefaultTopology returns the settings `edgehook up` and the tests use.
func DefaultTopology() Topology {
	return Topology{
		Replicas:                1,
		Retention:               7 * 24 * time.Hour,
		DuplicateWindow:         time.Hour,
		ReceivedDuplicateWindow: 10 * time.Minute,
		HTTPTimeout:             10 * time.Second,
		MaxDeliver:              8,
		MaxAckPending:           10000,
	}
}

// AckWait is the consumer's ack wait: the HTTP timeout plus AckWaitMargin.
func (t Topology) AckWait() time.Duration { return t.HTTPTimeout + AckWaitMargin }

// Validate reports the first setting that cannot work, naming it.
func (t Topology) Validate() error {
	switch {
	case t.Replicas < 1 || t.Replicas > 5:
		return fmt.Errorf("replicas must be 1..5, got %d", t.Replicas)
	case t.Retention <= 0:
		return errors.New("retention must be positive")
	case t.DuplicateWindow <= 0 || t.DuplicateWindow > t.Retention:
		return fmt.Errorf("duplicate window must be positive and at most the retention, got %s", t.DuplicateWindow)
	case t.ReceivedDuplicateWindow <= 0 || t.ReceivedDuplicateWindow > t.Retention:
		return fmt.Errorf("received duplicate window must be positive and at most the retention, got %s", t.ReceivedDuplicateWindow)
	case t.HTTPTimeout <= 0:
		return errors.New("HTTP timeout must be positive")
	case t.MaxDeliver < 1:
		return fmt.Errorf("max deliver must be at least 1, got %d", t.MaxDeliver)
	case t.MaxAckPending < 1:
		return fmt.Errorf("max ack pending must be at least 1, got %d", t.MaxAckPending)
	}
	return nil
}

// EventsStream is the configuration of the EVENTS stream.
func (t Topology) EventsStream() jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        StreamEvents,
		Description: "accepted webhook events awaiting delivery",
		Subjects:    []string{EventsSubjectPrefix + "*"},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    t.Replicas,
		MaxAge:      t.Retention,
		Duplicates:  t.DuplicateWindow,
		Discard:     jetstream.DiscardOld,
	}
}

// ReceivedStream is the configuration of the RECEIVED stream.
func (t Topology) ReceivedStream() jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        StreamReceived,
		Description: "webhooks verified by the receiver",
		Subjects:    []string{ReceivedSubjectPrefix + "*"},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    t.Replicas,
		MaxAge:      t.Retention,
		Duplicates:  t.ReceivedDuplicateWindow,
	}
}

// IdentityBucket is the configuration of the identity key-value bucket.
func (t Topology) IdentityBucket() jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket:      BucketIdentity,
		Description: "tenant identity: API-key hashes and tenant records, no secrets",
		History:     1,
		Storage:     jetstream.FileStorage,
		Replicas:    t.Replicas,
	}
}

// StatusBucket is the configuration of the event status key-value bucket.
func (t Topology) StatusBucket() jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket:      BucketStatus,
		Description: "delivery status of each event, keyed <tenantId>.<eventId>",
		History:     1,
		TTL:         t.Retention,
		Storage:     jetstream.FileStorage,
		Replicas:    t.Replicas,
	}
}

// DeliverConsumer is the configuration of the workers' durable pull consumer.
func (t Topology) DeliverConsumer() jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:       ConsumerDeliver,
		Description:   "webhook delivery workers",
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       t.AckWait(),
		MaxDeliver:    t.MaxDeliver,
		MaxAckPending: t.MaxAckPending,
		MaxWaiting:    512,
		Replicas:      t.Replicas,
	}
}

// Setup creates or updates every stream, bucket and consumer of the topology. It is
// idempotent: running it against an existing deployment changes only what differs.
func Setup(ctx context.Context, js jetstream.JetStream, t Topology) error {
	if err := t.Validate(); err != nil {
		return fmt.Errorf("natsconf: %w", err)
	}
	for _, sc := range []jetstream.StreamConfig{t.EventsStream(), t.ReceivedStream()} {
		if _, err := js.CreateOrUpdateStream(ctx, sc); err != nil {
			return fmt.Errorf("natsconf: stream %s: %w", sc.Name, err)
		}
	}
	for _, kc := range []jetstream.KeyValueConfig{t.IdentityBucket(), t.StatusBucket()} {
		if _, err := js.CreateOrUpdateKeyValue(ctx, kc); err != nil {
			return fmt.Errorf("natsconf: bucket %s: %w", kc.Bucket, err)
		}
	}
	if _, err := js.CreateOrUpdateConsumer(ctx, StreamEvents, t.DeliverConsumer()); err != nil {
		return fmt.Errorf("natsconf: consumer %s: %w", ConsumerDeliver, err)
	}
	return nil
}
