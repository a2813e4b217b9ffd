package natsconf_test

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/edgehook/edgehook/identity"
	"github.com/edgehook/edgehook/natsconf"
	"github.com/edgehook/edgehook/natsconf/natstest"
)

// The permission checks. Each component connects as its own NATS user with its own
// inbox prefix and runs the steps of its table. An allowed step must get its reply (a
// publish its JetStream ack, a pull its message and the ack of its ack, a read its
// value, a watch its initial values) and meet no permissions violation on the way. A
// denied step issues exactly the one publish, request or subscription it names, with
// nothing before it that could be refused instead, and must be refused by a
// permissions violation for that very subject. The checker returns its verdict as an
// error, so TestPermissionCheckerCatchesWrongGrants can show it fails on a server whose
// users hold one grant too many or too few.

// Records every server of the checks holds: seedHub puts them at the hub (or the single
// server), startMesh a queued record at the edge.
const (
	tenant       = "ten_a"
	identityKey  = "tenants.ten_a"
	statusKey    = "ten_a.evt_0"
	recordValue  = `{"tenantId":"ten_a"}`
	seededEvents = 12 // enough for every pull of the delivery consumer
	seededReplay = 12 // enough for every pull of the DLQ consumer
)

const (
	// allowedTimeout bounds an allowed step (a 3-node hub under load included).
	allowedTimeout = 15 * time.Second
	// deniedTimeout bounds a denied step: its violation comes back at once, so the step
	// is cut short when it does; the bound matters only when it is not denied.
	deniedTimeout = 5 * time.Second
	// barrierSubject is a subject no component may publish to (see client.barrier).
	barrierSubject = "edgehook.test.barrier"
)

// violation is a permissions violation the server reported to a connection: op is
// "publish" or "subscription".
type violation struct{ op, subject string }

func (v violation) String() string { return fmt.Sprintf("%s to %q", v.op, v.subject) }

func pubViolation(subject string) violation { return violation{"publish", subject} }
func subViolation(subject string) violation { return violation{"subscription", subject} }

// violationRe reads the server's -ERR 'Permissions Violation for Publish to "subj"'
// (or Subscription) as nats.go hands it to the asynchronous error handler.
var violationRe = regexp.MustCompile(`(?i)permissions violation for (publish|subscription) to "([^"]*)"`)

// parseViolation returns the violation err reports, if it is one.
func parseViolation(err error) (violation, bool) {
	if err == nil || !errors.Is(err, nats.ErrPermissionViolation) {
		return violation{}, false
	}
	m := violationRe.FindStringSubmatch(err.Error())
	if m == nil {
		return violation{}, false
	}
	return violation{strings.ToLower(m[1]), m[2]}, true
}

// target is a server the checks run on, with the passwords of its users and an
// operator connection to it (a peer for steps that need one).
type target struct {
	name  string
	url   string
	creds natsconf.Credentials
	// domain is the JetStream domain of the server ("" for the single server).
	domain string
	op     *nats.Conn
}

// newTarget connects the operator to url for steps that need a peer.
func newTarget(t testing.TB, name, url, domain string, creds natsconf.Credentials) *target {
	t.Helper()
	op, err := nats.Connect(url, nats.UserInfo(natsconf.OperatorUser, creds[natsconf.OperatorUser]), nats.Name("operator"))
	if err != nil {
		t.Fatalf("%s: connect as operator: %v", name, err)
	}
	t.Cleanup(op.Close)
	return &target{name: name, url: url, creds: creds, domain: domain, op: op}
}

// client is one connection of a component for one step.
type client struct {
	c  natsconf.Component
	nc *nats.Conn
	// js is the JetStream of the server connected to; hub the hub's, through it.
	js, hub jetstream.JetStream
	tg      *target
	// violations are the permissions violations reported to the connection, in order;
	// other holds its other asynchronous errors.
	violations chan violation
	other      chan error
}

// dial connects as user with component c's inbox prefix.
func (tg *target) dial(user string, c natsconf.Component) (*client, error) {
	cl := &client{c: c, tg: tg, violations: make(chan violation, 64), other: make(chan error, 64)}
	nc, err := nats.Connect(tg.url,
		nats.UserInfo(user, tg.creds[user]),
		nats.Name(user),
		nats.CustomInboxPrefix(natsconf.InboxPrefix(c)),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			if v, ok := parseViolation(err); ok {
				select {
				case cl.violations <- v:
				default:
				}
				return
			}
			select {
			case cl.other <- err:
			default:
			}
		}))
	if err != nil {
		return nil, fmt.Errorf("connect as %s: %w", user, err)
	}
	cl.nc = nc
	if cl.js, err = jetstream.New(nc); err == nil {
		cl.hub, err = jetstream.NewWithDomain(nc, natsconf.HubDomain)
	}
	if err != nil {
		nc.Close()
		return nil, err
	}
	return cl, nil
}

// barrier publishes on barrierSubject, which no component may publish to, and returns
// the violations reported before the barrier's own. The server handles a connection's
// protocol in order and nats.go calls the error handler in order, so every violation
// an earlier operation of the connection caused is among them.
func (cl *client) barrier() ([]violation, error) {
	if err := cl.nc.Publish(barrierSubject, nil); err != nil {
		return nil, fmt.Errorf("barrier publish: %w", err)
	}
	if err := cl.nc.FlushTimeout(5 * time.Second); err != nil {
		return nil, fmt.Errorf("barrier flush: %w", err)
	}
	var seen []violation
	timer := time.NewTimer(5 * time.Second)
	defer timer.Stop()
	for {
		select {
		case v := <-cl.violations:
			if v == pubViolation(barrierSubject) {
				return seen, nil
			}
			seen = append(seen, v)
		case <-timer.C:
			return seen, fmt.Errorf("no permissions violation for the barrier publish to %q: is the user unrestricted?", barrierSubject)
		}
	}
}

// step is one thing a component does on NATS, or must not be able to do.
type step struct {
	what string
	// denied is the violation that must refuse the step; the zero value marks an
	// allowed step.
	denied violation
	run    func(ctx context.Context, cl *client) error
}

// check runs st as user, a connection of component c, on tg, and returns nil if st
// behaved as its table says, or an error saying what happened instead.
func check(tg *target, user string, c natsconf.Component, st step) error {
	cl, err := tg.dial(user, c)
	if err != nil {
		return fmt.Errorf("%s on %s: %s: %w", user, tg.name, st.what, err)
	}
	defer cl.nc.Close()
	if st.denied == (violation{}) {
		err = st.expectAllowed(cl)
	} else {
		err = st.expectDenied(cl)
	}
	if err != nil {
		return fmt.Errorf("%s on %s: %s: %w", user, tg.name, st.what, err)
	}
	return nil
}

