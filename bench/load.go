package bench

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
)

// requestTimeout bounds one request of a load; a request past it counts as an error.
const requestTimeout = 30 * time.Second

// requester fills one load goroutine's requests and judges the answers. Each
// goroutine gets its own, so implementations need no locking of their own state.
type requester interface {
	// fill sets up req (already reset to the load's URL and method) for operation seq.
	fill(req *fasthttp.Request, seq int64)
	// check judges the answer to operation seq, received at end; an error counts the
	// request as failed.
	check(resp *fasthttp.Response, seq int64, due, end time.Time) error
}

// httpLoad sends requests to one URL over a fixed number of keep-alive connections,
// paced by a Pacer.
type httpLoad struct {
	url    string
	client *fasthttp.HostClient
	conns  int
}

// newHTTPLoad returns a load against rawURL (http or https) over conns connections.
func newHTTPLoad(rawURL string, conns int) (*httpLoad, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%w: %q is not an http(s) URL", ErrInvalidConfig, rawURL)
	}
	host := u.Host
	if u.Port() == "" {
		port := "80"
		if u.Scheme == "https" {
			port = "443"
		}
		host = net.JoinHostPort(u.Hostname(), port)
	}
	return &httpLoad{
		url: rawURL,
		client: &fasthttp.HostClient{
			Addr:                     host,
			IsTLS:                    u.Scheme == "https",
			MaxConns:                 conns,
			MaxConnWaitTimeout:       requestTimeout,
			ReadTimeout:              requestTimeout,
			WriteTimeout:             requestTimeout,
			MaxIdleConnDuration:      time.Minute,
			NoDefaultUserAgentHeader: true,
			DisablePathNormalizing:   true,
		},
		conns: conns,
	}, nil
}

// close drops the load's idle connections.
func (l *httpLoad) close() { l.client.CloseIdleConnections() }

// run sends POSTs on pacer's schedule from one goroutine per connection until the
// schedule ends or ctx is done. Each goroutine waits for its operation's due time,
// so with a fixed rate the latency recorded is from the due time to the answer
// (including any time the operation waited for a free connection); flat out, it is
// the request's own round trip. Successful requests are counted and recorded in the
// returned histogram; failed ones are counted in c.
func (l *httpLoad) run(ctx context.Context, p *Pacer, newRequester func() requester, c *counters) *Latencies {
	var (
		mu  sync.Mutex
		all = NewLatencies()
		wg  sync.WaitGroup
	)
	for range l.conns {
		r := newRequester()
		wg.Go(func() {
			lat := NewLatencies()
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			for {
				seq, due, ok := p.Next()
				if !ok || !Wait(ctx, due) {
					break
				}
				req.Reset()
				req.SetRequestURI(l.url)
				req.Header.SetMethod(fasthttp.MethodPost)
				r.fill(req, seq)
				err := l.client.Do(req, resp)
				end := time.Now()
				if err != nil {
					c.fail("%v", err)
					continue
				}
				if err := r.check(resp, seq, due, end); err != nil {
					c.fail("%v", err)
					continue
				}
				lat.Record(end.Sub(due))
				c.events.Add(1)
			}
			mu.Lock()
			all.Merge(lat)
			mu.Unlock()
		})
	}
	wg.Wait()
	return all
}

// warmUp opens the load's connections with a few requests each, so the measured
// window does not include dialing; their answers are checked but not counted.
func (l *httpLoad) warmUp(ctx context.Context, newRequester func() requester) error {
	p := &fixedCount{n: int64(2 * l.conns)}
	var (
		wg   sync.WaitGroup
		errc = make(chan error, l.conns)
	)
	for range l.conns {
		r := newRequester()
		wg.Go(func() {
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			for ctx.Err() == nil {
				seq, ok := p.next()
				if !ok {
					return
				}
				req.Reset()
				req.SetRequestURI(l.url)
				req.Header.SetMethod(fasthttp.MethodPost)
				r.fill(req, seq)
				err := l.client.Do(req, resp)
				if err == nil {
					now := time.Now()
					err = r.check(resp, seq, now, now)
				}
				if err != nil {
					errc <- fmt.Errorf("warm-up request to %s: %w", l.url, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errc)
	return <-errc
}

// fixedCount hands out sequence numbers 0..n-1.
type fixedCount struct {
	mu     sync.Mutex
	handed int64
	n      int64
}

func (f *fixedCount) next() (int64, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.handed >= f.n {
		return 0, false
	}
	f.handed++
	return f.handed - 1, true
}

// statusError describes an unexpected answer, with the start of its body.
func statusError(resp *fasthttp.Response, want int) error {
	body := resp.Body()
	if len(body) > 200 {
		body = body[:200]
	}
	return fmt.Errorf("HTTP %d, want %d: %s", resp.StatusCode(), want, strings.TrimSpace(string(body)))
}

// payload returns a JSON event body of exactly n bytes (n >= minPayload).
func payload(n int) []byte {
	const head, tail = `{"type":"bench.event","data":"`, `"}`
	b := make([]byte, 0, n)
	b = append(b, head...)
	for len(b) < n-len(tail) {
		b = append(b, 'x')
	}
	return append(b, tail...)
}

// minPayload is the smallest body payload can build.
const minPayload = 64
