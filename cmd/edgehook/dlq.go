package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/edgehook/edgehook/identity"
	"github.com/edgehook/edgehook/natsconf"
	"github.com/edgehook/edgehook/status"
	"github.com/edgehook/edgehook/worker/dlq"
)

// runDLQ runs the DLQ processor (`edgehook dlq`), or replays dead letters
// (`edgehook dlq replay`).
func runDLQ(ctx context.Context, env *environment, args []string) error {
	if len(args) > 0 && args[0] == "replay" {
		return runDLQReplay(ctx, env, args[1:])
	}
	var (
		no          natsOptions
		metricsAddr string
		logLevel    string
	)
	s := newSettings("dlq", env.getenv, env.stderr)
	no.register(s)
	s.String(&metricsAddr, "metrics-addr", "EDGEHOOK_METRICS_ADDR", "127.0.0.1:9092", "where /healthz, /readyz and /metrics are served")
	s.String(&logLevel, "log-level", "EDGEHOOK_LOG_LEVEL", "info", "debug, info, warn or error")
	if err := s.parse(args); err != nil {
		return err
	}
	if s.fs.NArg() > 0 {
		return usageError{fmt.Errorf("usage: edgehook dlq [flags] | edgehook dlq replay [flags]; unexpected %q", s.fs.Arg(0))}
	}
	log, err := newLogger(env.stderr, logLevel)
	if err != nil {
		return err
	}
	reg := newRegistry()
	st := newStack(ctx, no, log)
	ready, err := st.startDLQ(reg)
	if err != nil {
		return st.abort(err)
	}
	st.g.Go(func() error { return serveOps(st.ctx, metricsAddr, reg, ready, nil) })
	log.Info("dlq processor started", "metrics", metricsAddr)
	return st.wait()
}

// replayOptions are the settings of `edgehook dlq replay`.
type replayOptions struct {
	tenant string
	since  string
	all    bool
	dryRun bool
}

// runDLQReplay replays the dead letters the flags select, each event at most once and
// only while its dead letter is its latest state, with a progress bar on stderr and a
// summary on stdout.
func runDLQReplay(ctx context.Context, env *environment, args []string) error {
	var (
		no natsOptions
		o  replayOptions
	)
	s := newSettings("dlq replay", env.getenv, env.stderr)
	no.register(s)
	s.String(&o.tenant, "tenant", "", "", "replay only this tenant's dead letters")
	s.String(&o.since, "since", "", "", "replay only dead letters written since then: a duration back from now (24h) or an RFC 3339 time")
	s.Bool(&o.all, "all", "", false, "replay every dead letter (needed when neither --tenant nor --since is given)")
	s.Bool(&o.dryRun, "dry-run", "", false, "list what would be replayed, replay nothing")
	if err := s.parse(args); err != nil {
		return err
	}
	filter, err := o.filter(time.Now())
	if err != nil {
		return usageError{err}
	}
	log, err := newLogger(env.stderr, "warn")
	if err != nil {
		return err
	}
	nc, js, err := no.connect(string(natsconf.DLQ), log)
	if err != nil {
		return err
	}
	defer nc.Close()
	kv, err := js.KeyValue(ctx, natsconf.BucketStatus)
	if err != nil {
		return fmt.Errorf("status bucket (run `edgehook setup nats`): %w", err)
	}
	replayer, err := dlq.NewReplayer(ctx, js, status.NewStore(kv))
	if err != nil {
		return err
	}
	stream, err := js.Stream(ctx, natsconf.StreamDLQ)
	if err != nil {
		return fmt.Errorf("stream %s: %w", natsconf.StreamDLQ, err)
	}

	// Pass 1: the latest dead letter of each selected event.
	var (
		order   []string
		latest  = map[string]uint64{}
		matched int
	)
	err = dlq.Scan(ctx, stream, filter, func(d dlq.DeadLetter) error {
		matched++
		key := d.TenantID + "." + d.EventID
		if _, seen := latest[key]; !seen {
			order = append(order, key)
		}
		latest[key] = d.Seq
		return nil
	})
	if err != nil {
		return err
	}

	// Pass 2: replay them.
	var sum replaySummary
	sum.matched, sum.events = matched, len(order)
	bar := newProgress(env.stderr, len(order))
	for _, key := range order {
		if ctx.Err() != nil {
			break
		}
		d, err := dlq.Get(ctx, stream, latest[key])
		if err == nil {
			_, err = replayer.ReplayDeadLetter(ctx, d, o.dryRun)
		}
		switch {
		case err == nil:
			sum.replayed++
		case errors.Is(err, dlq.ErrSuperseded), errors.Is(err, dlq.ErrNotReplayable):
			sum.skipped++
		default:
			sum.failed++
			if sum.firstErr == nil {
				sum.firstErr = err
			}
		}
		bar.step(sum)
	}
	bar.done(sum)
	sum.print(env.stdout, o.dryRun)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if sum.failed > 0 {
		return fmt.Errorf("%d of %d replays failed, the first: %w", sum.failed, sum.events, sum.firstErr)
	}
	return nil
}

