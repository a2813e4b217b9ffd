package jsack

import (
	"errors"
	"fmt"
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
	begin := time.Now()
	if r := a.Await(slow, slot, timer, begin.Add(50*time.Millisecond)); !errors.Is(r.Err, nats.ErrTimeout) {
		t.Fatalf("slow ack: %+v, want a timeout", r)
	}
	if d := time.Since(begin); d < 50*time.Millisecond {
		t.Fatalf("gave up after %s, before the 50ms deadline", d)
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
	begin = time.Now()
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

// TestAcksReuseReplySubjects: publishes one after another from a few slots go out with
// as many reply subjects as were in flight at once, not one per publish, and each
// still gets its own ack.
func TestAcksReuseReplySubjects(t *testing.T) {
	a, _, nc := newTestAcks(t)
	seen := make(map[string]int)
	sub, err := nc.SubscribeSync(natsconf.EventSubject("t1"))
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	const slots, rounds = 4, 50
	var ss [slots]*Slot
	var timers [slots]*time.Timer
	for i := range ss {
		ss[i], timers[i] = NewSlot(), time.NewTimer(time.Hour)
		timers[i].Stop()
	}
	for r := range rounds {
		var ms [slots]*nats.Msg
		for i := range ss {
			ms[i] = nats.NewMsg(natsconf.EventSubject("t1"))
			ms[i].Header.Set(jetstream.MsgIDHeader, fmt.Sprintf("t1:%d-%d", r, i))
			if err := a.Publish(ms[i], ss[i]); err != nil {
				t.Fatal(err)
			}
		}
		for i := range ss {
			if res := a.Await(ms[i], ss[i], timers[i], time.Now().Add(5*time.Second)); res.Err != nil || res.Duplicate {
				t.Fatalf("round %d, slot %d: %+v, want a fresh ack", r, i, res)
			}
			m, err := sub.NextMsg(5 * time.Second)
			if err != nil {
				t.Fatal(err)
			}
			seen[m.Reply]++
		}
	}
	if len(seen) > slots {
		t.Errorf("%d publishes, %d at a time, used %d reply subjects, want at most %d", slots*rounds, slots, len(seen), slots)
	}
}

// TestAcksGiveUpOnlyTheirOwnSlot: a waiter whose time runs out just as its ack
// arrives, after another publish has taken the freed reply id, leaves that publish
// awaited and its own slot empty for reuse.
func TestAcksGiveUpOnlyTheirOwnSlot(t *testing.T) {
	a, timer, _ := newTestAcks(t)
	first, second := NewSlot(), NewSlot()
	m1 := nats.NewMsg(natsconf.EventSubject("t1"))
	if err := a.Publish(m1, first); err != nil {
		t.Fatal(err)
	}
	for i := 0; len(first.ch) == 0; i++ { // its ack arrived, nobody took it yet
		if i == 500 {
			t.Fatal("no ack within 5s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	m2 := nats.NewMsg(natsconf.EventSubject("t1"))
	if err := a.Publish(m2, second); err != nil {
		t.Fatal(err)
	}
	if second.id != first.id {
		t.Fatalf("the second publish took id %d, not the freed id %d", second.id, first.id)
	}
	a.forget(first) // first's timer fired as its ack came
	if len(first.ch) != 0 {
		t.Error("the slot that gave up still holds its ack")
	}
	done := make(chan Result, 1)
	go func() { done <- a.Await(m2, second, timer, time.Now().Add(5*time.Second)) }()
	select {
	case r := <-done:
		if r.Err != nil {
			t.Fatalf("the publish that reused the id: %+v, want its ack", r)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the publish that reused the id is still awaited after 10s")
	}
}
