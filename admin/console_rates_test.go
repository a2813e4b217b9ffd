package admin

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/edgehook/edgehook/natsconf"
	"github.com/edgehook/edgehook/natsconf/natstest"
)

func TestRateSamplerChartsCounterDeltas(t *testing.T) {
	js := natstest.Start(t, nil).JetStream(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r := newRateSampler(js, time.Minute, slog.New(slog.DiscardHandler))
	if got := r.rates(ctx, time.Hour); got.Step != time.Minute || len(got.Points) != 0 {
		t.Fatalf("before any sample: %+v", got)
	}
	r.record(ctx)
	for range 5 {
		if _, err := js.Publish(ctx, natsconf.EventSubject("ten_a"), []byte(`{}`)); err != nil {
			t.Fatal(err)
		}
	}
	r.record(ctx)
	// Three of the five delivered and acked, one terminated (dead-lettered).
	cons, err := js.Consumer(ctx, natsconf.StreamEvents, natsconf.ConsumerDeliver)
	if err != nil {
		t.Fatal(err)
	}
	batch, err := cons.Fetch(4, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for m := range batch.Messages() {
		if n++; n <= 3 {
			err = m.DoubleAck(ctx)
		} else {
			err = m.Term()
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	// The server's MSG_TERMINATED advisory lands on DLQ.
	dlq, err := js.Stream(ctx, natsconf.StreamDLQ)
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; {
		info, err := dlq.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.State.Msgs == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("DLQ holds %d messages, want the advisory", info.State.Msgs)
		}
		time.Sleep(20 * time.Millisecond)
	}
	r.record(ctx)

	got := r.rates(ctx, time.Hour).Points
	if len(got) != 2 {
		t.Fatalf("%d points from 3 samples, want 2", len(got))
	}
	if p := got[0]; p.Ingested != 5 || p.Delivered != 0 || p.Failed != 0 {
		t.Errorf("first step %+v, want 5 ingested", p)
	}
	if p := got[1]; p.Ingested != 0 || p.Delivered != 3 || p.Failed != 1 {
		t.Errorf("second step %+v, want 3 delivered and 1 failed", p)
	}
	if got := r.rates(ctx, 0).Points; len(got) != 0 {
		t.Errorf("an empty window holds %d points", len(got))
	}

	// The ring holds one hour of steps and drops the oldest.
	for range r.max + 5 {
		r.record(ctx)
	}
	if len(r.ring) != r.max || r.max != 61 {
		t.Errorf("the ring holds %d samples (max %d), want 61", len(r.ring), r.max)
	}
}

// The consumer's pending count catches up with the stream only after the publish ack
// (the stream signals its consumers from a goroutine of its own), so a sample taken
// then must not count the events just stored as delivered.
func TestConsumerSettledIgnoresAPendingCountBehindTheStream(t *testing.T) {
	for _, c := range []struct {
		name string
		ci   jetstream.ConsumerInfo
		want uint64
	}{
		{"none delivered, one of five stored counted pending so far", jetstream.ConsumerInfo{NumPending: 1}, 0},
		{"four delivered, one awaiting its ack, the fifth not counted pending yet", jetstream.ConsumerInfo{
			Delivered: jetstream.SequenceInfo{Stream: 4}, NumAckPending: 1}, 3},
		{"five delivered and settled, two more stored", jetstream.ConsumerInfo{
			Delivered: jetstream.SequenceInfo{Stream: 5}, NumPending: 2}, 5},
	} {
		if got := consumerSettled(&c.ci); got != c.want {
			t.Errorf("%s: %d settled, want %d", c.name, got, c.want)
		}
	}
}
