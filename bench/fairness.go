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

	"github.com/edgehook/edgehook/bench/cputime"
	"github.com/edgehook/edgehook/natsconf"
)

const latencyFairness = "the well-behaved tenants' events, sent (intended time) to verified, while the hanging tenant's deliveries hang"

// fairness measures how much one misbehaving tenant takes from the others: Tenants
// well-behaved tenants share c.Rate and deliver to the receiver, first alone (the
// baseline), then, each on a fresh system, next to one more tenant sending its equal
// share to an endpoint that never answers while the window lasts (the hanging phase),
// and next to one whose endpoint is dead (refuses connections) and holds Parked
// parked events (the parked phase, see parked.go). The result's common fields are the
// hanging phase's: the well-behaved tenants' webhooks verified within the window, as
// a ratio to the baseline. The parked phase's figures, and the consumer's pending
// count in both phases, are its FairnessFigures.
func (b *Bench) fairness(ctx context.Context, c Case) (Result, error) {
	base, err := b.fairnessPhase(ctx, c, neighbourNone)
	if err != nil {
		return Result{}, fmt.Errorf("baseline: %w", err)
	}
	with, err := b.fairnessPhase(ctx, c, neighbourHanging)
	if err != nil {
		return Result{}, fmt.Errorf("with a hanging tenant: %w", err)
	}
	baseRate := float64(base.inWindow) / base.window.Seconds()
	var r Result
	r.setThroughput(with.inWindow, with.window, baseRate, ceilingBaseline)
	r.setCPU(with.cpu)
	r.Errors = base.errors + with.errors
	r.FirstError = firstOf(base.firstErr, with.firstErr)
	r.setLatency(latencyFairness, with.lat)
	f := &FairnessFigures{
		MaxAckPending:         with.maxAckPending,
		BaselineAckPendingMax: base.pending.window.maxAck,
		HangingAckPendingMax:  with.pending.window.maxAck,
		BaselineNumPendingMax: base.pending.window.maxPending,
		HangingNumPendingMax:  with.pending.window.maxPending,
		Parked:                b.cfg.Parked,
	}
	if b.cfg.Parked > 0 {
		dead, err := b.fairnessPhase(ctx, c, neighbourDead)
		if err != nil {
			return Result{}, fmt.Errorf("with a dead endpoint holding %d parked events: %w", b.cfg.Parked, err)
		}
		f.setParked(dead, baseRate)
		r.Errors += dead.errors
		r.FirstError = firstOf(r.FirstError, dead.firstErr)
	}
	r.FairnessFigures = f
	return r, nil
}

func firstOf(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// neighbour is who shares the system with the well-behaved tenants in a phase.
type neighbour int

const (
	neighbourNone    neighbour = iota // the baseline
	neighbourHanging                  // a tenant whose endpoint never answers
	neighbourDead                     // a tenant whose endpoint refuses connections, with Parked events parked
)

var phaseLabels = map[neighbour]string{
	neighbourNone:    "fairness baseline",
	neighbourHanging: "fairness with a hanging tenant",
	neighbourDead:    "fairness with a dead endpoint",
}

// phase is what one fairness phase measured.
type phase struct {
	inWindow int64 // well-behaved tenants' webhooks verified within the window
	window   time.Duration
	cpu      time.Duration // used during the window
	errors   int64
	firstErr string
	lat      *Latencies
	// The deliver consumer's bound, and its pending counts while parking (dead
	// endpoint only) and in the window.
	maxAckPending int
	pending       struct{ parking, window pendingMax }
	parked        *parkedFigures // the dead endpoint's phase only
}

func (b *Bench) fairnessPhase(ctx context.Context, c Case, who neighbour) (phase, error) {
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
	sampler, err := startPendingSampler(ctx, s)
	if err != nil {
		return phase{}, err
	}
	defer sampler.stop()
	p := phase{maxAckPending: sampler.maxAckPending}
	var (
		hang *hangServer
		dead *deadEndpoint
	)
	switch who {
	case neighbourHanging:
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
	case neighbourDead:
		if dead, err = b.parkAtDeadEndpoint(ctx, s, sampler); err != nil {
			return phase{}, err
		}
		defer dead.close()
		p.parked = &dead.figures
		p.pending.parking = sampler.take()
		senders = append(senders, &ingestPost{auth: "Bearer " + dead.tenant.APIKey, body: body, onAccepted: dead.accepted})
		rate += c.Rate / b.cfg.Tenants // the dead tenant's equal share, parked as it comes
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

	label := phaseLabels[who]
	stop := progressOf(b.cfg.Progress, label+" (verified)", &verified.events, &cnt.errors)
	sampler.take()
	var lateness0 histogram
	if dead != nil {
		lateness0 = dead.lateness(s)
	}
	cpu0, start := cputime.Self(), time.Now()
	m.window(start, start.Add(b.cfg.Duration))
	load.run(ctx, NewPacer(start, rate, b.cfg.Duration), func() requester { return &roundRobin{senders: senders} }, &cnt)
	window, cpu := time.Since(start), cputime.Self()-cpu0
	p.pending.window = sampler.take()
	if dead != nil {
		dead.atBacklog(ctx, s, lateness0)
	}
	if hang != nil {
		hang.release() // from now on it answers 410, which ends those events' deliveries
	}
	within := b.cfg.DrainTimeout
	busy := func() bool { return false }
	if dead != nil {
		// The parked copies' next retries may have come back as a wave the others wait
		// behind; it takes about as long as parking them did. Wait for it.
		within += dead.figures.park
		busy = func() bool { ci := sampler.latest(); return ci != nil && ci.NumPending > 0 }
	}
	drainWhile(ctx, m, within, busy)
	stop()
	stopFollow()
	if hang != nil && s.Shared {
		hang.linger(ctx, b.cfg.DrainTimeout)
	}
	if dead != nil && s.Shared {
		dead.revive(ctx, s, b.cfg.DrainTimeout)
	}

	lost := m.outstanding()
	_, inWindow, lat := m.results()
	p.inWindow, p.window, p.cpu, p.lat = inWindow, window, cpu, lat
	p.errors, p.firstErr = cnt.errors.Load()+int64(lost), cnt.firstError()
	if lost > 0 && p.firstErr == "" {
		p.firstErr = fmt.Sprintf("%d accepted events of well-behaved tenants not verified within %s", lost, within.Round(time.Second))
	}
	if dead != nil {
		p.errors += dead.notParked
		p.firstErr = firstOf(p.firstErr, dead.firstErr)
	}
	if p.firstErr != "" {
		p.firstErr = label + ": " + p.firstErr
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
	lingerFor(ctx, within, &h.answered, &h.acceptedN)
}

// lingerFor waits until answered reaches accepted, answered did not move for
// stallTimeout, within passed or ctx ended.
func lingerFor(ctx context.Context, within time.Duration, answered, accepted *atomic.Int64) {
	deadline := time.Now().Add(within)
	last, lastChange := int64(-1), time.Now()
	for ctx.Err() == nil && time.Now().Before(deadline) && answered.Load() < accepted.Load() {
		if n := answered.Load(); n != last {
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