func (st step) expectAllowed(cl *client) error {
	ctx, cancel := context.WithTimeout(context.Background(), allowedTimeout)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- st.run(ctx, cl) }()
	var runErr error
	select {
	case v := <-cl.violations:
		// Refused on the way: the step would only wait for a reply that cannot come.
		return fmt.Errorf("should be allowed, but met a permissions violation for %s (the step: %v)", v, stop(cancel, done))
	case runErr = <-done:
	}
	seen, err := cl.barrier()
	switch {
	case err != nil:
		return err
	case runErr != nil && len(seen) > 0:
		return fmt.Errorf("should be allowed, but met a permissions violation for %s (the step: %v)", seen[0], runErr)
	case runErr != nil:
		return fmt.Errorf("should be allowed: %w%s", runErr, otherErrors(cl))
	case len(seen) > 0:
		return fmt.Errorf("succeeded, but met permissions violations on the way: %v", seen)
	}
	return nil
}

func (st step) expectDenied(cl *client) error {
	ctx, cancel := context.WithTimeout(context.Background(), deniedTimeout)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- st.run(ctx, cl) }()
	var runErr error
	select {
	case v := <-cl.violations:
		stop(cancel, done)
		return st.deniedBy(v)
	case runErr = <-done:
	}
	// The step ended (it got a reply, or failed otherwise) before a violation was
	// reported: the barrier tells whether one is still on its way.
	seen, err := cl.barrier()
	switch {
	case err != nil:
		return err
	case len(seen) > 0:
		return st.deniedBy(seen[0])
	case runErr == nil:
		return fmt.Errorf("not denied: no permissions violation for %s, and the step went through", st.denied)
	default:
		return fmt.Errorf("not denied: no permissions violation for %s (the step failed otherwise: %v)", st.denied, runErr)
	}
}

// stop cancels a step's context and returns what the step returned, or, if it does not
// end within a second (a call that does not take the context, such as a watcher's Stop
// waiting for a reply it will not get), a note saying so: closing the connection ends it.
func stop(cancel context.CancelFunc, done <-chan error) error {
	cancel()
	select {
	case err := <-done:
		return err
	case <-time.After(time.Second):
		return errors.New("still running a second after its context was cancelled")
	}
}

// deniedBy checks that v, the first violation the step met, is the step's own.
func (st step) deniedBy(v violation) error {
	if v != st.denied {
		return fmt.Errorf("met a permissions violation for %s before the step's own %s: the step proves nothing about its own subject", v, st.denied)
	}
	return nil
}

func otherErrors(cl *client) string {
	var errs []string
	for {
		select {
		case err := <-cl.other:
			errs = append(errs, err.Error())
		default:
			if len(errs) == 0 {
				return ""
			}
			return " (asynchronous errors: " + strings.Join(errs, "; ") + ")"
		}
	}
}

// --- Denied steps: each issues the one operation its violation names. ---

// deniedPublish publishes on subject (core NATS, flushed).
func deniedPublish(what, subject string) step {
	return step{what: what, denied: pubViolation(subject), run: func(ctx context.Context, cl *client) error {
		if err := cl.nc.Publish(subject, []byte(recordValue)); err != nil {
			return err
		}
		return cl.nc.FlushWithContext(ctx)
	}}
}

// deniedJSPublish publishes on subject and waits for the JetStream ack.
func deniedJSPublish(what, subject string) step {
	return step{what: what, denied: pubViolation(subject), run: func(ctx context.Context, cl *client) error {
		_, err := cl.js.Publish(ctx, subject, []byte(recordValue))
		return err
	}}
}

// deniedRequest sends body to subject and waits for the reply (on the component's own
// inbox).
func deniedRequest(what, subject, body string) step {
	return step{what: what, denied: pubViolation(subject), run: func(ctx context.Context, cl *client) error {
		_, err := cl.nc.RequestWithContext(ctx, subject, []byte(body))
		return err
	}}
}

// deniedSubscribe subscribes to subject (flushed).
func deniedSubscribe(what, subject string) step {
	return step{what: what, denied: subViolation(subject), run: func(ctx context.Context, cl *client) error {
		if _, err := cl.nc.SubscribeSync(subject); err != nil {
			return err
		}
		return cl.nc.FlushWithContext(ctx)
	}}
}

// The JetStream API requests the denied steps send.
const (
	api = "$JS.API"
	// pullOne asks a pull consumer for one message, waiting a second.
	pullOne = `{"batch":1,"expires":1000000000}`
	// getFirst asks a stream for its message 1.
	getFirst = `{"seq":1}`
)

func hubAPI() string { return natsconf.DomainAPI(natsconf.HubDomain) }

// consumerCreate is a request for an ephemeral pull consumer on stream that goes away
// after a second.
func consumerCreate(stream string) string {
	return fmt.Sprintf(`{"stream_name":%q,"config":{"ack_policy":"explicit","inactive_threshold":1000000000}}`, stream)
}

// directGet is the direct-get request subject of the last message on subject in the
// stream of bucket, through prefix (api or hubAPI()), as nats.go's KeyValue.Get sends it.
func directGet(prefix, bucket, key string) string {
	return prefix + ".DIRECT.GET.KV_" + bucket + ".$KV." + bucket + "." + key
}

// --- Allowed steps: each waits for its reply and checks it. ---

// where names which JetStream a step talks to: the server's own or the hub's.
type where int

const (
	local where = iota
	atHub
)

func (cl *client) jsAt(w where) jetstream.JetStream {
	if w == atHub {
		return cl.hub
	}
	return cl.js
}

func (cl *client) domainAt(w where) string {
	if w == atHub {
		return natsconf.HubDomain
	}
	return cl.tg.domain
}

// publishAcked publishes on subject and checks the ack comes from stream, in the
// domain w names.
func publishAcked(what, subject, stream string, w where) step {
	return step{what: what, run: func(ctx context.Context, cl *client) error {
		ack, err := cl.js.Publish(ctx, subject, []byte(recordValue), jetstream.WithMsgID(nuid.Next()))
		if err != nil {
			return err
		}
		return checkAck(cl, ack, stream, w)
	}}
}

