package main

import (
	"context"
	"fmt"
	"time"

	"github.com/edgehook/edgehook/natsconf"
	"github.com/edgehook/edgehook/receiver"
	"github.com/edgehook/edgehook/vault"
	"github.com/edgehook/edgehook/webhook"
)

func runGateway(ctx context.Context, env *environment, args []string) error {
	var (
		no       natsOptions
		gw       gatewayOptions
		vo       vaultOptions
		logLevel string
	)
	s := newSettings("gateway", env.getenv, env.stderr)
	no.register(s)
	no.registerAdmin(s)
	gw.register(s)
	vo.register(s)
	s.String(&logLevel, "log-level", "EDGEHOOK_LOG_LEVEL", "info", "debug, info, warn or error")
	if err := s.parse(args); err != nil {
		return err
	}
	log, err := newLogger(env.stderr, logLevel)
	if err != nil {
		return err
	}
	// The edge gateway holds no Vault token; only the admin role (an admin token) needs one.
	reg := newRegistry()
	st := newStack(ctx, no, log)
	var store vault.ConfigStore
	if gw.adminToken != "" {
		client, err := vo.client(log, true)
		if err != nil {
			return err
		}
		st.startVault(client)
		store = client
	}
	if _, err := st.startGateway(gw, store, reg, reg); err != nil {
		return st.abort(err)
	}
	log.Info("gateway started", "addr", gw.httpAddr, "admin", gw.adminToken != "")
	return st.wait()
}

func runWorker(ctx context.Context, env *environment, args []string) error {
	var (
		no          natsOptions
		topo        topologyOptions
		wo          workerOptions
		vo          vaultOptions
		metricsAddr string
		logLevel    string
	)
	s := newSettings("worker", env.getenv, env.stderr)
	no.register(s)
	topo.registerDelivery(s)
	wo.register(s, false)
	vo.register(s)
	s.String(&metricsAddr, "metrics-addr", "EDGEHOOK_METRICS_ADDR", "127.0.0.1:9091", "where /healthz, /readyz and /metrics are served")
	s.String(&logLevel, "log-level", "EDGEHOOK_LOG_LEVEL", "info", "debug, info, warn or error")
	if err := s.parse(args); err != nil {
		return err
	}
	log, err := newLogger(env.stderr, logLevel)
	if err != nil {
		return err
	}
	if err := topo.resolve(); err != nil {
		return err
	}
	cfg, err := wo.config(topo.Topology)
	if err != nil {
		return err
	}
	reg := newRegistry()
	st := newStack(ctx, no, log)
	cache, err := st.startConfigReader(vo, reg)
	if err != nil {
		return st.abort(err)
	}
	ready, err := st.startWorker(cfg, cache, reg)
	if err != nil {
		return st.abort(err)
	}
	why := func() string { return st.notReadyReason("") }
	st.g.Go(func() error { return serveOps(st.ctx, metricsAddr, reg, ready, why) })
	log.Info("worker started", "concurrency", cfg.Concurrency, "metrics", metricsAddr)
	return st.wait()
}

func runReceiver(ctx context.Context, env *environment, args []string) error {
	var (
		no        natsOptions
		vo        vaultOptions
		addr      string
		readRate  int
		readBurst int
		dupWindow time.Duration
		logLevel  string
	)
	s := newSettings("receiver", env.getenv, env.stderr)
	no.register(s)
	vo.register(s)
	s.String(&addr, "receiver-addr", "EDGEHOOK_RECEIVER_ADDR", "127.0.0.1:8090", "receiver listen address")
	s.Int(&readRate, "config-read-rate", "EDGEHOOK_RECEIVER_CONFIG_READ_RATE", receiver.DefaultConfigReadRate,
		"webhook config reads per second for tenants not in the cache; webhooks over it get 503 with Retry-After")
	s.Int(&readBurst, "config-read-burst", "EDGEHOOK_RECEIVER_CONFIG_READ_BURST", receiver.DefaultConfigReadBurst,
		"webhook config reads at once for tenants not in the cache")
	s.Duration(&dupWindow, "received-duplicate-window", "EDGEHOOK_RECEIVED_DUPLICATE_WINDOW", natsconf.DefaultTopology().ReceivedDuplicateWindow,
		"the RECEIVED stream's duplicate window (as given to `setup nats`); at least twice the 5m timestamp tolerance")
	s.String(&logLevel, "log-level", "EDGEHOOK_LOG_LEVEL", "info", "debug, info, warn or error")
	if err := s.parse(args); err != nil {
		return err
	}
	switch {
	case readRate < 1:
		return usageError{fmt.Errorf("EDGEHOOK_RECEIVER_CONFIG_READ_RATE (--config-read-rate): want at least 1 read per second, got %d", readRate)}
	case readBurst < 1:
		return usageError{fmt.Errorf("EDGEHOOK_RECEIVER_CONFIG_READ_BURST (--config-read-burst): want at least 1, got %d", readBurst)}
	case dupWindow < 2*webhook.DefaultTolerance:
		return usageError{fmt.Errorf("EDGEHOOK_RECEIVED_DUPLICATE_WINDOW (--received-duplicate-window) %s is under twice the receiver's %s timestamp tolerance: a replayed webhook could be stored twice; set it, and the RECEIVED stream's (`setup nats`), to at least %s",
			dupWindow, webhook.DefaultTolerance, 2*webhook.DefaultTolerance)}
	}
	log, err := newLogger(env.stderr, logLevel)
	if err != nil {
		return err
	}
	reg := newRegistry()
	st := newStack(ctx, no, log)
	cache, err := st.startConfigReader(vo, reg)
	if err != nil {
		return st.abort(err)
	}
	rcfg := receiver.Config{Addr: addr, ConfigReadRate: float64(readRate), ConfigReadBurst: readBurst, DuplicateWindow: dupWindow}
	if err := st.startReceiver(rcfg, cache, reg, reg); err != nil {
		return st.abort(err)
	}
	log.Info("receiver started", "addr", addr)
	return st.wait()
}
