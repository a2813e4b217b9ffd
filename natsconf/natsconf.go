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
	// BucketStatus holds one status record per event, keyed <tenantId>.<eventId>, and
	// the event's attempt log, one entry per attempt keyed <tenantId>.<eventId>.<n>.
	BucketStatus = "status"
	// StreamDLQ captures the delivery consumer's MAX_DELIVERIES and MSG_TERMINATED
	// advisories, holds the dead-letter records written from them, and queues replay
	// requests.
	StreamDLQ = "DLQ"
	// DeadLetterSubjectPrefix is followed by tenant and event id:
	// dlq.<tenantId>.<eventId> holds that event's dead letters.
	DeadLetterSubjectPrefix = "dlq."
	// ReplaySubjectPrefix is followed by the tenant id: replay.<tenantId> carries the
	// replay requests of the tenant API.
	ReplaySubjectPrefix = "replay."
	// ConsumerDLQ is the durable pull consumer of the DLQ processor: advisories and
	// replay requests, never the dead letters themselves.
	ConsumerDLQ = "dlq"
	// StreamParked holds the parked copies of events that wait long (a retry far off,
	// or a parked endpoint) outside the delivery consumer, each scheduled by the server
	// to come back when its next attempt is due: it then publishes the copy on
	// due.<tenantId>, which EVENTS sources as events.<tenantId>. (A stream that
	// sources others cannot schedule messages, so the copies cannot live in EVENTS.)
	StreamParked = "PARKED"
	// ParkedSubjectPrefix is followed by endpoint key, tenant and event id:
	// parked.<endpoint>.<tenantId>.<eventId> holds one event's parked copy (see
	// ParkedSubject); the worker brings it back sooner when the endpoint recovers.
	ParkedSubjectPrefix = "parked."
	// DueSubjectPrefix is followed by the tenant id: due.<tenantId> on PARKED is where a
	// copy's schedule publishes it, on its way to EVENTS.
	DueSubjectPrefix = "due."
)

// The advisories the server publishes for the delivery consumer, captured by StreamDLQ.
const (
	// AdvisoryMaxDeliveries is published when an event reached MaxDeliver.
	AdvisoryMaxDeliveries = "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES." + StreamEvents + "." + ConsumerDeliver
	// AdvisoryTerminated is published when a worker terminated an event (410, no config).
	AdvisoryTerminated = "$JS.EVENT.ADVISORY.CONSUMER.MSG_TERMINATED." + StreamEvents + "." + ConsumerDeliver
)

// Message headers carried by events on EVENTS and by verified webhooks on RECEIVED.
const (
	HeaderEventID    = "Edgehook-Event-Id"
	HeaderTenant     = "Edgehook-Tenant"
	HeaderEventType  = "Edgehook-Event-Type"
	HeaderIngestTime = "Edgehook-Ingest-Time" // unix nanoseconds, decimal
	HeaderVerifyTime = "Edgehook-Verify-Time" // unix nanoseconds, decimal
	// HeaderReplay marks a replayed event: how many times it has been replayed
	// (absent on the original).
	HeaderReplay = "Edgehook-Replay"
	// HeaderPriorAttempts is the number of attempts the event's attempt log held when it
	// was replayed; the replay's attempts are logged after them.
	HeaderPriorAttempts = "Edgehook-Prior-Attempts"
	// HeaderAttempts is how many attempts of the event's budget (MaxDeliver) were spent
	// before this message: absent (0) on an original or a replay, set on an event
	// brought back from parking, so its attempts count on from there.
	HeaderAttempts = "Edgehook-Attempts"
	// HeaderParkedFrom is the EVENTS sequence of the message a parked copy was made
	// from; a copy whose event has moved on since (its status names a later message)
	// is stale and dropped.
	HeaderParkedFrom = "Edgehook-Parked-From"
	// HeaderParkedAttempts is, on the parked copy of an event whose endpoint is parked,
	// the attempts it had made when it was parked; it counts on from there when the
	// worker brings it back early. (That copy's HeaderAttempts is MaxDeliver-1 and it is
	// scheduled for the event's last attempt: when the schedule fires, one attempt is
	// left.)
	HeaderParkedAttempts = "Edgehook-Parked-Attempts"
	// HeaderDue is when a parked copy is scheduled to come back (unix nanoseconds).
	HeaderDue = "Edgehook-Due"
	// HeaderProbe marks an event brought back early to probe its parked endpoint
	// (the endpoint key): it is attempted although the endpoint is parked.
	HeaderProbe = "Edgehook-Probe"
	// HeaderScheduler is set by the server on a message its scheduler published: a
	// parked copy that came due.
	HeaderScheduler = "Nats-Scheduler"
)

