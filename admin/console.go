package admin

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/valyala/fasthttp"

	"github.com/edgehook/edgehook/api"
	"github.com/edgehook/edgehook/console"
	"github.com/edgehook/edgehook/identity"
	"github.com/edgehook/edgehook/natsconf"
	"github.com/edgehook/edgehook/vault"
	"github.com/edgehook/edgehook/worker/dlq"
)

// consoleSource is the operator console's console.OperatorSource: the admin API's own
// tenant code, the identity bucket, and reads of the DLQ and EVENTS streams and their
// consumers as the admin NATS user (which may read stream and consumer state and dead
// letters, and publish replay requests, but never read events or statuses).
type consoleSource struct {
	s       *Server
	js      jetstream.JetStream
	tenants *identity.Lister
	rates   *rateSampler
}

var _ console.OperatorSource = (*consoleSource)(nil)

// consoleError maps an error of the admin API's code to what the console shows: bad
// input as its message, an unknown tenant as not found, a store that did not answer as
// a timeout; anything else as it is (a logged 500).
func (c *consoleSource) consoleError(err error) error {
	if err == nil {
		return nil
	}
	ae := c.s.errorResponse(err, "console")
	switch {
	case ae.Status == 400:
		return &console.InvalidError{Message: ae.Message}
	case ae.Status == 404:
		return fmt.Errorf("%s: %w", ae.Message, console.ErrNotFound)
	case ae.Status == 503:
		return fmt.Errorf("%w: %s", context.DeadlineExceeded, ae.Message)
	}
	return err
}

// ListTenants lists tenants from the identity bucket, in the order their records were
// last written, matching the query against id, plan and status (the target URL lives in
// Vault, which a list does not read per row: rows show none). A query that is a whole
// generated tenant id is looked up by key (no other id of that form contains it), and
// that one row shows its target URL.
func (c *consoleSource) ListTenants(ctx context.Context, f console.TenantFilter) (console.TenantPage, error) {
	if f.Cursor == "" && generatedTenantID(f.Query) {
		t, err := c.s.deps.Identity.Get(ctx, f.Query)
		switch {
		case errors.Is(err, identity.ErrNotFound):
			return console.TenantPage{}, nil
		case err != nil:
			return console.TenantPage{}, c.consoleError(api.StoreError("identity store", err))
		}
		row := consoleTenant(t)
		// One tenant: its target URL is one read of its webhook config.
		wc, err := c.s.webhookConfig(t.TenantID)
		if err != nil && !errors.Is(err, vault.ErrNotFound) {
			return console.TenantPage{}, c.consoleError(err)
		}
		row.TargetURL = wc.TargetURL
		return console.TenantPage{Tenants: []console.Tenant{row}}, nil
	}
	q := identity.ListQuery{Match: f.Query, Limit: f.Limit}
	if f.Cursor != "" {
		after, err := strconv.ParseUint(f.Cursor, 10, 64)
		if err != nil || after == 0 {
			return console.TenantPage{}, &console.InvalidError{Message: "The page link is not valid."}
		}
		q.After = after
	}
	list, err := c.tenants.ListTenants(ctx, q)
	if err != nil {
		return console.TenantPage{}, c.consoleError(api.StoreError("identity store", err))
	}
	page := console.TenantPage{Tenants: make([]console.Tenant, 0, len(list.Tenants))}
	for _, t := range list.Tenants {
		page.Tenants = append(page.Tenants, consoleTenant(t))
	}
	if list.Next != 0 {
		page.Next = strconv.FormatUint(list.Next, 10)
	}
	return page, nil
}

// consoleTenant is the console's row of identity record t.
func consoleTenant(t identity.Tenant) console.Tenant {
	return console.Tenant{ID: t.TenantID, Plan: t.Plan, Status: console.TenantStatus(t.Status), CreatedAt: t.CreatedAt}
}

// generatedTenantID reports whether s has the form of identity.NewTenantID's ids.
func generatedTenantID(s string) bool {
	hexPart, ok := strings.CutPrefix(s, "ten_")
	if !ok || len(hexPart) != 24 {
		return false
	}
	_, err := hex.DecodeString(hexPart)
	return err == nil && strings.ToLower(hexPart) == hexPart
}

// CreateTenant creates a tenant as POST /v1/tenants does.
func (c *consoleSource) CreateTenant(_ context.Context, req console.NewTenant) (console.CreatedTenant, error) {
	ct, err := c.s.newTenant(newTenantRequest{TargetURL: req.TargetURL, Plan: req.Plan})
	if err != nil {
		return console.CreatedTenant{}, c.consoleError(err)
	}
	return console.CreatedTenant{
		Tenant: console.Tenant{ID: ct.TenantID, TargetURL: ct.TargetURL, Plan: ct.Plan,
			Status: console.TenantStatus(ct.Status), CreatedAt: ct.CreatedAt},
		APIKey: console.Secret(ct.APIKey), WebhookSecret: console.Secret(ct.WebhookSecret),
	}, nil
}

