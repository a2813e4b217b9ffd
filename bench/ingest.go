package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/edgehook/edgehook/bench/cputime"
)

// Latency descriptions, as Result.Latency reports them.
const (
	latencyIngest = "POST /v1/events until its 202 (the event is durable), from the intended send time at a fixed rate"
	latencyE2E    = "POST /v1/events sent (intended time at a fixed rate) to verified by the receiver (its Edgehook-Verify-Time header), same clock"
)

// ingest measures POST /v1/events against the raw JetStream publish ceiling, on a
// system without a worker (as at an edge node, whose workers run elsewhere).
func (b *Bench) ingest(ctx context.Context, c Case) (Result, error) {
	s, release, err := b.open(ctx, Needs{})
	if err != nil {
		return Result{}, err
	}
	defer release()
	t, err := s.createTenant(ctx, s.receiverTarget())
	if err != nil {
		return Result{}, err
	}
	load, err := newHTTPLoad(strings.TrimRight(s.APIURL, "/")+"/v1/events", b.cfg.Connections)
	if err != nil {
		return Result{}, err
	}
	defer load.close()
	body := payload(b.cfg.PayloadBytes)
	newReq := func() requester { return &ingestPost{auth: "Bearer " + t.APIKey, body: body} }
	if err := load.warmUp(ctx, newReq); err != nil {
		return Result{}, err
	}
	var cnt counters
	stop := progress(b.cfg.Progress, c.String(), &cnt)
	cpu0, start := cputime.Self(), time.Now()
	lat := load.run(ctx, NewPacer(start, c.Rate, b.cfg.Duration), newReq, &cnt)
	window, cpu := time.Since(start), cputime.Self()-cpu0
	stop()
	// The ceilings come after the load: deleting the scratch stream (hundreds of MB)
	// would otherwise still be busy on the disk while the load runs.
	ceiling, http, err := b.ingestCeilings(ctx, s)
	if err != nil {
		return Result{}, err
	}

	var r Result
	r.setThroughput(cnt.events.Load(), window, ceiling, ceilingJetStream)
	r.CeilingFigures = newCeilingFigures(r.ThroughputPerS, ceiling, http)
	r.setCPU(cpu)
	r.Errors, r.FirstError = cnt.errors.Load(), cnt.firstError()
	r.setLatency(latencyIngest, lat)
	return r, nil
}

// ingestPost is a requester of POST /v1/events as one tenant; when onAccepted is set
// it is told each accepted event's id and the time the request was due (its intended
// send time at a fixed rate, its send time flat out).
type ingestPost struct {
	auth       string
	body       []byte
	onAccepted func(eventID string, sent time.Time)
}

func (p *ingestPost) fill(req *fasthttp.Request, _ int64) {
	req.Header.Set(fasthttp.HeaderAuthorization, p.auth)
	req.Header.SetContentType("application/json")
	req.SetBodyRaw(p.body)
}

func (p *ingestPost) check(resp *fasthttp.Response, _ int64, due, _ time.Time) error {
	if resp.StatusCode() != fasthttp.StatusAccepted {
		return statusError(resp, fasthttp.StatusAccepted)
	}
	if p.onAccepted != nil {
		id, err := eventID(resp.Body())
		if err != nil {
			return err
		}
		p.onAccepted(id, due)
	}
	return nil
}

// errNoEventID is a 202 whose body carries no event id.
var errNoEventID = errors.New(`202 without "eventId"`)

// eventID reads "eventId" from a 202 body {"eventId":"...","status":"queued"}.
func eventID(body []byte) (string, error) {
	const key = `"eventId":"`
	i := bytes.Index(body, []byte(key))
	if i < 0 {
		return "", errNoEventID
	}
	rest := body[i+len(key):]
	j := bytes.IndexByte(rest, '"')
	if j <= 0 {
		return "", fmt.Errorf("%w: %q", errNoEventID, body)
	}
	return string(rest[:j]), nil
}