// ReasonAttemptsExhausted is the reason a worker terminates an event with once its
// attempt budget is spent over more than one message (after parking), where the
// consumer's own MaxDeliver cannot see it; the DLQ processor records such an event as
// it records MAX_DELIVERIES.
const ReasonAttemptsExhausted = "attempts exhausted"

// EventSubject is the subject an event of tenantID is published on.
func EventSubject(tenantID string) string { return EventsSubjectPrefix + tenantID }

// ReceivedSubject is the subject a verified webhook for tenantID is published on.
func ReceivedSubject(tenantID string) string { return ReceivedSubjectPrefix + tenantID }

// DeadLetterSubject is the subject of the dead letters of tenantID's event eventID.
func DeadLetterSubject(tenantID, eventID string) string {
	return DeadLetterSubjectPrefix + tenantID + "." + eventID
}

// ReplaySubject is the subject a replay request of tenantID is published on.
func ReplaySubject(tenantID string) string { return ReplaySubjectPrefix + tenantID }

// DueSubject is where the schedule of a parked copy of tenantID's event publishes it.
func DueSubject(tenantID string) string { return DueSubjectPrefix + tenantID }

// ParkedSubject is the subject of the parked copy of tenantID's event eventID whose
// endpoint has the key endpoint. One copy per event and endpoint: parking the event
// again replaces its schedule.
func ParkedSubject(endpoint, tenantID, eventID string) string {
	return ParkedSubjectPrefix + endpoint + "." + tenantID + "." + eventID
}

// ParkedFilter is the subject filter of every parked copy of endpoint's events.
func ParkedFilter(endpoint string) string { return ParkedSubjectPrefix + endpoint + ".>" }

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
	// RetrySchedule is the delay after failed attempt n, RetrySchedule[min(n-1,
	// len-1)]. The consumer's BackOff follows it (see BackOff), so an attempt whose
	// worker died is retried on the same schedule as one that failed.
	RetrySchedule []time.Duration
	// MaxAckPending bounds the events the delivery consumer has handed out and not
	// settled, across all workers: attempts in flight, events waiting for their
	// tenant's cap, and short-term retries (a delayed nak keeps a message pending
	// until its retry). Events of a parked endpoint are not among them: they wait
	// outside the consumer, as parked copies (see ParkedSubject). When the bound is
	// reached, no worker gets new events until some settle.
	MaxAckPending int
	// DeadLetterRetention is how long DLQ keeps dead letters (and the advisories and
	// replay requests it captured); at least Retention, so a dead letter outlives its
	// event.
	DeadLetterRetention time.Duration
}

// DefaultRetrySchedule returns the Standard Webhooks schedule: the delays after failed
// attempts 1..7 (the first attempt is immediate): 5s, 5m, 30m, 2h, 5h, 10h, 10h.
func DefaultRetrySchedule() []time.Duration {
	return []time.Duration{
		5 * time.Second, 5 * time.Minute, 30 * time.Minute,
		2 * time.Hour, 5 * time.Hour, 10 * time.Hour, 10 * time.Hour,
	}
}

// DefaultMaxAckPending is the default bound of unsettled events. Measured (the
// fairness bench and TestParkingDeadEndpointDoesNotStallOthers): parked events never
// count; one worker holds at most its tenants' waiting queues (MaxWaiting, 10,000),
// its concurrency in flight and its pull buffer (256 each), about 10,500 in a recovery
// burst, plus retries due within a minute. 50,000 leaves that room for up to four
// workers; size it as workers × (MaxWaiting + 2 × concurrency) + 10,000 (README).
const DefaultMaxAckPending = 50000

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
		RetrySchedule:           DefaultRetrySchedule(),
		MaxAckPending:           DefaultMaxAckPending,
		DeadLetterRetention:     30 * 24 * time.Hour,
	}
}

