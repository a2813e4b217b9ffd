// Package pull runs a JetStream pull consumer's messages through a fixed number of
// goroutines until a context ends, then drains within a bound: the one consume loop of
// the delivery worker and the DLQ processor.
package pull

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// ErrConsumingStopped is returned by Run when the message iterator ended while the
// context was still live (the consumer was deleted or the connection closed).
var ErrConsumingStopped = errors.New("consuming stopped")

// flushTimeout bounds the final flush that pushes shutdown acks and naks to the server.
const flushTimeout = 2 * time.Second

// Loop is one consumer's loop. Handle is required; the rest may be zero.
type Loop struct {
	// Concurrency is how many goroutines take messages (at least 1).
	Concurrency int
	// DrainTimeout bounds how long Run waits, once ctx ends, for messages being handled.
	DrainTimeout time.Duration
	// Handle handles one message. ctx ends when the loop is asked to stop; work, which
	// outlives it by up to DrainTimeout, is for the handling itself.
	Handle func(ctx, work context.Context, msg jetstream.Msg)
	// Stopped is called when every goroutine returned within the drain, DrainTimedOut
	// when the drain ran out (after work was cancelled), with the iterator, whose
	// buffered messages nobody takes any more.
	Stopped       func()
	DrainTimedOut func(iter jetstream.MessagesContext)
	// Ready, when set, is true while the loop consumes.
	Ready *atomic.Bool
	// Log receives iterator errors and shutdown warnings (nil: discarded).
	Log *slog.Logger
}

// Run consumes iter with l until ctx ends, then stops taking messages, gives messages
// that arrive afterwards back (nak), waits up to DrainTimeout for those being handled,
// flushes conn's outgoing acks and returns nil. If the iterator ends while ctx is live
// it returns an error wrapping ErrConsumingStopped and the iterator's error.
func (l Loop) Run(ctx context.Context, iter jetstream.MessagesContext, flush func(time.Duration) error) error {
	log := l.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	work, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()
	var (
		wg      sync.WaitGroup
		iterErr atomic.Pointer[error]
	)
	for range max(l.Concurrency, 1) {
		wg.Go(func() {
			if err := l.consume(ctx, work, iter, log); err != nil {
				iterErr.CompareAndSwap(nil, &err)
			}
		})
	}
	stopped := make(chan struct{})
	go func() { wg.Wait(); close(stopped) }()
	l.setReady(true)

	select {
	case <-ctx.Done():
	case <-stopped:
	}
	l.setReady(false)
	iter.Drain()
	drain := time.NewTimer(l.DrainTimeout)
	defer drain.Stop()
	select {
	case <-stopped:
		if l.Stopped != nil {
			l.Stopped()
		}
	case <-drain.C:
		cancelWork()
		if l.DrainTimedOut != nil {
			l.DrainTimedOut(iter)
		}
	}
	if err := flush(flushTimeout); err != nil {
		log.Warn("flush at shutdown failed; unsettled messages are redelivered after the ack wait", "error", err)
	}
	if ctx.Err() == nil {
		if p := iterErr.Load(); p != nil {
			return fmt.Errorf("%w: %w", ErrConsumingStopped, *p)
		}
		return ErrConsumingStopped
	}
	return nil
}

func (l Loop) setReady(v bool) {
	if l.Ready != nil {
		l.Ready.Store(v)
	}
}

// consume is one goroutine: it takes the next message and handles it, until the
// iterator is closed. Messages it receives after ctx ended were buffered, not started,
// and go straight back. It returns the error that closed the iterator, if any other
// than a normal close.
func (l Loop) consume(ctx, work context.Context, iter jetstream.MessagesContext, log *slog.Logger) error {
	var firstErr error
	for {
		msg, err := iter.Next()
		if err != nil {
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				if errors.Is(err, jetstream.ErrConnectionClosed) && firstErr == nil {
					firstErr = err
				}
				return firstErr
			}
			// Terminal iterator errors (consumer deleted) stop the iterator; the next
			// call reports it closed.
			if firstErr == nil {
				firstErr = err
			}
			log.Error("consuming failed", "error", err)
			continue
		}
		if ctx.Err() != nil {
			if err := msg.Nak(); err != nil {
				log.Warn("nak at shutdown failed; the message is redelivered after the ack wait", "error", err)
			}
			continue
		}
		l.Handle(ctx, work, msg)
	}
}
