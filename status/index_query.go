package status

import (
	"context"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// MaxIndexPage is the largest page List returns.
const MaxIndexPage = 1000

// IndexQuery selects a page of a tenant's events. Empty Status and Type match every
// event; Cursor is the Next of the previous page ("" for the newest).
type IndexQuery struct {
	Status string
	Type   string
	Cursor string
	Limit  int
}

// IndexEntry is one event of a page.
type IndexEntry struct {
	EventID        string
	Type           string
	Status         string
	Attempts       int
	LastStatusCode int
	CreatedAt      time.Time
	UpdatedAt      time.Time
}

// IndexPage is one page of events, newest first. Next is the cursor of the following
// (older) page, "" on the last; Truncated says the tenant has events older than the
// index holds (see IndexConfig.MaxEvents), which no page lists.
type IndexPage struct {
	Entries   []IndexEntry
	Next      string
	Truncated bool
}

// List returns one page of tenantID's events matching q, newest first by CreatedAt
// (ties by event id), starting its index if need be. A malformed cursor or status is
// an error wrapping ErrIndexInvalid.
func (ix *Index) List(ctx context.Context, tenantID string, q IndexQuery) (IndexPage, error) {
	if q.Status != "" && !knownStatus(q.Status) {
		return IndexPage{}, fmt.Errorf("%w: unknown status %q", ErrIndexInvalid, q.Status)
	}
	if q.Limit <= 0 || q.Limit > MaxIndexPage {
		return IndexPage{}, fmt.Errorf("%w: page size %d must be between 1 and %d", ErrIndexInvalid, q.Limit, MaxIndexPage)
	}
	from, fromID, hasCursor, err := decodeCursor(q.Cursor)
	if err != nil {
		return IndexPage{}, err
	}
	t, err := ix.tenant(ctx, tenantID)
	if err != nil {
		return IndexPage{}, err
	}
	t.mu.RLock()
	defer t.mu.RUnlock()
	page := IndexPage{Truncated: t.truncated}
	i := len(t.order) - 1
	if hasCursor {
		i = t.position(from, fromID) - 1 // the newest entry strictly older than the cursor
	}
	var last *entry
	for ; i >= 0; i-- {
		e := t.order[i]
		if (q.Status != "" && e.status != q.Status) || (q.Type != "" && e.typ != q.Type) {
			continue
		}
		if len(page.Entries) == q.Limit {
			page.Next = encodeCursor(last.created, last.id)
			break
		}
		page.Entries = append(page.Entries, e.public())
		last = e
	}
	return page, nil
}

func (e *entry) public() IndexEntry {
	return IndexEntry{EventID: e.id, Type: e.typ, Status: e.status, Attempts: int(e.attempts),
		LastStatusCode: int(e.code), CreatedAt: fromNanos(e.created), UpdatedAt: fromNanos(e.updated)}
}

// fromNanos is the time of Unix nanoseconds n; 0 is the zero time.
func fromNanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

func knownStatus(s string) bool {
	return s == Queued || s == Retrying || s == Delivered || s == Failed
}

// cursorVersion starts every cursor, so the format can change without old links
// being misread.
const cursorVersion = "1"

// encodeCursor names a position in the order: the CreatedAt and id of the last entry
// shown. It is opaque to users (base64url), not an offset, so new events do not
// shift the pages after it.
func encodeCursor(created int64, id string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(cursorVersion + "." + strconv.FormatInt(created, 10) + "." + id))
}

func decodeCursor(c string) (created int64, id string, ok bool, err error) {
	if c == "" {
		return 0, "", false, nil
	}
	bad := fmt.Errorf("%w: the page cursor is not valid", ErrIndexInvalid)
	if len(c) > 256 {
		return 0, "", false, bad
	}
	raw, derr := base64.RawURLEncoding.DecodeString(c)
	if derr != nil {
		return 0, "", false, bad
	}
	parts := strings.SplitN(string(raw), ".", 3)
	if len(parts) != 3 || parts[0] != cursorVersion || !validToken(parts[2]) {
		return 0, "", false, bad
	}
	created, perr := strconv.ParseInt(parts[1], 10, 64)
	if perr != nil {
		return 0, "", false, bad
	}
	return created, parts[2], true, nil
}

// StepCounts are a tenant's counts of one step of a window: events created in it,
// and events whose latest update in it left them delivered or failed.
type StepCounts struct {
	At        time.Time
	Created   int
	Delivered int
	Failed    int
}

// Outcomes returns tenantID's counts per step over the window before now, oldest
// first, from the index (an event counts once, in the step of its latest update).
func (ix *Index) Outcomes(ctx context.Context, tenantID string, now time.Time, window, step time.Duration) ([]StepCounts, error) {
	if step <= 0 || window < step || window/step > 10_000 {
		return nil, fmt.Errorf("%w: window %s and step %s", ErrIndexInvalid, window, step)
	}
	t, err := ix.tenant(ctx, tenantID)
	if err != nil {
		return nil, err
	}
	n := int(window / step)
	start := now.Truncate(step).Add(-time.Duration(n-1) * step)
	out := make([]StepCounts, n)
	for i := range out {
		out[i].At = start.Add(time.Duration(i) * step)
	}
	s0, st, end := start.UnixNano(), int64(step), start.Add(time.Duration(n)*step).UnixNano()
	slot := func(at int64) int {
		if at < s0 || at >= end {
			return -1
		}
		return int((at - s0) / st)
	}
	t.mu.RLock()
	defer t.mu.RUnlock()
	for _, e := range t.order {
		if i := slot(e.created); i >= 0 {
			out[i].Created++
		}
		i := slot(e.updated)
		if i < 0 {
			continue
		}
		switch e.status {
		case Delivered:
			out[i].Delivered++
		case Failed:
			out[i].Failed++
		}
	}
	return out, nil
}