// publishAsyncAcked publishes on subject as the gateway's ingest and the status
// recorder do (natsconf.Publisher, PublishMsgAsync: the ack comes to a wildcard
// subscription below the component's inbox) and checks the ack comes from stream, in
// the domain w names.
func publishAsyncAcked(what, subject, stream string, w where) step {
	return step{what: what, run: func(ctx context.Context, cl *client) error {
		pub, err := natsconf.Publisher(cl.js, 5*time.Second)
		if err != nil {
			return err
		}
		f, err := pub.PublishMsgAsync(&nats.Msg{Subject: subject, Data: []byte(recordValue)})
		if err != nil {
			return err
		}
		select {
		case ack := <-f.Ok():
			return checkAck(cl, ack, stream, w)
		case err := <-f.Err():
			return err
		case <-ctx.Done():
			return ctx.Err()
		}
	}}
}

func checkAck(cl *client, ack *jetstream.PubAck, stream string, w where) error {
	if ack.Stream != stream || ack.Domain != cl.domainAt(w) {
		return fmt.Errorf("acked by stream %q in domain %q, want %q in %q", ack.Stream, ack.Domain, stream, cl.domainAt(w))
	}
	return nil
}

// kvGet reads key of bucket and checks it holds recordValue.
func kvGet(what string, w where, bucket, key string) step {
	return step{what: what, run: func(ctx context.Context, cl *client) error {
		kv, err := cl.jsAt(w).KeyValue(ctx, bucket)
		if err != nil {
			return fmt.Errorf("open bucket %s: %w", bucket, err)
		}
		e, err := kv.Get(ctx, key)
		if err != nil {
			return fmt.Errorf("get %s: %w", key, err)
		}
		if string(e.Value()) != recordValue {
			return fmt.Errorf("get %s = %q, want %q", key, e.Value(), recordValue)
		}
		return nil
	}}
}

// kvPut writes key of bucket and checks the revision it got.
func kvPut(what string, w where, bucket, key string) step {
	return step{what: what, run: func(ctx context.Context, cl *client) error {
		kv, err := cl.jsAt(w).KeyValue(ctx, bucket)
		if err != nil {
			return fmt.Errorf("open bucket %s: %w", bucket, err)
		}
		rev, err := kv.Put(ctx, key, []byte(recordValue))
		if err != nil {
			return fmt.Errorf("put %s: %w", key, err)
		}
		if rev == 0 {
			return fmt.Errorf("put %s: revision 0", key)
		}
		return nil
	}}
}

// kvWatch watches bucket until its initial values are in and checks key is among them.
func kvWatch(what, bucket, key string) step { return kvWatchAt(what, local, bucket, key) }

// kvWatchAt is kvWatch on the bucket of the JetStream w names.
func kvWatchAt(what string, w where, bucket, key string) step {
	return step{what: what, run: func(ctx context.Context, cl *client) error {
		kv, err := cl.jsAt(w).KeyValue(ctx, bucket)
		if err != nil {
			return fmt.Errorf("open bucket %s: %w", bucket, err)
		}
		w, err := kv.WatchAll(ctx)
		if err != nil {
			return fmt.Errorf("watch: %w", err)
		}
		defer w.Stop()
		var keys []string
		for {
			select {
			case e := <-w.Updates():
				if e != nil {
					keys = append(keys, e.Key())
					continue
				}
				if !slices.Contains(keys, key) {
					return fmt.Errorf("initial values %v lack %s", keys, key)
				}
				return nil
			case <-ctx.Done():
				return fmt.Errorf("initial values not complete (got %v): %w", keys, ctx.Err())
			}
		}
	}}
}

// pullAndAck takes one message from consumer on stream (looked up as the components
// do) and acks it, waiting for the server to confirm the ack.
func pullAndAck(what, stream, consumer string) step {
	return step{what: what, run: func(ctx context.Context, cl *client) error {
		c, err := cl.js.Consumer(ctx, stream, consumer)
		if err != nil {
			return fmt.Errorf("consumer %s: %w", consumer, err)
		}
		b, err := c.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			return fmt.Errorf("fetch: %w", err)
		}
		n := 0
		for m := range b.Messages() {
			n++
			if err := m.DoubleAck(ctx); err != nil {
				return fmt.Errorf("ack: %w", err)
			}
		}
		if err := b.Error(); err != nil {
			return fmt.Errorf("fetch: %w", err)
		}
		if n != 1 {
			return fmt.Errorf("fetched %d messages, want 1", n)
		}
		return nil
	}}
}

// getMsg reads message seq of stream.
func getMsg(what, stream string, seq uint64) step {
	return step{what: what, run: func(ctx context.Context, cl *client) error {
		s, err := cl.js.Stream(ctx, stream)
		if err != nil {
			return fmt.Errorf("stream %s: %w", stream, err)
		}
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			return fmt.Errorf("get message %d: %w", seq, err)
		}
		if m.Sequence != seq || len(m.Data) == 0 {
			return fmt.Errorf("got message %d with %d bytes, want %d with data", m.Sequence, len(m.Data), seq)
		}
		return nil
	}}
}

// getLastMsg reads the last message on subject of stream.
func getLastMsg(what, stream, subject string) step {
	return step{what: what, run: func(ctx context.Context, cl *client) error {
		s, err := cl.js.Stream(ctx, stream)
		if err != nil {
			return fmt.Errorf("stream %s: %w", stream, err)
		}
		m, err := s.GetLastMsgForSubject(ctx, subject)
		if err != nil {
			return fmt.Errorf("last message on %s: %w", subject, err)
		}
		if m.Subject != subject {
			return fmt.Errorf("got a message on %s, want %s", m.Subject, subject)
		}
		return nil
	}}
}

// streamInfo looks stream up.
func streamInfo(what string, w where, stream string) step {
	return step{what: what, run: func(ctx context.Context, cl *client) error {
		s, err := cl.jsAt(w).Stream(ctx, stream)
		if err != nil {
			return err
		}
		if got := s.CachedInfo().Config.Name; got != stream {
			return fmt.Errorf("got stream %q", got)
		}
		return nil
	}}
}

// listTenants lists the identity bucket's tenants as the operator console does
// (batched direct gets).
var listTenants = step{what: "list tenants", run: func(ctx context.Context, cl *client) error {
	page, err := identity.NewLister(cl.nc, natsconf.BucketIdentity).ListTenants(ctx, identity.ListQuery{Limit: 10})
	if err != nil {
		return err
	}
	if len(page.Tenants) == 0 || page.Tenants[0].TenantID != tenant {
		return fmt.Errorf("listed %+v, want %s first", page.Tenants, tenant)
	}
	return nil
}}

