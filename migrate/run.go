package migrate

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// run is the state of one Run.
type run struct {
	m     *Migrator
	start time.Time
	total int
	work  chan record

	read, created, updated, unchanged, failed atomic.Int64

	// tenantLocks serialize the records of one tenant (a tenant with two legacy API
	// keys), so the second sees what the first wrote: stripe fnv(tenantId) % len.
	tenantLocks [256]sync.Mutex

	mu       sync.Mutex
	failures []Failure
	seen     map[string]struct{} // tenant ids named by identity items (two-table layout)
}

// Run migrates every legacy record and returns what it did. Bad records are counted
// and listed in the Report, never returned as errors: the error is for what stops the
// whole run (a table that cannot be read, ctx ending), and comes with the Report of
// what was done until then.
func (m *Migrator) Run(ctx context.Context) (Report, error) {
	r := &run{m: m, start: time.Now(), seen: map[string]struct{}{}}
	rep := Report{Layout: m.cfg.Layout(), DryRun: m.cfg.DryRun}
	if m.cfg.LegacyTable != "" {
		rep.Tables = []string{m.cfg.LegacyTable}
	} else {
		rep.Tables = []string{m.cfg.IdentityTable, m.cfg.ConfigTable}
	}
	total, err := r.describe(ctx, rep.Tables)
	if err != nil {
		return r.report(rep), err
	}
	r.total = total

	stopProgress := r.startProgress()
	err = r.migrate(ctx)
	stopProgress()
	return r.report(rep), err
}

// describe checks that the tables exist and returns the number of items of the first
// (the one whose items are the records), as DynamoDB estimates it.
func (r *run) describe(ctx context.Context, tables []string) (int, error) {
	total := 0
	for i, t := range tables {
		out, err := r.m.deps.DynamoDB.DescribeTable(ctx, describeInput(t))
		if err != nil {
			return 0, fmt.Errorf("migrate: DynamoDB table %s: %w", t, err)
		}
		if i == 0 && out.Table != nil && out.Table.ItemCount != nil {
			total = int(*out.Table.ItemCount)
		}
	}
	return total, nil
}

// migrate runs the scans, feeding the workers, then (two-table layout) looks for
// configurations no identity item refers to.
func (r *run) migrate(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	r.work = make(chan record, 2*r.m.cfg.Concurrency)
	var workers sync.WaitGroup
	for range r.m.cfg.Concurrency {
		workers.Go(func() {
			for rec := range r.work {
				r.process(ctx, rec)
			}
		})
	}
	var err error
	if t := r.m.cfg.LegacyTable; t != "" {
		err = r.scan(ctx, t, "", func(ctx context.Context, items []item) error { return r.legacyPage(ctx, t, items) })
	} else {
		err = r.scan(ctx, r.m.cfg.IdentityTable, "", r.identityPage)
	}
	if err != nil {
		cancel() // stop the workers at their next request
	}
	close(r.work)
	workers.Wait()
	if err == nil && r.m.cfg.LegacyTable == "" {
		err = r.scan(ctx, r.m.cfg.ConfigTable, "tenantId", r.orphanPage)
	}
	return err
}

// process applies one record and counts the outcome. A record interrupted by the end
// of ctx is not counted: it was neither migrated nor found faulty.
func (r *run) process(ctx context.Context, rec record) {
	h := fnv.New32a()
	h.Write([]byte(rec.tenant.TenantID))
	lock := &r.tenantLocks[h.Sum32()%uint32(len(r.tenantLocks))]
	lock.Lock()
	defer lock.Unlock()
	rctx, cancel := context.WithTimeout(ctx, recordTimeout)
	defer cancel()
	out, err := r.m.apply(rctx, rec, r.m.cfg.DryRun)
	switch {
	case err != nil && ctx.Err() != nil:
	case err != nil:
		table := r.recordsTable()
		var ce configError
		if errors.As(err, &ce) {
			table, err = r.configTable(), ce.error
		}
		r.fail(table, rec.tenant.TenantID, rec.apiKey, err)
	case out == outcomeCreated:
		r.created.Add(1)
	case out == outcomeUpdated:
		r.updated.Add(1)
	default:
		r.unchanged.Add(1)
	}
}

// recordsTable is the table whose items are the records.
func (r *run) recordsTable() string {
	if r.m.cfg.LegacyTable != "" {
		return r.m.cfg.LegacyTable
	}
	return r.m.cfg.IdentityTable
}

// configTable is the table of webhook configurations.
func (r *run) configTable() string {
	if r.m.cfg.LegacyTable != "" {
		return r.m.cfg.LegacyTable
	}
	return r.m.cfg.ConfigTable
}

// send queues a record for the workers.
func (r *run) send(ctx context.Context, rec record) error {
	select {
	case r.work <- rec:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// fail records a failed record. The API key appears only as KeyRef.
func (r *run) fail(table, tenantID, apiKey string, err error) {
	r.failed.Add(1)
	f := Failure{TenantID: shorten(tenantID), Key: KeyRef(apiKey), Table: table, Reason: err.Error(), Err: err}
	r.mu.Lock()
	r.failures = append(r.failures, f)
	r.mu.Unlock()
}

func (r *run) markSeen(tenantID string) {
	r.mu.Lock()
	r.seen[tenantID] = struct{}{}
	r.mu.Unlock()
}

func (r *run) wasSeen(tenantID string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.seen[tenantID]
	return ok
}

func (r *run) counts() Counts {
	return Counts{
		Read:      int(r.read.Load()),
		Created:   int(r.created.Load()),
		Updated:   int(r.updated.Load()),
		Unchanged: int(r.unchanged.Load()),
		Failed:    int(r.failed.Load()),
	}
}

func (r *run) snapshot() Progress {
	return Progress{Counts: r.counts(), Total: r.total, Elapsed: time.Since(r.start)}
}

// startProgress calls Deps.Progress every interval until the returned func is called,
// which reports once more.
func (r *run) startProgress() (stop func()) {
	report := r.m.deps.Progress
	if report == nil {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(r.m.cfg.ProgressInterval)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				report(r.snapshot())
			}
		}
	})
	return func() {
		close(done)
		wg.Wait()
		report(r.snapshot())
	}
}

func (r *run) report(rep Report) Report {
	rep.Counts = r.counts()
	rep.Elapsed = time.Since(r.start)
	r.mu.Lock()
	rep.Failures = append([]Failure(nil), r.failures...)
	r.mu.Unlock()
	sort.SliceStable(rep.Failures, func(i, j int) bool {
		a, b := rep.Failures[i], rep.Failures[j]
		if a.TenantID != b.TenantID {
			return a.TenantID < b.TenantID
		}
		return a.Key < b.Key
	})
	return rep
}

// errNoConfig is an identity item whose tenant has no TenantWebhookConfig item.
var errNoConfig = errors.New("no item in the webhook config table for this tenantId")
