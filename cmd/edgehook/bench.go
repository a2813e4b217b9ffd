package main

import (
	"context"
	"errors"
	"fmt"
	"github.com/edgehook/edgehook/admin"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/edgehook/edgehook/bench"
	"github.com/edgehook/edgehook/natsconf"
	"github.com/edgehook/edgehook/receiver"
	"github.com/edgehook/edgehook/vault"
)

// benchOptions are the settings of `edgehook bench`.
type benchOptions struct {
	scenario        string
	duration        time.Duration
	ceilingDuration time.Duration
	rate            int
	connections     int
	payload         int
	tenants         int
	backlog         int
	parked          int
	drainTimeout    time.Duration
	json            bool
	cpuProfile      string
	logLevel        string

	// A running system; without apiURL the bench starts its own per scenario.
	apiURL         string
	adminURL       string
	adminToken     string
	receiverURL    string
	natsMonitorURL string
	systemPIDs     string
	nats           natsOptions

	// The self-started system takes `up`'s delivery settings.
	topo   topologyOptions
	worker workerOptions
}

func runBench(ctx context.Context, env *environment, args []string) error {
	var o benchOptions
	s := newSettings("bench", env.getenv, env.stderr)
	s.String(&o.scenario, "scenario", "EDGEHOOK_BENCH_SCENARIO", "all",
		"ingest, deliver, e2e, pipeline, fairness, edge, batch or all; a comma-separated list, each optionally @rate (e.g. ingest@5000); "+
			"pipeline is sustained ingest with delivery running, with CPU per delivered event of the processes --system-pid names; "+
			"edge is ingest at an edge gateway and the hub sourcing it, against single-server ingest, on an in-process hub and edge; "+
			"batch is POST /v1/events/batch of 100 events against single-event ingest in the same run")
	s.Duration(&o.duration, "duration", "EDGEHOOK_BENCH_DURATION", bench.DefaultDuration, "measured window of each scenario")
	s.Duration(&o.ceilingDuration, "ceiling-duration", "EDGEHOOK_BENCH_CEILING_DURATION", 0, "how long each ceiling is measured (default: the duration, at most 3s)")
	s.Int(&o.rate, "rate", "EDGEHOOK_BENCH_RATE", -1, "offered events/s; 0 = flat out; -1 = each scenario's standard rate (ingest, deliver, edge: flat out; e2e 2000; fairness 1000)")
	s.Int(&o.connections, "connections", "EDGEHOOK_BENCH_CONNECTIONS", bench.DefaultConnections, "keep-alive HTTP connections of each load")
	s.Int(&o.payload, "payload", "EDGEHOOK_BENCH_PAYLOAD", bench.DefaultPayloadBytes, "event body size in bytes")
	s.Int(&o.tenants, "tenants", "EDGEHOOK_BENCH_TENANTS", bench.DefaultTenants, "well-behaved tenants in the fairness scenario")
	s.Int(&o.backlog, "backlog", "EDGEHOOK_BENCH_BACKLOG", 0, "events queued before the deliver scenario measures (default 20,000 per second of duration)")
	s.Int(&o.parked, "parked", "EDGEHOOK_BENCH_PARKED", 0,
		"events the fairness scenario parks at a dead endpoint before it measures the other tenants next to them "+
			"(default 100,000 per second of duration: 1,000,000 at 10s; -1: no parked phase); "+
			"against --api-url they are sent to a sink afterwards, so keep it small there")
	s.Duration(&o.drainTimeout, "verify-timeout", "EDGEHOOK_BENCH_VERIFY_TIMEOUT", bench.DefaultDrainTimeout, "longest wait after a load for accepted events to be verified")
	s.Bool(&o.json, "json", "EDGEHOOK_BENCH_JSON", false, "print one JSON object per scenario, one per line, instead of the table")
	s.String(&o.cpuProfile, "cpuprofile", "EDGEHOOK_BENCH_CPUPROFILE", "", "write a CPU profile of the whole run (bench and self-started system) to this file")
	s.String(&o.logLevel, "log-level", "EDGEHOOK_LOG_LEVEL", "error", "log level of the self-started system's components (its workers log every failed delivery at warn, which fairness produces by design)")
	s.String(&o.apiURL, "api-url", "EDGEHOOK_API_URL", "", "gateway of a running system; empty: start one in-process per scenario")
	s.String(&o.adminURL, "admin-url", "EDGEHOOK_ADMIN_URL", "http://"+admin.DefaultAddr, "admin API of the running system (with --api-url)")
	s.Secret(&o.adminToken, "admin-token", "EDGEHOOK_ADMIN_TOKEN", "admin API token of the running system")
	s.String(&o.receiverURL, "receiver-url", "EDGEHOOK_RECEIVER_URL", "", "receiver of the running system, e.g. http://127.0.0.1:8090")
	s.String(&o.natsMonitorURL, "nats-monitor-url", "EDGEHOOK_BENCH_NATS_MONITOR_URL", "", "HTTP monitoring of the running system's NATS server (its /varz memory is reported), e.g. http://127.0.0.1:8222")
	s.String(&o.systemPIDs, "system-pid", "EDGEHOOK_BENCH_SYSTEM_PID", "",
		"comma-separated process ids of the running system (e.g. the `edgehook up` process): the pipeline scenario reads their CPU time from /proc")
	o.nats.register(s)
	o.topo.Topology = natsconf.DefaultTopology() // settings not registered as flags keep their defaults
	o.topo.register(s)
	o.worker.register(s, true)
	if err := s.parse(args); err != nil {
		return err
	}
	if err := o.topo.resolve(); err != nil {
		return err
	}
	cases, err := bench.ParseCases(o.scenario, o.rate)
	if err != nil {
		return usageError{err}
	}
	if o.systemPIDs != "" && o.apiURL == "" {
		return usageError{errors.New("bench: --system-pid names the processes of a running system; it needs --api-url (a self-started system runs in the bench's process)")}
	}
	// The edge scenario starts its own hub and edge in this process: against a running
	// system, all leaves it out and naming it is a mistake.
	isEdge := func(c bench.Case) bool { return c.Scenario == bench.ScenarioEdge }
	if o.apiURL != "" && slices.ContainsFunc(cases, isEdge) {
		if strings.TrimSpace(o.scenario) != "all" {
			return usageError{errors.New("bench: the edge scenario starts its own hub and edge in this process; it cannot run against --api-url")}
		}
		cases = slices.DeleteFunc(cases, isEdge)
		fmt.Fprintln(env.stderr, "bench: all leaves out the edge scenario against --api-url (it starts its own hub and edge)")
	}
	log, err := newLogger(env.stderr, o.logLevel)
	if err != nil {
		return err
	}
	benchLog, _ := newLogger(env.stderr, "warn") // the bench's own warnings always show

	var launch bench.Launcher
	if o.apiURL == "" {
		if launch, err = o.localLauncher(log); err != nil {
			return err
		}
	} else {
		t, err := o.target()
		if err != nil {
			return err
		}
		launch = bench.Existing(t)
	}
	b, err := bench.New(bench.Config{
		Duration:        o.duration,
		CeilingDuration: o.ceilingDuration,
		Connections:     o.connections,
		PayloadBytes:    o.payload,
		Tenants:         o.tenants,
		Backlog:         o.backlog,
		Parked:          o.parked,
		DrainTimeout:    o.drainTimeout,
		Progress:        env.stderr,
		Logger:          benchLog,
		Edge:            bench.EdgeConfig{StartGateway: edgeBenchGateway(log), Topology: o.topo.Topology},
	}, launch)
	if err != nil {
		return usageError{err}
	}

	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err != nil {
			return fmt.Errorf("cpu profile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("cpu profile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	results, runErr := b.Run(ctx, cases)
	var err2 error
	if o.json {
		err2 = bench.WriteJSON(env.stdout, results)
	} else if len(results) > 0 {
		err2 = bench.WriteTable(env.stdout, results)
	}
	return errors.Join(runErr, err2)
}

// target is the running system the options name.
func (o benchOptions) target() (bench.Target, error) {
	switch {
	case o.adminToken == "":
		return bench.Target{}, usageError{errors.New("bench: --api-url needs --admin-token (EDGEHOOK_ADMIN_TOKEN): the bench creates its own tenants")}
	case o.receiverURL == "":
		return bench.Target{}, usageError{errors.New("bench: --api-url needs --receiver-url (EDGEHOOK_RECEIVER_URL): the bench's tenants deliver there")}
	}
	procs, err := systemProcesses(o.systemPIDs)
	if err != nil {
		return bench.Target{}, err
	}
	var opts []nats.Option
	switch {
	case o.nats.creds != "":
		opts = append(opts, nats.UserCredentials(o.nats.creds))
	case o.nats.user != "":
		opts = append(opts, nats.UserInfo(o.nats.user, o.nats.password))
	}
	return bench.Target{
		APIURL:         strings.TrimRight(o.apiURL, "/"),
		AdminURL:       strings.TrimRight(o.adminURL, "/"),
		AdminToken:     o.adminToken,
		ReceiverURL:    strings.TrimRight(o.receiverURL, "/"),
		NATSURL:        o.nats.url,
		NATSOptions:    opts,
		NATSMonitorURL: strings.TrimRight(o.natsMonitorURL, "/"),
		Processes:      procs,
	}, nil
}

// systemProcesses reads --system-pid: process ids, each named by its command and id.
func systemProcesses(list string) ([]bench.Process, error) {
	var out []bench.Process
	for item := range strings.SplitSeq(list, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		pid, err := strconv.Atoi(item)
		if err != nil || pid <= 0 {
			return nil, usageError{fmt.Errorf("bench: --system-pid (EDGEHOOK_BENCH_SYSTEM_PID): %q is not a process id", item)}
		}
		name := "pid " + item
		if comm, err := os.ReadFile("/proc/" + item + "/comm"); err == nil {
			name = strings.TrimSpace(string(comm)) + " " + item
		}
		out = append(out, bench.Process{Name: name, PID: pid})
	}
	return out, nil
}

// localLauncher starts a fresh system per scenario, wired as `edgehook up` wires it:
// an embedded NATS server (random port, temporary store, removed afterwards) with one
// user per component, the gateway, the admin API, the receiver and, when the
// scenario needs one, the worker, all on random loopback ports, with webhook
// configuration in a dev secret store in the temporary directory. The bench connects
// as the operator.
func (o benchOptions) localLauncher(log *slog.Logger) (bench.Launcher, error) {
	wcfg, err := o.worker.config(o.topo.Topology)
	if err != nil {
		return nil, err
	}
	topo := o.topo.Topology
	topo.RetrySchedule = wcfg.RetrySchedule // the consumer's BackOff follows the worker's schedule
	if err := topo.Validate(); err != nil {
		return nil, usageError{err}
	}
	return func(ctx context.Context, needs bench.Needs) (bench.Target, func(), error) {
		var cleanup []func()
		release := func() {
			for i := len(cleanup) - 1; i >= 0; i-- {
				cleanup[i]()
			}
		}
		fail := func(err error) (bench.Target, func(), error) { release(); return bench.Target{}, nil, err }

		dir, err := os.MkdirTemp("", "edgehook-bench-")
		if err != nil {
			return fail(fmt.Errorf("temporary data directory: %w", err))
		}
		cleanup = append(cleanup, func() { os.RemoveAll(dir) })
		no := natsOptions{passwords: natsconf.Credentials{}}
		for _, u := range append([]natsconf.Component{natsconf.OperatorUser}, natsconf.Components...) {
			if no.passwords[string(u)], err = randomToken(); err != nil {
				return fail(err)
			}
		}
		spec, err := natsconf.SingleServer("127.0.0.1", -1, filepath.Join(dir, "jetstream"), no.passwords)
		if err != nil {
			return fail(err)
		}
		spec.MonitorPort = -1 // a random port: the fairness scenario reports the server's varz
		ns, err := natsconf.StartEmbedded(spec)
		if err != nil {
			return fail(err)
		}
		cleanup = append(cleanup, func() { ns.Shutdown(); ns.WaitForShutdown() })
		no.url = ns.ClientURL()
		setupNC, setupJS, err := no.connect(natsconf.OperatorUser, log)
		if err != nil {
			return fail(err)
		}
		err = natsconf.Setup(ctx, setupJS, topo)
		setupNC.Close()
		if err != nil {
			return fail(err)
		}
		store, err := vault.OpenDevStore(filepath.Join(dir, "dev-secrets.json"))
		if err != nil {
			return fail(err)
		}

		token, err := randomToken()
		if err != nil {
			return fail(err)
		}
		gw := gatewayOptions{httpAddr: loopbackAddr(), maxBodyBytes: 256 << 10}
		ao := adminOptions{addr: loopbackAddr(), token: token, allowPrivate: true}
		receiverAddr := loopbackAddr()
		st := newStack(ctx, no, log)
		cleanup = append(cleanup, func() {
			st.cancel()
			if err := st.wait(); err != nil {
				log.Warn("self-started system stopped with an error", "error", err)
			}
		})
		gwReg, adReg, wkReg, rcReg := prometheus.NewRegistry(), prometheus.NewRegistry(), prometheus.NewRegistry(), prometheus.NewRegistry()
		if _, err := st.startGateway(gw, gwReg, gwReg); err != nil {
			return fail(err)
		}
		if _, err := st.startAdmin(ao, store, adReg, adReg); err != nil {
			return fail(err)
		}
		cache := vault.NewCache(store, vault.CacheConfig{}, wkReg) // `up`'s default TTL
		if needs.Worker {
			ready, err := st.startWorker(wcfg, cache, wkReg)
			if err != nil {
				return fail(err)
			}
			if !pollFor(st.ctx, ready) {
				return fail(errors.New("self-started worker not consuming after 10s"))
			}
		}
		if err := st.startReceiver(receiver.Config{Addr: receiverAddr}, cache, rcReg, rcReg); err != nil {
			return fail(err)
		}
		if !waitListening(st.ctx, gw.httpAddr) || !waitListening(st.ctx, ao.addr) || !waitListening(st.ctx, receiverAddr) {
			return fail(errors.New("self-started gateway, admin API or receiver not listening after 10s"))
		}
		t := bench.Target{
			APIURL:      "http://" + gw.httpAddr,
			AdminURL:    "http://" + ao.addr,
			AdminToken:  token,
			ReceiverURL: "http://" + receiverAddr,
			NATSURL:     ns.ClientURL(),
			NATSOptions: []nats.Option{nats.UserInfo(natsconf.OperatorUser, no.passwords[natsconf.OperatorUser])},
		}
		if addr := ns.MonitorAddr(); addr != nil {
			t.NATSMonitorURL = "http://" + addr.String()
		}
		if needs.Worker {
			t.WorkerMetrics = wkReg
		}
		return t, release, nil
	}, nil
}

// edgeBenchGateway starts the edge scenario's gateway the way `edgehook gateway` with
// EDGEHOOK_EDGE does (stack.startGateway): connected as the gateway user to the bench's
// edge node, without the admin API, on a free loopback port.
func edgeBenchGateway(log *slog.Logger) bench.EdgeGatewayFunc {
	return func(ctx context.Context, g bench.EdgeGateway) (string, func() error, error) {
		no := natsOptions{url: g.NATSURL, passwords: natsconf.Credentials{string(natsconf.Gateway): g.Password}}
		st := newStack(ctx, no, log)
		gw := gatewayOptions{edge: g.Edge, httpAddr: loopbackAddr(), maxBodyBytes: 256 << 10}
		reg := prometheus.NewRegistry()
		if _, err := st.startGateway(gw, reg, reg); err != nil {
			return "", nil, st.abort(err)
		}
		if !waitListening(st.ctx, gw.httpAddr) {
			return "", nil, st.abort(errors.New("edge gateway not listening after 10s"))
		}
		return "http://" + gw.httpAddr, func() error { st.cancel(); return st.wait() }, nil
	}
}

// loopbackAddr returns a free 127.0.0.1 address. Another process could take it before
// it is used; the self-started system then fails to start, loudly.
func loopbackAddr() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "127.0.0.1:0"
	}
	defer ln.Close()
	return ln.Addr().String()
}

// pollFor polls cond for up to 10s.
func pollFor(ctx context.Context, cond func() bool) bool {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if cond() {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}
