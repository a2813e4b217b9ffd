package bench

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/edgehook/edgehook/natsconf"
)

const latencyFairness = "the well-behaved tenants' events, sent (intended time) to verified, while the hanging tenant's deliveries hang"

// fairness measures how much one tenant whose endpoint hangs takes from the others:
// Tenants well-behaved tenants share c.Rate and deliver to the receiver, first alone
// (the baseline), then, on a fresh system, next to one more tenant sending its equal
// share to an endpoint that never answers while the window lasts. The result is the
// well-behaved tenants' webhooks verified within the window, as a ratio to the
// baseline.
func (b *Bench) fairness(ctx context.Context, c Case) (Result, error) {
	base, err := b.fairnessPhase(ctx, c, false)
	if err != nil {
		return Result{}, fmt.Errorf("baseline: %w", err)
	}
	with, err := b.fairnessPhase(ctx, c, true)
	if err != nil {
		return Result{}, fmt.Errorf("with a hanging tenant: %w", err)
	}
	var r Result
	r.setThroughput(with.inWindow, with.window, float64(base.inWindow)/base.window.Seconds(), ceilingBaseline)
	r.setCPU(with.cpu)
	r.Errors = base.errors + with.errors
	r.FirstError = base.firstErr
	if r.FirstError == "" {
		r.FirstError = with.firstErr
	}
	r.setLatency(latencyFairness, with.lat)
	return r, nil
}

// phase is what one fairness phase measured.
type phase struct {
	inWindow int64 // well-behaved tenants' webhooks verified within the window
	window   time.Duration
	cpu      time.Duration // used during the window
	errors   int64
	firstErr string
	lat      *Latencies
}

func (b *Bench) fairnessPhase(ctx context.Context, c Case, hanging bool) (phase, error) {
	s, release, err := b.open(ctx, Needs{Worker: true})
	if err != nil {
		return phase{}, err
	}
	defer release()
	var (
		senders  []*ingestPost
		subjects []string
	)
	body := payload(b.cfg.PayloadBytes)
	var verified, cnt counters
	m := newMatcher(&verified)
	for range b.cfg.Tenants {
		t, err := s.createTenant(ctx, s.receiverTarget())
		if err != nil {
			return phase{}, err
		}
		senders = append(senders, &ingestPost{auth: "Bearer " + t.APIKey, body: body, onAccepted: m.accept})
		subjects = append(subjects, natsconf.ReceivedSubject(t.ID))
	}
	wellBehaved := len(senders)
	rate := c.Rate
	var hang *hangServer
	if hanging {
		if hang, err = startHang(); err != nil {
			return phase{}, err
		}
		defer hang.close()
		t, err := s.createTenant(ctx, hang.url+"/hang/{tenantId}")
		if err != nil {
			return phase{}, err
		}
		senders = append(senders, &ingestPost{auth: "Bearer " + t.APIKey, body: body, onAccepted: hang.accepted})
		rate += c.Rate / b.cfg.Tenants // the hanging tenant's equal share
	}
	stopFollow, err := followReceived(ctx, s.js, subjects, m)
	if err != nil {
		return phase{}, err
	}
	defer stopFollow()

	load, err := newHTTPLoad(strings.TrimRight(s.APIURL, "/")+"/v1/events", b.cfg.Connections)
	if err != nil {
		return phase{}, err
	}
	defer load.close()
	warm := func() requester {
		return &roundRobin{senders: senders[:wellBehaved], plain: true}
	}
	if err := load.warmUp(ctx, warm); err != nil {
		return phase{}, err
	}
	time.Sleep(200 * time.Millisecond) // let the warm-up's events pass

	label := "fairness baseline"
	if hanging {
		label = "fairness with a hanging tenant"
	}
	stop := progressOf(b.cfg.Progress, label+" (verified)", &verified.events, &cnt.errors)
	cpu0, start := processCPU(), time.Now()
	m.window(start, start.Add(b.cfg.Duration))
	load.run(ctx, NewPacer(start, rate, b.cfg.Duration), func() requester { return &roundRobin{senders: senders} }, &cnt)
	window, cpu := time.Since(start), processCPU()-cpu0
	if hang != nil {
		hang.release() // from now on it answers 410, which ends those events' deliveries
	}
	drain(ctx, m, b.cfg.DrainTimeout)
	stop()
	stopFollow()
	if hang != nil && s.Shared {
		hang.linger(ctx, b.cfg.DrainTimeout)
	}

	lost := m.outstanding()
	_, inWindow, lat := m.results()
	p := phase{inWindow: inWindow, window: window, cpu: cpu, errors: cnt.errors.Load() + int64(lost), firstErr: cnt.firstError(), lat: lat}
	if lost > 0 && p.firstErr == "" {
		p.firstErr = fmt.Sprintf("%d accepted events of well-behaved tenants not verified within %s", lost, b.cfg.DrainTimeout)
	}
	return p, nil
}

