package dlq

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
)

// Bounds of Page.
const (
	// MaxPageLimit is the largest page Page returns.
	MaxPageLimit = 500
	// DefaultPageReads bounds the messages one Page call reads (0 in PageQuery.Reads),
	// so a narrow filter cannot make one page read the whole stream: the page then
	// ends early with a Before to continue from.
	DefaultPageReads = 250
)

// PageQuery selects one page of dead letters, newest first.
type PageQuery struct {
	// TenantID limits the page to one tenant ("" for all).
	TenantID string
	// Reason keeps the dead letters whose reason contains it ("" for all).
	Reason string
	// Before is the DLQ sequence the page starts below: a previous page's Next, or 0
	// for the newest.
	Before uint64
	// Limit is the page size, 1 to MaxPageLimit.
	Limit int
	// Reads bounds the messages read for the page (0: DefaultPageReads).
	Reads int
}

// DeadLetterPage is one page of dead letters, newest first. Next is the Before of the
// following (older) page, 0 when nothing older is left.
type DeadLetterPage struct {
	DeadLetters []DeadLetter
	Next        uint64
}

// Page returns one page of the dead letters on dlq that q selects, newest first. It
// walks the stream backwards from q.Before in windows of sequences, reading each
// window forward by subject (so advisories, replay requests and other tenants' dead
// letters cost no read), and stops after q.Reads reads: a page of a narrow filter may
// then hold fewer than Limit dead letters and still have a Next. It needs only stream
// info and message gets, no consumer.
func Page(ctx context.Context, dlq jetstream.Stream, q PageQuery) (DeadLetterPage, error) {
	if q.Limit < 1 || q.Limit > MaxPageLimit {
		return DeadLetterPage{}, fmt.Errorf("dlq: page limit %d must be between 1 and %d", q.Limit, MaxPageLimit)
	}
	reads := q.Reads
	if reads <= 0 {
		reads = DefaultPageReads
	}
	reads = max(reads, 2)
	info, err := dlq.Info(ctx)
	if err != nil {
		return DeadLetterPage{}, fmt.Errorf("dlq: stream info: %w", err)
	}
	first, hi := info.State.FirstSeq, info.State.LastSeq
	if q.Before > 0 && q.Before-1 < hi {
		hi = q.Before - 1
	}
	if info.State.Msgs == 0 || hi < first {
		return DeadLetterPage{}, nil
	}
	subject := Filter{TenantID: q.TenantID}.subject()
	var out DeadLetterPage
	// Dead letters and their advisories alternate on DLQ, so a window of twice the
	// dead letters still wanted usually holds them; an empty window doubles the next.
	// The first window never needs more reads than the page may make, so it always
	// completes and every page makes progress.
	window := min(uint64(2*q.Limit), uint64(reads-1))
	for {
		if reads < 2 {
			out.Next = hi + 1
			return out, nil
		}
		lo := first
		if hi-first+1 > window {
			lo = hi - window + 1
		}
		found, complete, n, err := readWindow(ctx, dlq, subject, lo, hi, reads)
		if err != nil {
			return DeadLetterPage{}, err
		}
		reads -= n
		if !complete { // the reads ran out inside the window: the next page reads it
			out.Next = hi + 1
			return out, nil
		}
		// found is oldest first; the page wants the newest first.
		for i := len(found) - 1; i >= 0; i-- {
			d := found[i]
			if q.Reason != "" && !strings.Contains(d.Reason, q.Reason) {
				continue
			}
			if len(out.DeadLetters) == q.Limit {
				out.Next = out.DeadLetters[q.Limit-1].Seq
				return out, nil
			}
			out.DeadLetters = append(out.DeadLetters, d)
		}
		switch {
		case lo == first:
			return out, nil
		case len(out.DeadLetters) == q.Limit, reads < 2:
			out.Next = lo
			return out, nil
		case len(found) == 0:
			window *= 2
		}
		hi = lo - 1
	}
}

// readWindow reads the dead letters on subject with sequences lo to hi, oldest first,
// in at most reads reads. It reports whether it covered the whole window and how many
// reads it made.
func readWindow(ctx context.Context, dlq jetstream.Stream, subject string, lo, hi uint64, reads int) ([]DeadLetter, bool, int, error) {
	var found []DeadLetter
	for seq, n := lo, 0; ; {
		if seq > hi {
			return found, true, n, nil
		}
		if n == reads {
			return found, false, n, nil
		}
		m, err := dlq.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(subject))
		n++
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return found, true, n, nil
		}
		if err != nil {
			return nil, false, n, fmt.Errorf("dlq: read from seq %d: %w", seq, err)
		}
		if m.Sequence > hi {
			return found, true, n, nil
		}
		seq = m.Sequence + 1
		if d, err := ParseDeadLetter(m); err == nil {
			found = append(found, d)
		}
	}
}
