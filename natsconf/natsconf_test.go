package natsconf_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/edgehook/edgehook/natsconf"
	"github.com/edgehook/edgehook/natsconf/natstest"
)

func TestSetupIsIdempotentAndAppliesTopology(t *testing.T) {
	srv := natstest.Start(t, func(tp *natsconf.Topology) { tp.HTTPTimeout = 3 * time.Second; tp.MaxDeliver = 4 })
	js := srv.JetStream(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	// A second run over an existing deployment must succeed and change nothing.
	if err := natsconf.Setup(ctx, js, srv.Topology); err != nil {
		t.Fatalf("second setup: %v", err)
	}
	s, err := js.Stream(ctx, natsconf.StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.Config.Storage != jetstream.FileStorage || info.Config.Duplicates != time.Hour || info.Config.MaxAge != 7*24*time.Hour {
		t.Errorf("EVENTS config = storage %v dup %s maxage %s", info.Config.Storage, info.Config.Duplicates, info.Config.MaxAge)
	}
	c, err := js.Consumer(ctx, natsconf.StreamEvents, natsconf.ConsumerDeliver)
	if err != nil {
		t.Fatal(err)
	}
	ci, err := c.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ci.Config.AckWait <= 3*time.Second {
		t.Errorf("AckWait %s does not exceed the HTTP timeout", ci.Config.AckWait)
	}
	if ci.Config.MaxDeliver != 4 || ci.Config.AckPolicy != jetstream.AckExplicitPolicy {
		t.Errorf("consumer = maxdeliver %d ack %v", ci.Config.MaxDeliver, ci.Config.AckPolicy)
	}
	for _, b := range []string{natsconf.BucketIdentity, natsconf.BucketStatus} {
		if _, err := js.KeyValue(ctx, b); err != nil {
			t.Errorf("bucket %s: %v", b, err)
		}
	}
	if _, err := js.Stream(ctx, natsconf.StreamReceived); err != nil {
		t.Errorf("stream RECEIVED: %v", err)
	}

	// A changed setting is applied to the existing consumer.
	srv.Topology.MaxDeliver = 6
	if err := natsconf.Setup(ctx, js, srv.Topology); err != nil {
		t.Fatalf("setup with new max deliver: %v", err)
	}
	ci, _ = c.Info(ctx)
	if ci.Config.MaxDeliver != 6 {
		t.Errorf("MaxDeliver after update = %d, want 6", ci.Config.MaxDeliver)
	}
}

func TestTopologyValidateNamesTheSetting(t *testing.T) {
	for name, edit := range map[string]func(*natsconf.Topology){
		"replicas":         func(tp *natsconf.Topology) { tp.Replicas = 0 },
		"retention":        func(tp *natsconf.Topology) { tp.Retention = 0 },
		"duplicate window": func(tp *natsconf.Topology) { tp.DuplicateWindow = 30 * 24 * time.Hour },
		"HTTP timeout":     func(tp *natsconf.Topology) { tp.HTTPTimeout = 0 },
		"max deliver":      func(tp *natsconf.Topology) { tp.MaxDeliver = 0 },
		"max ack pending":  func(tp *natsconf.Topology) { tp.MaxAckPending = -1 },
		"retry schedule":   func(tp *natsconf.Topology) { tp.RetrySchedule = nil },
		"retry schedule entry 2": func(tp *natsconf.Topology) {
			tp.RetrySchedule = []time.Duration{time.Second, -time.Second}
		},
		"dead letter retention": func(tp *natsconf.Topology) { tp.DeadLetterRetention = time.Hour },
	} {
		tp := natsconf.DefaultTopology()
		edit(&tp)
		err := tp.Validate()
		if err == nil {
			t.Errorf("%s: invalid topology accepted", name)
			continue
		}
		if !strings.Contains(err.Error(), name) {
			t.Errorf("%s: error %q does not name the setting", name, err)
		}
	}
	if err := natsconf.DefaultTopology().Validate(); err != nil {
		t.Errorf("default topology invalid: %v", err)
	}
}

func TestBackOffFollowsTheScheduleAboveTheAckWait(t *testing.T) {
	sec := time.Second
	for _, c := range []struct {
		schedule   []time.Duration
		maxDeliver int
		floor      time.Duration
		want       []time.Duration
	}{
		// The Standard Webhooks schedule with 8 attempts: 5s is raised to the 20s floor.
		{natsconf.DefaultRetrySchedule(), 8, 20 * sec,
			[]time.Duration{20 * sec, 5 * time.Minute, 30 * time.Minute, 2 * time.Hour, 5 * time.Hour, 10 * time.Hour}},
		// Fewer attempts than entries: only what MaxDeliver can use.
		{natsconf.DefaultRetrySchedule(), 3, 20 * sec, []time.Duration{20 * sec, 5 * time.Minute, 30 * time.Minute}},
		// A short schedule repeats its last entry; all below the floor collapses to one.
		{[]time.Duration{sec, 2 * sec}, 5, 10 * sec, []time.Duration{10 * sec}},
		{[]time.Duration{sec, 30 * sec}, 5, 10 * sec, []time.Duration{10 * sec, 30 * sec}},
		{[]time.Duration{sec}, 1, 10 * sec, []time.Duration{10 * sec}},
	} {
		got := natsconf.BackOff(c.schedule, c.maxDeliver, c.floor)
		if !slices.Equal(got, c.want) {
			t.Errorf("BackOff(%v, %d, %s) = %v, want %v", c.schedule, c.maxDeliver, c.floor, got, c.want)
		}
		if len(got) > c.maxDeliver {
			t.Errorf("BackOff has %d entries for MaxDeliver %d; the server refuses that", len(got), c.maxDeliver)
		}
	}
}

func TestSetupAppliesTheScheduleAndTheDLQ(t *testing.T) {
	srv := natstest.Start(t, func(tp *natsconf.Topology) {
		tp.HTTPTimeout = 2 * time.Second
		tp.MaxDeliver = 5
		tp.RetrySchedule = []time.Duration{time.Second, time.Minute, time.Hour}
	})
	js := srv.JetStream(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := js.Consumer(ctx, natsconf.StreamEvents, natsconf.ConsumerDeliver)
	if err != nil {
		t.Fatal(err)
	}
	cc := c.CachedInfo().Config
	if want := []time.Duration{12 * time.Second, time.Minute, time.Hour}; !slices.Equal(cc.BackOff, want) || cc.AckWait != want[0] {
		t.Errorf("consumer BackOff %v AckWait %s, want %v and %s", cc.BackOff, cc.AckWait, want, want[0])
	}

	dlq, err := js.Stream(ctx, natsconf.StreamDLQ)
	if err != nil {
		t.Fatal(err)
	}
	sc := dlq.CachedInfo().Config
	if sc.Storage != jetstream.FileStorage || sc.MaxAge != srv.Topology.DeadLetterRetention || sc.MaxAge < srv.Topology.Retention {
		t.Errorf("DLQ storage %v max age %s", sc.Storage, sc.MaxAge)
	}
	dc, err := js.Consumer(ctx, natsconf.StreamDLQ, natsconf.ConsumerDLQ)
	if err != nil {
		t.Fatal(err)
	}
	if got := dc.CachedInfo().Config; got.MaxDeliver != -1 || !slices.Contains(got.FilterSubjects, natsconf.AdvisoryMaxDeliveries) ||
		slices.Contains(got.FilterSubjects, natsconf.DeadLetterSubjectPrefix+"*.*") {
		t.Errorf("DLQ consumer maxdeliver %d filters %v", got.MaxDeliver, got.FilterSubjects)
	}

	// The server's own advisory lands in DLQ: terminate an event and look.
	if _, err := js.Publish(ctx, natsconf.EventSubject("ten_a"), []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	b, err := c.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	for m := range b.Messages() {
		if err := m.TermWithReason("test"); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		m, err := dlq.GetLastMsgForSubject(ctx, natsconf.AdvisoryTerminated)
		if err == nil {
			if !strings.Contains(string(m.Data), `"stream_seq":1`) || !strings.Contains(string(m.Data), `"reason":"test"`) {
				t.Errorf("captured advisory %s", m.Data)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("MSG_TERMINATED advisory not captured by DLQ: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
