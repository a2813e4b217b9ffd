// Package jsack publishes messages to JetStream streams and awaits their acks on one
// subscription of the connection's own inbox, for callers that wait for a few acks
// at once on the hot path: the gateway's event and queued record, the worker's status
// write. It does what jetstream's publishes do for such a caller at a fraction of the
// cost: an ack is read without reflection, and a publish allocates no channel, future
// or timer of its own.
//
// Reply subjects are reused: a reply id whose ack has arrived goes back to a free list,
// so the ids in use are as many as the publishes that were ever in flight at once, and
// the server routes each ack through its subject caches instead of matching (and
// caching, and evicting) a new subject per publish. An id whose ack did not come in
// time is retired for good, so an ack that comes late can never reach a later publish.
package jsack

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
// default (a stream leader may be moving), within the caller's deadline.
const (
	NoResponderRetries = 2
	NoResponderWait    = 250 * time.Millisecond
)

// errNoResponders is a slot's result when no stream took the message.
var errNoResponders = errors.New("no stream took the message")

// Acks publishes messages with a reply subject below one subscription of the
// connection's inbox and hands each JetStream ack to the caller waiting for it. It is
// safe for concurrent use.
type Acks struct {
	nc     *nats.Conn
	prefix string // of every reply subject: the subscription's subject without "*"
	sub    *nats.Subscription
	// p reads acks; only the subscription's goroutine uses it.
	p fastjson.Parser

	mu      sync.Mutex
	next    uint64           // the last id made
	free    []reply          // ids whose ack arrived, for the next publishes
	waiting map[uint64]*Slot // by id
}

// reply is one reply id and its subject.
type reply struct {
	id      uint64
	subject string
}

// Slot is where one publish's ack arrives; a caller keeps its slots for reuse, one
// per publish in flight. Whoever takes it out of Acks.waiting (the ack, or the waiter
// giving up) settles it, so it gets at most one result.
type Slot struct {
	reply
	ch chan Result // capacity 1
}

// NewSlot returns a free slot.
func NewSlot() *Slot { return &Slot{ch: make(chan Result, 1)} }

// Result is what the stream answered: stored (Duplicate if its Nats-Msg-Id was stored
// before), or an error (*jetstream.APIError for a refusal, nats.ErrTimeout wrapped
// for no answer in time, jetstream.ErrNoStreamResponse for no stream at all).
type Result struct {
	Duplicate bool
	Err       error
}

// New subscribes to the acks of publishes on nc, below nc's inbox prefix (the only
// inbox a component's NATS user may subscribe to). Close unsubscribes.
func New(nc *nats.Conn) (*Acks, error) {
	a := &Acks{nc: nc, prefix: nc.NewInbox() + ".", waiting: make(map[uint64]*Slot)}
	sub, err := nc.Subscribe(a.prefix+"*", a.receive)
	if err != nil {
		return nil, fmt.Errorf("jsack: subscribe to publish acks: %w", err)
	}
	// Acks are answers someone waits for: never drop one for a slow handler.
	if err := sub.SetPendingLimits(-1, -1); err != nil {
		_ = sub.Unsubscribe()
		return nil, fmt.Errorf("jsack: publish acks: %w", err)
	}
	a.sub = sub
	return a, nil
}

// Close unsubscribes from the acks; publishes still awaited time out.
func (a *Acks) Close() error { return a.sub.Unsubscribe() }

// Publish sends m with a reply subject that delivers its ack to slot, which must be
// free (new, or its last publish awaited). The connection copies m out before Publish
// returns. Every successful Publish must be followed by Await on the same slot.
func (a *Acks) Publish(m *nats.Msg, slot *Slot) error {
	a.mu.Lock()
	if n := len(a.free); n > 0 {
		slot.reply = a.free[n-1]
		a.free = a.free[:n-1]
	} else {
		a.next++
		slot.reply = reply{id: a.next, subject: a.prefix + strconv.FormatUint(a.next, 10)}
	}
	a.waiting[slot.id] = slot
	a.mu.Unlock()
	m.Reply = slot.subject
	if err := a.nc.PublishMsg(m); err != nil {
		a.forget(slot)
		return err
	}
	return nil
}