// consumerInfo looks consumer on stream up.
func consumerInfo(what, stream, consumer string) step {
	return step{what: what, run: func(ctx context.Context, cl *client) error {
		c, err := cl.js.Consumer(ctx, stream, consumer)
		if err != nil {
			return err
		}
		if got := c.CachedInfo().Name; got != consumer {
			return fmt.Errorf("got consumer %q", got)
		}
		return nil
	}}
}

// accountInfo asks the JetStream w names for the account's usage.
func accountInfo(what string, w where) step {
	return step{what: what, run: func(ctx context.Context, cl *client) error {
		info, err := cl.jsAt(w).AccountInfo(ctx)
		if err != nil {
			return err
		}
		if info.Domain != cl.domainAt(w) {
			return fmt.Errorf("answered by domain %q, want %q", info.Domain, cl.domainAt(w))
		}
		return nil
	}}
}

// peerReceives publishes on subject (core NATS) and checks the operator's subscription
// gets it.
func peerReceives(what, subject string) step {
	return step{what: what, run: func(ctx context.Context, cl *client) error {
		sub, err := cl.tg.op.SubscribeSync(subject)
		if err != nil {
			return err
		}
		defer sub.Unsubscribe()
		if err := cl.tg.op.FlushWithContext(ctx); err != nil {
			return err
		}
		token := nuid.Next()
		if err := cl.nc.Publish(subject, []byte(token)); err != nil {
			return err
		}
		return receiveToken(ctx, sub, token)
	}}
}

// receivesOn subscribes to pattern(c) and checks it gets what the operator publishes
// on subject(c).
func receivesOn(what string, pattern, subject func(natsconf.Component) string) step {
	return step{what: what, run: func(ctx context.Context, cl *client) error {
		sub, err := cl.nc.SubscribeSync(pattern(cl.c))
		if err != nil {
			return err
		}
		defer sub.Unsubscribe()
		if err := cl.nc.FlushWithContext(ctx); err != nil {
			return err
		}
		token := nuid.Next()
		if err := cl.tg.op.Publish(subject(cl.c), []byte(token)); err != nil {
			return err
		}
		return receiveToken(ctx, sub, token)
	}}
}

func receiveToken(ctx context.Context, sub *nats.Subscription, token string) error {
	for {
		m, err := sub.NextMsgWithContext(ctx)
		if err != nil {
			return fmt.Errorf("nothing received on %s: %w", sub.Subject, err)
		}
		if string(m.Data) == token {
			return nil
		}
	}
}

// peerAnswers sends a request on subject and checks the operator, subscribed there,
// answers it: the request is allowed and its reply reaches the component's inbox.
func peerAnswers(what, subject string) step { return requestAnswered(what, subject, false) }

// answersRequests subscribes to subject as the admin's relay does (queue group
// natsconf.AdminQueue), and checks a request the operator sends there gets the
// component's answer, which only allow_responses lets it publish.
func answersRequests(what, subject string) step { return requestAnswered(what, subject, true) }

// requestAnswered has the operator ask and the component answer on subject (answers),
// or the other way round, and checks the answer arrives.
func requestAnswered(what, subject string, answers bool) step {
	return step{what: what, run: func(ctx context.Context, cl *client) error {
		responder, requester := cl.tg.op, cl.nc
		if answers {
			responder, requester = cl.nc, cl.tg.op
		}
		sub, err := responder.QueueSubscribe(subject, natsconf.AdminQueue, func(m *nats.Msg) { m.Respond(append([]byte("re:"), m.Data...)) })
		if err != nil {
			return err
		}
		defer sub.Unsubscribe()
		if err := responder.FlushWithContext(ctx); err != nil {
			return err
		}
		token := nuid.Next()
		m, err := requester.RequestWithContext(ctx, subject, []byte(token))
		if err != nil {
			return fmt.Errorf("no answer: %w", err)
		}
		if string(m.Data) != "re:"+token {
			return fmt.Errorf("answered %q, want re:%s", m.Data, token)
		}
		return nil
	}}
}

func ownInbox() step {
	return receivesOn("receive on its own inbox",
		func(c natsconf.Component) string { return natsconf.InboxPrefix(c) + ".>" },
		func(c natsconf.Component) string { return natsconf.InboxPrefix(c) + ".probe." + nuid.Next() })
}

func constant(s string) func(natsconf.Component) string {
	return func(natsconf.Component) string { return s }
}

// --- The tables. ---

// commonSteps are every component's, wherever it runs: JetStream's account info and its
// own inbox, and nobody else's inbox, no subscription to everything, no stream
// configuration, no forged advisories.
func commonSteps(c natsconf.Component) []step {
	other := natsconf.Worker
	if c == natsconf.Worker {
		other = natsconf.Gateway
	}
	return []step{
		accountInfo("JetStream account info", local),
		ownInbox(),
		deniedSubscribe("subscribe to the "+string(other)+"'s inbox", natsconf.InboxPrefix(other)+".>"),
		deniedSubscribe("subscribe to the default inbox", "_INBOX.>"),
		deniedSubscribe("subscribe to everything", ">"),
		deniedRequest("change the configuration of "+natsconf.StreamEvents, api+".STREAM.UPDATE."+natsconf.StreamEvents, `{}`),
		deniedRequest("change the configuration of the identity bucket", api+".STREAM.UPDATE.KV_"+natsconf.BucketIdentity, `{}`),
		deniedJSPublish("forge a max-deliveries advisory", natsconf.AdvisoryMaxDeliveries),
	}
}

