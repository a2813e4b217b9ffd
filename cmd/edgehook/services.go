package main

import (
	"context"

	"github.com/edgehook/edgehook/receiver"
	"github.com/edgehook/edgehook/vault"
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
		no       natsOptions
		vo       vaultOptions
		addr     string
		logLevel string
	)
	s := newSettings("receiver", env.getenv, env.stderr)
	no.register(s)
	vo.register(s)
	s.String(&addr, "receiver-addr", "EDGEHOOK_RECEIVER_ADDR", "127.0.0.1:8090", "receiver listen address")
	s.String(&logLevel, "log-level", "EDGEHOOK_LOG_LEVEL", "info", "debug, info, warn or error")
	if err := s.parse(args); err != nil {
		return err
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
	if err := st.startReceiver(receiver.Config{Addr: addr}, cache, reg, reg); err != nil {
		return st.abort(err)
	}
	log.Info("receiver started", "addr", addr)
	return st.wait()
}
