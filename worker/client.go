package worker

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/edgehook/edgehook/webhook"
)

// bodyPrefixBytes is how much of a response body an attempt reads and keeps; the rest
// is discarded (and the connection closed rather than drained).
const bodyPrefixBytes = 1024

// idleConnTimeout closes pooled connections before common server keep-alive timeouts
// (Node.js: 5s) close them under us.
const idleConnTimeout = 4 * time.Second

// maxErrorText bounds a lastError built from a transport error.
const maxErrorText = 200

// newHTTPClient returns the delivery client: keep-alive pools sized to the worker's
// concurrency, the SSRF guard as its dial function, read/write timeouts, streamed
// response bodies (only a prefix is read), and no automatic retries except one on a
// stale keep-alive connection. Callers use Do/DoDeadline, which never follow redirects.
func newHTTPClient(cfg Config, guard *dialGuard) *fasthttp.Client {
	return &fasthttp.Client{
		DialTimeout:              guard.DialTimeout,
		MaxConnsPerHost:          cfg.Concurrency,
		MaxConnWaitTimeout:       cfg.HTTPTimeout,
		MaxIdleConnDuration:      idleConnTimeout,
		ReadTimeout:              cfg.HTTPTimeout,
		WriteTimeout:             cfg.HTTPTimeout,
		ReadBufferSize:           16 << 10,
		NoDefaultUserAgentHeader: true,
		DisablePathNormalizing:   true,
		StreamResponseBody:       true,
		RetryIfErr:               retryStaleConn,
	}
}

// retryStaleConn lets the client re-send a request once when a pooled keep-alive
// connection turns out to be closed by the endpoint, the usual fate of idle
// connections. The endpoint may in rare cases see the webhook twice; both copies carry
// the same webhook-id, which receivers dedupe on. Dial errors are never retried.
func retryStaleConn(_ *fasthttp.Request, attempts int, err error) (resetTimeout, retry bool) {
	stale := errors.Is(err, io.EOF) || errors.Is(err, fasthttp.ErrConnectionClosed) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
	return false, attempts < 2 && stale
}

// attemptBuffers are one delivery goroutine's reusable request, response and scratch
// space, so an attempt allocates little.
type attemptBuffers struct {
	req     *fasthttp.Request
	resp    *fasthttp.Response
	ts      []byte
	sig     []byte
	body    [bodyPrefixBytes + 1]byte
	tenants tenantCache
}

func newAttemptBuffers() *attemptBuffers {
	return &attemptBuffers{req: fasthttp.AcquireRequest(), resp: fasthttp.AcquireResponse()}
}

// maxCachedTenants bounds one delivery goroutine's tenantCache; beyond it the cache
// starts over, so a worker serving many tenants keeps a bounded set.
const maxCachedTenants = 256

// tenantCache keeps what one delivery goroutine derives from each tenant's
// configuration, so a message does not pay for it again: the Signer (new HMAC states)
// and the verdict of checkTargetURL on the target URL (a parse). Each is reused only
// while what it came from is unchanged: a Signer while it signs with exactly the
// secrets the configuration gives for this message (a rotation or an expired previous
// secret replaces it before anything is signed), a verdict while the URL is the same.
// Not safe for concurrent use.
type tenantCache struct {
	byTenant map[string]*tenantEntry
}

type tenantEntry struct {
	signer  *webhook.Signer // nil until the tenant's first signature
	url     string          // the URL urlErr is the verdict on, once urlSeen
	urlErr  error
	urlSeen bool
}

// entry returns tenant's entry, made empty if there was none.
func (c *tenantCache) entry(tenant string) *tenantEntry {
	if e, ok := c.byTenant[tenant]; ok {
		return e
	}
	if c.byTenant == nil || len(c.byTenant) >= maxCachedTenants {
		c.byTenant = make(map[string]*tenantEntry)
	}
	e := &tenantEntry{}
	c.byTenant[tenant] = e
	return e
}

// signer returns a Signer for tenant that signs with exactly secrets.
func (c *tenantCache) signer(tenant string, secrets []webhook.Secret) *webhook.Signer {
	e := c.entry(tenant)
	if e.signer == nil || !e.signer.SignsWith(secrets...) {
		e.signer = webhook.NewSigner(secrets...)
	}
	return e.signer
}

// checkURL is checkTargetURL(raw) for tenant's target URL raw, remembered.
func (c *tenantCache) checkURL(tenant, raw string) error {
	e := c.entry(tenant)
	if !e.urlSeen || e.url != raw {
		e.url, e.urlErr, e.urlSeen = raw, checkTargetURL(raw), true
	}
	return e.urlErr
}

// result is the outcome of one delivery attempt.
type result struct {
	statusCode    int           // 0 when no response arrived
	lastError     string        // short, tenant-safe description of a failure ("" on success)
	terminal      bool          // do not retry: 410, or no webhook config
	refused       bool          // the SSRF guard refused the target
	retryAfter    time.Duration // the endpoint's Retry-After, when hasRetryAfter
	hasRetryAfter bool
	duration      time.Duration // of the HTTP exchange
	bodyPrefix    []byte        // up to bodyPrefixBytes of the response body, for the attempt log
	sent          bool          // an HTTP request was attempted
	parked        bool          // no request: the endpoint's breaker is open
	at            time.Time     // when the attempt started
}