// Steps more than one table uses.
var (
	writeIdentity      = deniedJSPublish("write identity", "$KV."+natsconf.BucketIdentity+".tenants.ten_evil")
	readIdentity       = deniedRequest("read identity", directGet(api, natsconf.BucketIdentity, identityKey), "")
	readIdentityByGet  = deniedRequest("read identity by stream get", api+".STREAM.MSG.GET.KV_"+natsconf.BucketIdentity, `{"last_by_subj":"$KV.identity.`+identityKey+`"}`)
	openIdentity       = deniedRequest("look up the identity bucket", api+".STREAM.INFO.KV_"+natsconf.BucketIdentity, "")
	watchIdentity      = deniedRequest("watch identity", api+".CONSUMER.CREATE.KV_"+natsconf.BucketIdentity, consumerCreate("KV_"+natsconf.BucketIdentity))
	readEvents         = deniedRequest("read events back", api+".STREAM.MSG.GET."+natsconf.StreamEvents, getFirst)
	directGetEvents    = deniedRequest("direct-get events", api+".DIRECT.GET."+natsconf.StreamEvents, getFirst)
	consumeDeliver     = deniedRequest("consume the delivery consumer", api+".CONSUMER.MSG.NEXT."+natsconf.StreamEvents+"."+natsconf.ConsumerDeliver, pullOne)
	lookUpDeliver      = deniedRequest("look up the delivery consumer", api+".CONSUMER.INFO."+natsconf.StreamEvents+"."+natsconf.ConsumerDeliver, "")
	ackEvent           = deniedPublish("ack an event", "$JS.ACK."+natsconf.StreamEvents+"."+natsconf.ConsumerDeliver+".1.1.1.1.0")
	createEventsCons   = deniedRequest("create a consumer on "+natsconf.StreamEvents, api+".CONSUMER.CREATE."+natsconf.StreamEvents, consumerCreate(natsconf.StreamEvents))
	consumeDLQ         = deniedRequest("consume the DLQ consumer", api+".CONSUMER.MSG.NEXT."+natsconf.StreamDLQ+"."+natsconf.ConsumerDLQ, pullOne)
	readDeadLetters    = deniedRequest("read dead letters", api+".STREAM.MSG.GET."+natsconf.StreamDLQ, `{"last_by_subj":"`+natsconf.DeadLetterSubject(tenant, "evt_0")+`"}`)
	writeDeadLetter    = deniedJSPublish("write a dead letter", natsconf.DeadLetterSubject(tenant, "evt_1"))
	publishEvent       = deniedJSPublish("publish an event", natsconf.EventSubject(tenant))
	parkEvent          = deniedJSPublish("park an event", natsconf.ParkedSubject(parkedEndpoint, tenant, "evt_1"))
	readParked         = deniedRequest("read parked copies", api+".DIRECT.GET."+natsconf.StreamParked, getFirst)
	publishReceived    = deniedJSPublish("publish a received webhook", natsconf.ReceivedSubject(tenant))
	requestReplay      = deniedJSPublish("request a replay", natsconf.ReplaySubject(tenant))
	announceChange     = deniedPublish("announce a config change", natsconf.ConfigChangedPrefix+tenant)
	followChanges      = deniedSubscribe("follow config changes", natsconf.ConfigChangedPrefix+"*")
	writeStatus        = deniedJSPublish("write status", "$KV."+natsconf.BucketStatus+"."+tenant+".evt_1")
	readStatus         = deniedRequest("read status", directGet(api, natsconf.BucketStatus, statusKey), "")
	logAttempt         = publishAsyncAcked("log an attempt (asynchronous publish)", "$KV."+natsconf.BucketStatus+"."+statusKey+".1", "KV_"+natsconf.BucketStatus, local)
	allowFollowChanges = receivesOn("follow config changes",
		constant(natsconf.ConfigChangedPrefix+"*"), constant(natsconf.ConfigChangedPrefix+tenant))
	relayRequest    = deniedRequest("relay a tenant request to the admin API", natsconf.AdminTenantSubject, "")
	answerRelayed   = deniedSubscribe("answer relayed tenant requests", natsconf.AdminTenantSubject)
	allowRelay      = peerAnswers("relay a tenant request to the admin API", natsconf.AdminTenantSubject)
	writeGatewayBox = deniedPublish("publish to the gateway's inbox unasked", natsconf.InboxPrefix(natsconf.Gateway)+".forged")
)

// parkedEndpoint is the endpoint key of the parked copies the tables write and read.
const parkedEndpoint = "0123456789abcdef"

// readParkedCopy reads a parked copy back by subject, as a worker brings parked events
// back (the "park an event" step before it wrote one).
var readParkedCopy = step{what: "read a parked copy back", run: func(ctx context.Context, cl *client) error {
	s, err := cl.js.Stream(ctx, natsconf.StreamParked)
	if err != nil {
		return err
	}
	m, err := s.GetMsg(ctx, 1, jetstream.WithGetMsgSubject(natsconf.ParkedFilter(parkedEndpoint)))
	if err != nil {
		return err
	}
	if string(m.Data) != recordValue {
		return fmt.Errorf("parked copy holds %q, want %q", m.Data, recordValue)
	}
	return nil
}}

// countParked counts a tenant's parked copies from stream info with a subject filter,
// as the portal tells whether a tenant's deliveries are parked (the "park an event"
// step of the worker's table wrote one; the gateway may not read it).
var countParked = countParkedAt("count a tenant's parked copies (stream info)", local)

// countParkedAt is countParked on the PARKED stream of the JetStream w names.
func countParkedAt(what string, w where) step {
	return step{what: what, run: func(ctx context.Context, cl *client) error {
		s, err := cl.jsAt(w).Stream(ctx, natsconf.StreamParked)
		if err != nil {
			return err
		}
		_, err = s.Info(ctx, jetstream.WithSubjectFilter(natsconf.ParkedSubjectPrefix+"*."+tenant+".*"))
		return err
	}}
}

