package bench_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/edgehook/edgehook/admin"
	"github.com/edgehook/edgehook/admin/admintest"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/edgehook/edgehook/bench"
	"github.com/edgehook/edgehook/gateway"
	"github.com/edgehook/edgehook/identity"
	"github.com/edgehook/edgehook/natsconf"
	"github.com/edgehook/edgehook/natsconf/natstest"
	"github.com/edgehook/edgehook/receiver"
	"github.com/edgehook/edgehook/status"
	"github.com/edgehook/edgehook/vault"
	"github.com/edgehook/edgehook/worker"
)

const testAdminToken = admintest.Token

// launcher returns a bench.Launcher that starts, per call, a real system for the
// test: an embedded JetStream server with the topology applied, the gateway, the
// admin API, the receiver and, when asked, a worker allowed to deliver to loopback,
// with webhook configuration in a dev secret store. Each system stops when the bench
// releases it; the test fails if a component does not stop cleanly. launches counts
// the calls and the Needs they passed.
func launcher(t *testing.T) (bench.Launcher, *launches) {
	t.Helper()
	calls := &launches{}
	return func(ctx context.Context, needs bench.Needs) (bench.Target, func(), error) {
		ns := natstest.Start(t, nil)
		calls.add(needs, ns)
		js := ns.JetStream(t)
		idKV, err := js.KeyValue(ctx, natsconf.BucketIdentity)
		if err != nil {
			return bench.Target{}, nil, err
		}
		stKV, err := js.KeyValue(ctx, natsconf.BucketStatus)
		if err != nil {
			return bench.Target{}, nil, err
		}
		// The admin API, its own component on its own listener, writes the webhook
		// configuration the worker and receiver read.
		adm := admintest.Start(t, ns.Connect(t), admintest.Options{Config: admin.Config{AllowPrivateTargets: true}})
		cache := vault.NewCache(adm.Configs, vault.CacheConfig{}, nil)
		log := slog.New(slog.DiscardHandler)
		runCtx, cancel := context.WithCancel(context.Background())
		var (
			wg   sync.WaitGroup
			mu   sync.Mutex
			errs []error
		)
		run := func(name string, f func(context.Context) error) {
			wg.Go(func() {
				if err := f(runCtx); err != nil {
					mu.Lock()
					errs = append(errs, fmt.Errorf("%s: %w", name, err))
					mu.Unlock()
				}
			})
		}
		release := func() {
			cancel()
			wg.Wait()
			if err := errors.Join(errs...); err != nil {
				t.Errorf("system stopped with an error: %v", err)
			}
		}

		view := identity.NewView(idKV, log)
		run("identity view", view.Run)
		reg := prometheus.NewRegistry()
		gw, err := gateway.New(gateway.Config{Addr: "127.0.0.1:0"}, gateway.Deps{
			JS: js, View: view, Status: status.NewStore(stKV),
			Logger: log, Registerer: reg, Gatherer: reg,
		})
		if err != nil {
			release()
			return bench.Target{}, nil, err
		}
		gwLn, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			release()
			return bench.Target{}, nil, err
		}
		run("gateway", func(ctx context.Context) error { return gw.Serve(ctx, gwLn) })

		rc, err := receiver.New(receiver.Config{Addr: "127.0.0.1:0"}, receiver.Deps{JS: js, Configs: cache, Logger: log})
		if err != nil {
			release()
			return bench.Target{}, nil, err
		}
		run("receiver", rc.Run)
		workerReg := prometheus.NewRegistry()
		if needs.Worker {
			w, err := worker.New(worker.Config{AllowPrivateTargets: true, DrainTimeout: time.Second},
				worker.Deps{JS: js, Configs: cache, Logger: log, Registerer: workerReg})
			if err != nil {
				release()
				return bench.Target{}, nil, err
			}
			run("worker", w.Run)
			if !eventually(5*time.Second, w.Ready) {
				release()
				return bench.Target{}, nil, errors.New("worker not ready")
			}
		}
		if !eventually(5*time.Second, func() bool { return rc.Addr() != "" && view.Loaded() }) {
			release()
			return bench.Target{}, nil, errors.New("receiver or identity view not ready")
		}
		target := bench.Target{
			APIURL:      "http://" + gwLn.Addr().String(),
			AdminURL:    adm.URL,
			AdminToken:  testAdminToken,
			ReceiverURL: "http://" + rc.Addr(),
			NATSURL:     ns.URL,
		}
		if needs.Worker {
			target.WorkerMetrics = workerReg
		}
		return target, release, nil
	}, calls
}

// launches records the Needs and the NATS server of each launch.
type launches struct {
	mu      sync.Mutex
	needs   []bench.Needs
	servers []*natstest.Server
}

func (l *launches) add(n bench.Needs, s *natstest.Server) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.needs = append(l.needs, n)
	l.servers = append(l.servers, s)
}

func (l *launches) all() []bench.Needs {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]bench.Needs(nil), l.needs...)
}

// eventually polls cond every 10ms until it holds or within passes.
func eventually(within time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return true
}

// streamNames lists the streams js sees.
func streamNames(t *testing.T, js jetstream.JetStream) []string {
	t.Helper()
	var names []string
	l := js.StreamNames(context.Background())
	for n := range l.Name() {
		names = append(names, n)
	}
	if err := l.Err(); err != nil {
		t.Fatal(err)
	}
	return names
}

// jsonLines writes results as `edgehook bench --json` prints them and returns each
// line and its decoded object, failing the test unless there is exactly one JSON
// object per result.
func jsonLines(t *testing.T, results []bench.Result) ([]string, []map[string]any) {
	t.Helper()
	var out bytes.Buffer
	if err := bench.WriteJSON(&out, results); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != len(results) {
		t.Fatalf("%d JSON lines for %d results:\n%s", len(lines), len(results), out.String())
	}
	objects := make([]map[string]any, len(lines))
	for i, line := range lines {
		if err := json.Unmarshal([]byte(line), &objects[i]); err != nil {
			t.Fatalf("line %d is not one JSON object: %v\n%s", i, err, line)
		}
	}
	return lines, objects
}
