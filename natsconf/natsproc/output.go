package natsproc

import (
	"bytes"
	"sync"
)

// tailSize is how much of a process's output a failure shows.
const tailSize = 4 << 10

// output is the combined stdout and stderr of a server, across restarts; it is safe for
// concurrent use.
type output struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write appends p; it never fails.
func (o *output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.Write(p)
}

// String returns everything written so far.
func (o *output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}

// Len returns how many bytes were written so far, an offset for Since.
func (o *output) Len() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.Len()
}

// Since returns what was written after offset off.
func (o *output) Since(off int) string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return string(o.buf.Bytes()[off:])
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
