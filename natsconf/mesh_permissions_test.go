package natsconf_test

import (
	"context"
	"errors"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/edgehook/edgehook/natsconf"
	"github.com/edgehook/edgehook/natsconf/natsproc"
)

// The edges of the test mesh: edge is started, otherEdge only named (its subjects and
// bucket must be out of edge's gateway's reach).
const (
	edgeName  = "e1"
	otherEdge = "e2"
)

// mesh is a hub cluster and one edge, real nats-server processes run from the configs
// natsconf generates.
type mesh struct {
	hub, edge *target
	// hubNodes are the hub's processes; hubNodes[0] is the one hub holds.
	hubNodes []*natsproc.Server
}

// freePorts returns n free ports (distinct: see natsproc.FreePort).
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	ports := make([]int, n)
	for i := range ports {
		ports[i] = natsproc.FreePort(t)
	}
	return ports
}

// startMesh runs a hub of nodes nodes (natsconf.HubLayout) and edge edgeName
// (natsconf.EdgeLayout, a leaf of every hub node), with the passwords of testCreds, and
// seeds both: the hub's topology (replicated on every node) and records, the edge's
// assets (natsconf.SetupEdge) and a queued record; it waits until the edge's identity
// mirror holds the hub's record.
func startMesh(t *testing.T, nodes int) *mesh {
	t.Helper()
	dir := t.TempDir()
	creds := testCreds()
	ports := freePorts(t, 4*nodes+2)
	layout := natsconf.HubLayout{StoreDir: filepath.Join(dir, "hub")}
	var leafURLs []string
	for i := range nodes {
		p := ports[4*i:]
		layout.Nodes = append(layout.Nodes, natsconf.HubNode{Host: "127.0.0.1", ClientPort: p[0], ClusterPort: p[1], LeafPort: p[2], MonitorPort: p[3]})
		leafURLs = append(leafURLs, "nats-leaf://127.0.0.1:"+strconv.Itoa(p[2]))
	}
	specs, err := layout.Servers(creds)
	if err != nil {
		t.Fatal(err)
	}
	m := &mesh{}
	for _, spec := range specs {
		conf, err := spec.Conf()
		if err != nil {
			t.Fatal(err)
		}
		m.hubNodes = append(m.hubNodes, natsproc.Start(t, dir, spec.Name, conf, spec.Port, spec.MonitorPort))
	}
	for _, s := range m.hubNodes {
		s.WaitHealthy(t, 30*time.Second)
	}
	m.hub = newTarget(t, "hub node "+specs[0].Name, m.hubNodes[0].ClientURL, natsconf.HubDomain, creds)

	topo := natsconf.DefaultTopology()
	topo.Replicas = nodes
	hubJS, err := jetstream.New(m.hub.op)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// The cluster may still be electing its meta leader.
	natsproc.Eventually(t, 30*time.Second, 200*time.Millisecond, "hub setup", func() error {
		return seedHub(ctx, hubJS, topo)
	})

	edgeLayout := natsconf.EdgeLayout{
		Name: edgeName, Host: "127.0.0.1", ClientPort: ports[4*nodes], MonitorPort: ports[4*nodes+1],
		HubURLs: leafURLs, StoreDir: filepath.Join(dir, "edge"),
	}
	edgeSpec, err := edgeLayout.Server(creds)
	if err != nil {
		t.Fatal(err)
	}
	conf, err := edgeSpec.Conf()
	if err != nil {
		t.Fatal(err)
	}
	edgeProc := natsproc.Start(t, dir, edgeSpec.Name, conf, edgeSpec.Port, edgeSpec.MonitorPort)
	edgeProc.WaitHealthy(t, 30*time.Second)
	m.edge = newTarget(t, "edge "+edgeName, edgeProc.ClientURL, natsconf.EdgeDomain(edgeName), creds)

	// Through the edge: its own JetStream and the hub's across the leaf link.
	edgeJS, err := jetstream.New(m.edge.op)
	if err != nil {
		t.Fatal(err)
	}
	viaEdge, err := jetstream.NewWithDomain(m.edge.op, natsconf.HubDomain)
	if err != nil {
		t.Fatal(err)
	}
	natsproc.Eventually(t, 30*time.Second, 200*time.Millisecond, "the hub's JetStream through the edge's leaf link", func() error {
		_, err := viaEdge.AccountInfo(ctx)
		return err
	})
	if err := natsconf.SetupEdge(ctx, viaEdge, edgeJS, topo, edgeName); err != nil {
		t.Fatal(err)
	}
	queued, err := edgeJS.KeyValue(ctx, natsconf.EdgeQueuedBucket(edgeName))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := queued.Put(ctx, statusKey, []byte(recordValue)); err != nil {
		t.Fatal(err)
	}
	mirror, err := edgeJS.KeyValue(ctx, natsconf.BucketIdentity)
	if err != nil {
		t.Fatal(err)
	}
	natsproc.Eventually(t, 30*time.Second, 100*time.Millisecond, "the edge's identity mirror holds the hub's record", func() error {
		_, err := mirror.Get(ctx, identityKey)
		return err
	})
	return m
}

