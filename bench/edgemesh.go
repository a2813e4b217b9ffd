package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/edgehook/edgehook/identity"
	"github.com/edgehook/edgehook/natsconf"
)

// benchEdge is the name of the edge the edge scenario runs.
const benchEdge = "a"

// meshTimeout bounds each step of setting up the mesh (the leaf link, the assets, the
// identity mirror).
const meshTimeout = 30 * time.Second

// edgeMesh is the edge scenario's NATS servers, embedded in this process from their
// natsconf specs: a one-node hub (domain hub, the hub's users, a leaf listener, no
// cluster) and edge a, whose leaf link dials the hub, each on random loopback ports
// with its store in a temporary directory; and the operator's connection to each.
type edgeMesh struct {
	dir       string
	creds     natsconf.Credentials
	hub, edge *server.Server
	// The operator's connections: hubJS is the hub's JetStream, edgeJS the edge's.
	hubNC, edgeNC *nats.Conn
	hubJS, edgeJS jetstream.JetStream
	topo          natsconf.Topology
}

// startEdgeMesh starts the hub and the edge, waits for the leaf link, creates the
// hub's assets (natsconf.Setup) and the edge's (natsconf.SetupEdge) as the operator.
// On error it leaves nothing running; otherwise the caller closes the mesh.
func startEdgeMesh(ctx context.Context, topo natsconf.Topology) (m *edgeMesh, err error) {
	dir, err := os.MkdirTemp("", "edgehook-bench-edge-")
	if err != nil {
		return nil, fmt.Errorf("mesh: temporary store directory: %w", err)
	}
	m = &edgeMesh{dir: dir, creds: natsconf.Credentials{}, topo: topo}
	defer func() {
		if err != nil {
			m.close()
			m = nil
		}
	}()
	for _, names := range [][]string{natsconf.HubCredentialNames(), natsconf.EdgeCredentialNames()} {
		for _, name := range names {
			if m.creds[name] == "" {
				if m.creds[name], err = randomPassword(); err != nil {
					return m, err
				}
			}
		}
	}

	// A one-node hub: the users `up`'s server has (the hub's site), in the hub's domain,
	// with a leaf listener for the edge.
	hubSpec, err := natsconf.SingleServer("127.0.0.1", -1, filepath.Join(dir, "hub"), m.creds)
	if err != nil {
		return m, fmt.Errorf("mesh: hub: %w", err)
	}
	hubSpec.Name, hubSpec.Domain = natsconf.NodeName(1), natsconf.HubDomain
	hubSpec.LeafListen = &natsconf.LeafListenSpec{Host: "127.0.0.1", Port: -1, Password: m.creds[natsconf.LeafUser]}
	if m.hub, err = natsconf.StartEmbedded(hubSpec); err != nil {
		return m, fmt.Errorf("mesh: hub: %w", err)
	}
	vz, err := m.hub.Varz(nil)
	if err != nil || vz.LeafNode.Port <= 0 {
		return m, fmt.Errorf("mesh: the hub's leaf port is unknown (%v)", err)
	}
	edgeSpec, err := natsconf.EdgeLayout{
		Name: benchEdge, Host: "127.0.0.1", ClientPort: -1,
		HubURLs:  []string{"nats-leaf://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(vz.LeafNode.Port))},
		StoreDir: filepath.Join(dir, "edge-"+benchEdge),
	}.Server(m.creds)
	if err != nil {
		return m, fmt.Errorf("mesh: edge: %w", err)
	}
	if m.edge, err = natsconf.StartEmbedded(edgeSpec); err != nil {
		return m, fmt.Errorf("mesh: edge: %w", err)
	}
	if m.hubNC, m.hubJS, err = m.operator(m.hub, "hub"); err != nil {
		return m, err
	}
	if m.edgeNC, m.edgeJS, err = m.operator(m.edge, "edge"); err != nil {
		return m, err
	}

	sctx, cancel := context.WithTimeout(ctx, meshTimeout)
	defer cancel()
	if err := natsconf.Setup(sctx, m.hubJS, topo); err != nil {
		return m, fmt.Errorf("mesh: hub: %w", err)
	}
	if err := m.waitLinked(sctx); err != nil {
		return m, err
	}
	if err := natsconf.SetupEdge(sctx, m.hubJS, m.edgeJS, topo, benchEdge); err != nil {
		return m, fmt.Errorf("mesh: %w", err)
	}
	return m, nil
}

// operator connects to s as natsconf.OperatorUser.
func (m *edgeMesh) operator(s *server.Server, which string) (*nats.Conn, jetstream.JetStream, error) {
	nc, err := nats.Connect(s.ClientURL(), nats.Name("edgehook-bench-"+which),
		nats.UserInfo(natsconf.OperatorUser, m.creds[natsconf.OperatorUser]), nats.MaxReconnects(-1))
	if err != nil {
		return nil, nil, fmt.Errorf("mesh: connect to the %s as %s: %w", which, natsconf.OperatorUser, err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("mesh: %s jetstream: %w", which, err)
	}
	return nc, js, nil
}

// waitLinked waits until the leaf link is up and each side's JetStream answers
// through it in the other's domain.
func (m *edgeMesh) waitLinked(ctx context.Context) error {
	toHub, err := jetstream.NewWithDomain(m.edgeNC, natsconf.HubDomain)
	if err != nil {
		return fmt.Errorf("mesh: %w", err)
	}
	toEdge, err := jetstream.NewWithDomain(m.hubNC, natsconf.EdgeDomain(benchEdge))
	if err != nil {
		return fmt.Errorf("mesh: %w", err)
	}
	return poll(ctx, "the edge's leaf link to the hub", func(ctx context.Context) error {
		if m.hub.NumLeafNodes() == 0 || m.edge.NumLeafNodes() == 0 {
			return errors.New("no leaf connection yet")
		}
		for _, js := range []jetstream.JetStream{toHub, toEdge} {
			actx, cancel := context.WithTimeout(ctx, time.Second)
			_, err := js.AccountInfo(actx)
			cancel()
			if err != nil {
				return err
			}
		}
		return nil
	})
}

// createTenant creates an active tenant with a fresh API key directly in the hub's
// identity bucket (as the admin API would) and waits until the edge's identity mirror
// holds it.
func (m *edgeMesh) createTenant(ctx context.Context) (tenant, error) {
	id, err := identity.NewTenantID()
	if err != nil {
		return tenant{}, err
	}
	key, hash, err := identity.NewAPIKey()
	if err != nil {
		return tenant{}, err
	}
	kv, err := m.hubJS.KeyValue(ctx, natsconf.BucketIdentity)
	if err != nil {
		return tenant{}, fmt.Errorf("mesh: hub bucket %s: %w", natsconf.BucketIdentity, err)
	}
	t := identity.Tenant{TenantID: id, Status: identity.StatusActive, Plan: "enterprise", CreatedAt: time.Now().UTC()}
	if err := identity.NewStore(kv).Create(ctx, t, hash); err != nil {
		return tenant{}, fmt.Errorf("mesh: create tenant: %w", err)
	}
	hubStatus, err := kv.Status(ctx)
	if err != nil {
		return tenant{}, fmt.Errorf("mesh: hub bucket %s: %w", natsconf.BucketIdentity, err)
	}
	mirror, err := m.edgeJS.KeyValue(ctx, natsconf.BucketIdentity)
	if err != nil {
		return tenant{}, fmt.Errorf("mesh: edge bucket %s: %w", natsconf.BucketIdentity, err)
	}
	wctx, cancel := context.WithTimeout(ctx, meshTimeout)
	defer cancel()
	// The bench is the bucket's only writer, so the mirror holds the tenant once it
	// holds as many records as the hub's bucket.
	err = poll(wctx, "the tenant in the edge's identity mirror", func(ctx context.Context) error {
		st, err := mirror.Status(ctx)
		if err != nil {
			return err
		}
		if st.Values() < hubStatus.Values() {
			return fmt.Errorf("mirror holds %d of %d records", st.Values(), hubStatus.Values())
		}
		return nil
	})
	if err != nil {
		return tenant{}, err
	}
	return tenant{ID: id, APIKey: key}, nil
}

// edgeStored is the number of events the edge's ingest stream holds.
func (m *edgeMesh) edgeStored(ctx context.Context) (uint64, error) {
	s, err := m.edgeJS.Stream(ctx, natsconf.EdgeStream(benchEdge))
	if err != nil {
		return 0, fmt.Errorf("edge stream %s: %w", natsconf.EdgeStream(benchEdge), err)
	}
	return s.CachedInfo().State.Msgs, nil
}

// hubEvents is the state of the hub's EVENTS stream.
func (m *edgeMesh) hubEvents(ctx context.Context) (jetstream.StreamState, error) {
	s, err := m.hubJS.Stream(ctx, natsconf.StreamEvents)
	if err != nil {
		return jetstream.StreamState{}, fmt.Errorf("hub stream %s: %w", natsconf.StreamEvents, err)
	}
	return s.CachedInfo().State, nil
}

// close disconnects and shuts both servers down, the edge first, and removes their
// stores.
func (m *edgeMesh) close() {
	for _, nc := range []*nats.Conn{m.edgeNC, m.hubNC} {
		if nc != nil {
			nc.Close()
		}
	}
	for _, s := range []*server.Server{m.edge, m.hub} {
		if s != nil {
			s.Shutdown()
			s.WaitForShutdown()
		}
	}
	os.RemoveAll(m.dir)
}

// poll calls try every 20ms until it succeeds or ctx ends; the error then names what
// was awaited and try's last error.
func poll(ctx context.Context, what string, try func(context.Context) error) error {
	for {
		err := try(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("mesh: waiting for %s: %w (last: %w)", what, ctx.Err(), err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// randomPassword returns a fresh random NATS password.
func randomPassword() (string, error) {
	var b [24]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("mesh: generate a password: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}