// roundRobin sends operation seq as tenant seq mod len(senders). With plain set, it
// ignores the senders' onAccepted (warm-up events are not measured).
type roundRobin struct {
	senders []*ingestPost
	plain   bool
}

func (r *roundRobin) pick(seq int64) *ingestPost { return r.senders[int(seq%int64(len(r.senders)))] }

func (r *roundRobin) fill(req *fasthttp.Request, seq int64) { r.pick(seq).fill(req, seq) }

func (r *roundRobin) check(resp *fasthttp.Response, seq int64, due, end time.Time) error {
	p := r.pick(seq)
	if r.plain {
		q := *p
		q.onAccepted = nil
		return q.check(resp, seq, due, end)
	}
	return p.check(resp, seq, due, end)
}

// hangServer is a webhook endpoint on 127.0.0.1 that holds every request without
// answering until released, and answers 410 Gone afterwards, so the events sent to it
// end without retries once the measurement is over.
type hangServer struct {
	url      string
	srv      *fasthttp.Server
	ln       net.Listener
	released chan struct{}
	once     sync.Once
	served   chan error

	acceptedN atomic.Int64 // events the gateway accepted for the hanging tenant
	answered  atomic.Int64 // requests answered 410
}

func startHang() (*hangServer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("hanging endpoint: %w", err)
	}
	h := &hangServer{url: "http://" + ln.Addr().String(), ln: ln, released: make(chan struct{}), served: make(chan error, 1)}
	h.srv = &fasthttp.Server{
		Handler: func(ctx *fasthttp.RequestCtx) {
			<-h.released
			ctx.SetStatusCode(fasthttp.StatusGone)
			h.answered.Add(1)
		},
		Name:                 "edgehook-bench-hang",
		NoDefaultContentType: true,
		CloseOnShutdown:      true,
	}
	go func() { h.served <- h.srv.Serve(ln) }()
	return h, nil
}

// accepted counts an event accepted for the hanging tenant.
func (h *hangServer) accepted(string, time.Time) { h.acceptedN.Add(1) }

// release makes every held and future request answer 410.
func (h *hangServer) release() { h.once.Do(func() { close(h.released) }) }

// linger keeps answering 410 until every event accepted for the hanging tenant has
// been answered once, no request came for stallTimeout, or within passed, so a shared
// system is not left retrying them against a closed port.
func (h *hangServer) linger(ctx context.Context, within time.Duration) {
	deadline := time.Now().Add(within)
	last, lastChange := int64(-1), time.Now()
	for ctx.Err() == nil && time.Now().Before(deadline) && h.answered.Load() < h.acceptedN.Load() {
		if n := h.answered.Load(); n != last {
			last, lastChange = n, time.Now()
		} else if time.Since(lastChange) > stallTimeout {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// close releases the held requests and stops the server.
func (h *hangServer) close() {
	h.release()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = h.srv.ShutdownWithContext(ctx)
	<-h.served
}