// edgeGatewaySteps is the table of the gateway at edge: ingest, queued records and
// identity are the edge's own, statuses, replays and the link probe the hub's.
func edgeGatewaySteps(edge string) []step {
	hub := hubAPI()
	steps := []step{
		accountInfo("JetStream account info of the hub", atHub),
		publishAcked("publish an event into the edge's stream", natsconf.EdgeSubjectPrefix(edge)+tenant, natsconf.EdgeStream(edge), local),
		streamInfo("look up the edge's stream (link probe)", local, natsconf.EdgeStream(edge)),
		publishAsyncAcked("ingest an event into the edge's stream (asynchronous publish)", natsconf.EdgeSubjectPrefix(edge)+tenant, natsconf.EdgeStream(edge), local),
		kvPut("record queued in the edge's bucket", local, natsconf.EdgeQueuedBucket(edge), tenant+".evt_1"),
		publishAsyncAcked("record queued in the edge's bucket (asynchronous publish)", "$KV."+natsconf.EdgeQueuedBucket(edge)+"."+tenant+".evt_2", "KV_"+natsconf.EdgeQueuedBucket(edge), local),
		kvGet("read the edge's queued records", local, natsconf.EdgeQueuedBucket(edge), statusKey),
		kvGet("read identity (the edge's mirror)", local, natsconf.BucketIdentity, identityKey),
		kvWatch("watch identity (the edge's mirror)", natsconf.BucketIdentity, identityKey),
		kvGet("read the hub's statuses", atHub, natsconf.BucketStatus, statusKey),
		kvWatchAt("watch the hub's statuses (the portal's events index)", atHub, natsconf.BucketStatus, statusKey),
		countParkedAt("count a tenant's parked copies at the hub (stream info)", atHub),
		publishAcked("request a replay (stored by the hub)", natsconf.ReplaySubject(tenant), natsconf.StreamDLQ, atHub),
		allowRelay,
		answerRelayed,
		streamInfo("look up the hub's "+natsconf.StreamEvents+" (link probe)", atHub, natsconf.StreamEvents),

		deniedJSPublish("publish an event to the hub's "+natsconf.StreamEvents+" directly", natsconf.EventSubject(tenant)),
		deniedJSPublish("publish into another edge's stream", natsconf.EdgeSubjectPrefix(otherEdge)+tenant),
		deniedJSPublish("write another edge's queued bucket", "$KV."+natsconf.EdgeQueuedBucket(otherEdge)+"."+tenant+".evt_1"),
		writeIdentity,
		deniedJSPublish("write identity through the hub", hub+".$KV."+natsconf.BucketIdentity+".tenants.ten_evil"),
		deniedJSPublish("write the hub's statuses", hub+".$KV."+natsconf.BucketStatus+"."+tenant+".evt_1"),
		deniedRequest("read the hub's identity (not the mirror)", directGet(hub, natsconf.BucketIdentity, identityKey), ""),
		deniedRequest("read the hub's events", hub+".STREAM.MSG.GET."+natsconf.StreamEvents, getFirst),
		deniedRequest("direct-get the hub's events", hub+".DIRECT.GET."+natsconf.StreamEvents, getFirst),
		deniedRequest("consume the hub's delivery consumer", hub+".CONSUMER.MSG.NEXT."+natsconf.StreamEvents+"."+natsconf.ConsumerDeliver, pullOne),
		deniedRequest("create a consumer on the hub's "+natsconf.StreamEvents, hub+".CONSUMER.CREATE."+natsconf.StreamEvents, consumerCreate(natsconf.StreamEvents)),
		deniedRequest("read the hub's dead letters", hub+".STREAM.MSG.GET."+natsconf.StreamDLQ, `{"last_by_subj":"`+natsconf.DeadLetterSubject(tenant, "evt_0")+`"}`),
		deniedRequest("consume the hub's DLQ consumer", hub+".CONSUMER.MSG.NEXT."+natsconf.StreamDLQ+"."+natsconf.ConsumerDLQ, pullOne),
		deniedRequest("create a consumer on the hub's "+natsconf.StreamDLQ, hub+".CONSUMER.CREATE."+natsconf.StreamDLQ, consumerCreate(natsconf.StreamDLQ)),
		deniedRequest("create a consumer on the hub's "+natsconf.StreamParked, hub+".CONSUMER.CREATE."+natsconf.StreamParked, consumerCreate(natsconf.StreamParked)),
		deniedRequest("read the hub's parked copies", hub+".STREAM.MSG.GET."+natsconf.StreamParked, getFirst),
		deniedRequest("direct-get the hub's parked copies", hub+".DIRECT.GET."+natsconf.StreamParked, getFirst),
		deniedRequest("create a consumer on the hub's identity", hub+".CONSUMER.CREATE.KV_"+natsconf.BucketIdentity, consumerCreate("KV_"+natsconf.BucketIdentity)),
		deniedRequest("read the edge's stream back", api+".STREAM.MSG.GET."+natsconf.EdgeStream(edge), getFirst),
		deniedRequest("create a consumer on the edge's stream", api+".CONSUMER.CREATE."+natsconf.EdgeStream(edge), consumerCreate(natsconf.EdgeStream(edge))),
		deniedRequest("use another edge's JetStream", natsconf.DomainAPI(natsconf.EdgeDomain(otherEdge))+".INFO", ""),
		writeDeadLetter,
		publishReceived,
		announceChange,
		followChanges,
	}
	return append(steps, commonSteps(natsconf.Gateway)...)
}