// hubSteps is component c's table at the hub (and on the single server of `up`).
func hubSteps(c natsconf.Component) []step {
	var steps []step
	switch c {
	case natsconf.Gateway:
		steps = []step{
			publishAcked("publish an event", natsconf.EventSubject(tenant), natsconf.StreamEvents, local),
			publishAsyncAcked("ingest an event (asynchronous publish)", natsconf.EventSubject(tenant), natsconf.StreamEvents, local),
			publishAsyncAcked("record queued (asynchronous publish)", "$KV."+natsconf.BucketStatus+"."+tenant+".evt_2", "KV_"+natsconf.BucketStatus, local),
			kvGet("read identity", local, natsconf.BucketIdentity, identityKey),
			kvWatch("watch identity", natsconf.BucketIdentity, identityKey),
			kvGet("read status", local, natsconf.BucketStatus, statusKey),
			kvWatch("watch statuses (the portal's events index)", natsconf.BucketStatus, statusKey),
			kvPut("record queued", local, natsconf.BucketStatus, tenant+".evt_1"),
			publishAcked("request a replay", natsconf.ReplaySubject(tenant), natsconf.StreamDLQ, local),
			countParked,
			allowRelay,
			answerRelayed,
			writeIdentity,
			readEvents,
			directGetEvents,
			parkEvent,
			readParked,
			deniedRequest("read parked copies by stream get", api+".STREAM.MSG.GET."+natsconf.StreamParked, getFirst),
			deniedRequest("create a consumer on "+natsconf.StreamParked, api+".CONSUMER.CREATE."+natsconf.StreamParked, consumerCreate(natsconf.StreamParked)),
			deniedRequest("create a consumer on "+natsconf.StreamDLQ, api+".CONSUMER.CREATE."+natsconf.StreamDLQ, consumerCreate(natsconf.StreamDLQ)),
			deniedRequest("create a named consumer on "+natsconf.StreamDLQ, api+".CONSUMER.CREATE."+natsconf.StreamDLQ+".spy."+natsconf.DeadLetterSubject(tenant, "evt_0"), consumerCreate(natsconf.StreamDLQ)),
			deniedRequest("create a named consumer on "+natsconf.StreamEvents, api+".CONSUMER.CREATE."+natsconf.StreamEvents+".spy."+natsconf.EventSubject(tenant), consumerCreate(natsconf.StreamEvents)),
			deniedRequest("direct-get dead letters", api+".DIRECT.GET."+natsconf.StreamDLQ, getFirst),
			deniedRequest("look up "+natsconf.StreamEvents, api+".STREAM.INFO."+natsconf.StreamEvents, ""),
			consumeDeliver,
			lookUpDeliver,
			ackEvent,
			createEventsCons,
			publishReceived,
			announceChange,
			followChanges,
			writeDeadLetter,
			readDeadLetters,
			consumeDLQ,
		}
	case natsconf.Admin:
		steps = []step{
			kvPut("write identity", local, natsconf.BucketIdentity, "tenants.ten_b"),
			kvGet("read identity", local, natsconf.BucketIdentity, identityKey),
			listTenants,
			peerReceives("announce a config change", natsconf.ConfigChangedPrefix+tenant),
			answersRequests("answer relayed tenant requests", natsconf.AdminTenantSubject),
			// The operator console.
			getMsg("read dead letters by sequence", natsconf.StreamDLQ, 1),
			publishAcked("request a replay", natsconf.ReplaySubject(tenant), natsconf.StreamDLQ, local),
			streamInfo("look up "+natsconf.StreamEvents, local, natsconf.StreamEvents),
			consumerInfo("look up the delivery consumer", natsconf.StreamEvents, natsconf.ConsumerDeliver),
			consumerInfo("look up the DLQ consumer", natsconf.StreamDLQ, natsconf.ConsumerDLQ),
			relayRequest,
			writeGatewayBox,
			watchIdentity,
			publishEvent,
			writeStatus,
			readStatus,
			readEvents,
			directGetEvents,
			deniedRequest("read events by last subject", api+".STREAM.MSG.GET."+natsconf.StreamEvents, `{"last_by_subj":"`+natsconf.EventSubject(tenant)+`"}`),
			readParked,
			parkEvent,
			consumeDeliver,
			ackEvent,
			createEventsCons,
			consumeDLQ,
			deniedPublish("ack a DLQ message", "$JS.ACK."+natsconf.StreamDLQ+"."+natsconf.ConsumerDLQ+".1.1.1.1.0"),
			deniedRequest("create a consumer on "+natsconf.StreamDLQ, api+".CONSUMER.CREATE."+natsconf.StreamDLQ, consumerCreate(natsconf.StreamDLQ)),
			deniedRequest("delete a dead letter", api+".STREAM.MSG.DELETE."+natsconf.StreamDLQ, `{"seq":1}`),
			deniedRequest("purge "+natsconf.StreamDLQ, api+".STREAM.PURGE."+natsconf.StreamDLQ, `{}`),
			deniedRequest("delete the DLQ consumer", api+".CONSUMER.DELETE."+natsconf.StreamDLQ+"."+natsconf.ConsumerDLQ, ""),
			deniedRequest("look up the status bucket", api+".STREAM.INFO.KV_"+natsconf.BucketStatus, ""),
			deniedRequest("watch statuses", api+".CONSUMER.CREATE.KV_"+natsconf.BucketStatus, consumerCreate("KV_"+natsconf.BucketStatus)),
			writeDeadLetter,
			followChanges,
		}
	case natsconf.Worker:
		steps = []step{
			pullAndAck("consume the delivery consumer and ack", natsconf.StreamEvents, natsconf.ConsumerDeliver),
			kvPut("write status", local, natsconf.BucketStatus, tenant+".evt_1"),
			logAttempt,
			kvGet("read status", local, natsconf.BucketStatus, statusKey),
			allowFollowChanges,
			publishAcked("park an event", natsconf.ParkedSubject(parkedEndpoint, tenant, "evt_1"), natsconf.StreamParked, local),
			readParkedCopy,
			publishAcked("bring a parked event back", natsconf.EventSubject(tenant), natsconf.StreamEvents, local),
			readIdentity,
			readIdentityByGet,
			openIdentity,
			watchIdentity,
			writeIdentity,
			createEventsCons,
			readEvents,
			directGetEvents,
			publishReceived,
			writeDeadLetter,
			consumeDLQ,
			requestReplay,
			announceChange,
			relayRequest,
			answerRelayed,
		}
	case natsconf.Receiver:
		steps = []step{
			publishAcked("publish a received webhook", natsconf.ReceivedSubject(tenant), natsconf.StreamReceived, local),
			allowFollowChanges,
			readIdentity,
			openIdentity,
			publishEvent,
			readEvents,
			directGetEvents,
			parkEvent,
			readParked,
			consumeDeliver,
			writeStatus,
			readStatus,
			readDeadLetters,
			requestReplay,
			announceChange,
			relayRequest,
			answerRelayed,
		}
	case natsconf.DLQ:
		steps = []step{
			pullAndAck("consume the DLQ consumer and ack", natsconf.StreamDLQ, natsconf.ConsumerDLQ),
			getMsg("read events by sequence", natsconf.StreamEvents, 1),
			publishAcked("write a dead letter", natsconf.DeadLetterSubject(tenant, "evt_1"), natsconf.StreamDLQ, local),
			getLastMsg("read dead letters", natsconf.StreamDLQ, natsconf.DeadLetterSubject(tenant, "evt_0")),
			kvPut("write status", local, natsconf.BucketStatus, tenant+".evt_1"),
			logAttempt,
			kvGet("read status", local, natsconf.BucketStatus, statusKey),
			publishAcked("publish a replayed event", natsconf.EventSubject(tenant), natsconf.StreamEvents, local),
			parkEvent,
			readParked,
			consumeDeliver,
			createEventsCons,
			deniedRequest("create a consumer on "+natsconf.StreamDLQ, api+".CONSUMER.CREATE."+natsconf.StreamDLQ, consumerCreate(natsconf.StreamDLQ)),
			readIdentity,
			readIdentityByGet,
			openIdentity,
			watchIdentity,
			writeIdentity,
			publishReceived,
			requestReplay,
			announceChange,
			followChanges,
			relayRequest,
			answerRelayed,
		}
	}
	return append(steps, commonSteps(c)...)
}

