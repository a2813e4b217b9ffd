package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/sync/errgroup"

	"github.com/edgehook/edgehook/natsconf"
)

func runSetup(ctx context.Context, env *environment, args []string) error {
	if len(args) > 0 {
		switch args[0] {
		case "vault":
			return runSetupVault(ctx, env, args[1:])
		case "nats":
			return runSetupNATS(ctx, env, args[1:])
		case "nats-config":
			return runSetupNATSConfig(env, args[1:])
		}
	}
	return usageError{fmt.Errorf("usage: edgehook setup nats|nats-config|vault [flags]")}
}

// runSetupNATS creates or updates the JetStream layout: the hub's (or `up`'s) streams,
// buckets and consumers, or with --edge one edge's assets and the hub's source of it.
func runSetupNATS(ctx context.Context, env *environment, args []string) error {
	var (
		no         natsOptions
		topo       topologyOptions
		edge       string
		removeEdge string
	)
	s := newSettings("setup nats", env.getenv, env.stderr)
	no.register(s)
	topo.register(s)
	s.String(&edge, "edge", "", "", "add (or update) the edge called this: its stream, queued bucket and identity mirror in its domain, and the hub's source of it; its leaf link must be up")
	s.String(&removeEdge, "remove-edge", "", "", "stop the hub sourcing the edge called this (see the README before removing an edge)")
	if err := s.parse(args); err != nil {
		return err
	}
	if err := topo.resolve(); err != nil {
		return err
	}
	if err := topo.Validate(); err != nil {
		return usageError{err}
	}
	for _, name := range []string{edge, removeEdge} {
		if name != "" {
			if err := natsconf.ValidateEdgeName(name); err != nil {
				return usageError{err}
			}
		}
	}
	if edge != "" && removeEdge != "" {
		return usageError{errors.New("setup nats: --edge and --remove-edge exclude each other")}
	}
	log, err := newLogger(env.stderr, "warn")
	if err != nil {
		return err
	}
	nc, js, err := no.connect(natsconf.OperatorUser, log)
	if err != nil {
		return err
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	t := topo.Topology
	if edge == "" && removeEdge == "" {
		if err := natsconf.Setup(ctx, js, t); err != nil {
			return err
		}
		fmt.Fprintf(env.stdout, "streams %s, %s, %s; buckets %s, %s; consumers %s (AckWait %s, MaxDeliver %d, BackOff %v), %s: up to date\n",
			natsconf.StreamEvents, natsconf.StreamReceived, natsconf.StreamDLQ, natsconf.BucketIdentity, natsconf.BucketStatus,
			natsconf.ConsumerDeliver, t.AckWait(), t.MaxDeliver, t.DeliverConsumer().BackOff, natsconf.ConsumerDLQ)
		return nil
	}
	// The edge's assets and the hub's are reached through their domains, from wherever
	// this connection landed.
	hub, err := jetstream.NewWithDomain(nc, natsconf.HubDomain)
	if err != nil {
		return err
	}
	if removeEdge != "" {
		if err := natsconf.RemoveEdge(ctx, hub, removeEdge); err != nil {
			return err
		}
		fmt.Fprintf(env.stdout, "hub %s no longer sources edge %s (stream %s in domain %s)\n",
			natsconf.StreamEvents, removeEdge, natsconf.EdgeStream(removeEdge), natsconf.EdgeDomain(removeEdge))
		return nil
	}
	edgeJS, err := jetstream.NewWithDomain(nc, natsconf.EdgeDomain(edge))
	if err != nil {
		return err
	}
	if err := natsconf.SetupEdge(ctx, hub, edgeJS, t, edge); err != nil {
		if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, jetstream.ErrJetStreamNotEnabled) || strings.Contains(err.Error(), "no responders") {
			return fmt.Errorf("%w (is edge %s's leaf node up and linked to the hub?)", err, edge)
		}
		return err
	}
	fmt.Fprintf(env.stdout, "edge %s: stream %s, bucket %s, identity mirror of the hub's (domain %s); hub %s sources %s: up to date\n",
		edge, natsconf.EdgeStream(edge), natsconf.EdgeQueuedBucket(edge), natsconf.EdgeDomain(edge), natsconf.StreamEvents, natsconf.EdgeStream(edge))
	return nil
}

// natsConfigOptions are the settings of `setup nats-config`.
type natsConfigOptions struct {
	role, out, name, hub, host, peers, storeDir string
	nodes, stride                               int
	clientPort, clusterPort, leafPort, monitor  int
}

