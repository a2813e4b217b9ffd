package migrate_test

import (
	"context"
	"flag"
	"fmt"
	"testing"
	"time"

	"github.com/edgehook/edgehook/migrate"
)

// benchTenants is the size of BenchmarkMigrate's legacy tables: small by default, so a
// plain -bench run stays short; the figure to report is taken with
// -migrate.tenants=100000.
var benchTenants = flag.Int("migrate.tenants", 2000, "tenants BenchmarkMigrate loads into dynalite")

// BenchmarkMigrate loads -migrate.tenants tenants into dynalite's two-table layout
// (BatchWriteItem, 25 items a call, 8 calls at a time), then migrates them into an
// empty identity bucket and Vault (first-run: every record created), and migrates them
// again (rerun: every record unchanged). It reports records/s.
func BenchmarkMigrate(b *testing.B) {
	n := *benchTenants
	f := newFixture(b)
	tenants := make([]legacyTenant, n)
	for i := range tenants {
		tenants[i] = newLegacyTenant(fmt.Sprintf("ten_%08d", i))
		tenants[i].lastUpdated = "1700000000"
	}
	loadStart := time.Now()
	f.putTwoTable(b, tenants...)
	b.Logf("loaded %d tenants (%d items) into dynalite in %s", n, 2*n, time.Since(loadStart).Round(time.Millisecond))

	cfg := migrate.Config{Segments: migrate.DefaultSegments, Concurrency: migrate.DefaultConcurrency}
	name := fmt.Sprintf("tenants=%d/segments=%d/concurrency=%d", n, cfg.Segments, cfg.Concurrency)
	migrateOnce := func(b *testing.B, want migrate.Counts) time.Duration {
		start := time.Now()
		rep, err := f.migrator(b, cfg, nil).Run(context.Background())
		d := time.Since(start)
		if err != nil {
			b.Fatal(err)
		}
		if rep.Counts != want {
			b.Fatalf("counts %+v, want %+v (first failures: %+v)", rep.Counts, want, rep.Failures[:min(3, len(rep.Failures))])
		}
		return d
	}
	b.Run(name+"/first-run", func(b *testing.B) {
		var total time.Duration
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			if i > 0 {
				f.freshTarget(b) // an empty bucket and Vault again
			}
			b.StartTimer()
			total += migrateOnce(b, migrate.Counts{Read: n, Created: n})
		}
		b.ReportMetric(float64(n*b.N)/total.Seconds(), "records/s")
	})
	b.Run(name+"/rerun", func(b *testing.B) {
		var total time.Duration
		for i := 0; i < b.N; i++ {
			total += migrateOnce(b, migrate.Counts{Read: n, Unchanged: n})
		}
		b.ReportMetric(float64(n*b.N)/total.Seconds(), "records/s")
	})
}
