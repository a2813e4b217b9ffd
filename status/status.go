// Package status records the delivery status of each event in the `status` key-value
// bucket, keyed <tenantId>.<eventId>, and its attempt log beside it, one entry per
// attempt keyed <tenantId>.<eventId>.<n>, so the owning tenant can read both through
// the API and operators through the nats CLI.
package status

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/edgehook/edgehook/natsconf"
)

// Event states.
const (
	Queued    = "queued"
	Retrying  = "retrying"
	Delivered = "delivered"
	Failed    = "failed"
)

// ErrNotFound is returned for an event with no status record (unknown, expired, or
// another tenant's).
var ErrNotFound = errors.New("status: event not found")

// ErrConflict is returned by Update when the record changed since the revision the
// caller read (or, for a create, when it exists).
var ErrConflict = errors.New("status: record changed concurrently")

// Record is the status of one event.
type Record struct {
	EventID        string    `json:"eventId"`
	TenantID       string    `json:"tenantId"`
	Type           string    `json:"type,omitempty"`
	Status         string    `json:"status"`
	Attempts       int       `json:"attempts"`
	LastStatusCode int       `json:"lastStatusCode,omitempty"`
	LastError      string    `json:"lastError,omitempty"`
	CreatedAt      time.Time `json:"createdAt"`
	UpdatedAt      time.Time `json:"updatedAt"`
	// Seq is the EVENTS stream sequence of the message this record describes: the
	// original, or the latest replay (0 until a worker or replay wrote it).
	Seq uint64 `json:"seq,omitempty"`
	// TotalAttempts is the index in the attempt log of the latest attempt, counted
	// across replays (Attempts restarts at each replay).
	TotalAttempts int `json:"totalAttempts,omitempty"`
	// Replays is how many times the event has been replayed.
	Replays int `json:"replays,omitempty"`
	// LastAttempt is the latest attempt when it is not in the attempt log yet: a
	// delivery writes only its status record (one write on the hot path), and the
	// attempt joins the log when the event is replayed. See Store.Attempts.
	LastAttempt *Attempt `json:"lastAttempt,omitempty"`
}

// Key is the bucket key of an event's record.
func Key(tenantID, eventID string) string { return tenantID + "." + eventID }

// subject is the raw KV subject of an event's record in the status bucket.
func subject(tenantID, eventID string) string {
	return bucketSubject(natsconf.BucketStatus, tenantID, eventID)
}

// bucketSubject is the raw KV subject of an event's record in bucket.
func bucketSubject(bucket, tenantID, eventID string) string {
	return "$KV." + bucket + "." + tenantID + "." + eventID // one allocation
}

// QueuedMsg returns the message that records rec as queued, to be published
// alongside the event itself (so both acks can be awaited together). It only creates:
// if a worker has already written a later state, the server rejects it, which the
// caller may ignore.
func QueuedMsg(rec Record) (*nats.Msg, error) {
	m := &nats.Msg{Header: make(nats.Header, 1)}
	if err := FillQueuedMsg(m, rec); err != nil {
		return nil, err
	}
	return m, nil
}

// IsAlreadyWritten reports whether err is the rejection of a QueuedMsg because a
// record already exists.
func IsAlreadyWritten(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// PutMsg returns the message that writes rec unconditionally, for callers that
// publish it asynchronously next to other writes (see AttemptMsg) and await the acks
// together. Its effect is Store.Put's.
func PutMsg(rec Record) (*nats.Msg, error) {
	b, err := encodeRecord(make([]byte, 0, recordBufSize), rec)
	if err != nil {
		return nil, err
	}
	m := nats.NewMsg(subject(rec.TenantID, rec.EventID))
	m.Data = b
	return m, nil
}

// Store reads and writes status records.
type Store struct {
	mu   sync.Mutex
	kv   jetstream.KeyValue
	bind func(context.Context) (jetstream.KeyValue, error)
}

// NewStore returns a Store on the status bucket kv.
func NewStore(kv jetstream.KeyValue) *Store { return &Store{kv: kv} }

// NewLazyStore returns a Store on the bucket bind returns, called at the first use and
// again at each use until it succeeds. An edge gateway reads the hub's statuses
// through one, so it starts, and keeps serving, while the hub cannot be reached.
func NewLazyStore(bind func(context.Context) (jetstream.KeyValue, error)) *Store {
	return &Store{bind: bind}
}

// bucket returns the store's bucket, binding it if need be.
func (s *Store) bucket(ctx context.Context) (jetstream.KeyValue, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.kv == nil {
		kv, err := s.bind(ctx)
		if err != nil {
			return nil, fmt.Errorf("status: bucket: %w", err)
		}
		s.kv = kv
	}
	return s.kv, nil
}

// Put writes rec, replacing any earlier state.
func (s *Store) Put(ctx context.Context, rec Record) error {
	b, err := encodeRecord(nil, rec)
	if err != nil {
		return err
	}
	kv, err := s.bucket(ctx)
	if err != nil {
		return err
	}
	if _, err := kv.Put(ctx, Key(rec.TenantID, rec.EventID), b); err != nil {
		return fmt.Errorf("status: put %s: %w", rec.EventID, err)
	}
	return nil
}

// Get returns the record of tenantID's event eventID.
func (s *Store) Get(ctx context.Context, tenantID, eventID string) (Record, error) {
	r, _, err := s.Entry(ctx, tenantID, eventID)
	return r, err
}

// Entry returns the record of tenantID's event eventID and its revision, for Update.
func (s *Store) Entry(ctx context.Context, tenantID, eventID string) (Record, uint64, error) {
	if !validToken(tenantID) || !validToken(eventID) {
		return Record{}, 0, ErrNotFound
	}
	kv, err := s.bucket(ctx)
	if err != nil {
		return Record{}, 0, err
	}
	e, err := kv.Get(ctx, Key(tenantID, eventID))
	if err != nil {
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return Record{}, 0, ErrNotFound
		}
		return Record{}, 0, fmt.Errorf("status: get %s: %w", eventID, err)
	}
	var r Record
	if err := json.Unmarshal(e.Value(), &r); err != nil {
		return Record{}, 0, fmt.Errorf("status: decode %s: %w", eventID, err)
	}
	return r, e.Revision(), nil
}

// Update writes rec only if its record is still at revision (from Entry); revision 0
// writes only if there is no record. Otherwise it returns ErrConflict and writes
// nothing, so a writer never overwrites a state it has not seen.
func (s *Store) Update(ctx context.Context, rec Record, revision uint64) error {
	b, err := encodeRecord(nil, rec)
	if err != nil {
		return err
	}
	kv, err := s.bucket(ctx)
	if err != nil {
		return err
	}
	key := Key(rec.TenantID, rec.EventID)
	if revision == 0 {
		_, err = kv.Create(ctx, key, b)
	} else {
		_, err = kv.Update(ctx, key, b, revision)
	}
	switch {
	case errors.Is(err, jetstream.ErrKeyExists), errors.Is(err, jetstream.ErrKeyRevisionMismatch):
		return fmt.Errorf("%w: %s", ErrConflict, rec.EventID)
	case err != nil:
		return fmt.Errorf("status: update %s: %w", rec.EventID, err)
	}
	return nil
}

// validToken reports whether s can be one token of a KV key (no dots, wildcards or
// spaces), so a crafted id cannot address another tenant's records.
func validToken(s string) bool {
	if len(s) == 0 || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