// filter turns the options into a dead-letter filter; without --tenant or --since it
// insists on --all, so a bare command replays nothing by accident.
func (o replayOptions) filter(now time.Time) (dlq.Filter, error) {
	var f dlq.Filter
	if o.tenant != "" {
		if !identity.ValidTenantID(o.tenant) {
			return f, fmt.Errorf("--tenant %q is not a tenant id", o.tenant)
		}
		f.TenantID = o.tenant
	}
	if o.since != "" {
		if d, err := time.ParseDuration(o.since); err == nil && d > 0 {
			f.Since = now.Add(-d)
		} else if t, err := time.Parse(time.RFC3339, o.since); err == nil {
			f.Since = t
		} else {
			return f, fmt.Errorf("--since %q: want a duration like 24h or an RFC 3339 time like 2026-01-02T15:04:05Z", o.since)
		}
	}
	if f.TenantID == "" && f.Since.IsZero() && !o.all {
		return f, errors.New("edgehook dlq replay: choose dead letters with --tenant, --since, or --all")
	}
	return f, nil
}

// replaySummary counts what a replay run did.
type replaySummary struct {
	matched, events           int
	replayed, skipped, failed int
	firstErr                  error
}

func (s replaySummary) print(w io.Writer, dryRun bool) {
	verb := "replayed"
	if dryRun {
		verb = "would replay"
	}
	fmt.Fprintf(w, "dead letters matched: %d (%d events)\n%s: %d\nskipped (replayed since, or in flight): %d\nfailed: %d\n",
		s.matched, s.events, verb, s.replayed, s.skipped, s.failed)
	if s.firstErr != nil {
		fmt.Fprintf(w, "first failure: %v\n", s.firstErr)
	}
}

// progress draws a one-line progress bar, redrawn in place at most every 100ms.
type progress struct {
	w     io.Writer
	total int
	n     int
	last  time.Time
}

const progressWidth = 30

func newProgress(w io.Writer, total int) *progress { return &progress{w: w, total: total} }

func (p *progress) step(s replaySummary) {
	p.n++
	if time.Since(p.last) < 100*time.Millisecond && p.n < p.total {
		return
	}
	p.last = time.Now()
	p.draw(s)
}

func (p *progress) done(s replaySummary) {
	p.draw(s)
	fmt.Fprintln(p.w)
}

func (p *progress) draw(s replaySummary) {
	filled := progressWidth
	if p.total > 0 {
		filled = progressWidth * p.n / p.total
	}
	fmt.Fprintf(p.w, "\r[%s%s] %d/%d  replayed %d  skipped %d  failed %d",
		strings.Repeat("#", filled), strings.Repeat(".", progressWidth-filled), p.n, p.total, s.replayed, s.skipped, s.failed)
}