// stepNamed returns the step of steps called what, or fails the test.
func stepNamed(t testing.TB, steps []step, what string) step {
	t.Helper()
	for _, st := range steps {
		if st.what == what {
			return st
		}
	}
	t.Fatalf("no step %q", what)
	return step{}
}

// runTable checks every step of every component's table on tg, a subtest per
// component.
func runTable(t *testing.T, tg *target, tables map[natsconf.Component][]step) {
	t.Helper()
	for c, steps := range tables {
		t.Run(string(c), func(t *testing.T) {
			t.Parallel()
			for _, st := range steps {
				if err := check(tg, string(c), c, st); err != nil {
					t.Error(err)
				}
			}
		})
	}
}

func hubTables() map[natsconf.Component][]step {
	tables := map[natsconf.Component][]step{}
	for _, c := range natsconf.Components {
		tables[c] = hubSteps(c)
	}
	return tables
}

// --- Servers. ---

// testCreds returns a password for every user of the mesh, each with characters that
// need quoting in a config file or escaping in a URL.
func testCreds() natsconf.Credentials {
	creds := natsconf.Credentials{}
	for _, n := range append(natsconf.HubCredentialNames(), natsconf.EdgeCredentialNames()...) {
		creds[n] = `pw "` + n + `" \ $HOME ${x} #c // é ✓ :@/?%`
	}
	return creds
}

// seedHub applies the topology and puts something to read: events, a dead letter,
// replay requests, an identity and a status record.
func seedHub(ctx context.Context, js jetstream.JetStream, topo natsconf.Topology) error {
	if err := natsconf.Setup(ctx, js, topo); err != nil {
		return err
	}
	for range seededEvents {
		if _, err := js.Publish(ctx, natsconf.EventSubject(tenant), []byte(recordValue)); err != nil {
			return fmt.Errorf("seed event: %w", err)
		}
	}
	if _, err := js.Publish(ctx, natsconf.DeadLetterSubject(tenant, "evt_0"), []byte(recordValue)); err != nil {
		return fmt.Errorf("seed dead letter: %w", err)
	}
	for range seededReplay {
		if _, err := js.Publish(ctx, natsconf.ReplaySubject(tenant), []byte(recordValue)); err != nil {
			return fmt.Errorf("seed replay request: %w", err)
		}
	}
	for b, key := range map[string]string{natsconf.BucketIdentity: identityKey, natsconf.BucketStatus: statusKey} {
		kv, err := js.KeyValue(ctx, b)
		if err != nil {
			return fmt.Errorf("seed %s: %w", b, err)
		}
		if _, err := kv.Put(ctx, key, []byte(recordValue)); err != nil {
			return fmt.Errorf("seed %s: %w", b, err)
		}
	}
	return nil
}

// startSingle runs the embedded server of `edgehook up` (natsconf.SingleServer) with
// the users of creds, plus extra, and seeds it.
func startSingle(t *testing.T, creds natsconf.Credentials, extra ...natsconf.User) *target {
	t.Helper()
	spec, err := natsconf.SingleServer("127.0.0.1", -1, t.TempDir(), creds)
	if err != nil {
		t.Fatal(err)
	}
	spec.Users = append(spec.Users, extra...)
	tg := newTarget(t, "the single server", natstest.Embedded(t, spec), "", creds)
	js, err := jetstream.New(tg.op)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := seedHub(ctx, js, natsconf.DefaultTopology()); err != nil {
		t.Fatal(err)
	}
	return tg
}

// TestEachComponentIsAllowedItsOwnWorkOnly runs every component's table on the
// embedded server `edgehook up` runs.
func TestEachComponentIsAllowedItsOwnWorkOnly(t *testing.T) {
	tg := startSingle(t, testCreds())
	t.Run("tables", func(t *testing.T) { runTable(t, tg, hubTables()) })
	t.Run("inboxes are private", func(t *testing.T) { checkInboxPrivacy(t, tg, tg, natsconf.Gateway) })
}

// checkInboxPrivacy has the worker pull an event on workers (its reply comes to its
// own inbox) while a connection of spy on spies, subscribed to the worker's inbox
// prefix, is refused and receives nothing.
func checkInboxPrivacy(t *testing.T, workers, spies *target, spy natsconf.Component) {
	t.Helper()
	s, err := spies.dial(string(spy), spy)
	if err != nil {
		t.Fatal(err)
	}
	defer s.nc.Close()
	watched := natsconf.InboxPrefix(natsconf.Worker) + ".>"
	sub, err := s.nc.SubscribeSync(watched)
	if err != nil {
		t.Fatal(err)
	}
	seen, err := s.barrier()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(seen, []violation{subViolation(watched)}) {
		t.Fatalf("%s subscribing to %s met violations %v, want exactly the subscription's", spy, watched, seen)
	}

	w, err := workers.dial(string(natsconf.Worker), natsconf.Worker)
	if err != nil {
		t.Fatal(err)
	}
	defer w.nc.Close()
	inbox := w.nc.NewInbox()
	if !strings.HasPrefix(inbox, natsconf.InboxPrefix(natsconf.Worker)+".") {
		t.Fatalf("worker inbox %s lacks the worker's prefix", inbox)
	}
	replies, err := w.nc.SubscribeSync(inbox)
	if err != nil {
		t.Fatal(err)
	}
	next := api + ".CONSUMER.MSG.NEXT." + natsconf.StreamEvents + "." + natsconf.ConsumerDeliver
	if err := w.nc.PublishRequest(next, inbox, []byte(`{"batch":1,"expires":5000000000}`)); err != nil {
		t.Fatal(err)
	}
	m, err := replies.NextMsg(10 * time.Second)
	if err != nil {
		t.Fatalf("worker pull: %v", err)
	}
	if !strings.HasPrefix(m.Reply, "$JS.ACK."+natsconf.StreamEvents+"."+natsconf.ConsumerDeliver+".") {
		t.Fatalf("worker pull got %q (reply %q, header %v), want an event", m.Data, m.Reply, m.Header)
	}
	if _, err := w.nc.Request(m.Reply, []byte("+ACK"), 10*time.Second); err != nil {
		t.Fatalf("worker ack: %v", err)
	}
	if got, err := sub.NextMsg(300 * time.Millisecond); !errors.Is(err, nats.ErrTimeout) {
		t.Fatalf("%s received a message on the worker's inbox: %v, %v", spy, got, err)
	}
	if seen, err := s.barrier(); err != nil || len(seen) > 0 {
		t.Fatalf("%s: later violations %v, %v", spy, seen, err)
	}
}

