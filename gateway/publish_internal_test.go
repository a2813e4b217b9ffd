package gateway

import (
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/edgehook/edgehook/natsconf"
	"github.com/edgehook/edgehook/natsconf/natstest"
	"github.com/edgehook/edgehook/status"
)

// newTestAcks returns acks on a connection to a real JetStream server with edgehook's
// streams, a stopped timer, and the connection.
func newTestAcks(t *testing.T) (*acks, *time.Timer, *nats.Conn, *natstest.Server) {
	t.Helper()
	ns := natstest.Start(t, nil)
	nc := ns.Connect(t)
	a, err := newAcks(nc)
	if err != nil {
		t.Fatal(err)
	}
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	return a, timer, nc, ns
}

// TestAcksReportWhatTheStreamAnswered: an event published through acks is stored and
// acked, the same Nats-Msg-Id again is acked as a duplicate, and a queued record that
// exists already is refused in the form status.IsAlreadyWritten recognises.
func TestAcksReportWhatTheStreamAnswered(t *testing.T) {
	a, timer, _, _ := newTestAcks(t)
	slot := newAckSlot()
	send := func(m *nats.Msg) ackResult {
		t.Helper()
		if err := a.publish(m, slot); err != nil {
			t.Fatal(err)
		}
		return a.awaitRetrying(m, slot, timer, time.Now().Add(5*time.Second))
	}
	ev := nats.NewMsg(natsconf.EventSubject("t1"))
	ev.Header.Set(jetstream.MsgIDHeader, "t1:k1")
	ev.Data = []byte(`{}`)
	if r := send(ev); r.err != nil || r.duplicate {
		t.Fatalf("first publish: %+v", r)
	}
	if r := send(ev); r.err != nil || !r.duplicate {
		t.Fatalf("the same Nats-Msg-Id again: %+v, want a duplicate", r)
	}
	rec := status.Record{EventID: "evt_1", TenantID: "t1", CreatedAt: time.Now(), UpdatedAt: time.Now()}
	q := &nats.Msg{Header: nats.Header{}}
	if err := status.FillQueuedMsgIn(q, natsconf.BucketStatus, rec); err != nil {
		t.Fatal(err)
	}
	if r := send(q); r.err != nil {
		t.Fatalf("queued record: %+v", r)
	}
	if r := send(q); !status.IsAlreadyWritten(r.err) {
		t.Fatalf("queued record again: %+v, want the already-written refusal", r)
	}
	a.mu.Lock()
	left := len(a.waiting)
	a.mu.Unlock()
	if left != 0 {
		t.Errorf("%d acks still awaited after every answer", left)
	}
}

// TestAcksNeverHandALateAckToTheNextPublish: a publish that times out gives its slot
// up; when its ack comes after all, it is dropped, and the slot's next publish gets
// its own ack. A subject no stream takes ends, after the retries, in
// jetstream.ErrNoStreamResponse within the deadline.
func TestAcksNeverHandALateAckToTheNextPublish(t *testing.T) {
	a, timer, nc, _ := newTestAcks(t)
	// A slow answerer on a subject of its own, to make an ack late on purpose (no
	// stream can be told to ack slowly); its ack says duplicate, so a stray one shows.
	release := make(chan struct{})
	answered := make(chan struct{})
	sub, err := nc.Subscribe("slow.subject", func(m *nats.Msg) {
		<-release
		_ = m.Respond([]byte(`{"stream":"SLOW","seq":99,"duplicate":true}`))
		close(answered)
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	slot := newAckSlot()
	slow := nats.NewMsg("slow.subject")
	if err := a.publish(slow, slot); err != nil {
		t.Fatal(err)
	}
	if r := a.awaitRetrying(slow, slot, timer, time.Now().Add(50*time.Millisecond)); !errors.Is(r.err, nats.ErrTimeout) {
		t.Fatalf("slow ack: %+v, want a timeout", r)
	}
	close(release)
	<-answered
	if err := nc.Flush(); err != nil { // the late ack has reached the client
		t.Fatal(err)
	}

	ev := nats.NewMsg(natsconf.EventSubject("t1"))
	ev.Header.Set(jetstream.MsgIDHeader, "t1:fresh")
	if err := a.publish(ev, slot); err != nil {
		t.Fatal(err)
	}
	r := a.awaitRetrying(ev, slot, timer, time.Now().Add(5*time.Second))
	if r.err != nil || r.duplicate {
		t.Fatalf("the slot's next publish: %+v, want its own fresh ack", r)
	}
	if len(slot.ch) != 0 {
		t.Errorf("the slot holds a stray result after its publish was answered")
	}

	nobody := nats.NewMsg("no.stream.here")
	if err := a.publish(nobody, slot); err != nil {
		t.Fatal(err)
	}
	begin := time.Now()
	if r := a.awaitRetrying(nobody, slot, timer, begin.Add(5*time.Second)); !errors.Is(r.err, jetstream.ErrNoStreamResponse) {
		t.Fatalf("a subject no stream takes: %+v, want ErrNoStreamResponse", r)
	}
	if d := time.Since(begin); d < noResponderRetries*noResponderWait {
		t.Errorf("gave up after %s, before its %d retries", d, noResponderRetries)
	}
}
