package status_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/edgehook/edgehook/bench/cputime"
	"github.com/edgehook/edgehook/natsconf/natstest"
	"github.com/edgehook/edgehook/status"
)

// BenchmarkRecordDelivered measures a delivery's status write (the record alone, its
// ack awaited) from parallel writers, as the worker makes it per delivered event, with
// the CPU time of the process (writers and the embedded server) per write.
func BenchmarkRecordDelivered(b *testing.B) {
	srv := natstest.Start(b, nil)
	js := srv.JetStream(b)
	rec, err := status.NewRecorder(js, 5*time.Second)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	now := time.Now().UTC()
	b.ReportAllocs()
	b.SetParallelism(8)
	cpu0 := cputime.Self()
	b.RunParallel(func(pb *testing.PB) {
		for i := 0; pb.Next(); i++ {
			r := status.Record{EventID: "evt_" + strconv.Itoa(i), TenantID: "ten_a", Status: status.Delivered,
				Attempts: 1, CreatedAt: now, UpdatedAt: now}
			if err := rec.Record(ctx, r); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(cputime.Self()-cpu0)/1e3/float64(b.N), "cpu-µs/op")
}