// TestPermissionCheckerCatchesWrongGrants runs steps of the tables against users that
// hold one grant too many (a denied step must then fail as "not denied") or one too
// few (an allowed step must then fail), and a step that meets its violation at an
// earlier lookup (it must fail as not the step's own), each next to the untampered
// component's user, which passes.
func TestPermissionCheckerCatchesWrongGrants(t *testing.T) {
	allowPub := func(subject string) func(*server.Permissions) {
		return func(p *server.Permissions) { p.Publish.Allow = append(p.Publish.Allow, subject) }
	}
	allowSub := func(subject string) func(*server.Permissions) {
		return func(p *server.Permissions) { p.Subscribe.Allow = append(p.Subscribe.Allow, subject) }
	}
	dropPub := func(subject string) func(*server.Permissions) {
		return func(p *server.Permissions) {
			if !slices.Contains(p.Publish.Allow, subject) {
				panic("no grant " + subject)
			}
			p.Publish.Allow = slices.DeleteFunc(slices.Clone(p.Publish.Allow), func(s string) bool { return s == subject })
		}
	}
	// The old way to consume the delivery consumer: js.Consumer asks CONSUMER.INFO first.
	viaLookup := step{what: "consume the delivery consumer through a lookup", denied: consumeDeliver.denied,
		run: func(ctx context.Context, cl *client) error {
			c, err := cl.js.Consumer(ctx, natsconf.StreamEvents, natsconf.ConsumerDeliver)
			if err != nil {
				return err
			}
			_, err = c.Fetch(1, jetstream.FetchMaxWait(time.Second))
			return err
		}}
	cases := []struct {
		c    natsconf.Component
		what string
		st   step // when zero, the step of c's hub table called what
		edit func(*server.Permissions)
		want string
	}{
		{c: natsconf.Gateway, what: "consume the delivery consumer", edit: allowPub(consumeDeliver.denied.subject), want: "not denied"},
		{c: natsconf.Gateway, what: "read events back", edit: allowPub(readEvents.denied.subject), want: "not denied"},
		{c: natsconf.Gateway, what: "write identity", edit: allowPub("$KV.identity.>"), want: "not denied"},
		{c: natsconf.Gateway, what: "subscribe to the worker's inbox", edit: allowSub("_INBOX_worker.>"), want: "not denied"},
		{c: natsconf.Gateway, what: "announce a config change", edit: allowPub(natsconf.ConfigChangedPrefix + "*"), want: "not denied"},
		{c: natsconf.Gateway, what: "answer relayed tenant requests", edit: allowSub(natsconf.AdminTenantSubject), want: "not denied"},
		{c: natsconf.Admin, what: "publish to the gateway's inbox unasked", edit: allowPub(natsconf.InboxPrefix(natsconf.Gateway) + ".>"), want: "not denied"},
		{c: natsconf.Admin, what: "answer relayed tenant requests", edit: func(p *server.Permissions) { p.Response = nil }, want: "should be allowed"},
		{c: natsconf.Admin, what: "read events back", edit: allowPub(readEvents.denied.subject), want: "not denied"},
		{c: natsconf.Admin, what: "request a replay", edit: dropPub(natsconf.ReplaySubjectPrefix + "*"), want: "should be allowed"},
		{c: natsconf.Gateway, what: "relay a tenant request to the admin API", edit: dropPub(natsconf.AdminTenantSubject), want: "should be allowed"},
		{c: natsconf.Worker, what: "read identity", edit: allowPub("$JS.API.DIRECT.GET.KV_identity.>"), want: "not denied"},
		{c: natsconf.Receiver, what: "read events back", edit: allowPub(readEvents.denied.subject), want: "not denied"},
		{c: natsconf.DLQ, what: "read identity", edit: allowPub("$JS.API.DIRECT.GET.KV_identity.>"), want: "not denied"},
		{c: natsconf.Worker, what: "consume the delivery consumer and ack", edit: dropPub("$JS.ACK.EVENTS.deliver.>"), want: "should be allowed"},
		{c: natsconf.Gateway, what: "publish an event", edit: dropPub("events.*"), want: "should be allowed"},
		{c: natsconf.Gateway, what: "watch identity", edit: dropPub("$JS.API.CONSUMER.DELETE.KV_identity.>"), want: "permissions violation for publish to \"$JS.API.CONSUMER.DELETE.KV_identity."},
		{c: natsconf.DLQ, what: "read events by sequence", edit: dropPub("$JS.API.STREAM.MSG.GET.EVENTS"), want: "should be allowed"},
		{c: natsconf.Gateway, what: viaLookup.what, st: viaLookup, want: "before the step's own"},
	}
	creds := testCreds()
	var extra []natsconf.User
	for i, tc := range cases {
		name := fmt.Sprintf("tampered-%d", i)
		creds[name] = "pw-" + name
		p := natsconf.Permissions(tc.c, natsconf.HubSite)
		if tc.edit != nil {
			tc.edit(p)
		}
		extra = append(extra, natsconf.User{Name: name, Password: creds[name], Permissions: p})
	}
	tg := startSingle(t, creds, extra...)
	for i, tc := range cases {
		st := tc.st
		if st.run == nil {
			st = stepNamed(t, hubSteps(tc.c), tc.what)
		}
		if tc.edit != nil {
			if err := check(tg, string(tc.c), tc.c, st); err != nil {
				t.Errorf("untampered %s: %v", tc.c, err)
			}
		}
		err := check(tg, fmt.Sprintf("tampered-%d", i), tc.c, st)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %s with a tampered grant: checker said %v, want an error saying %q", tc.c, tc.what, err, tc.want)
		}
	}
}
