package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/edgehook/edgehook/admin"
	"github.com/edgehook/edgehook/natsconf"
	"github.com/edgehook/edgehook/natsconf/natsproc"
	"github.com/edgehook/edgehook/receiver"
	"github.com/edgehook/edgehook/vault"
	"github.com/edgehook/edgehook/worker"
)

// `edgehook mesh` runs the edge topology of DESIGN.md on loopback, for trying it out:
// a hub of three real nats-server processes (JetStream domain hub, R3) and two edges,
// a and b (each a nats-server leaf node in its own domain), whose leaf links run through
// proxies in this process that the link control endpoint cuts and heals; a gateway at
// each edge; and at the hub a worker, the DLQ processor, the receiver and the admin API.
// Each component connects as its own NATS user. The configs are `setup nats-config`'s,
// the JetStream layout `setup nats`'s and `setup nats --edge`'s.

// meshSettings are the settings of `edgehook mesh`.
type meshSettings struct {
	dir        string
	basePort   int
	adminToken string
	natsServer string
	logLevel   string
	worker     workerOptions
}

// meshStepTimeout bounds each wait of the start: the hub's meta leader, the layout, an
// edge's leaf link and assets, a component's readiness.
const meshStepTimeout = 60 * time.Second

// meshConfigCacheTTL is how long the hub's worker and receiver cache a tenant's webhook
// configuration (changes made at the admin API reach them at once).
const meshConfigCacheTTL = 30 * time.Second