// meshNodes is the size of the test hub: a 3-node cluster, as in production.
const meshNodes = 3

// TestPermissionsOnTheGeneratedMesh runs every component's table on a real hub cluster
// started from the generated configs, the edge gateway's table on a real edge linked to
// it, and the inbox privacy check within the hub and from the edge to the hub.
func TestPermissionsOnTheGeneratedMesh(t *testing.T) {
	if testing.Short() {
		t.Skip("starts nats-server processes")
	}
	m := startMesh(t, meshNodes)
	t.Run("hub", func(t *testing.T) { runTable(t, m.hub, hubTables()) })
	t.Run("edge", func(t *testing.T) {
		runTable(t, m.edge, map[natsconf.Component][]step{natsconf.Gateway: edgeGatewaySteps(edgeName)})
	})
	t.Run("inboxes are private at the hub", func(t *testing.T) { checkInboxPrivacy(t, m.hub, m.hub, natsconf.Gateway) })
	t.Run("inboxes are private across the leaf link", func(t *testing.T) {
		checkInboxPrivacy(t, m.hub, m.edge, natsconf.Gateway)
	})
	t.Run("a tenant request relayed across the leaf link", func(t *testing.T) { checkRelayAcrossTheLink(t, m) })
	t.Run("the edge has no user for another component", func(t *testing.T) {
		for _, c := range natsconf.Components {
			if c == natsconf.Gateway {
				continue
			}
			cl, err := m.edge.dial(string(c), c)
			if err == nil {
				cl.nc.Close()
			}
			if !errors.Is(err, nats.ErrAuthorization) {
				t.Errorf("%s connecting to the edge: %v, want an authorization violation", c, err)
			}
		}
	})
}

// checkRelayAcrossTheLink has the admin user at the hub answer, through allow_responses,
// a tenant request the edge's gateway relays across the leaf link.
func checkRelayAcrossTheLink(t *testing.T, m *mesh) {
	t.Helper()
	adm, err := m.hub.dial(string(natsconf.Admin), natsconf.Admin)
	if err != nil {
		t.Fatal(err)
	}
	defer adm.nc.Close()
	if _, err := adm.nc.QueueSubscribe(natsconf.AdminTenantSubject, natsconf.AdminQueue, func(r *nats.Msg) { r.Respond([]byte("answered at the hub")) }); err != nil {
		t.Fatal(err)
	}
	if err := adm.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	gw, err := m.edge.dial(string(natsconf.Gateway), natsconf.Gateway)
	if err != nil {
		t.Fatal(err)
	}
	defer gw.nc.Close()
	natsproc.Eventually(t, 30*time.Second, 100*time.Millisecond, "the hub's admin answers the edge gateway's relayed request", func() error {
		reply, err := gw.nc.Request(natsconf.AdminTenantSubject, []byte("GET /v1/tenant"), 2*time.Second)
		if err != nil {
			return err
		}
		if string(reply.Data) != "answered at the hub" {
			return errors.New("answered " + string(reply.Data))
		}
		return nil
	})
	for _, cl := range []*client{adm, gw} {
		if seen, err := cl.barrier(); err != nil || len(seen) > 0 {
			t.Errorf("%s: permissions violations %v (%v)", cl.c, seen, err)
		}
	}
}
