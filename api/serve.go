package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
)

// ServeUntil serves srv on ln (which it closes) until ctx is cancelled, then stops
// accepting and lets in-flight requests finish for at most drain. The error says
// whether serving or draining failed.
func ServeUntil(ctx context.Context, srv *fasthttp.Server, ln net.Listener, drain time.Duration) error {
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		if err != nil {
			return fmt.Errorf("serve: %w", err)
		}
		return nil
	case <-ctx.Done():
	}
	dctx, cancel := context.WithTimeout(context.Background(), drain)
	defer cancel()
	shutdownErr := srv.ShutdownWithContext(dctx)
	// A shutdown that comes before Serve has registered ln does not close it; closing
	// it here ends Serve's accept loop either way.
	ln.Close()
	serveErr := <-errc
	if errors.Is(serveErr, net.ErrClosed) {
		serveErr = nil
	}
	if shutdownErr != nil {
		return fmt.Errorf("drain: %w", shutdownErr)
	}
	if serveErr != nil {
		return fmt.Errorf("serve: %w", serveErr)
	}
	return nil
}

// FastHTTPLogger sends fasthttp's own (connection-level) messages to slog at debug
// level; they carry no request data.
type FastHTTPLogger struct{ Log *slog.Logger }

// Printf logs one fasthttp message.
func (l FastHTTPLogger) Printf(format string, args ...any) {
	l.Log.Debug(fmt.Sprintf(format, args...), "source", "fasthttp")
}

// Listen opens the TCP listener of a server's Run on addr.
func Listen(ctx context.Context, addr string) (net.Listener, error) {
	var lc net.ListenConfig
	return lc.Listen(ctx, "tcp", addr)
}

// Bound remembers the address a server listens on, for its Addr method.
type Bound struct {
	mu   sync.Mutex
	addr string
}

// Set records addr, once the listener is bound.
func (b *Bound) Set(addr string) {
	b.mu.Lock()
	b.addr = addr
	b.mu.Unlock()
}

// Addr returns the recorded address, or "" before Set.
func (b *Bound) Addr() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.addr
}

// Healthz serves GET /healthz: 200 whenever the process serves HTTP.
func Healthz(ctx *fasthttp.RequestCtx, _ string) error {
	WriteStatus(ctx, "ok")
	return nil
}