// runSetupNATSConfig writes ready-to-run nats-server configs for the hub's nodes or one
// edge, with the passwords of their users taken from the environment
// (EDGEHOOK_NATS_PASSWORD_<USER>), from DIR/<user>.password, or generated into that file
// (mode 0600). Passwords are never printed.
func runSetupNATSConfig(env *environment, args []string) error {
	var o natsConfigOptions
	s := newSettings("setup nats-config", env.getenv, env.stderr)
	s.String(&o.role, "role", "", "", "hub or edge")
	s.String(&o.out, "out", "", "", "directory to write the configs (*.conf) and the generated passwords (*.password) to")
	s.String(&o.name, "name", "", "", "the edge's name (--role edge)")
	s.String(&o.hub, "hub", "", "", "the hub's leaf listeners, nats-leaf://HOST:PORT, comma-separated (--role edge)")
	s.String(&o.host, "host", "", "127.0.0.1", "address the server listens on (edge), and of every hub node unless --peers is set")
	s.String(&o.peers, "peers", "", "", "comma-separated hosts of the hub nodes, one per node (default: --nodes times --host)")
	s.Int(&o.nodes, "nodes", "", 3, "hub nodes, when --peers is not set")
	s.Int(&o.stride, "port-stride", "", 0, "node i listens on each port plus (i-1) times this (several hub nodes on one host)")
	s.Int(&o.clientPort, "client-port", "", 4222, "client port (node 1's)")
	s.Int(&o.clusterPort, "cluster-port", "", 6222, "cluster (route) port of the hub (node 1's)")
	s.Int(&o.leafPort, "leaf-port", "", 7422, "leaf-node port of the hub, which edges dial (node 1's)")
	s.Int(&o.monitor, "monitor-port", "", 8222, "HTTP monitoring port (/healthz) (node 1's)")
	s.String(&o.storeDir, "store-dir", "", "", "JetStream store directory (default: DIR/jetstream)")
	if err := s.parse(args); err != nil {
		return err
	}
	_, _, err := o.write(env.getenv, env.stdout)
	return err
}

// write writes the configs of o's role into o.out, with the passwords of their users
// taken from getenv (EDGEHOOK_NATS_PASSWORD_<USER>), from o.out/<user>.password, or
// generated into that file (mode 0600), and says on stdout what it wrote (never a
// password). It returns the specs as written (with the bcrypt hashes of the passwords
// the servers only check) and the plain passwords, keyed by user name. `setup
// nats-config` and `edgehook mesh` both write their configs with it.
func (o natsConfigOptions) write(getenv func(string) string, stdout io.Writer) ([]natsconf.ServerSpec, natsconf.Credentials, error) {
	if o.out == "" {
		return nil, nil, usageError{errors.New("setup nats-config: --out DIR is required")}
	}
	if o.storeDir == "" {
		o.storeDir = filepath.Join(o.out, "jetstream")
	}
	if abs, err := filepath.Abs(o.storeDir); err == nil {
		o.storeDir = abs
	}
	// Everything is checked before anything is written.
	var (
		names  []string
		render func(natsconf.Credentials) ([]natsconf.ServerSpec, error)
	)
	switch o.role {
	case "hub":
		layout, err := o.hubLayout()
		if err != nil {
			return nil, nil, usageError{err}
		}
		names, render = natsconf.HubCredentialNames(), layout.Servers
	case "edge":
		layout, err := o.edgeLayout()
		if err != nil {
			return nil, nil, usageError{err}
		}
		names = natsconf.EdgeCredentialNames()
		render = func(c natsconf.Credentials) ([]natsconf.ServerSpec, error) {
			spec, err := layout.Server(c)
			return []natsconf.ServerSpec{spec}, err
		}
	default:
		return nil, nil, usageError{fmt.Errorf("setup nats-config: --role must be hub or edge, got %q", o.role)}
	}
	if err := os.MkdirAll(o.out, 0o700); err != nil {
		return nil, nil, fmt.Errorf("setup nats-config: %w", err)
	}
	creds, generated, err := natsCredentials(getenv, o.out, names, o.role == "edge")
	if err != nil {
		return nil, nil, err
	}
	specs, err := render(creds)
	if err != nil {
		return nil, nil, err
	}
	// bcrypt is slow on purpose: the servers' users are hashed at once.
	written := make([]natsconf.ServerSpec, len(specs))
	var hashing errgroup.Group
	for i, spec := range specs {
		hashing.Go(func() error {
			err := hashPasswords(&spec)
			written[i] = spec
			return err
		})
	}
	if err := hashing.Wait(); err != nil {
		return nil, nil, err
	}
	for _, spec := range written {
		conf, err := spec.Conf()
		if err != nil {
			return nil, nil, err
		}
		path := filepath.Join(o.out, spec.Name+".conf")
		if err := writePrivate(path, conf); err != nil {
			return nil, nil, err
		}
		fmt.Fprintf(stdout, "wrote %s (server %s, client port %d", path, spec.Name, spec.Port)
		if spec.Domain != "" {
			fmt.Fprintf(stdout, ", JetStream domain %s", spec.Domain)
		}
		fmt.Fprintln(stdout, ")")
	}
	if len(generated) > 0 {
		fmt.Fprintf(stdout, "generated passwords (mode 0600) in %s for: %s\n", o.out, strings.Join(generated, ", "))
	}
	return written, creds, nil
}