// delivered reports whether the endpoint accepted the webhook.
func (r result) delivered() bool { return r.statusCode >= 200 && r.statusCode <= 299 }

// post sends one signed webhook for ev to target and classifies the answer. The
// payload is sent unchanged; webhook-id is the event id, webhook-timestamp is now.
func (w *Worker) post(b *attemptBuffers, target string, secrets []webhook.Secret, ev *event, now time.Time) result {
	req, resp := b.req, b.resp
	req.Reset()
	req.SetRequestURI(target)
	req.Header.SetMethod(fasthttp.MethodPost)
	req.Header.SetContentType("application/json")
	req.Header.SetUserAgent(w.cfg.UserAgent)
	req.Header.Set(webhook.HeaderID, ev.id)
	ts := now.Unix()
	b.ts = strconv.AppendInt(b.ts[:0], ts, 10)
	req.Header.SetBytesV(webhook.HeaderTimestamp, b.ts)
	b.sig = b.tenants.signer(ev.tenant, secrets).AppendSignature(b.sig[:0], ev.id, ts, ev.payload)
	req.Header.SetBytesV(webhook.HeaderSignature, b.sig)
	req.SetBodyRaw(ev.payload)

	start := time.Now()
	err := w.client.DoDeadline(req, resp, start.Add(w.cfg.HTTPTimeout))
	r := result{duration: time.Since(start), sent: true, at: start}
	if err != nil {
		r.refused = errors.Is(err, ErrTargetNotAllowed)
		r.lastError = w.errorText(err)
		return r
	}
	r.statusCode = resp.StatusCode()
	if r.statusCode == http.StatusTooManyRequests || r.statusCode == http.StatusServiceUnavailable {
		r.retryAfter, r.hasRetryAfter = parseRetryAfter(string(resp.Header.Peek("Retry-After")), time.Now())
	}
	r.bodyPrefix = readBodyPrefix(resp, b.body[:])
	switch {
	case r.delivered():
	case r.statusCode == http.StatusGone:
		r.terminal = true
		r.lastError = "HTTP 410 Gone: the endpoint asked to stop deliveries"
	case r.statusCode >= 300 && r.statusCode <= 399:
		r.lastError = fmt.Sprintf("HTTP %d: redirects are not followed", r.statusCode)
	default:
		r.lastError = fmt.Sprintf("HTTP %d", r.statusCode)
	}
	return r
}

// readBodyPrefix reads up to bodyPrefixBytes of a streamed response body into buf
// (len bodyPrefixBytes+1) and closes the stream: a body read to its end leaves the
// connection reusable, a longer one closes it. Errors only shorten the prefix; the
// status code alone decides the outcome. The prefix aliases buf.
func readBodyPrefix(resp *fasthttp.Response, buf []byte) []byte {
	stream := resp.BodyStream()
	if stream == nil {
		return nil
	}
	n, err := io.ReadFull(stream, buf)
	if err == nil { // longer than the prefix: close instead of reading the rest
		if c, ok := stream.(fasthttp.ReadCloserWithError); ok {
			_ = c.CloseWithError(fasthttp.ErrBodyTooLarge)
			return buf[:bodyPrefixBytes]
		}
	}
	_ = resp.CloseBodyStream()
	return buf[:min(n, bodyPrefixBytes)]
}

// errorText describes a transport error in a few words, without the target URL or
// anything the endpoint sent.
func (w *Worker) errorText(err error) string {
	var te *TargetError
	var dnsErr *net.DNSError
	var opErr *net.OpError
	switch {
	case errors.As(err, &te):
		return te.Error()
	case errors.Is(err, fasthttp.ErrTimeout):
		return fmt.Sprintf("timeout after %s", w.cfg.HTTPTimeout)
	case errors.Is(err, fasthttp.ErrTLSHandshakeTimeout):
		return "TLS handshake timed out"
	case errors.Is(err, fasthttp.ErrConnectionClosed):
		return "the endpoint closed the connection without answering"
	case errors.As(err, &dnsErr):
		if dnsErr.IsNotFound {
			return "resolve " + dnsErr.Name + ": no such host"
		}
		return "resolve " + dnsErr.Name + " failed"
	case errors.As(err, &opErr) && opErr.Op == "dial":
		if opErr.Timeout() {
			return fmt.Sprintf("connect timeout after %s", w.cfg.ConnectTimeout)
		}
		return truncate("connect failed: " + opErr.Err.Error())
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return fmt.Sprintf("timeout after %s", w.cfg.HTTPTimeout)
	}
	return truncate(err.Error())
}

func truncate(s string) string {
	if len(s) > maxErrorText {
		return s[:maxErrorText]
	}
	return s
}