// SetStatus changes a tenant's status as PATCH /v1/tenants/{id} does.
func (c *consoleSource) SetStatus(_ context.Context, tenantID string, st console.TenantStatus) error {
	status := string(st)
	return c.consoleError(c.s.updateTenant(tenantID, tenantPatch{Status: &status}))
}

// stream returns a handle on stream name (one STREAM.INFO).
func (c *consoleSource) stream(ctx context.Context, name string) (jetstream.Stream, error) {
	st, err := c.js.Stream(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", name, err)
	}
	return st, nil
}

// DeadLetters pages through DLQ newest first (dlq.Page: a bounded number of reads per
// page, so a narrow filter may show a short page that still offers older ones). The id
// of a dead letter is its DLQ sequence.
func (c *consoleSource) DeadLetters(ctx context.Context, f console.DeadLetterFilter) (console.DeadLetterPage, error) {
	if f.TenantID != "" && !identity.ValidTenantID(f.TenantID) {
		return console.DeadLetterPage{}, &console.InvalidError{Message: "A tenant id is 1 to 64 letters, digits, _ or -."}
	}
	q := dlq.PageQuery{TenantID: f.TenantID, Reason: f.Reason, Limit: min(f.Limit, dlq.MaxPageLimit)}
	if f.Cursor != "" {
		before, err := strconv.ParseUint(f.Cursor, 10, 64)
		if err != nil || before == 0 {
			return console.DeadLetterPage{}, &console.InvalidError{Message: "The page link is not valid."}
		}
		q.Before = before
	}
	st, err := c.stream(ctx, natsconf.StreamDLQ)
	if err != nil {
		return console.DeadLetterPage{}, err
	}
	p, err := dlq.Page(ctx, st, q)
	if err != nil {
		return console.DeadLetterPage{}, err
	}
	page := console.DeadLetterPage{DeadLetters: make([]console.DeadLetter, 0, len(p.DeadLetters))}
	for _, d := range p.DeadLetters {
		page.DeadLetters = append(page.DeadLetters, console.DeadLetter{
			ID: strconv.FormatUint(d.Seq, 10), TenantID: d.TenantID, EventID: d.EventID, Type: d.Type,
			Reason: d.Reason, Attempts: d.Attempts, LastError: d.LastError, At: d.Time,
		})
	}
	if p.Next != 0 {
		page.Next = strconv.FormatUint(p.Next, 10)
	}
	return page, nil
}

// ReplayDeadLetters asks for the event of each dead letter to be replayed, with the
// request the tenant API's replay sends (natsconf.ReplaySubject, tenant and event id
// headers), which the DLQ processor executes: the event is delivered again with the
// same webhook-id if its status is still failed (or delivered). Replayed lists the
// requests JetStream stored; a request for the same dead letter is stored once.
func (c *consoleSource) ReplayDeadLetters(ctx context.Context, ids []string) (console.ReplayResult, error) {
	res := console.ReplayResult{Failed: map[string]string{}}
	st, err := c.stream(ctx, natsconf.StreamDLQ)
	if err != nil {
		return res, err
	}
	for _, id := range ids {
		seq, err := strconv.ParseUint(id, 10, 64)
		if err != nil || seq == 0 {
			res.Failed[id] = "not a dead-letter id"
			continue
		}
		d, err := dlq.Get(ctx, st, seq)
		switch {
		case errors.Is(err, jetstream.ErrMsgNotFound):
			res.Failed[id] = "no such dead letter (it may have expired)"
			continue
		case errors.Is(err, dlq.ErrNotDeadLetter):
			res.Failed[id] = "not a dead letter"
			continue
		case err != nil:
			c.s.log.Warn("console replay: dead letter not read", "seq", seq, "error", err)
			res.Failed[id] = "could not be read; try again"
			continue
		}
		m := nats.NewMsg(natsconf.ReplaySubject(d.TenantID))
		m.Header.Set(natsconf.HeaderTenant, d.TenantID)
		m.Header.Set(natsconf.HeaderEventID, d.EventID)
		// One request per dead letter: a double submit is stored once.
		m.Header.Set(jetstream.MsgIDHeader, "replay:"+d.TenantID+":"+d.EventID+":dlq-"+id)
		if _, err := c.js.PublishMsg(ctx, m, jetstream.WithExpectStream(natsconf.StreamDLQ)); err != nil {
			c.s.log.Warn("console replay request not stored", "tenant", d.TenantID, "event", d.EventID, "error", err)
			res.Failed[id] = "the replay request was not stored; try again"
			continue
		}
		c.s.log.Info("replay requested", "tenant", d.TenantID, "event", d.EventID, "dead_letter", seq, "by", "console")
		res.Replayed = append(res.Replayed, id)
	}
	return res, nil
}