// AckWait is the least ack wait of the delivery consumer: the HTTP timeout plus
// AckWaitMargin. Every BackOff entry is at least this.
func (t Topology) AckWait() time.Duration { return t.HTTPTimeout + AckWaitMargin }

// BackOff returns the consumer BackOff that follows schedule for a consumer with
// maxDeliver deliveries: entry i is how long the server waits for an ack of delivery
// i+1 before redelivering it, max(schedule[min(i, len-1)], floor). Trailing repeats are
// dropped (the server reuses the last entry), so the result has 1..maxDeliver entries.
// Both Setup and the worker's startup check derive it here, so they cannot disagree.
func BackOff(schedule []time.Duration, maxDeliver int, floor time.Duration) []time.Duration {
	if len(schedule) == 0 || maxDeliver < 1 {
		return nil
	}
	out := make([]time.Duration, maxDeliver)
	for i := range out {
		out[i] = max(schedule[min(i, len(schedule)-1)], floor)
	}
	for len(out) > 1 && out[len(out)-1] == out[len(out)-2] {
		out = out[:len(out)-1]
	}
	return out
}

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
	case len(t.RetrySchedule) == 0:
		return errors.New("retry schedule must not be empty")
	case t.MaxAckPending < 1:
		return fmt.Errorf("max ack pending must be at least 1, got %d", t.MaxAckPending)
	case t.DeadLetterRetention < t.Retention:
		return fmt.Errorf("dead letter retention must be at least the retention %s, got %s", t.Retention, t.DeadLetterRetention)
	}
	for i, d := range t.RetrySchedule {
		if d < 0 {
			return fmt.Errorf("retry schedule entry %d is negative: %s", i+1, d)
		}
	}
	if b := t.Budget(); b >= t.Retention {
		return fmt.Errorf("retention %s must exceed the %s an event's attempts can take (retry schedule over max deliver), or parked events would expire before their last attempt", t.Retention, b)
	}
	return nil
}

// Budget is the longest an event's attempts can take: the retry delays after attempts
// 1 .. MaxDeliver-1 added up (jitter aside).
func (t Topology) Budget() time.Duration {
	return RemainingBudget(t.RetrySchedule, t.MaxDeliver, 1)
}

// RemainingBudget is how long after failed attempt n the last of maxDeliver attempts
// is due: the schedule's delays after attempts n .. maxDeliver-1 added up.
func RemainingBudget(schedule []time.Duration, maxDeliver, n int) time.Duration {
	var d time.Duration
	for i := max(n, 1); i < maxDeliver && len(schedule) > 0; i++ {
		d += schedule[min(i-1, len(schedule)-1)]
	}
	return d
}

// EventsStream is the configuration of the EVENTS stream.
func (t Topology) EventsStream() jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        StreamEvents,
		Description: "accepted webhook events awaiting delivery",
		Subjects:    []string{EventsSubjectPrefix + "*"},
		Sources:     []*jetstream.StreamSource{ParkedSource()},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    t.Replicas,
		MaxAge:      t.Retention,
		Duplicates:  t.DuplicateWindow,
		Discard:     jetstream.DiscardOld,
		// POST /v1/events/batch stores its events in one atomic batch.
		AllowAtomicPublish: true,
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

// StatusBucket is the configuration of the event status key-value bucket, which also
// holds the attempt log.
func (t Topology) StatusBucket() jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket:      BucketStatus,
		Description: "delivery status of each event, keyed <tenantId>.<eventId>; its attempts, keyed <tenantId>.<eventId>.<n>",
		History:     1,
		TTL:         t.Retention,
		Storage:     jetstream.FileStorage,
		Replicas:    t.Replicas,
	}
}

// ParkedSource is the source of EVENTS that takes in parked copies as they come due:
// due.<tenantId> on PARKED becomes events.<tenantId>, headers kept.
func ParkedSource() *jetstream.StreamSource {
	return &jetstream.StreamSource{
		Name: StreamParked,
		SubjectTransforms: []jetstream.SubjectTransformConfig{{
			Source: DueSubjectPrefix + "*", Destination: EventsSubjectPrefix + "{{wildcard(1)}}",
		}},
	}
}

