package gateway

import (
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/valyala/fastjson"
)

// Retries of a publish that found no stream listening, as jetstream's publishes do by
// default (a stream leader may be moving), within the publish timeout.
const (
	noResponderRetries = 2
	noResponderWait    = 250 * time.Millisecond
)

// errNoResponders is an ack slot's result when no stream took the message.
var errNoResponders = errors.New("no stream took the message")

// acks publishes the events of single-event ingest with a reply subject below one
// subscription of the connection's own inbox, and hands each JetStream ack to the
// request waiting for it. It does what jetstream's async publish does for a request
// that waits for its acks at once, at a fraction of the cost: the ack is read without
// reflection and a request allocates no channel, future or timer of its own.
type acks struct {
	nc     *nats.Conn
	prefix string // of every reply subject: the subscription's subject without "*"
	sub    *nats.Subscription
	// p reads acks; only the subscription's goroutine uses it.
	p fastjson.Parser

	mu      sync.Mutex
	next    uint64
	waiting map[uint64]*ackSlot
}

// ackSlot is where one publish's ack arrives. Whoever takes it out of acks.waiting
// (the ack, or the waiter giving up) settles it, so it gets at most one result; an
// outgoing keeps its two slots for reuse.
type ackSlot struct {
	id uint64
	ch chan ackResult // capacity 1
}

func newAckSlot() *ackSlot { return &ackSlot{ch: make(chan ackResult, 1)} }

// ackResult is what the stream answered: stored (a duplicate if its Nats-Msg-Id was
// stored before), or an error (*jetstream.APIError for a refusal).
type ackResult struct {
	duplicate bool
	err       error
}

// newAcks subscribes to the acks of the gateway's publishes on nc.
func newAcks(nc *nats.Conn) (*acks, error) {
	a := &acks{nc: nc, prefix: nc.NewInbox() + ".", waiting: make(map[uint64]*ackSlot)}
	sub, err := nc.Subscribe(a.prefix+"*", a.receive)
	if err != nil {
		return nil, fmt.Errorf("gateway: subscribe to publish acks: %w", err)
	}
	// Acks are answers the gateway waits for: never drop one for a slow handler.
	if err := sub.SetPendingLimits(-1, -1); err != nil {
		_ = sub.Unsubscribe()
		return nil, fmt.Errorf("gateway: publish acks: %w", err)
	}
	a.sub = sub
	return a, nil
}

// publish sends m with a reply subject that delivers its ack to slot. The connection
// copies m out before publish returns.
func (a *acks) publish(m *nats.Msg, slot *ackSlot) error {
	a.mu.Lock()
	a.next++
	slot.id = a.next
	a.waiting[slot.id] = slot
	a.mu.Unlock()
	var buf [96]byte
	reply := append(buf[:0], a.prefix...)
	m.Reply = string(strconv.AppendUint(reply, slot.id, 10))
	if err := a.nc.PublishMsg(m); err != nil {
		a.forget(slot)
		return err
	}
	return nil
}

// await waits for slot's ack until deadline, with t (a stopped timer, stopped again
// on return); past it, it gives up on the ack with nats.ErrTimeout. Either way the
// slot is free for another publish afterwards.
func (a *acks) await(slot *ackSlot, t *time.Timer, deadline time.Time) ackResult {
	t.Reset(time.Until(deadline))
	defer t.Stop()
	select {
	case r := <-slot.ch:
		return r
	case <-t.C:
		a.forget(slot)
		return ackResult{err: fmt.Errorf("%w: no ack within the publish timeout", nats.ErrTimeout)}
	}
}

// forget takes slot out of the waiting set; if its ack was taken out first, it drains
// the result that ack left, so the slot's channel is empty for its next use.
func (a *acks) forget(slot *ackSlot) {
	a.mu.Lock()
	_, waiting := a.waiting[slot.id]
	delete(a.waiting, slot.id)
	a.mu.Unlock()
	if !waiting {
		<-slot.ch // the ack took the slot: its result is there, or about to be
	}
}

// receive is the subscription's handler: it reads an ack and hands it to its slot.
// An ack nobody waits for any more (timed out) is dropped.
func (a *acks) receive(m *nats.Msg) {
	if len(m.Subject) <= len(a.prefix) {
		return
	}
	id, err := strconv.ParseUint(m.Subject[len(a.prefix):], 10, 64)
	if err != nil {
		return
	}
	a.mu.Lock()
	slot := a.waiting[id]
	delete(a.waiting, id)
	a.mu.Unlock()
	if slot != nil {
		slot.ch <- a.read(m)
	}
}

// read turns a JetStream publish answer into its result.
func (a *acks) read(m *nats.Msg) ackResult {
	if len(m.Data) == 0 && m.Header.Get("Status") == "503" {
		return ackResult{err: errNoResponders}
	}
	v, err := a.p.ParseBytes(m.Data)
	if err != nil {
		return ackResult{err: fmt.Errorf("%w: %w", jetstream.ErrInvalidJSAck, err)}
	}
	if e := v.Get("error"); e != nil {
		return ackResult{err: &jetstream.APIError{
			Code:        e.GetInt("code"),
			ErrorCode:   jetstream.ErrorCode(e.GetUint("err_code")),
			Description: string(e.GetStringBytes("description")),
		}}
	}
	if len(v.GetStringBytes("stream")) == 0 {
		return ackResult{err: jetstream.ErrInvalidJSAck}
	}
	return ackResult{duplicate: v.GetBool("duplicate")}
}

// awaitRetrying is await for m, already published to slot, publishing it again while
// no stream took it (up to noResponderRetries times, noResponderWait apart, before
// deadline). A publish that finally finds no stream ends in
// jetstream.ErrNoStreamResponse.
func (a *acks) awaitRetrying(m *nats.Msg, slot *ackSlot, t *time.Timer, deadline time.Time) ackResult {
	for try := 0; ; try++ {
		r := a.await(slot, t, deadline)
		if !errors.Is(r.err, errNoResponders) {
			return r
		}
		wait := min(noResponderWait, time.Until(deadline))
		if try == noResponderRetries || wait <= 0 {
			return ackResult{err: jetstream.ErrNoStreamResponse}
		}
		t.Reset(wait)
		<-t.C
		if err := a.publish(m, slot); err != nil {
			return ackResult{err: err}
		}
	}
}