// linkStale is how long a source of EVENTS may go without contact before the console
// shows its edge's link down (the hub hears from a live source every few seconds).
const linkStale = 30 * time.Second

// Mesh reads EVENTS' stream info (its cluster: leader and replicas are the hub nodes;
// its sources from edges: link and lag) and the delivery and DLQ consumers' info.
func (c *consoleSource) Mesh(ctx context.Context) (console.Mesh, error) {
	events, err := c.stream(ctx, natsconf.StreamEvents)
	if err != nil {
		return console.Mesh{}, err
	}
	info := events.CachedInfo()
	var m console.Mesh
	if cl := info.Cluster; cl != nil && cl.Leader != "" {
		m.Hub = append(m.Hub, console.HubNode{Name: cl.Leader, Leader: true, Connected: true})
		for _, p := range cl.Replicas {
			if p != nil {
				m.Hub = append(m.Hub, console.HubNode{Name: p.Name, Connected: p.Current && !p.Offline})
			}
		}
	}
	now := time.Now()
	for _, src := range info.Sources {
		if src == nil {
			continue
		}
		name, ok := cutEdgeStream(src.Name)
		if !ok {
			continue
		}
		e := console.Edge{Name: name, Link: console.LinkDown, SourcingLag: src.Lag}
		if src.Active >= 0 {
			e.LastSeen = now.Add(-src.Active)
			if src.Error == nil && src.Active < linkStale {
				e.Link = console.LinkUp
			}
		}
		m.Edges = append(m.Edges, e)
	}
	for _, sc := range [][2]string{{natsconf.StreamEvents, natsconf.ConsumerDeliver}, {natsconf.StreamDLQ, natsconf.ConsumerDLQ}} {
		cons, err := c.js.Consumer(ctx, sc[0], sc[1])
		if err != nil {
			return console.Mesh{}, fmt.Errorf("consumer %s on %s: %w", sc[1], sc[0], err)
		}
		ci := cons.CachedInfo()
		m.Consumers = append(m.Consumers, console.Consumer{Stream: sc[0], Name: sc[1],
			Pending: ci.NumPending, AckPending: ci.NumAckPending, Redelivered: ci.NumRedelivered})
	}
	return m, nil
}

// cutEdgeStream returns the edge whose ingest stream is name.
func cutEdgeStream(name string) (string, bool) {
	edge, ok := strings.CutPrefix(name, natsconf.EdgeStream(""))
	return edge, ok && edge != ""
}

// Rates charts the deltas of the counters this admin instance has sampled every step
// since it started (see rateSampler), over the window before now.
func (c *consoleSource) Rates(ctx context.Context, window time.Duration) (console.Rates, error) {
	return c.rates.rates(ctx, window), nil
}

// consolePattern is the operator console's "route" metric label.
const consolePattern = "/console/"

// mountConsole builds the operator console on a consoleSource and its rate sampler.
func (s *Server) mountConsole() error {
	js := s.deps.JS
	if js == nil {
		var err error
		if js, err = jetstream.New(s.deps.NATS); err != nil {
			return fmt.Errorf("admin: console: %w", err)
		}
	}
	s.rates = newRateSampler(js, s.cfg.ConsoleRatesStep, s.log.With("component", "console"))
	op, err := console.NewOperator(console.Config{
		SessionTTL: s.cfg.ConsoleSessionTTL, SecureCookies: s.cfg.ConsoleSecureCookies, Logger: s.deps.Logger,
	}, console.Secret(s.cfg.Token), &consoleSource{s: s, js: js, rates: s.rates,
		tenants: identity.NewLister(s.deps.NATS, natsconf.BucketIdentity)})
	if err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	s.console = op
	return nil
}

// serveWithConsole serves the operator console under its prefix and the admin API
// everywhere else, counting both.
func (s *Server) serveWithConsole(ctx *fasthttp.RequestCtx) {
	p := string(ctx.Path())
	if !strings.HasPrefix(p, s.console.Prefix()) && p+"/" != s.console.Prefix() {
		s.serveHTTP(ctx)
		return
	}
	s.console.Handler()(ctx)
	s.requests.Observe(consolePattern, ctx.Response.StatusCode())
}
