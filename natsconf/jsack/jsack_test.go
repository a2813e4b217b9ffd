package jsack

import (
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/valyala/fastjson"

	"github.com/edgehook/edgehook/natsconf"
	"github.com/edgehook/edgehook/natsconf/natstest"
)

// newTestAcks returns Acks on a connection to a real JetStream server with edgehook's
// streams, a stopped timer, and the connection.
func newTestAcks(t *testing.T) (*Acks, *time.Timer, *nats.Conn) {
	t.Helper()
	ns := natstest.Start(t, nil)
	nc := ns.Connect(t)
	a, err := New(nc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close() })
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	return a, timer, nc
}

// TestAcksReportWhatTheStreamAnswered: an event published through Acks is stored and
// acked, the same Nats-Msg-Id again is acked as a duplicate, a KV write whose expected
// last sequence does not hold is refused with the server's API error, and nothing is
// left awaited.
func TestAcksReportWhatTheStreamAnswered(t *testing.T) {
	a, timer, nc := newTestAcks(t)
	slot := NewSlot()
	send := func(m *nats.Msg) Result {
		t.Helper()
		if err := a.Publish(m, slot); err != nil {
			t.Fatal(err)
		}
		return a.Await(m, slot, timer, time.Now().Add(5*time.Second))
	}
	ev := nats.NewMsg(natsconf.EventSubject("t1"))
	ev.Header.Set(jetstream.MsgIDHeader, "t1:k1")
	ev.Data = []byte(`{}`)
	if r := send(ev); r.Err != nil || r.Duplicate {
		t.Fatalf("first publish: %+v", r)
	}
	if r := send(ev); r.Err != nil || !r.Duplicate {
		t.Fatalf("the same Nats-Msg-Id again: %+v, want a duplicate", r)
	}
	create := nats.NewMsg("$KV." + natsconf.BucketStatus + ".t1.evt_1")
	create.Header.Set(jetstream.ExpectedLastSubjSeqHeader, "0")
	create.Data = []byte(`{"status":"queued"}`)
	if r := send(create); r.Err != nil {
		t.Fatalf("create-only write: %+v", r)
	}
	r := send(create)
	var apiErr *jetstream.APIError
	if !errors.As(r.Err, &apiErr) || apiErr.ErrorCode != jetstream.JSErrCodeStreamWrongLastSequence {
		t.Fatalf("create-only write again: %+v, want the wrong-last-sequence API error", r)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	kv, err := js.KeyValue(t.Context(), natsconf.BucketStatus)
	if err != nil {
		t.Fatal(err)
	}
	if e, err := kv.Get(t.Context(), "t1.evt_1"); err != nil || string(e.Value()) != `{"status":"queued"}` {
		t.Fatalf("the acked write reads back as %v, %v", e, err)
	}
	if n := a.pending(); n != 0 {
		t.Errorf("%d acks still awaited after every answer", n)
	}
}

// TestAcksNeverHandALateAckToTheNextPublish: a publish that times out gives its slot
// up; when its ack comes after all, it is dropped, and the slot's next publish gets
// its own ack. A subject no stream takes ends, after the retries, in
// jetstream.ErrNoStreamResponse within the deadline.
func TestAcksNeverHandALateAckToTheNextPublish(t *testing.T) {
	a, timer, nc := newTestAcks(t)
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
	slot := NewSlot()
	slow := nats.NewMsg("slow.subject")
	if err := a.Publish(slow, slot); err != nil {
		t.Fatal(err)
	}
	if r := a.Await(slow, slot, timer, time.Now().Add(50*time.Millisecond)); !errors.Is(r.Err, nats.ErrTimeout) {
		t.Fatalf("slow ack: %+v, want a timeout", r)
	}
	close(release)
	<-answered
	if err := nc.Flush(); err != nil { // the late ack has reached the client
		t.Fatal(err)
	}

	ev := nats.NewMsg(natsconf.EventSubject("t1"))
	ev.Header.Set(jetstream.MsgIDHeader, "t1:fresh")
	if err := a.Publish(ev, slot); err != nil {
		t.Fatal(err)
	}
	r := a.Await(ev, slot, timer, time.Now().Add(5*time.Second))
	if r.Err != nil || r.Duplicate {
		t.Fatalf("the slot's next publish: %+v, want its own fresh ack", r)
	}
	if len(slot.ch) != 0 {
		t.Errorf("the slot holds a stray result after its publish was answered")
	}

	nobody := nats.NewMsg("no.stream.here")
	if err := a.Publish(nobody, slot); err != nil {
		t.Fatal(err)
	}
	begin := time.Now()
	if r := a.Await(nobody, slot, timer, begin.Add(5*time.Second)); !errors.Is(r.Err, jetstream.ErrNoStreamResponse) {
		t.Fatalf("a subject no stream takes: %+v, want ErrNoStreamResponse", r)
	}
	if d := time.Since(begin); d < NoResponderRetries*NoResponderWait {
		t.Errorf("gave up after %s, before its %d retries", d, NoResponderRetries)
	}
}

// TestReadAckReadsWhatJetStreamAnswers covers the ack forms a healthy server does not
// send: malformed acks.
func TestReadAckReadsWhatJetStreamAnswers(t *testing.T) {
	var p fastjson.Parser
	if r := readAck(&p, []byte(`{"stream":"KV_status","domain":"hub","seq":7}`)); r.Err != nil || r.Duplicate {
		t.Errorf("good ack: %+v", r)
	}
	for _, bad := range []string{`{"seq":7}`, `{"stream":""}`, `<html>`, ``} {
		if r := readAck(&p, []byte(bad)); !errors.Is(r.Err, jetstream.ErrInvalidJSAck) {
			t.Errorf("ack %q: %+v, want ErrInvalidJSAck", bad, r)
		}
	}
}
