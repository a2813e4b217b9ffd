package natsproc

import (
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// dialTimeout bounds how long the proxy waits to connect to its target.
const dialTimeout = 5 * time.Second

// Proxy is a TCP proxy on 127.0.0.1 whose owner (a test, or `edgehook mesh`) cuts and
// heals a link, for example an edge's leaf connection to the hub; it is safe for
// concurrent use.
type Proxy struct {
	target string
	ln     net.Listener
	wg     sync.WaitGroup // the accept loop and every connection's goroutines

	mu     sync.Mutex
	conns  map[net.Conn]struct{} // open connections, both halves of each link
	cut    bool
	cuts   int
	closed bool
}

// StartProxy listens on listen (host:port; port 0 picks a free one) and forwards each
// accepted connection to target (host:port) until Close.
func StartProxy(listen, target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, fmt.Errorf("natsproc: proxy to %s: %w", target, err)
	}
	p := &Proxy{target: target, ln: ln, conns: make(map[net.Conn]struct{})}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// NewProxy listens on a free 127.0.0.1 port and forwards each accepted connection to
// target (host:port); it is closed at test cleanup, which waits for its goroutines.
func NewProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	p, err := StartProxy("127.0.0.1:0", target)
	if err != nil {
		t.Fatalf("%v", err)
	}
	t.Cleanup(p.Close)
	return p
}

// Addr returns the address the proxy listens on, "127.0.0.1:port".
func (p *Proxy) Addr() string {
	return p.ln.Addr().String()
}

// Cut closes every open connection at once and, until Heal, closes each new connection
// as soon as it is accepted.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
	p.cuts++
	for c := range p.conns {
		c.Close()
		delete(p.conns, c)
	}
}

// Heal makes the proxy forward new connections again.
func (p *Proxy) Heal() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = false
}

// Cuts returns how many times Cut was called.
func (p *Proxy) Cuts() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cuts
}

// IsCut reports whether the proxy is cut (Cut was called after the last Heal).
func (p *Proxy) IsCut() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cut
}

// Target returns the address the proxy forwards to.
func (p *Proxy) Target() string { return p.target }

// Close stops accepting, closes every connection and waits for all goroutines; a
// second call does nothing more.
func (p *Proxy) Close() {
	p.mu.Lock()
	p.closed = true
	p.ln.Close()
	for c := range p.conns {
		c.Close()
		delete(p.conns, c)
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// accept runs until the listener is closed.
func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		if !p.track(c) {
			c.Close()
			continue
		}
		p.wg.Add(1)
		go p.forward(c)
	}
}

// track records c as open and returns true, or returns false if the proxy is cut or
// closed (c is then the caller's to close).
func (p *Proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cut || p.closed {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

// untrack closes c and forgets it.
func (p *Proxy) untrack(c net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	c.Close()
	delete(p.conns, c)
}

// forward dials the target for client and copies both ways until either side closes,
// then closes both.
func (p *Proxy) forward(client net.Conn) {
	defer p.wg.Done()
	defer p.untrack(client)
	server, err := net.DialTimeout("tcp", p.target, dialTimeout)
	if err != nil {
		return
	}
	defer p.untrack(server)
	// A Cut during the dial has already closed client; the link must not come up.
	p.mu.Lock()
	_, open := p.conns[client]
	if open {
		p.conns[server] = struct{}{}
	}
	p.mu.Unlock()
	if !open {
		return
	}
	done := make(chan struct{}, 2)
	copyHalf := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src) // an error here is the link going down, which is the point
		dst.Close()
		src.Close()
		done <- struct{}{}
	}
	go copyHalf(server, client)
	go copyHalf(client, server)
	<-done
	<-done
}