// hubLayout places the hub's nodes.
func (o natsConfigOptions) hubLayout() (natsconf.HubLayout, error) {
	var hosts []string
	if o.peers != "" {
		for _, h := range strings.Split(o.peers, ",") {
			hosts = append(hosts, strings.TrimSpace(h))
		}
	} else {
		if o.nodes < 1 {
			return natsconf.HubLayout{}, fmt.Errorf("setup nats-config: --nodes must be at least 1, got %d", o.nodes)
		}
		for range o.nodes {
			hosts = append(hosts, o.host)
		}
	}
	layout := natsconf.HubLayout{StoreDir: o.storeDir}
	for i, h := range hosts {
		d := i * o.stride
		layout.Nodes = append(layout.Nodes, natsconf.HubNode{
			Host: h, ClientPort: o.clientPort + d, ClusterPort: o.clusterPort + d,
			LeafPort: o.leafPort + d, MonitorPort: o.monitor + d,
		})
	}
	if err := layout.Validate(); err != nil {
		return natsconf.HubLayout{}, fmt.Errorf("setup nats-config: %w (--peers, --port-stride)", err)
	}
	return layout, nil
}

// edgeLayout places the edge's node.
func (o natsConfigOptions) edgeLayout() (natsconf.EdgeLayout, error) {
	if err := natsconf.ValidateEdgeName(o.name); err != nil {
		return natsconf.EdgeLayout{}, fmt.Errorf("setup nats-config: --name: %w", err)
	}
	if o.hub == "" {
		return natsconf.EdgeLayout{}, errors.New("setup nats-config: --role edge needs --hub nats-leaf://HOST:PORT")
	}
	var urls []string
	for _, u := range strings.Split(o.hub, ",") {
		u = strings.TrimSpace(u)
		if !strings.HasPrefix(u, "nats-leaf://") {
			return natsconf.EdgeLayout{}, fmt.Errorf("setup nats-config: --hub %q: want nats-leaf://HOST:PORT", natsconf.RedactURL(u))
		}
		urls = append(urls, u)
	}
	return natsconf.EdgeLayout{
		Name: o.name, Host: o.host, ClientPort: o.clientPort, MonitorPort: o.monitor,
		HubURLs: urls, StoreDir: o.storeDir,
	}, nil
}

// passwordEnv is the environment variable that holds NATS user name's password.
func passwordEnv(name string) string { return "EDGEHOOK_NATS_PASSWORD_" + strings.ToUpper(name) }

// passwordFile is where `setup nats-config` keeps NATS user name's password in dir.
func passwordFile(dir, name string) string { return filepath.Join(dir, name+".password") }

// natsCredentials finds the password of each user: its environment variable, else its
// file in dir, else a new one written there. At an edge the leaf password must be the
// hub's, so it is never generated. It returns the names it generated passwords for.
func natsCredentials(getenv func(string) string, dir string, names []string, edge bool) (natsconf.Credentials, []string, error) {
	creds := natsconf.Credentials{}
	var generated []string
	if edge && getenv(passwordEnv(natsconf.LeafUser)) == "" {
		// Checked before anything is generated, so a refused run writes nothing.
		if b, err := os.ReadFile(passwordFile(dir, natsconf.LeafUser)); err != nil || strings.TrimSpace(string(b)) == "" {
			return nil, nil, usageError{fmt.Errorf("setup nats-config: the edge's leaf password must be the hub's: copy the hub's %s.password into %s, or set %s", natsconf.LeafUser, dir, passwordEnv(natsconf.LeafUser))}
		}
	}
	for _, name := range names {
		if v := getenv(passwordEnv(name)); v != "" {
			creds[name] = v
			continue
		}
		path := passwordFile(dir, name)
		b, err := os.ReadFile(path)
		if err == nil && strings.TrimSpace(string(b)) != "" {
			creds[name] = strings.TrimSpace(string(b))
			continue
		}
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, nil, fmt.Errorf("setup nats-config: %w", err)
		}
		if edge && name == natsconf.LeafUser {
			return nil, nil, usageError{fmt.Errorf("setup nats-config: the edge's leaf password must be the hub's: copy the hub's %s.password into %s, or set %s", name, dir, passwordEnv(name))}
		}
		pw, err := randomToken()
		if err != nil {
			return nil, nil, err
		}
		if err := writePrivate(path, pw+"\n"); err != nil {
			return nil, nil, err
		}
		creds[name] = pw
		generated = append(generated, name)
	}
	return creds, generated, nil
}

// hashPasswords replaces the passwords the server only checks (users, the system user,
// the leaf listener's) by their bcrypt hashes; route and leaf-remote passwords stay
// plain, since the server sends them.
func hashPasswords(spec *natsconf.ServerSpec) error {
	hash := func(pw string) (string, error) {
		b, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.DefaultCost)
		if err != nil {
			return "", fmt.Errorf("hash a NATS password: %w", err)
		}
		return string(b), nil
	}
	var err error
	for i := range spec.Users {
		if spec.Users[i].Password, err = hash(spec.Users[i].Password); err != nil {
			return err
		}
	}
	if spec.SystemPassword != "" {
		if spec.SystemPassword, err = hash(spec.SystemPassword); err != nil {
			return err
		}
	}
	if spec.LeafListen != nil {
		if spec.LeafListen.Password, err = hash(spec.LeafListen.Password); err != nil {
			return err
		}
	}
	return nil
}

// writePrivate writes content to path with mode 0600, replacing the file.
func writePrivate(path, content string) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
