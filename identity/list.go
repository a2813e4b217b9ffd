package identity

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go"
)

// Bounds of ListTenants.
const (
	// MaxListLimit is the largest page ListTenants returns.
	MaxListLimit = 500
	// MaxListExamined bounds the records (of any kind: the bucket also holds key
	// records) one ListTenants call reads, so a query that matches few tenants cannot
	// make one page read the whole bucket: the page then ends early with a Next to
	// continue from.
	MaxListExamined = 1500
	// listBatch is the most records one batch read asks for.
	listBatch = 1000
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

// Lister lists the tenant records of an identity bucket with batched direct gets
// (the bucket's stream allows them), so a page costs one request and needs no
// consumer.
type Lister struct {
	nc     *nats.Conn
	api    string
	stream string
	prefix string // of the tenant records' subjects
}

// NewLister returns a Lister of bucket through nc and the local JetStream API.
func NewLister(nc *nats.Conn, bucket string) *Lister {
	return &Lister{nc: nc, api: "$JS.API", stream: "KV_" + bucket, prefix: "$KV." + bucket + "." + tenantPrefix}
}

// ListTenants returns one page of tenant records, reading the bucket's stream from the
// cursor (a stream sequence: the bucket keeps one revision per key, so each tenant is
// read once, at its latest record). It reads at most Examine records, so a page of a
// narrow query may hold fewer than Limit tenants and still have a Next. A tenant
// changed between two pages moves to the end of the order and may be listed again on
// a later page.
func (l *Lister) ListTenants(ctx context.Context, q ListQuery) (TenantList, error) {
	if q.Limit < 1 || q.Limit > MaxListLimit {
		return TenantList{}, fmt.Errorf("identity: list limit %d must be between 1 and %d", q.Limit, MaxListLimit)
	}
	examine := q.Examine
	if examine <= 0 || examine > MaxListExamined {
		examine = MaxListExamined
	}
	var out TenantList
	seq := max(q.After, 1)
	// A tenant has a tenant record, a key index and a key record (or more), so a
	// batch reads three records per row still wanted; with a query, twice that at
	// first and twice as many in each further batch.
	grow := 1
	for examined := 0; examined < examine; grow *= 2 {
		n := 3 * (q.Limit - len(out.Tenants))
		if q.Match != "" {
			n *= 2 * grow
		}
		n = min(n, examine-examined, listBatch)
		b, err := l.batch(ctx, seq, n)
		if err != nil {
			return TenantList{}, err
		}
		examined += b.read
		for i, r := range b.records {
			if r.deleted {
				continue
			}
			var t Tenant
			if err := json.Unmarshal(r.value, &t); err != nil {
				return TenantList{}, fmt.Errorf("identity: decode tenant record %d: %w", r.seq, err)
			}
			if !q.matches(t) {
				continue
			}
			out.Tenants = append(out.Tenants, t)
			if len(out.Tenants) == q.Limit {
				if i < len(b.records)-1 || b.pending > 0 {
					out.Next = r.seq + 1
				}
				return out, nil
			}
		}
		if b.pending == 0 || b.last == 0 {
			return out, nil
		}
		seq = b.last + 1
	}
	out.Next = seq
	return out, nil
}

// record is one message of a batch read.
type record struct {
	seq     uint64
	value   []byte
	deleted bool
}

// batchResult is the answer of one batch read: its tenant records, oldest first, how
// many records it read (of any kind), the last one's sequence, and how many records
// the stream holds after it.
type batchResult struct {
	records []record
	read    int
	last    uint64
	pending uint64
}

// batch reads the n records from sequence seq on with one batched direct get, whose
// answers end with an end-of-batch status message (or 404 when there are none), and
// keeps the tenant records. It reads every record rather than asking the server for
// tenant records only: stepping to the next message on a wildcard subject costs the
// server a scan of the block's subjects each time, reading the next one costs nothing.
func (l *Lister) batch(ctx context.Context, seq uint64, n int) (batchResult, error) {
	inbox := l.nc.NewInbox()
	sub, err := l.nc.SubscribeSync(inbox)
	if err != nil {
		return batchResult{}, fmt.Errorf("identity: list tenants: %w", err)
	}
	defer sub.Unsubscribe()
	req, err := json.Marshal(struct {
		Seq   uint64 `json:"seq"`
		Batch int    `json:"batch"`
	}{seq, n})
	if err != nil {
		return batchResult{}, err
	}
	if err := l.nc.PublishRequest(l.api+".DIRECT.GET."+l.stream, inbox, req); err != nil {
		return batchResult{}, fmt.Errorf("identity: list tenants: %w", err)
	}
	var out batchResult
	for {
		m, err := sub.NextMsgWithContext(ctx)
		if err != nil {
			return batchResult{}, fmt.Errorf("identity: list tenants: %w", err)
		}
		switch st := m.Header.Get("Status"); st {
		case "":
		case "204": // end of batch
			out.pending, _ = strconv.ParseUint(m.Header.Get("Nats-Num-Pending"), 10, 64)
			return out, nil
		case "404": // nothing from seq on
			return out, nil
		default:
			return batchResult{}, fmt.Errorf("identity: list tenants: %w: %s %s", errBatchRead, st, m.Header.Get("Description"))
		}
		s, err := strconv.ParseUint(m.Header.Get("Nats-Sequence"), 10, 64)
		if err != nil {
			return batchResult{}, fmt.Errorf("identity: list tenants: a record without a sequence: %w", err)
		}
		out.read++
		out.last = s
		if !strings.HasPrefix(m.Header.Get("Nats-Subject"), l.prefix) {
			continue
		}
		op := m.Header.Get("KV-Operation")
		out.records = append(out.records, record{seq: s, value: m.Data, deleted: op == "DEL" || op == "PURGE"})
	}
}

// errBatchRead is a batch read the server refused.
var errBatchRead = errors.New("the batch read was refused")
