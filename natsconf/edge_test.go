package natsconf_test

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/edgehook/edgehook/natsconf"
	"github.com/edgehook/edgehook/natsconf/natsproc"
	"github.com/edgehook/edgehook/natsconf/natstest"
)

// edgeMesh is an embedded hub (domain hub) with embedded edges linked to it, each
// connection as the operator.
type edgeMesh struct {
	hub   jetstream.JetStream
	edges map[string]jetstream.JetStream
}

func startEdgeMesh(t *testing.T, edges ...string) *edgeMesh {
	t.Helper()
	users := []natsconf.User{{Name: natsconf.OperatorUser, Password: "pw-operator"}}
	leafPort := natsproc.FreePort(t)
	m := &edgeMesh{edges: map[string]jetstream.JetStream{}}
	m.hub = natstest.ConnectAs(t, natstest.Embedded(t, natsconf.ServerSpec{
		Name: "hub", Host: "127.0.0.1", Port: -1, StoreDir: t.TempDir(), Domain: natsconf.HubDomain, Users: users,
		LeafListen: &natsconf.LeafListenSpec{Host: "127.0.0.1", Port: leafPort, Password: "pw-leaf"},
	}), natsconf.OperatorUser, "pw-operator")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := natsconf.Setup(ctx, m.hub, natsconf.DefaultTopology()); err != nil {
		t.Fatal(err)
	}
	for _, name := range edges {
		m.edges[name] = natstest.ConnectAs(t, natstest.Embedded(t, natsconf.ServerSpec{
			Name: natsconf.EdgeDomain(name), Host: "127.0.0.1", Port: -1, StoreDir: t.TempDir(), Domain: natsconf.EdgeDomain(name), Users: users,
			LeafRemote: &natsconf.LeafRemoteSpec{URLs: []string{"nats-leaf://127.0.0.1:" + strconv.Itoa(leafPort)}, Password: "pw-leaf"},
		}), natsconf.OperatorUser, "pw-operator")
		m.setupEdge(t, name)
	}
	return m
}

// setupEdge runs SetupEdge for name through its own connection, once its link is up.
func (m *edgeMesh) setupEdge(t *testing.T, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	hub, err := jetstream.NewWithDomain(m.edges[name].Conn(), natsconf.HubDomain)
	if err != nil {
		t.Fatal(err)
	}
	natsproc.Eventually(t, 20*time.Second, 100*time.Millisecond, "edge "+name+" set up", func() error {
		return natsconf.SetupEdge(ctx, hub, m.edges[name], natsconf.DefaultTopology(), name)
	})
}

// eventsOf returns the hub EVENTS message count on tenant's subject.
func (m *edgeMesh) eventsOf(t *testing.T, tenant string) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := m.hub.Stream(ctx, natsconf.StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(natsconf.EventSubject(tenant)))
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Subjects[natsconf.EventSubject(tenant)]
}

// TestEdgeStreamsReachEVENTSOnceEach: what an edge stores reaches the hub's EVENTS on
// events.<tenant> once, never in another edge's stream, and one Idempotency-Key (the
// same Nats-Msg-Id) accepted at two edges is stored at the hub once.
func TestEdgeStreamsReachEVENTSOnceEach(t *testing.T) {
	m := startEdgeMesh(t, "a", "b")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	publish := func(edge, tenant, msgID string) {
		t.Helper()
		msg := nats.NewMsg(natsconf.EdgeSubjectPrefix(edge) + tenant)
		msg.Data = []byte(`{}`)
		if msgID != "" {
			msg.Header.Set(jetstream.MsgIDHeader, msgID)
		}
		if _, err := m.edges[edge].PublishMsg(ctx, msg); err != nil {
			t.Fatalf("publish at edge %s: %v", edge, err)
		}
	}
	for i := range 10 {
		publish("a", "ten_a", "")
		publish("b", "ten_b", "")
		publish("a", "ten_both", "ten_both:key-"+strconv.Itoa(i))
		publish("b", "ten_both", "ten_both:key-"+strconv.Itoa(i))
	}
	natsproc.Eventually(t, 30*time.Second, 100*time.Millisecond, "hub sourced both edges", func() error {
		a, b, both := m.eventsOf(t, "ten_a"), m.eventsOf(t, "ten_b"), m.eventsOf(t, "ten_both")
		if a != 10 || b != 10 || both != 10 {
			return fmt.Errorf("hub EVENTS holds %d, %d, %d of ten_a, ten_b, ten_both, want 10 each", a, b, both)
		}
		return nil
	})
	time.Sleep(500 * time.Millisecond) // nothing more may arrive
	if a, b, both := m.eventsOf(t, "ten_a"), m.eventsOf(t, "ten_b"), m.eventsOf(t, "ten_both"); a != 10 || b != 10 || both != 10 {
		t.Errorf("later, hub EVENTS holds %d, %d, %d of ten_a, ten_b, ten_both, want 10 each", a, b, both)
	}
	for edge, want := range map[string]uint64{"a": 20, "b": 20} {
		s, err := m.edges[edge].Stream(ctx, natsconf.EdgeStream(edge))
		if err != nil {
			t.Fatal(err)
		}
		if got := s.CachedInfo().State.Msgs; got != want {
			t.Errorf("edge %s's stream holds %d messages, want %d (its own only)", edge, got, want)
		}
	}
}

// TestSetupEdgeIsIdempotentAndSurvivesHubSetup: adding an edge twice makes one source;
// re-running the hub's Setup keeps it; removing it drops only that edge.
func TestSetupEdgeIsIdempotentAndSurvivesHubSetup(t *testing.T) {
	m := startEdgeMesh(t, "a", "b")
	m.setupEdge(t, "a")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sources := func() []string {
		t.Helper()
		s, err := m.hub.Stream(ctx, natsconf.StreamEvents)
		if err != nil {
			t.Fatal(err)
		}
		return natsconf.EdgeNames(s.CachedInfo().Config)
	}
	if got := sources(); len(got) != 2 || got[0] != "a" || got[1] != "b" {
		t.Fatalf("EVENTS sources edges %v, want [a b]", got)
	}
	if err := natsconf.Setup(ctx, m.hub, natsconf.DefaultTopology()); err != nil {
		t.Fatal(err)
	}
	if got := sources(); len(got) != 2 {
		t.Fatalf("after the hub's Setup, EVENTS sources edges %v, want [a b]", got)
	}
	if err := natsconf.RemoveEdge(ctx, m.hub, "a"); err != nil {
		t.Fatal(err)
	}
	if got := sources(); len(got) != 1 || got[0] != "b" {
		t.Fatalf("after removing a, EVENTS sources edges %v, want [b]", got)
	}
	// The identity mirror follows the hub's bucket.
	hubIdent, err := m.hub.KeyValue(ctx, natsconf.BucketIdentity)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := hubIdent.Put(ctx, "tenants.ten_x", []byte(`{"tenantId":"ten_x"}`)); err != nil {
		t.Fatal(err)
	}
	edgeIdent, err := m.edges["b"].KeyValue(ctx, natsconf.BucketIdentity)
	if err != nil {
		t.Fatal(err)
	}
	natsproc.Eventually(t, 10*time.Second, 50*time.Millisecond, "identity record mirrored to edge b", func() error {
		_, err := edgeIdent.Get(ctx, "tenants.ten_x")
		return err
	})
}