func runMesh(ctx context.Context, env *environment, args []string) error {
	var o meshSettings
	s := newSettings("mesh", env.getenv, env.stderr)
	s.String(&o.dir, "dir", "EDGEHOOK_MESH_DIR", "./mesh", "directory of the configs, passwords, JetStream stores, logs and dev secret store (kept across runs)")
	s.Int(&o.basePort, "base-port", "EDGEHOOK_MESH_BASE_PORT", meshDefaultBasePort, fmt.Sprintf("first of the %d loopback ports the mesh listens on (see the README)", meshPortSpan))
	s.Secret(&o.adminToken, "admin-token", "EDGEHOOK_ADMIN_TOKEN", "admin API bearer token (generated and printed if unset)")
	s.String(&o.natsServer, "nats-server", "EDGEHOOK_NATS_SERVER", "", "the nats-server binary (default: nats-server in PATH, else beside edgehook; `make tools` installs it)")
	s.String(&o.logLevel, "log-level", "EDGEHOOK_LOG_LEVEL", "info", "debug, info, warn or error")
	o.worker.register(s, true)
	if err := s.parse(args); err != nil {
		return err
	}
	if s.fs.NArg() > 0 {
		return usageError{fmt.Errorf("usage: edgehook mesh [flags]; unexpected %q", s.fs.Arg(0))}
	}
	log, err := newLogger(env.stderr, o.logLevel)
	if err != nil {
		return err
	}
	plan := meshPortPlan{base: o.basePort}
	if err := plan.validate(); err != nil {
		return usageError{err}
	}
	topo := natsconf.DefaultTopology()
	topo.Replicas = meshHubNodes
	wcfg, err := o.worker.config(topo)
	if err != nil {
		return err
	}
	bin, err := meshFindNATSServer(o.natsServer, env.getenv)
	if err != nil {
		return err
	}
	generatedToken := o.adminToken == ""
	if generatedToken {
		if o.adminToken, err = randomToken(); err != nil {
			return err
		}
	} else if len(o.adminToken) < admin.MinTokenLen {
		return usageError{fmt.Errorf("EDGEHOOK_ADMIN_TOKEN: want at least %d characters", admin.MinTokenLen)}
	}
	if err := plan.checkFree(); err != nil {
		return err
	}
	if err := os.MkdirAll(o.dir, 0o700); err != nil {
		return fmt.Errorf("mesh directory %s (EDGEHOOK_MESH_DIR): %w", o.dir, err)
	}
	hub, edges, err := meshWriteConfigs(o.dir, plan, env.stdout)
	if err != nil {
		return err
	}

	m := &meshRun{log: log, plan: plan, bin: bin, hub: hub, edges: edges, links: meshNewLinks(log)}
	defer m.stop()
	if err := m.startHub(); err != nil {
		return err
	}
	if err := m.setup(ctx, topo); err != nil {
		if ctx.Err() != nil {
			return nil // stopped while starting
		}
		return err
	}
	err = m.serve(ctx, env, o, wcfg, generatedToken)
	if ctx.Err() != nil && errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// meshRun is one running mesh: its nats-server processes, the proxies of the edges'
// leaf links and the log files of the servers.
type meshRun struct {
	log   *slog.Logger
	plan  meshPortPlan
	bin   string
	hub   meshSite
	edges map[string]meshSite
	links *meshLinks

	servers []*natsproc.Server // hub nodes, then edges
	logs    []*os.File
}

// startHub starts the proxies of the edges' leaf links, then the hub's nodes, at once,
// and waits until each is healthy: JetStream on, a meta leader elected and every stream
// it holds recovered, so that the edges find the hub's streams led when they link up.
func (m *meshRun) startHub() error {
	for e, name := range meshEdgeNames() {
		for i := range meshHubNodes {
			p, err := natsproc.StartProxy(meshAddr(m.plan.linkProxy(e, i)), meshAddr(m.plan.hubLeaf(i)))
			if err != nil {
				return fmt.Errorf("mesh: edge %s's link (--base-port): %w", name, err)
			}
			m.links.add(name, p)
		}
	}
	cfgs := make([]natsproc.Config, len(m.hub.specs))
	for i, spec := range m.hub.specs {
		cfgs[i] = natsproc.Config{ClientPort: m.plan.hubClient(i), MonitorPort: m.plan.hubMonitor(i)}
		if err := m.serverConfig(&cfgs[i], m.hub.dir, spec); err != nil {
			return err
		}
	}
	servers, err := m.launch(cfgs)
	if err != nil {
		return err
	}
	errs := make([]error, len(servers))
	var wg sync.WaitGroup
	for i, s := range servers {
		wg.Go(func() { errs[i] = s.Healthy(meshStepTimeout) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// startEdges starts the edges' servers at once and waits until each is ready.
func (m *meshRun) startEdges() error {
	var cfgs []natsproc.Config
	for e, name := range meshEdgeNames() {
		site := m.edges[name]
		cfg := natsproc.Config{ClientPort: m.plan.edgeClient(e), MonitorPort: m.plan.edgeMonitor(e)}
		if err := m.serverConfig(&cfg, site.dir, site.specs[0]); err != nil {
			return err
		}
		cfgs = append(cfgs, cfg)
	}
	_, err := m.launch(cfgs)
	return err
}

// serverConfig fills in how to run spec's server from its config file in dir, its
// output appended to dir/<name>.log.
func (m *meshRun) serverConfig(cfg *natsproc.Config, dir string, spec natsconf.ServerSpec) error {
	confPath := filepath.Join(dir, spec.Name+".conf")
	f, err := os.OpenFile(meshLogPath(confPath), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("mesh: %s log: %w", spec.Name, err)
	}
	m.logs = append(m.logs, f)
	cfg.Name, cfg.Binary, cfg.ConfPath, cfg.Log = spec.Name, m.bin, confPath, f
	log := m.log.With("server", spec.Name)
	cfg.Logf = func(format string, args ...any) { log.Warn(fmt.Sprintf(format, args...)) }
	return nil
}

// meshLogPath is where the output of the server running confPath goes: beside it, .log
// for .conf.
func meshLogPath(confPath string) string { return strings.TrimSuffix(confPath, ".conf") + ".log" }

// launch starts every server of cfgs at once and waits until all are ready; the ones
// that started are kept for stop even if another failed.
func (m *meshRun) launch(cfgs []natsproc.Config) ([]*natsproc.Server, error) {
	servers := make([]*natsproc.Server, len(cfgs))
	errs := make([]error, len(cfgs))
	var wg sync.WaitGroup
	for i, cfg := range cfgs {
		wg.Go(func() { servers[i], errs[i] = natsproc.Launch(cfg) })
	}
	wg.Wait()
	for _, s := range servers {
		if s != nil {
			m.servers = append(m.servers, s)
			m.log.Info("nats-server started", "server", s.Name, "url", s.ClientURL, "pid", s.Pid(), "log", meshLogPath(s.ConfPath))
		}
	}
	return servers, errors.Join(errs...)
}

// setup creates the hub's layout with `setup nats`'s natsconf.Setup, starts the edges'
// servers, then creates each edge's layout with natsconf.SetupEdge once its leaf link is
// up; all as the operator, at the hub.
func (m *meshRun) setup(ctx context.Context, topo natsconf.Topology) error {
	no := natsOptions{url: m.hubURLs(), passwords: m.hub.creds}
	nc, js, err := no.connect(natsconf.OperatorUser, m.log)
	if err != nil {
		return err
	}
	defer nc.Close()
	if err := meshRetry(ctx, "the hub's layout (`setup nats --replicas 3`)", func(ctx context.Context) error {
		return natsconf.Setup(ctx, js, topo)
	}); err != nil {
		return err
	}
	m.log.Info("hub layout up to date", "replicas", topo.Replicas)
	if err := m.startEdges(); err != nil {
		return err
	}
	hubJS, err := jetstream.NewWithDomain(nc, natsconf.HubDomain)
	if err != nil {
		return err
	}
	for _, name := range meshEdgeNames() {
		edgeJS, err := jetstream.NewWithDomain(nc, natsconf.EdgeDomain(name))
		if err != nil {
			return err
		}
		if err := meshRetry(ctx, fmt.Sprintf("edge %s's leaf link and assets (`setup nats --edge %s`)", name, name), func(ctx context.Context) error {
			return natsconf.SetupEdge(ctx, hubJS, edgeJS, topo, name)
		}); err != nil {
			return err
		}
		m.log.Info("edge layout up to date", "edge", name, "stream", natsconf.EdgeStream(name), "bucket", natsconf.EdgeQueuedBucket(name))
	}
	return nil
}

// meshRetry calls step, each try bounded by 10 s, until it succeeds, ctx ends or
// meshStepTimeout passes; the error names what and holds step's last error.
func meshRetry(ctx context.Context, what string, step func(context.Context) error) error {
	deadline := time.Now().Add(meshStepTimeout)
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := step(sctx)
		cancel()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("mesh: %s: not ready after %v: %w", what, meshStepTimeout, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// hubURLs is every hub node's client URL, comma-separated.
func (m *meshRun) hubURLs() string {
	var urls string
	for i := range meshHubNodes {
		if i > 0 {
			urls += ","
		}
		urls += "nats://" + meshAddr(m.plan.hubClient(i))
	}
	return urls
}

// serve runs the components, the link control endpoint and a watch on every server
// until ctx ends or a component fails, and prints the banner once everything answers.
// Components stop (and drain) before serve returns; the servers keep running until stop.
func (m *meshRun) serve(ctx context.Context, env *environment, o meshSettings, wcfg worker.Config, generatedToken bool) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	g, gctx := errgroup.WithContext(ctx)

	devPath := filepath.Join(o.dir, "dev-secrets.json")
	store, err := vault.OpenDevStore(devPath)
	if err != nil {
		return err
	}
	fmt.Fprintf(env.stderr, "\n*** WARNING: VAULT_ADDR is not set. Webhook secrets are kept in a plain file, %s.\n*** This is for local development only; set VAULT_ADDR and VAULT_TOKEN in production.\n\n", devPath)
	m.log.Warn("using the embedded dev secret store; set VAULT_ADDR for production", "path", devPath)

	// The hub: the admin API (its own component and listener), a worker, the
	// receiver and the DLQ processor, each as its own NATS user. A stack's wait returns
	// at once while nothing runs on it, so each is waited for only once its components
	// started; one that fails to start is aborted.
	hubStack := newStack(gctx, natsOptions{url: m.hubURLs(), passwords: m.hub.creds}, m.log.With("site", natsconf.HubDomain))
	procReg := newRegistry()
	gwReg, wkReg, rcReg := prometheus.NewRegistry(), prometheus.NewRegistry(), prometheus.NewRegistry()
	all := prometheus.Gatherers{procReg, gwReg, wkReg, rcReg}
	startErr := func() error {
		ao := adminOptions{addr: meshAddr(m.plan.admin()), token: o.adminToken, allowPrivate: wcfg.AllowPrivateTargets}
		if _, err := hubStack.startAdmin(ao, store, gwReg, all); err != nil {
			return hubStack.abort(fmt.Errorf("mesh: admin API: %w", err))
		}
		cache := vault.NewCache(store, vault.CacheConfig{TTL: meshConfigCacheTTL}, wkReg)
		if _, err := hubStack.startWorker(wcfg, cache, wkReg); err != nil {
			return hubStack.abort(fmt.Errorf("mesh: worker: %w", err))
		}
		if err := hubStack.startReceiver(receiver.Config{Addr: meshAddr(m.plan.receiver())}, cache, rcReg, all); err != nil {
			return hubStack.abort(fmt.Errorf("mesh: receiver: %w", err))
		}
		if _, err := hubStack.startDLQ(wkReg); err != nil {
			return hubStack.abort(fmt.Errorf("mesh: dlq: %w", err))
		}
		g.Go(hubStack.wait)
		// Each edge: a gateway connected to its edge's server as the gateway user.
		for e, name := range meshEdgeNames() {
			site := m.edges[name]
			st := newStack(gctx, natsOptions{url: "nats://" + meshAddr(m.plan.edgeClient(e)), passwords: site.creds}, m.log.With("site", natsconf.EdgeDomain(name)))
			reg := newRegistry()
			if _, err := st.startGateway(gatewayOptions{edge: name, httpAddr: meshAddr(m.plan.gateway(e))}, reg, reg); err != nil {
				return st.abort(fmt.Errorf("mesh: gateway of edge %s: %w", name, err))
			}
			g.Go(st.wait)
		}
		return nil
	}()
	if startErr != nil {
		cancel()
		_ = g.Wait()
		return startErr
	}
	g.Go(func() error { return m.links.serve(gctx, meshAddr(m.plan.control())) })
	for _, s := range m.servers {
		g.Go(func() error {
			select {
			case <-gctx.Done():
			case <-s.Exited():
				// Not fatal: a hub node may be stopped on purpose to see R3 at work.
				m.log.Error("nats-server exited", "server", s.Name, "error", s.ExitError())
			}
			return nil
		})
	}
	g.Go(func() error {
		if err := m.waitReady(gctx); err != nil {
			if gctx.Err() != nil {
				return nil // stopping anyway
			}
			return err
		}
		meshPrintBanner(env.stdout, m, o, generatedToken)
		m.log.Info("mesh is up", "dir", o.dir, "base_port", m.plan.base)
		return nil
	})
	return g.Wait()
}

// waitReady waits, at most meshStepTimeout, until the receiver listens and every
// gateway reports ready.
func (m *meshRun) waitReady(ctx context.Context) error {
	urls := []string{"http://" + meshAddr(m.plan.admin()) + "/readyz", "http://" + meshAddr(m.plan.receiver()) + "/healthz"}
	for e := range meshEdgeNames() {
		urls = append(urls, "http://"+meshAddr(m.plan.gateway(e))+"/readyz")
	}
	return meshRetry(ctx, "the admin API, the receiver and the gateways", func(ctx context.Context) error {
		for _, u := range urls {
			if err := meshGetOK(ctx, u); err != nil {
				return err
			}
		}
		return nil
	})
}

// stop sends SIGTERM to every nats-server and waits for them (SIGKILL after 10 s), then
// closes the link proxies and the servers' logs. It runs after the components stopped.
func (m *meshRun) stop() {
	if len(m.servers) > 0 {
		m.log.Info("stopping the nats-servers", "servers", len(m.servers))
	}
	var wg sync.WaitGroup
	for _, s := range m.servers {
		wg.Go(func() {
			if err := s.Terminate(); err != nil {
				m.log.Error("nats-server did not stop", "server", s.Name, "error", err)
				return
			}
			m.log.Info("nats-server stopped", "server", s.Name, "pid", s.Pid())
		})
	}
	wg.Wait()
	m.links.close()
	for _, f := range m.logs {
		f.Close()
	}
}