// Await waits for the ack of m, published to slot, until deadline, with t (a stopped
// timer, stopped again on return). While no stream took m it publishes it again, up to
// NoResponderRetries times NoResponderWait apart before deadline. A publish that gets
// no answer by deadline ends in nats.ErrTimeout; one that no stream took, in
// jetstream.ErrNoStreamResponse (and nats.ErrTimeout too if the deadline cut its
// retries short). Either way the slot is free afterwards.
func (a *Acks) Await(m *nats.Msg, slot *Slot, t *time.Timer, deadline time.Time) Result {
	for try := 0; ; try++ {
		r := a.await(slot, t, deadline)
		if !errors.Is(r.Err, errNoResponders) {
			if try > 0 && errors.Is(r.Err, nats.ErrTimeout) {
				return Result{Err: fmt.Errorf("%w: %w", jetstream.ErrNoStreamResponse, r.Err)}
			}
			return r
		}
		if try == NoResponderRetries {
			return Result{Err: jetstream.ErrNoStreamResponse}
		}
		t.Reset(min(NoResponderWait, time.Until(deadline)))
		<-t.C
		if !time.Now().Before(deadline) {
			return Result{Err: fmt.Errorf("%w: %w", jetstream.ErrNoStreamResponse, nats.ErrTimeout)}
		}
		if err := a.Publish(m, slot); err != nil {
			return Result{Err: err}
		}
	}
}

// await waits for slot's ack until deadline, with t; past it, it gives up on the ack
// with nats.ErrTimeout.
func (a *Acks) await(slot *Slot, t *time.Timer, deadline time.Time) Result {
	t.Reset(time.Until(deadline))
	defer t.Stop()
	select {
	case r := <-slot.ch:
		return r
	case <-t.C:
		a.forget(slot)
		return Result{Err: fmt.Errorf("%w: no ack before the deadline", nats.ErrTimeout)}
	}
}

// forget takes slot out of the waiting set, retiring its id (an ack may still come);
// if its ack was taken out first, it drains the result that ack left, so the slot's
// channel is empty for its next use.
func (a *Acks) forget(slot *Slot) {
	a.mu.Lock()
	// Once its ack took it, slot's id may be another slot's already.
	waiting := a.waiting[slot.id] == slot
	if waiting {
		delete(a.waiting, slot.id)
	}
	a.mu.Unlock()
	if !waiting {
		<-slot.ch // the ack took the slot: its result is there, or about to be
	}
}

// pending is how many publishes await their ack.
func (a *Acks) pending() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.waiting)
}

// receive is the subscription's handler: it reads an ack, frees its id for reuse (a
// publish gets one answer) and hands the ack to its slot. An ack nobody waits for any
// more (timed out) is dropped, and its retired id stays unused.
func (a *Acks) receive(m *nats.Msg) {
	if len(m.Subject) <= len(a.prefix) {
		return
	}
	id, err := strconv.ParseUint(m.Subject[len(a.prefix):], 10, 64)
	if err != nil {
		return
	}
	a.mu.Lock()
	slot := a.waiting[id]
	if slot != nil {
		delete(a.waiting, id)
		a.free = append(a.free, slot.reply)
	}
	a.mu.Unlock()
	if slot != nil {
		slot.ch <- a.read(m)
	}
}

// read turns a JetStream publish answer into its result.
func (a *Acks) read(m *nats.Msg) Result {
	if len(m.Data) == 0 && m.Header.Get("Status") == "503" {
		return Result{Err: errNoResponders}
	}
	return readAck(&a.p, m.Data)
}

// readAck reads the data of a JetStream publish ack with p.
func readAck(p *fastjson.Parser, data []byte) Result {
	v, err := p.ParseBytes(data)
	if err != nil {
		return Result{Err: fmt.Errorf("%w: %w", jetstream.ErrInvalidJSAck, err)}
	}
	if e := v.Get("error"); e != nil {
		return Result{Err: &jetstream.APIError{
			Code:        e.GetInt("code"),
			ErrorCode:   jetstream.ErrorCode(e.GetUint("err_code")),
			Description: string(e.GetStringBytes("description")),
		}}
	}
	if len(v.GetStringBytes("stream")) == 0 {
		return Result{Err: jetstream.ErrInvalidJSAck}
	}
	return Result{Duplicate: v.GetBool("duplicate")}
}
