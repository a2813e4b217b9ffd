package bench

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/valyala/fasthttp"

	"github.com/edgehook/edgehook/natsconf"
	"github.com/edgehook/edgehook/webhook"
)

// Ceiling names, as Result.Ceiling reports them.
const (
	ceilingJetStream = "raw JetStream async publish of the same payload to a scratch stream like EVENTS, one connection"
	ceilingReceiver  = "the receiver under direct load: signed webhooks POSTed straight to it"
	ceilingAccepted  = "events accepted by the gateway in the window (ratio = share verified by the receiver)"
	ceilingBaseline  = "the same tenants' delivery throughput without the hanging tenant"
)

// httpCeilingAnswer is what the bare HTTP server of the HTTP ceiling answers: the
// gateway's 202 body, of the same length.
const httpCeilingAnswer = `{"eventId":"evt_00000000000000000000000000","status":"queued"}`

// publishWindow is how many async publishes the ceiling keeps in flight.
const publishWindow = 4096

// stallWait is how long a publish waits for room in a full window. The library's
// default (200 ms) fails a busy but healthy server; acks that stop altogether still
// end the run through the 30 s ack timeout.
const stallWait = 10 * time.Second

// publishCeiling measures raw JetStream async publishes of payloadBytes-byte messages
// on the bench's connection, flat out for d, into a scratch stream with EVENTS'
// storage settings that it deletes afterwards. It returns acked messages per second.
func (b *Bench) publishCeiling(ctx context.Context, s *system, payloadBytes int, d time.Duration) (float64, error) {
	events, err := s.js.Stream(ctx, natsconf.StreamEvents)
	if err != nil {
		return 0, fmt.Errorf("ceiling: stream %s: %w", natsconf.StreamEvents, err)
	}
	ec := events.CachedInfo().Config
	name := "BENCH_CEILING_" + b.runID
	subject := "bench.ceiling." + b.runID
	sc := jetstream.StreamConfig{
		Name:        name,
		Description: "edgehook bench scratch stream (deleted after the run)",
		Subjects:    []string{subject},
		Retention:   ec.Retention,
		Storage:     ec.Storage,
		Replicas:    ec.Replicas,
		MaxAge:      ec.MaxAge,
		Duplicates:  ec.Duplicates,
		Discard:     ec.Discard,
		Compression: ec.Compression,
	}
	if _, err := s.js.CreateStream(ctx, sc); err != nil {
		return 0, fmt.Errorf("ceiling: create scratch stream: %w", err)
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := s.js.DeleteStream(dctx, name); err != nil {
			b.log.Warn("scratch stream not deleted", "stream", name, "error", err)
		}
	}()

	var c counters
	pub, err := jetstream.New(s.nc,
		jetstream.WithPublishAsyncMaxPending(publishWindow),
		jetstream.WithPublishAsyncTimeout(30*time.Second),
		jetstream.WithPublishAsyncAckHandler(func(jetstream.JetStream, *nats.Msg, *jetstream.PubAck) { c.events.Add(1) }),
		jetstream.WithPublishAsyncErrHandler(func(_ jetstream.JetStream, _ *nats.Msg, err error) { c.fail("%v", err) }),
	)
	if err != nil {
		return 0, fmt.Errorf("ceiling: %w", err)
	}
	defer pub.CleanupPublisher()
	stop := progress(b.cfg.Progress, "ceiling: jetstream publish", &c)
	defer stop()

	data := payload(payloadBytes)
	start := time.Now()
	deadline := start.Add(d)
	for n := 0; ctx.Err() == nil; n++ {
		if n%256 == 0 && !time.Now().Before(deadline) {
			break
		}
		// A full window waits for acks (back-pressure), as long as they keep coming.
		if _, err := pub.PublishAsync(subject, data, jetstream.WithStallWait(stallWait)); err != nil {
			return 0, fmt.Errorf("ceiling: publish: %w", err)
		}
	}
	select {
	case <-pub.PublishAsyncComplete():
	case <-time.After(30 * time.Second):
		return 0, fmt.Errorf("ceiling: %d publishes not acked after 30s", pub.PublishAsyncPending())
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	elapsed := time.Since(start)
	if n := c.errors.Load(); n > 0 {
		return 0, fmt.Errorf("ceiling: %d publishes failed: %s", n, c.firstError())
	}
	return float64(c.events.Load()) / elapsed.Seconds(), nil
}

// receiverCeiling measures the receiver's own capacity: webhooks signed with t's
// secret POSTed straight to it, flat out over the bench's connections for d. It
// returns verified webhooks (204s) per second.
func (b *Bench) receiverCeiling(ctx context.Context, s *system, t tenant, d time.Duration) (float64, error) {
	load, err := newHTTPLoad(s.ReceiverURL+"/webhooks/"+t.ID, b.cfg.Connections)
	if err != nil {
		return 0, err
	}
	defer load.close()
	body := payload(b.cfg.PayloadBytes)
	var seq atomic.Int64 // webhook ids unique across warm-up and measurement
	newReq := func() requester {
		return &signedPost{signer: webhook.NewSigner(t.Secret), prefix: "msg_" + b.runID + "_", seq: &seq, body: body}
	}
	return b.flatOut(ctx, load, newReq, "receiver direct", d)
}

// flatOut warms load up and runs it flat out for d as the ceiling named what,
// returning successful requests per second; any failed request fails the ceiling.
func (b *Bench) flatOut(ctx context.Context, load *httpLoad, newReq func() requester, what string, d time.Duration) (float64, error) {
	if err := load.warmUp(ctx, newReq); err != nil {
		return 0, fmt.Errorf("ceiling: %s: %w", what, err)
	}
	var c counters
	stop := progress(b.cfg.Progress, "ceiling: "+what, &c)
	start := time.Now()
	load.run(ctx, NewPacer(start, 0, d), newReq, &c)
	elapsed := time.Since(start)
	stop()
	if n := c.errors.Load(); n > 0 {
		return 0, fmt.Errorf("ceiling: %s: %d of %d requests failed: %s", what, n, n+c.events.Load(), c.firstError())
	}
	return float64(c.events.Load()) / elapsed.Seconds(), nil
}

// httpCeiling measures the HTTP server's own ceiling: the same load as ingest (the
// same POSTs over the same connections) against a bare fasthttp server on 127.0.0.1,
// in this process, that answers 202 without doing anything, flat out for d. It
// returns answers per second.
func (b *Bench) httpCeiling(ctx context.Context, d time.Duration) (float64, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("ceiling: http server: %w", err)
	}
	srv := &fasthttp.Server{
		Handler: func(ctx *fasthttp.RequestCtx) {
			ctx.SetStatusCode(fasthttp.StatusAccepted)
			ctx.SetContentType("application/json")
			ctx.SetBodyString(httpCeilingAnswer)
		},
		Name:            "edgehook-bench-ceiling",
		CloseOnShutdown: true,
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.ShutdownWithContext(sctx)
		<-served
	}()
	load, err := newHTTPLoad("http://"+ln.Addr().String()+"/v1/events", b.cfg.Connections)
	if err != nil {
		return 0, err
	}
	defer load.close()
	body := payload(b.cfg.PayloadBytes)
	return b.flatOut(ctx, load, func() requester { return &ingestPost{auth: "Bearer ceiling", body: body} }, "http server", d)
}

// signedPost is a requester of Standard Webhooks signed POSTs with fresh ids.
type signedPost struct {
	signer  *webhook.Signer
	prefix  string
	seq     *atomic.Int64
	body    []byte
	id, sig []byte
	ts      []byte
}

func (p *signedPost) fill(req *fasthttp.Request, _ int64) {
	p.id = strconv.AppendInt(append(p.id[:0], p.prefix...), p.seq.Add(1), 10)
	now := time.Now().Unix()
	p.ts = strconv.AppendInt(p.ts[:0], now, 10)
	p.sig = p.signer.AppendSignature(p.sig[:0], string(p.id), now, p.body)
	req.Header.SetContentType("application/json")
	req.Header.SetBytesV(webhook.HeaderID, p.id)
	req.Header.SetBytesV(webhook.HeaderTimestamp, p.ts)
	req.Header.SetBytesV(webhook.HeaderSignature, p.sig)
	req.SetBodyRaw(p.body)
}

func (p *signedPost) check(resp *fasthttp.Response, _ int64, _, _ time.Time) error {
	if resp.StatusCode() != fasthttp.StatusNoContent {
		return statusError(resp, fasthttp.StatusNoContent)
	}
	return nil
}
