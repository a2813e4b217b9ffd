package worker

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/edgehook/edgehook/natsconf"
)

// TestParseEventReadsOptionalHeadersOnlyWhenSet: an event as the gateway stores it
// (no parking or replay headers) is read with few allocations, none spent on parsing
// absent headers, and a replayed, parked copy still has every header read.
func TestParseEventReadsOptionalHeadersOnlyWhenSet(t *testing.T) {
	e := newEnv(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	now := time.Now()
	plain := eventMsg("t1", "evt_plain", []byte(`{}`), now)
	copied := eventMsg("t1", "evt_copy", []byte(`{}`), now)
	due := now.Add(time.Minute)
	for k, v := range map[string]string{
		natsconf.HeaderAttempts: "3", natsconf.HeaderParkedFrom: "17",
		natsconf.HeaderReplay: "2", natsconf.HeaderPriorAttempts: "-4",
	} {
		copied.Header.Set(k, v)
	}
	copied.Header.Set(natsconf.HeaderDue, nanosHeader(due))
	for _, m := range []string{"plain", "copy"} {
		msg := plain
		if m == "copy" {
			msg = copied
		}
		if _, err := e.js.PublishMsg(ctx, msg); err != nil {
			t.Fatal(err)
		}
	}
	cons, err := e.js.OrderedConsumer(ctx, natsconf.StreamEvents, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	batch, err := cons.FetchNoWait(2)
	if err != nil {
		t.Fatal(err)
	}
	var msgs []jetstream.Msg
	for m := range batch.Messages() {
		msgs = append(msgs, m)
	}
	if len(msgs) != 2 {
		t.Fatalf("fetched %d messages, want 2 (%v)", len(msgs), batch.Error())
	}

	ev, err := parseEvent(msgs[0])
	if err != nil || ev.id != "evt_plain" || ev.used != 0 || ev.parkedFrom != 0 || ev.replay != 0 || ev.prior != 0 || !ev.due.IsZero() ||
		!ev.createdAt.Equal(time.Unix(0, now.UnixNano()).UTC()) {
		t.Errorf("plain event: %+v, %v", ev, err)
	}
	// Metadata (the reply subject's fields) is most of what is left.
	if n := testing.AllocsPerRun(100, func() { _, _ = parseEvent(msgs[0]) }); n > 3 {
		t.Errorf("parsing a plain event allocates %v times, want at most 3", n)
	}

	ev, err = parseEvent(msgs[1])
	if err != nil || ev.used != 3 || ev.parkedFrom != 17 || ev.replay != 2 || ev.prior != 0 || !ev.due.Equal(time.Unix(0, due.UnixNano())) ||
		ev.attempt != 3+ev.delivered {
		t.Errorf("parked, replayed copy: %+v, %v", ev, err)
	}
}

// nanosHeader formats t as the worker's due headers carry it (Unix nanoseconds).
func nanosHeader(t time.Time) string { return strconv.FormatInt(t.UnixNano(), 10) }
