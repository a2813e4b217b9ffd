package natsconf_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/edgehook/edgehook/natsconf"
)

// authServer runs an embedded server with a user per component plus an unrestricted
// "setup" user that applies the topology.
func authServer(t *testing.T) *server.Server {
	t.Helper()
	creds := natsconf.Credentials{natsconf.OperatorUser: "pw-" + natsconf.OperatorUser}
	for _, c := range natsconf.Components {
		creds[string(c)] = "pw-" + string(c)
	}
	spec, err := natsconf.SingleServer("127.0.0.1", -1, t.TempDir(), creds)
	if err != nil {
		t.Fatal(err)
	}
	s, err := natsconf.StartEmbedded(spec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	nc, js := connectAs(t, s, natsconf.OperatorUser, nil)
	defer nc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := natsconf.Setup(ctx, js, natsconf.DefaultTopology()); err != nil {
		t.Fatal(err)
	}
	// Something to read: an event, a dead letter, a replay request for the DLQ
	// processor, an identity record, a status record.
	if _, err := js.Publish(ctx, natsconf.EventSubject("ten_a"), []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, natsconf.DeadLetterSubject("ten_a", "evt_0"), []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	for range 8 { // one per pulling step below
		if _, err := js.Publish(ctx, natsconf.ReplaySubject("ten_a"), nil); err != nil {
			t.Fatal(err)
		}
	}
	for _, b := range []string{natsconf.BucketIdentity, natsconf.BucketStatus} {
		kv, err := js.KeyValue(ctx, b)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := kv.Put(ctx, "tenants.ten_a", []byte(`{}`)); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

func connectAs(t *testing.T, s *server.Server, user string, asyncErrs chan<- error) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(s.ClientURL(), nats.UserInfo(user, "pw-"+user), nats.CustomInboxPrefix(natsconf.InboxPrefix(natsconf.Component(user))), nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		if asyncErrs != nil {
			select {
			case asyncErrs <- err:
			default:
			}
		}
	}))
	if err != nil {
		t.Fatalf("connect as %s: %v", user, err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return nc, js
}

// check runs op as component c and asserts it is allowed, or denied by a NATS
// permissions violation (reported to the call or asynchronously to the connection).
func check(t *testing.T, s *server.Server, c natsconf.Component, what string, allowed bool, op func(ctx context.Context, nc *nats.Conn, js jetstream.JetStream) error) {
	t.Helper()
	asyncErrs := make(chan error, 8)
	nc, js := connectAs(t, s, string(c), asyncErrs)
	// A denied request gets no answer; the violation arrives on the connection at once.
	timeout := 500 * time.Millisecond
	if allowed {
		timeout = 5 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	err := op(ctx, nc, js)
	if allowed {
		if err != nil {
			t.Errorf("%s: %s should be allowed: %v", c, what, err)
		}
		return
	}
	violation := func(err error) bool {
		return err != nil && (errors.Is(err, nats.ErrPermissionViolation) || strings.Contains(strings.ToLower(err.Error()), "permissions violation"))
	}
	if violation(err) {
		return
	}
	nc.Flush()
	select {
	case aerr := <-asyncErrs:
		if !violation(aerr) {
			t.Errorf("%s: %s: got %v / %v, want a permissions violation", c, what, err, aerr)
		}
	case <-time.After(2 * time.Second):
		t.Errorf("%s: %s was not denied (op error: %v)", c, what, err)
	}
}

func publish(subject string) func(context.Context, *nats.Conn, jetstream.JetStream) error {
	return func(ctx context.Context, _ *nats.Conn, js jetstream.JetStream) error {
		_, err := js.Publish(ctx, subject, []byte(`{}`))
		return err
	}
}

func kvGet(bucket, key string) func(context.Context, *nats.Conn, jetstream.JetStream) error {
	return func(ctx context.Context, _ *nats.Conn, js jetstream.JetStream) error {
		kv, err := js.KeyValue(ctx, bucket)
		if err != nil {
			return err
		}
		_, err = kv.Get(ctx, key)
		return err
	}
}

func kvWatch(bucket string) func(context.Context, *nats.Conn, jetstream.JetStream) error {
	return func(ctx context.Context, _ *nats.Conn, js jetstream.JetStream) error {
		kv, err := js.KeyValue(ctx, bucket)
		if err != nil {
			return err
		}
		w, err := kv.WatchAll(ctx)
		if err != nil {
			return err
		}
		defer w.Stop()
		for e := range w.Updates() {
			if e == nil {
				return nil // initial values done
			}
		}
		return ctx.Err()
	}
}

func getEvent(ctx context.Context, _ *nats.Conn, js jetstream.JetStream) error {
	s, err := js.Stream(ctx, natsconf.StreamEvents)
	if err != nil {
		return err
	}
	_, err = s.GetMsg(ctx, 1)
	return err
}

func pullDeliver(ctx context.Context, _ *nats.Conn, js jetstream.JetStream) error {
	c, err := js.Consumer(ctx, natsconf.StreamEvents, natsconf.ConsumerDeliver)
	if err != nil {
		return err
	}
	b, err := c.Fetch(1, jetstream.FetchMaxWait(time.Second))
	if err != nil {
		return err
	}
	for m := range b.Messages() {
		if err := m.Nak(); err != nil {
			return err
		}
	}
	return b.Error()
}

func createConsumer(ctx context.Context, _ *nats.Conn, js jetstream.JetStream) error {
	_, err := js.CreateConsumer(ctx, natsconf.StreamEvents, jetstream.ConsumerConfig{AckPolicy: jetstream.AckExplicitPolicy})
	return err
}

func createDLQConsumer(ctx context.Context, _ *nats.Conn, js jetstream.JetStream) error {
	_, err := js.CreateConsumer(ctx, natsconf.StreamDLQ, jetstream.ConsumerConfig{AckPolicy: jetstream.AckExplicitPolicy})
	return err
}

// pullDLQ takes one message from the DLQ processor's consumer and acks it.
func pullDLQ(ctx context.Context, _ *nats.Conn, js jetstream.JetStream) error {
	c, err := js.Consumer(ctx, natsconf.StreamDLQ, natsconf.ConsumerDLQ)
	if err != nil {
		return err
	}
	b, err := c.Fetch(1, jetstream.FetchMaxWait(time.Second))
	if err != nil {
		return err
	}
	n := 0
	for m := range b.Messages() {
		n++
		if err := m.Ack(); err != nil {
			return err
		}
	}
	if err := b.Error(); err != nil {
		return err
	}
	if n == 0 {
		return errors.New("no message fetched")
	}
	return nil
}

func getDeadLetter(ctx context.Context, _ *nats.Conn, js jetstream.JetStream) error {
	s, err := js.Stream(ctx, natsconf.StreamDLQ)
	if err != nil {
		return err
	}
	_, err = s.GetLastMsgForSubject(ctx, natsconf.DeadLetterSubject("ten_a", "evt_0"))
	return err
}

func TestEachComponentIsAllowedItsOwnWorkOnly(t *testing.T) {
	s := authServer(t)
	type step struct {
		what    string
		allowed bool
		op      func(context.Context, *nats.Conn, jetstream.JetStream) error
	}
	for c, steps := range map[natsconf.Component][]step{
		natsconf.Gateway: {
			{"publish an event", true, publish(natsconf.EventSubject("ten_a"))},
			{"read identity", true, kvGet(natsconf.BucketIdentity, "tenants.ten_a")},
			{"watch identity", true, kvWatch(natsconf.BucketIdentity)},
			{"read status", true, kvGet(natsconf.BucketStatus, "tenants.ten_a")},
			{"write identity", false, publish("$KV.identity.tenants.ten_evil")},
			{"read events back", false, getEvent},
			{"consume the delivery consumer", false, pullDeliver},
			{"create a consumer on EVENTS", false, createConsumer},
			{"publish a received webhook", false, publish(natsconf.ReceivedSubject("ten_a"))},
			{"announce a config change", false, publish(natsconf.ConfigChangedPrefix + "ten_a")},
			{"request a replay", true, publish(natsconf.ReplaySubject("ten_a"))},
			{"write a dead letter", false, publish(natsconf.DeadLetterSubject("ten_a", "evt_1"))},
			{"read dead letters", false, getDeadLetter},
			{"consume the DLQ consumer", false, pullDLQ},
		},
		natsconf.Admin: {
			{"write identity", true, publish("$KV.identity.tenants.ten_b")},
			{"read identity", true, kvGet(natsconf.BucketIdentity, "tenants.ten_a")},
			{"publish an event", false, publish(natsconf.EventSubject("ten_a"))},
			{"write status", false, publish("$KV.status.ten_a.evt_1")},
			{"consume the delivery consumer", false, pullDeliver},
			{"consume the DLQ consumer", false, pullDLQ},
			{"write a dead letter", false, publish(natsconf.DeadLetterSubject("ten_a", "evt_1"))},
		},
		natsconf.Worker: {
			{"consume the delivery consumer and ack", true, pullDeliver},
			{"write status", true, publish("$KV.status.ten_a.evt_1")},
			{"publish an event", false, publish(natsconf.EventSubject("ten_a"))},
			{"read identity", false, kvGet(natsconf.BucketIdentity, "tenants.ten_a")},
			{"write identity", false, publish("$KV.identity.tenants.ten_evil")},
			{"create a consumer on EVENTS", false, createConsumer},
			{"read events by sequence", false, getEvent},
			{"publish a received webhook", false, publish(natsconf.ReceivedSubject("ten_a"))},
			{"write a dead letter", false, publish(natsconf.DeadLetterSubject("ten_a", "evt_1"))},
			{"consume the DLQ consumer", false, pullDLQ},
			{"request a replay", false, publish(natsconf.ReplaySubject("ten_a"))},
		},
		natsconf.DLQ: {
			{"consume the DLQ consumer and ack", true, pullDLQ},
			{"read events by sequence", true, getEvent},
			{"write a dead letter", true, publish(natsconf.DeadLetterSubject("ten_a", "evt_1"))},
			{"read dead letters", true, getDeadLetter},
			{"write status", true, publish("$KV.status.ten_a.evt_1")},
			{"read status", true, kvGet(natsconf.BucketStatus, "tenants.ten_a")},
			{"publish a replayed event", true, publish(natsconf.EventSubject("ten_a"))},
			{"consume the delivery consumer", false, pullDeliver},
			{"create a consumer on EVENTS", false, createConsumer},
			{"create a consumer on DLQ", false, createDLQConsumer},
			{"read identity", false, kvGet(natsconf.BucketIdentity, "tenants.ten_a")},
			{"write identity", false, publish("$KV.identity.tenants.ten_evil")},
			{"publish a received webhook", false, publish(natsconf.ReceivedSubject("ten_a"))},
			{"request a replay", false, publish(natsconf.ReplaySubject("ten_a"))},
			{"announce a config change", false, publish(natsconf.ConfigChangedPrefix + "ten_a")},
			{"publish an advisory", false, publish(natsconf.AdvisoryMaxDeliveries)},
		},
		natsconf.Receiver: {
			{"publish a received webhook", true, publish(natsconf.ReceivedSubject("ten_a"))},
			{"read identity", false, kvGet(natsconf.BucketIdentity, "tenants.ten_a")},
			{"publish an event", false, publish(natsconf.EventSubject("ten_a"))},
			{"write status", false, publish("$KV.status.ten_a.evt_1")},
			{"consume the delivery consumer", false, pullDeliver},
			{"read dead letters", false, getDeadLetter},
		},
	} {
		t.Run(string(c), func(t *testing.T) {
			t.Parallel()
			for _, st := range steps {
				check(t, s, c, st.what, st.allowed, st.op)
			}
		})
	}
}
