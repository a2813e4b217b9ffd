// Package status records the delivery status of each event in the `status` key-value
// bucket, keyed <tenantId>.<eventId>, so the owning tenant can read it through the API
// and operators through the nats CLI.
package status

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
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
}

// Key is the bucket key of an event's record.
func Key(tenantID, eventID string) string { return tenantID + "." + eventID }

// subject is the raw KV subject of an event's record.
func subject(tenantID, eventID string) string {
	return "$KV." + natsconf.BucketStatus + "." + Key(tenantID, eventID)
}

// QueuedMsg returns the message that records rec as queued, to be published
// alongside the event itself (so both acks can be awaited together). It only creates:
// if a worker has already written a later state, the server rejects it, which the
// caller may ignore.
func QueuedMsg(rec Record) (*nats.Msg, error) {
	rec.Status = Queued
	b, err := json.Marshal(rec)
	if err != nil {
		return nil, fmt.Errorf("status: encode: %w", err)
	}
	m := nats.NewMsg(subject(rec.TenantID, rec.EventID))
	m.Data = b
	m.Header.Set(jetstream.ExpectedLastSubjSeqHeader, "0")
	return m, nil
}

// IsAlreadyWritten reports whether err is the rejection of a QueuedMsg because a
// record already exists.
func IsAlreadyWritten(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// Store reads and writes status records.
type Store struct {
	kv jetstream.KeyValue
}

// NewStore returns a Store on the status bucket kv.
func NewStore(kv jetstream.KeyValue) *Store { return &Store{kv: kv} }

// Put writes rec, replacing any earlier state.
func (s *Store) Put(ctx context.Context, rec Record) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("status: encode: %w", err)
	}
	if _, err := s.kv.Put(ctx, Key(rec.TenantID, rec.EventID), b); err != nil {
		return fmt.Errorf("status: put %s: %w", rec.EventID, err)
	}
	return nil
}

// Get returns the record of tenantID's event eventID.
func (s *Store) Get(ctx context.Context, tenantID, eventID string) (Record, error) {
	if !validToken(tenantID) || !validToken(eventID) {
		return Record{}, ErrNotFound
	}
	e, err := s.kv.Get(ctx, Key(tenantID, eventID))
	if err != nil {
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return Record{}, ErrNotFound
		}
		return Record{}, fmt.Errorf("status: get %s: %w", eventID, err)
	}
	var r Record
	if err := json.Unmarshal(e.Value(), &r); err != nil {
		return Record{}, fmt.Errorf("status: decode %s: %w", eventID, err)
	}
	return r, nil
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
