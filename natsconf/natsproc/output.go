package natsproc

import (
	"bytes"
	"io"
	"sync"
)

const (
	// tailSize is how much of a process's output a failure shows.
	tailSize = 4 << 10
	// keepSize is how much of a process's output a Server keeps in memory, so a server
	// that runs for days (under `edgehook mesh`) does not grow without bound.
	keepSize = 1 << 20
)

// output is the combined stdout and stderr of a server, across restarts: the last
// keepSize bytes of it, and a copy of everything to an optional writer. It is safe for
// concurrent use.
type output struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	dropped int       // bytes written before the first one buf still holds
	copy    io.Writer // also receives everything written, when non-nil
}

// Write appends p; it never fails (an error of the copy is ignored: the copy is a log,
// and the process must not block on it).
func (o *output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.buf.Write(p)
	if excess := o.buf.Len() - keepSize; excess > keepSize/4 {
		o.buf.Next(excess)
		o.dropped += excess
	}
	if o.copy != nil {
		_, _ = o.copy.Write(p)
	}
	return len(p), nil
}

// String returns what is kept: everything written, up to the last keepSize bytes.
func (o *output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}

// Len returns how many bytes were written so far, an offset for Since.
func (o *output) Len() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.dropped + o.buf.Len()
}

// Since returns what was written after offset off (as much of it as is kept).
func (o *output) Since(off int) string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return string(o.buf.Bytes()[max(0, off-o.dropped):])
}

// Tail returns the last tailSize bytes written.
func (o *output) Tail() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	b := o.buf.Bytes()
	if len(b) > tailSize {
		b = b[len(b)-tailSize:]
	}
	return string(b)
}
