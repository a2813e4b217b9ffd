package dlq

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/edgehook/edgehook/natsconf"
)

// Filter selects dead letters.
type Filter struct {
	// TenantID limits the scan to one tenant ("" for all).
	TenantID string
	// Since skips dead letters written before it (zero for all).
	Since time.Time
}

// subject is the DLQ subject filter of f.
func (f Filter) subject() string {
	if f.TenantID != "" {
		return natsconf.DeadLetterSubjectPrefix + f.TenantID + ".*"
	}
	return natsconf.DeadLetterSubjectPrefix + "*.*"
}

// Scan calls fn with every dead letter on DLQ that f selects, oldest first, reading
// one message at a time (by sequence, so it needs no consumer). It stops at the first
// error of fn.
func Scan(ctx context.Context, dlq jetstream.Stream, f Filter, fn func(DeadLetter) error) error {
	subject := f.subject()
	var seq uint64 = 1
	for {
		m, err := dlq.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(subject))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("dlq: scan from seq %d: %w", seq, err)
		}
		seq = m.Sequence + 1
		if !f.Since.IsZero() && m.Time.Before(f.Since) {
			continue
		}
		d, err := ParseDeadLetter(m)
		if err != nil {
			continue // not written by a processor; nothing to replay
		}
		if err := fn(d); err != nil {
			return err
		}
	}
}

// Get returns the dead letter at sequence seq of DLQ.
func Get(ctx context.Context, dlq jetstream.Stream, seq uint64) (DeadLetter, error) {
	m, err := dlq.GetMsg(ctx, seq)
	if err != nil {
		return DeadLetter{}, fmt.Errorf("dlq: get seq %d: %w", seq, err)
	}
	return ParseDeadLetter(m)
}
