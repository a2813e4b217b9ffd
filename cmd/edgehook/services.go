package main

import (
	"context"
	"errors"

	"github.com/edgehook/edgehook/receiver"
)

func runGateway(ctx context.Context, env *environment, args []string) error {
	var (
		no natsOptions
		gw gatewayOptions
	)
	s := newSettings("gateway", env.getenv, env.stderr)
	no.register(s)
	gw.register(s)
	log, err := s.parseLogged(args, env.stderr)
	if err != nil {
		return err
	}
	// The gateway holds no Vault token and serves no admin API: that is `edgehook admin`.
	reg := newRegistry()
	st := newStack(ctx, no, log)
	if _, err := st.startGateway(gw, reg, reg); err != nil {
		return st.abort(err)
	}
	log.Info("gateway started", "addr", gw.httpAddr, "edge", gw.edge)
	return st.wait()
}

func runAdmin(ctx context.Context, env *environment, args []string) error {
	var (
		no natsOptions
		ao adminOptions
		vo vaultOptions
	)
	s := newSettings("admin", env.getenv, env.stderr)
	no.register(s)
	ao.register(s)
	s.Bool(&ao.allowPrivate, "allow-private-targets", "EDGEHOOK_ALLOW_PRIVATE_TARGETS", false, "allow webhook targets on loopback and private addresses")
	vo.register(s)
	log, err := s.parseLogged(args, env.stderr)
	if err != nil {
		return err
	}
	if ao.token == "" {
		return usageError{errors.New("admin: EDGEHOOK_ADMIN_TOKEN (or --admin-token) is required: it guards the admin API")}
	}
	reg := newRegistry()
	st := newStack(ctx, no, log)
	client, err := vo.client(log, true) // the admin role: writes webhook-config/*
	if err != nil {
		return st.abort(err)
	}
	st.startVault(client)
	if _, err := st.startAdmin(ao, client, reg, reg); err != nil {
		return st.abort(err)
	}
	log.Info("admin API started", "addr", ao.addr)
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
	st.g.Go(func() error { return serveOps(st.ctx, metricsAddr, reg, ready) })
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