// ParkedStream is the configuration of the PARKED stream: one copy per subject, each
// scheduled; workers read copies back by subject (direct get).
func (t Topology) ParkedStream() jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:              StreamParked,
		Description:       "parked copies of events waiting long for their next attempt, and the copies that came due on their way to EVENTS",
		Subjects:          []string{ParkedSubjectPrefix + "*.*.*", DueSubjectPrefix + "*"},
		Retention:         jetstream.LimitsPolicy,
		Storage:           jetstream.FileStorage,
		Replicas:          t.Replicas,
		MaxAge:            t.Retention,
		Discard:           jetstream.DiscardOld,
		AllowMsgSchedules: true,
		AllowDirect:       true,
	}
}

// DeliverConsumer is the configuration of the workers' durable pull consumer. Its
// BackOff follows the retry schedule (see BackOff) and its AckWait is the first entry,
// as the server would set it.
func (t Topology) DeliverConsumer() jetstream.ConsumerConfig {
	backOff := BackOff(t.RetrySchedule, t.MaxDeliver, t.AckWait())
	ackWait := t.AckWait()
	if len(backOff) > 0 {
		ackWait = backOff[0]
	}
	return jetstream.ConsumerConfig{
		Durable:       ConsumerDeliver,
		Description:   "webhook delivery workers",
		FilterSubject: EventsSubjectPrefix + "*",
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       ackWait,
		BackOff:       backOff,
		MaxDeliver:    t.MaxDeliver,
		MaxAckPending: t.MaxAckPending,
		MaxWaiting:    512,
		Replicas:      t.Replicas,
	}
}

// DLQStream is the configuration of the DLQ stream: the delivery consumer's
// MAX_DELIVERIES and MSG_TERMINATED advisories, dead letters on dlq.<tenantId>.<eventId>
// and replay requests on replay.<tenantId>, kept for DeadLetterRetention.
func (t Topology) DLQStream() jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        StreamDLQ,
		Description: "dead letters of events that exhausted their attempts or were terminated, the advisories that produced them, and replay requests",
		Subjects: []string{
			AdvisoryMaxDeliveries, AdvisoryTerminated,
			DeadLetterSubjectPrefix + "*.*", ReplaySubjectPrefix + "*",
		},
		Retention:  jetstream.LimitsPolicy,
		Storage:    jetstream.FileStorage,
		Replicas:   t.Replicas,
		MaxAge:     t.DeadLetterRetention,
		Duplicates: t.DuplicateWindow,
		Discard:    jetstream.DiscardOld,
	}
}

// DLQAckWait is the DLQ processor's ack wait for one advisory or replay request.
const DLQAckWait = 30 * time.Second

// DLQConsumer is the configuration of the DLQ processor's durable pull consumer: the
// advisories and replay requests, redelivered without limit until processed.
func (t Topology) DLQConsumer() jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:        ConsumerDLQ,
		Description:    "DLQ processor: dead-letters advisories, executes replay requests",
		DeliverPolicy:  jetstream.DeliverAllPolicy,
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        DLQAckWait,
		MaxDeliver:     -1,
		MaxAckPending:  1000,
		FilterSubjects: []string{AdvisoryMaxDeliveries, AdvisoryTerminated, ReplaySubjectPrefix + "*"},
		Replicas:       t.Replicas,
	}
}

// Setup creates or updates every stream, bucket and consumer of the topology. It is
// idempotent: running it against an existing deployment changes only what differs.
func Setup(ctx context.Context, js jetstream.JetStream, t Topology) error {
	if err := t.Validate(); err != nil {
		return fmt.Errorf("natsconf: %w", err)
	}
	for _, sc := range []jetstream.StreamConfig{t.ParkedStream(), t.EventsStream(), t.ReceivedStream(), t.DLQStream()} {
		// EVENTS keeps the edges `setup nats --edge` added.
		if existing, err := js.Stream(ctx, sc.Name); err == nil && sc.Name == StreamEvents {
			for _, src := range existing.CachedInfo().Config.Sources {
				if src != nil && src.Name != StreamParked {
					sc.Sources = append(sc.Sources, src)
				}
			}
		} else if err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
			return fmt.Errorf("natsconf: stream %s: %w", sc.Name, err)
		}
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
	if _, err := js.CreateOrUpdateConsumer(ctx, StreamDLQ, t.DLQConsumer()); err != nil {
		return fmt.Errorf("natsconf: consumer %s: %w", ConsumerDLQ, err)
	}
	return nil
}
