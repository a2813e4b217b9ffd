package bench_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/edgehook/edgehook/gateway"
	"github.com/edgehook/edgehook/identity"
	"github.com/edgehook/edgehook/natsconf"
	"github.com/edgehook/edgehook/status"
	"github.com/edgehook/edgehook/vault"
	"github.com/edgehook/edgehook/webhook"
	"github.com/edgehook/edgehook/worker"
)

// The memory benchmarks measure a component in a process of its own, so the
// figure is that component's resident set, not the test's NATS server's. The test
// binary re-runs itself with childRole set; TestMain then plays the component and
// prints one JSON line of measurements instead of running tests.
const (
	childRole    = "EDGEHOOK_BENCH_CHILD"     // "gateway" or "worker"
	childNATS    = "EDGEHOOK_BENCH_NATS_URL"  // the parent's server
	childKeys    = "EDGEHOOK_BENCH_KEYS"      // gateway: comma-separated API keys it must know
	childTenants = "EDGEHOOK_BENCH_TENANTS"   // gateway: tenants the view must hold
	childTarget  = "EDGEHOOK_BENCH_TARGET"    // worker: tenant=url=secret
	childRun     = "EDGEHOOK_BENCH_RUN_FOR"   // worker: how long to deliver
	childDone    = "EDGEHOOK_BENCH_CHILD_OUT" // marks the child's result line
)

func TestMain(m *testing.M) {
	if role := os.Getenv(childRole); role != "" {
		out, err := playChild(role)
		if err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			os.Exit(1)
		}
		b, _ := json.Marshal(out)
		fmt.Printf("%s%s\n", childDone, b)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// childResult is what a child process reports.
type childResult struct {
	// RSSBytes is VmRSS after a forced GC once the component has loaded (gateway),
	// or the highest VmRSS seen while it worked (worker).
	RSSBytes uint64 `json:"rss"`
	// PeakRSSBytes is the highest VmRSS seen while the view loaded (gateway).
	PeakRSSBytes uint64 `json:"peakRss,omitempty"`
	// HeapBytes is HeapInuse after a forced GC.
	HeapBytes uint64 `json:"heap"`
	// Tenants is the identity view's size (gateway).
	Tenants int `json:"tenants,omitempty"`
	// LoadSeconds is how long the view took to load (gateway).
	LoadSeconds float64 `json:"loadSeconds,omitempty"`
}

func playChild(role string) (childResult, error) {
	nc, err := nats.Connect(os.Getenv(childNATS))
	if err != nil {
		return childResult{}, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return childResult{}, err
	}
	switch role {
	case "gateway":
		return gatewayChild(js)
	case "worker":
		return workerChild(js)
	}
	return childResult{}, fmt.Errorf("unknown role %q", role)
}

// gatewayChild runs a gateway (no admin API) with its identity view until the view
// has loaded every tenant and knows the sample keys, then measures itself.
func gatewayChild(js jetstream.JetStream) (childResult, error) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	idKV, err := js.KeyValue(ctx, natsconf.BucketIdentity)
	if err != nil {
		return childResult{}, err
	}
	stKV, err := js.KeyValue(ctx, natsconf.BucketStatus)
	if err != nil {
		return childResult{}, err
	}
	log := slog.New(slog.DiscardHandler)
	start := time.Now()
	view := identity.NewView(idKV, log)
	viewErr := make(chan error, 1)
	go func() { viewErr <- view.Run(ctx) }()
	reg := prometheus.NewRegistry()
	gw, err := gateway.New(gateway.Config{Addr: "127.0.0.1:0"}, gateway.Deps{
		JS: js, View: view, Status: status.NewStore(stKV), Logger: log, Registerer: reg, Gatherer: reg,
	})
	if err != nil {
		return childResult{}, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return childResult{}, err
	}
	go gw.Serve(ctx, ln)
	want, _ := strconv.Atoi(os.Getenv(childTenants))
	deadline := time.Now().Add(5 * time.Minute)
	var peak uint64
	for !view.Loaded() || view.Len() < want {
		if rss, err := vmRSS(); err == nil {
			peak = max(peak, rss)
		}
		select {
		case err := <-viewErr:
			return childResult{}, fmt.Errorf("view: %w", err)
		default:
		}
		if time.Now().After(deadline) {
			return childResult{}, fmt.Errorf("view holds %d of %d tenants after 5m", view.Len(), want)
		}
		time.Sleep(10 * time.Millisecond)
	}
	loaded := time.Since(start)
	if keys := os.Getenv(childKeys); keys != "" {
		for _, k := range strings.Split(keys, ",") {
			if _, err := view.Authenticate(ctx, []byte(k)); err != nil {
				return childResult{}, fmt.Errorf("sample key: %w", err)
			}
		}
	}
	res, err := measure()
	res.Tenants, res.LoadSeconds, res.PeakRSSBytes = view.Len(), loaded.Seconds(), max(peak, res.RSSBytes)
	return res, err
}

// workerChild runs a worker delivering to the one tenant described in childTarget
// for childRun, sampling its resident set every 50ms.
func workerChild(js jetstream.JetStream) (childResult, error) {
	parts := strings.SplitN(os.Getenv(childTarget), "=", 3)
	if len(parts) != 3 {
		return childResult{}, errors.New("bad target")
	}
	secret, err := webhook.ParseSecret(parts[2])
	if err != nil {
		return childResult{}, err
	}
	cfgs := staticConfigs{parts[0]: {TenantID: parts[0], TargetURL: parts[1], Secret: secret}}
	w, err := worker.New(worker.Config{AllowPrivateTargets: true, DrainTimeout: time.Second},
		worker.Deps{JS: js, Configs: cfgs, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return childResult{}, err
	}
	runFor, err := time.ParseDuration(os.Getenv(childRun))
	if err != nil {
		return childResult{}, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), runFor)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	var peak uint64
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			if err != nil {
				return childResult{}, err
			}
			res, err := measure()
			res.RSSBytes = max(res.RSSBytes, peak)
			return res, err
		case <-tick.C:
			if rss, err := vmRSS(); err == nil {
				peak = max(peak, rss)
			}
		}
	}
}

// staticConfigs is a vault.ConfigReader over a fixed map.
type staticConfigs map[string]vault.WebhookConfig

func (s staticConfigs) WebhookConfig(_ context.Context, tenantID string) (vault.WebhookConfig, error) {
	c, ok := s[tenantID]
	if !ok {
		return vault.WebhookConfig{}, vault.ErrNotFound
	}
	return c, nil
}

// measure forces a GC and returns the heap in use and the resident set.
func measure() (childResult, error) {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	rss, err := vmRSS()
	return childResult{RSSBytes: rss, HeapBytes: ms.HeapInuse}, err
}

// vmRSS reads this process's resident set size from /proc.
func vmRSS() (uint64, error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, fmt.Errorf("resident set (Linux /proc only): %w", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10, err
		}
	}
	return 0, errors.New("no VmRSS in /proc/self/status")
}
