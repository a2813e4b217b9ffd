package identity

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
)

// Bounds of ListTenants.
const (
	// MaxListLimit is the largest page ListTenants returns.
	MaxListLimit = 500
	// MaxListExamined bounds the tenant records one ListTenants call reads, so a
	// query that matches few tenants cannot make one page read the whole bucket: the
	// page then ends early with a Next to continue from.
	MaxListExamined = 5000
)

// TenantList is one page of tenants, in the order their records were last written
// (creation, or the latest status or plan change). Next is the cursor of the following
// page, 0 on the last one.
type TenantList struct {
	Tenants []Tenant
	Next    uint64
}

// ListQuery selects a page of tenants.
type ListQuery struct {
	// Match is a substring of the tenant id, plan or status ("" matches all).
	Match string
	// After is the Next of the previous page (0 for the first page).
	After uint64
	// Limit is the page size, 1 to MaxListLimit.
	Limit int
	// Examine bounds the records read for the page (0 or more than MaxListExamined:
	// MaxListExamined).
	Examine int
}

// matches reports whether t is selected by the query's Match.
func (q ListQuery) matches(t Tenant) bool {
	return q.Match == "" || strings.Contains(t.TenantID, q.Match) || strings.Contains(t.Plan, q.Match) ||
		strings.Contains(t.Status, q.Match)
}

// ListTenants returns one page of tenant records, read through an ordered consumer on
// the bucket's tenant keys that starts at the cursor (a bucket revision: the bucket
// keeps one revision per key, so each tenant is read once, at its latest record). It
// reads at most Examine records, so a page of a narrow query may hold fewer
// than Limit tenants and still have a Next. A tenant changed between two pages moves
// to the end of the order and may be listed again on a later page.
func (s *Store) ListTenants(ctx context.Context, q ListQuery) (TenantList, error) {
	if q.Limit < 1 || q.Limit > MaxListLimit {
		return TenantList{}, fmt.Errorf("identity: list limit %d must be between 1 and %d", q.Limit, MaxListLimit)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	opts := []jetstream.WatchOpt{jetstream.IncludeHistory(), jetstream.IgnoreDeletes()}
	if q.After > 0 {
		opts = append(opts, jetstream.ResumeFromRevision(q.After))
	}
	w, err := s.kv.Watch(ctx, tenantPrefix+"*", opts...)
	if err != nil {
		return TenantList{}, fmt.Errorf("identity: list tenants: %w", err)
	}
	defer w.Stop()
	examine := q.Examine
	if examine <= 0 || examine > MaxListExamined {
		examine = MaxListExamined
	}
	var out TenantList
	for examined := 1; ; examined++ {
		var e jetstream.KeyValueEntry
		select {
		case <-ctx.Done():
			return TenantList{}, fmt.Errorf("identity: list tenants: %w", ctx.Err())
		case u, ok := <-w.Updates():
			if !ok {
				return TenantList{}, errors.New("identity: list tenants: the watch closed")
			}
			e = u
		}
		if e == nil { // every record from the cursor on has been read
			return out, nil
		}
		var t Tenant
		if err := json.Unmarshal(e.Value(), &t); err != nil {
			return TenantList{}, fmt.Errorf("identity: decode tenant %s: %w", e.Key(), err)
		}
		if q.matches(t) {
			out.Tenants = append(out.Tenants, t)
		}
		if e.Delta() == 0 { // the last record
			return out, nil
		}
		if len(out.Tenants) == q.Limit || examined == examine {
			out.Next = e.Revision() + 1
			return out, nil
		}
	}
}
