package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/edgehook/edgehook/identity"
	"github.com/edgehook/edgehook/natsconf"
	"github.com/edgehook/edgehook/status"
	"github.com/edgehook/edgehook/vault"
	"github.com/edgehook/edgehook/vault/vaulttest"
	"github.com/edgehook/edgehook/webhook"
	"github.com/edgehook/edgehook/worker/dlq"
)

// The fault tests run the real edgehook binary (built once into a temporary directory)
// as separate gateway, worker and dlq processes against the real nats-server (from
// `make tools`) with file storage and one user per component, generated from
// natsconf's permissions. Webhook configuration is in vaulttest, an in-process Vault
// the worker process reaches over HTTP. Tenants' endpoints are test servers that
// verify every signature. Each scenario ends with an exact count: every event
// answered 202 is delivered or dead-lettered, none is lost, and an event reaching its
// endpoint twice does so with the same webhook-id.

// Delivery settings of every fault scenario: attempts time out after 1s (so the
// consumer's ack wait is 11s), retries come quickly, a parked endpoint is probed
// after 1s.
const (
	faultHTTPTimeout = "1s"
	faultSchedule    = "200ms,500ms,1s"
	faultMaxDeliver  = "6"
)

// edgehookBinary builds cmd/edgehook once per test binary and returns its path.
var edgehookBinary = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "edgehook-fault-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "edgehook")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
})

// proc is one running process of a scenario.
type proc struct {
	name   string
	cmd    *exec.Cmd
	out    *syncBuffer
	exited chan struct{}
	err    error // after exited
}

// startProc starts bin with args and env (on top of PATH and HOME only) and, unless
// the caller stops it itself (manual), stops it when the test ends: SIGTERM, then
// SIGKILL after 15s.
func startProc(t *testing.T, name, bin string, manual bool, env map[string]string, args ...string) *proc {
	t.Helper()
	p := &proc{name: name, out: &syncBuffer{}, exited: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
	for k, v := range env {
		p.cmd.Env = append(p.cmd.Env, k+"="+v)
	}
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		if !manual {
			p.stop(t, syscall.SIGTERM)
		}
		if t.Failed() {
			t.Logf("output of %s (last 4 KiB):\n%s", name, tail(p.out.String(), 4096))
		}
	})
	return p
}

// stop signals the process and waits for it (SIGKILL after 15s).
func (p *proc) stop(t *testing.T, sig syscall.Signal) {
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.exited:
	case <-time.After(15 * time.Second):
		t.Errorf("%s did not stop within 15s of %s", p.name, sig)
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// running fails the test if the process has exited.
func (p *proc) running(t *testing.T) {
	t.Helper()
	select {
	case <-p.exited:
		t.Fatalf("%s exited: %v\n%s", p.name, p.err, tail(p.out.String(), 4096))
	default:
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// faultSystem is one scenario's nats-server, Vault, tenants and endpoints.
type faultSystem struct {
	t          *testing.T
	bin        string
	natsBin    string
	natsConf   string
	natsAddr   string
	passwords  natsconf.Credentials
	nats       *proc
	nc         *nats.Conn // unrestricted, for setup and inspection
	js         jetstream.JetStream
	vault      *vaulttest.Env
	workerTok  string
	gateway    string // host:port
	gatewayCmd *proc
	dlqCmd     *proc
	tenants    []*faultTenant
}

// faultTenant is a tenant with an API key and a verifying endpoint.
type faultTenant struct {
	id, apiKey string
	secret     webhook.Secret
	ep         *faultEndpoint
}

func newFaultSystem(t *testing.T) *faultSystem {
	t.Helper()
	bin, err := edgehookBinary()
	if err != nil {
		t.Fatal(err)
	}
	natsBin, err := filepath.Abs("../../bin/nats-server")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(natsBin); err != nil {
		t.Fatalf("nats-server is not installed in bin/: run make tools (%v)", err)
	}
	s := &faultSystem{t: t, bin: bin, natsBin: natsBin, natsAddr: freeAddr(t), passwords: natsconf.Credentials{}}
	for _, c := range append(natsconf.Components, natsconf.OperatorUser) {
		s.passwords[string(c)] = "pw-" + string(c) + "-" + fmt.Sprint(time.Now().UnixNano())
	}
	s.natsConf = s.writeNATSConfig(t.TempDir())
	s.startNATS()
	t.Cleanup(func() { s.nats.stop(t, syscall.SIGTERM) }) // after every edgehook process

	s.nc, err = nats.Connect("nats://"+s.natsAddr, nats.UserInfo(natsconf.OperatorUser, s.passwords[natsconf.OperatorUser]), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.nc.Close)
	if s.js, err = jetstream.New(s.nc); err != nil {
		t.Fatal(err)
	}
	s.run(natsconf.OperatorUser, s.natsEnv(natsconf.OperatorUser), "setup", "nats")

	s.vault = vaulttest.Setup(t)
	s.workerTok = s.vault.Token(t, vault.RoleWorker, 0)
	s.gateway = freeAddr(t)
	s.gatewayCmd = s.start("gateway", map[string]string{"EDGEHOOK_HTTP_ADDR": s.gateway}, "gateway")
	s.dlqCmd = s.start("dlq", map[string]string{"EDGEHOOK_METRICS_ADDR": freeAddr(t)}, "dlq")
	waitHTTP(t, "http://"+s.gateway+"/readyz")
	return s
}

// writeNATSConfig writes the nats-server config of `up`'s single server (natsconf's
// rendering, JetStream file storage in dir, one user per component and the operator).
func (s *faultSystem) writeNATSConfig(dir string) string {
	host, port, err := natsconf.SplitAddr(s.natsAddr)
	if err != nil {
		s.t.Fatal(err)
	}
	spec, err := natsconf.SingleServer(host, port, filepath.Join(dir, "store"), s.passwords)
	if err != nil {
		s.t.Fatal(err)
	}
	conf, err := spec.Conf()
	if err != nil {
		s.t.Fatal(err)
	}
	path := filepath.Join(dir, "nats.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		s.t.Fatal(err)
	}
	return path
}

// startNATS starts nats-server on the config and waits until it accepts connections.
func (s *faultSystem) startNATS() {
	s.t.Helper()
	s.nats = startProc(s.t, "nats-server", s.natsBin, true, nil, "-c", s.natsConf)
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", s.natsAddr, 100*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		s.nats.running(s.t)
		if time.Now().After(deadline) {
			s.t.Fatalf("nats-server not listening on %s", s.natsAddr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// restartNATS stops nats-server gracefully and starts it again on the same store.
func (s *faultSystem) restartNATS() {
	s.nats.stop(s.t, syscall.SIGTERM)
	s.startNATS()
}

// natsEnv is the environment that makes an edgehook process connect as user.
func (s *faultSystem) natsEnv(user string) map[string]string {
	return map[string]string{
		"EDGEHOOK_NATS_URL":       "nats://" + s.natsAddr,
		"EDGEHOOK_NATS_USER":      user,
		"EDGEHOOK_NATS_PASSWORD":  s.passwords[user],
		"EDGEHOOK_HTTP_TIMEOUT":   faultHTTPTimeout,
		"EDGEHOOK_RETRY_SCHEDULE": faultSchedule,
		"EDGEHOOK_MAX_DELIVER":    faultMaxDeliver,
		"EDGEHOOK_LOG_LEVEL":      "warn",
	}
}

// start runs `edgehook <args>` as its NATS user (user is args[0]).
func (s *faultSystem) start(user string, extra map[string]string, args ...string) *proc {
	env := s.natsEnv(user)
	for k, v := range extra {
		env[k] = v
	}
	return startProc(s.t, "edgehook "+strings.Join(args, " "), s.bin, false, env, args...)
}

// run runs `edgehook <args>` to completion.
func (s *faultSystem) run(user string, env map[string]string, args ...string) {
	s.t.Helper()
	cmd := exec.Command(s.bin, args...)
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		s.t.Fatalf("edgehook %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// startWorker starts a worker process and waits until it is ready.
func (s *faultSystem) startWorker() *proc {
	s.t.Helper()
	metrics := freeAddr(s.t)
	p := s.start("worker", map[string]string{
		"VAULT_ADDR":                     s.vault.Addr,
		"VAULT_TOKEN":                    s.workerTok,
		"EDGEHOOK_VAULT_MOUNT":           s.vault.Mount,
		"EDGEHOOK_VAULT_PREFIX":          s.vault.Prefix,
		"EDGEHOOK_ALLOW_PRIVATE_TARGETS": "true",
		"EDGEHOOK_BREAKER_COOLDOWN":      "1s",
		"EDGEHOOK_METRICS_ADDR":          metrics,
	}, "worker")
	waitHTTP(s.t, "http://"+metrics+"/readyz")
	return p
}

// addTenant creates a tenant (identity record with an API key, webhook config in
// Vault) whose endpoint answers as answer says.
func (s *faultSystem) addTenant(answer func(n int) (code int, hang time.Duration)) *faultTenant {
	s.t.Helper()
	ctx := context.Background()
	id, err := identity.NewTenantID()
	if err != nil {
		s.t.Fatal(err)
	}
	key, hash, err := identity.NewAPIKey()
	if err != nil {
		s.t.Fatal(err)
	}
	kv, err := s.js.KeyValue(ctx, natsconf.BucketIdentity)
	if err != nil {
		s.t.Fatal(err)
	}
	if err := identity.NewStore(kv).Create(ctx, identity.Tenant{TenantID: id, Status: identity.StatusActive, Plan: "pro", CreatedAt: time.Now().UTC()}, hash); err != nil {
		s.t.Fatal(err)
	}
	secret, err := webhook.NewSecret()
	if err != nil {
		s.t.Fatal(err)
	}
	tn := &faultTenant{id: id, apiKey: key, secret: secret, ep: newFaultEndpoint(s.t, secret, answer)}
	admin, err := vault.NewClient(s.vault.ClientConfig(s.vault.Token(s.t, vault.RoleAdmin, 0)))
	if err != nil {
		s.t.Fatal(err)
	}
	if err := admin.PutWebhookConfig(ctx, vault.WebhookConfig{TenantID: id, TargetURL: tn.ep.srv.URL + "/hook", Secret: secret, LastUpdated: time.Now().UTC()}); err != nil {
		s.t.Fatal(err)
	}
	s.tenants = append(s.tenants, tn)
	// The gateway's identity view follows the bucket; wait until it knows the key.
	deadline := time.Now().Add(10 * time.Second)
	for {
		req, _ := http.NewRequest("GET", "http://"+s.gateway+"/v1/tenant", nil)
		req.Header.Set("Authorization", "Bearer "+key)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return tn
			}
		}
		if time.Now().After(deadline) {
			s.t.Fatal("the gateway does not know the new tenant's key")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// faultEndpoint is a tenant's webhook endpoint: it verifies every request and answers
// per its policy, recording per webhook-id what it saw and answered.
type faultEndpoint struct {
	srv    *httptest.Server
	secret webhook.Secret
	answer func(n int) (int, time.Duration)
	n      atomic.Int64

	mu        sync.Mutex
	accepted  map[string]int    // webhook-id -> 2xx answers
	nonces    map[string]string // webhook-id -> nonce of its body
	badSigs   int
	conflicts []string // webhook-ids that came with two different bodies
	inFlight  atomic.Int64
}

func newFaultEndpoint(t *testing.T, secret webhook.Secret, answer func(n int) (int, time.Duration)) *faultEndpoint {
	ep := &faultEndpoint{secret: secret, answer: answer, accepted: map[string]int{}, nonces: map[string]string{}}
	ep.srv = httptest.NewServer(http.HandlerFunc(ep.serve))
	t.Cleanup(ep.srv.Close)
	return ep
}

// delivered returns how many webhook-ids the endpoint answered 2xx.
func (ep *faultEndpoint) delivered() int {
	ep.mu.Lock()
	defer ep.mu.Unlock()
	return len(ep.accepted)
}

func (ep *faultEndpoint) serve(w http.ResponseWriter, r *http.Request) {
	ep.inFlight.Add(1)
	defer ep.inFlight.Add(-1)
	body, _ := io.ReadAll(r.Body)
	id := r.Header.Get(webhook.HeaderID)
	if webhook.Verify(id, r.Header.Get(webhook.HeaderTimestamp), r.Header.Get(webhook.HeaderSignature), body, time.Now(), webhook.DefaultTolerance, ep.secret) != nil {
		ep.mu.Lock()
		ep.badSigs++
		ep.mu.Unlock()
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	var ev struct{ Nonce string }
	_ = json.Unmarshal(body, &ev)
	code, hang := ep.answer(int(ep.n.Add(1)))
	if hang > 0 {
		select {
		case <-time.After(hang):
		case <-r.Context().Done():
			return // the worker gave up: it never sees an answer
		}
	}
	ep.mu.Lock()
	if prev, ok := ep.nonces[id]; ok && prev != ev.Nonce {
		ep.conflicts = append(ep.conflicts, id)
	}
	ep.nonces[id] = ev.Nonce
	if code/100 == 2 {
		ep.accepted[id]++
	}
	ep.mu.Unlock()
	w.WriteHeader(code)
}

// ingestResult is what clients were told.
type ingestResult struct {
	mu       sync.Mutex
	accepted map[string]string // event id -> nonce, for every 202
	tenant   map[string]string // event id -> tenant id
	refused  int               // requests answered otherwise (retried)
}

func newIngestResult() *ingestResult {
	return &ingestResult{accepted: map[string]string{}, tenant: map[string]string{}}
}

func (r *ingestResult) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.accepted)
}

// ingest posts n events for tn from 4 clients, each pausing pace between events. Each
// event has a nonce and uses it as Idempotency-Key; a client retries a refused request
// (503 while NATS is down) up to 100 times, 100ms apart, as a careful client does.
func (s *faultSystem) ingest(tn *faultTenant, n int, pace time.Duration, res *ingestResult) {
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 10 * time.Second}
	for c := range 4 {
		wg.Go(func() {
			for i := c; i < n; i += 4 {
				nonce := fmt.Sprintf("%s-%d-%d", tn.id, time.Now().UnixNano(), i)
				body := fmt.Sprintf(`{"type":"fault.test","nonce":%q}`, nonce)
				for try := 0; try < 100; try++ {
					req, _ := http.NewRequest("POST", "http://"+s.gateway+"/v1/events", strings.NewReader(body))
					req.Header.Set("Authorization", "Bearer "+tn.apiKey)
					req.Header.Set("Idempotency-Key", nonce)
					resp, err := client.Do(req)
					if err == nil {
						var ack struct{ EventID string }
						_ = json.NewDecoder(resp.Body).Decode(&ack)
						resp.Body.Close()
						if resp.StatusCode == http.StatusAccepted && ack.EventID != "" {
							res.mu.Lock()
							if prev, ok := res.accepted[ack.EventID]; ok && prev != nonce {
								s.t.Errorf("event id %s answered for two nonces", ack.EventID)
							}
							res.accepted[ack.EventID] = nonce
							res.tenant[ack.EventID] = tn.id
							res.mu.Unlock()
							break
						}
					}
					res.mu.Lock()
					res.refused++
					res.mu.Unlock()
					time.Sleep(100 * time.Millisecond)
				}
				time.Sleep(pace)
			}
		})
	}
	wg.Wait()
}

// figures are what account counted.
type figures struct {
	accepted, delivered, dead, requests int
}

// account waits until every accepted event is delivered (its status says so and its
// endpoint answered 2xx to its webhook-id) or dead-lettered, and checks the counts:
// nothing lost, no webhook for an event that was not accepted, and every webhook-id
// carrying one event's body. It logs and returns the figures.
func (s *faultSystem) account(name string, res *ingestResult, within time.Duration) figures {
	s.t.Helper()
	ctx := context.Background()
	kv, err := s.js.KeyValue(ctx, natsconf.BucketStatus)
	if err != nil {
		s.t.Fatal(err)
	}
	st := status.NewStore(kv)
	stream, err := s.js.Stream(ctx, natsconf.StreamDLQ)
	if err != nil {
		s.t.Fatal(err)
	}
	var delivered, dead map[string]bool
	deadline := time.Now().Add(within)
	for {
		delivered, dead = map[string]bool{}, map[string]bool{}
		if err := dlq.Scan(ctx, stream, dlq.Filter{}, func(d dlq.DeadLetter) error {
			dead[d.EventID] = true
			return nil
		}); err != nil {
			s.t.Fatal(err)
		}
		pending := 0
		for id := range res.accepted {
			if dead[id] {
				continue
			}
			ok := false
			for _, tn := range s.tenants {
				tn.ep.mu.Lock()
				ok = ok || tn.ep.accepted[id] > 0
				tn.ep.mu.Unlock()
			}
			if ok {
				if rec, err := st.Get(ctx, res.tenant[id], id); err == nil && rec.Status == status.Delivered {
					delivered[id] = true
					continue
				}
			}
			pending++
		}
		if pending == 0 {
			break
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("%s: %d of %d accepted events neither delivered nor dead-lettered within %s (LOST)", name, pending, len(res.accepted), within)
		}
		time.Sleep(200 * time.Millisecond)
	}

	var requests, distinct, badSigs, sent int
	for _, tn := range s.tenants {
		sent += int(tn.ep.n.Load())
		tn.ep.mu.Lock()
		for id, n := range tn.ep.accepted {
			requests += n
			distinct++
			if _, ok := res.accepted[id]; !ok {
				s.t.Errorf("%s: webhook-id %s delivered but never answered 202", name, id)
			}
		}
		for id, nonce := range tn.ep.nonces {
			if want, ok := res.accepted[id]; ok && want != nonce {
				s.t.Errorf("%s: webhook-id %s carried nonce %s, accepted as %s", name, id, nonce, want)
			}
		}
		if len(tn.ep.conflicts) > 0 {
			s.t.Errorf("%s: webhook-ids with two different bodies: %v", name, tn.ep.conflicts)
		}
		badSigs += tn.ep.badSigs
		tn.ep.mu.Unlock()
	}
	if badSigs > 0 {
		s.t.Errorf("%s: %d webhooks failed signature verification", name, badSigs)
	}
	both := 0
	for id := range delivered {
		if dead[id] {
			both++
		}
	}
	lost := len(res.accepted) - len(delivered) - len(dead) + both
	if lost != 0 {
		s.t.Errorf("%s: %d events lost", name, lost)
	}
	s.t.Logf("%s: accepted (202) %d, delivered %d, dead-lettered %d, lost %d; endpoint requests %d, 2xx answers %d for %d webhook-ids (%d duplicates, all with the same webhook-id); refused ingest requests retried %d",
		name, len(res.accepted), len(delivered), len(dead), lost, sent, requests, distinct, requests-distinct, res.refused)
	return figures{accepted: len(res.accepted), delivered: len(delivered), dead: len(dead), requests: sent}
}

func TestFaults(t *testing.T) {
	// The scenarios share the binary; each has its own NATS, Vault and processes.
	t.Run("worker killed with SIGKILL mid-delivery", func(t *testing.T) {
		s := newFaultSystem(t)
		slow := func(int) (int, time.Duration) { return 200, 150 * time.Millisecond }
		a, b := s.addTenant(slow), s.addTenant(slow)
		res := newIngestResult()
		s.ingest(a, 150, 0, res)
		s.ingest(b, 150, 0, res)
		w := s.startWorker()
		// Kill it while deliveries are in flight and some are done.
		deadline := time.Now().Add(20 * time.Second)
		for a.ep.inFlight.Load()+b.ep.inFlight.Load() == 0 || a.ep.delivered()+b.ep.delivered() < 20 {
			if time.Now().After(deadline) {
				t.Fatal("no deliveries in flight")
			}
			time.Sleep(5 * time.Millisecond)
		}
		w.stop(t, syscall.SIGKILL)
		s.startWorker()
		if f := s.account("SIGKILL", res, 60*time.Second); f.requests <= f.accepted {
			t.Errorf("%d requests for %d events: the deliveries cut off by the kill were not made again", f.requests, f.accepted)
		}
	})

	t.Run("nats-server restarted during ingest and delivery", func(t *testing.T) {
		s := newFaultSystem(t)
		ok := func(int) (int, time.Duration) { return 200, 20 * time.Millisecond }
		a, b := s.addTenant(ok), s.addTenant(ok)
		w := s.startWorker()
		res := newIngestResult()
		done := make(chan struct{})
		go func() {
			defer close(done)
			var wg sync.WaitGroup
			wg.Go(func() { s.ingest(a, 600, 5*time.Millisecond, res) })
			wg.Go(func() { s.ingest(b, 600, 5*time.Millisecond, res) })
			wg.Wait()
		}()
		waitUntil(t, 20*time.Second, "deliveries under way", func() bool {
			return res.count() > 100 && a.ep.delivered() > 10
		})
		s.restartNATS()
		<-done
		w.running(t)
		s.gatewayCmd.running(t)
		s.dlqCmd.running(t)
		s.account("NATS restart", res, 60*time.Second)
		if res.refused == 0 {
			t.Error("no ingest request was refused: the restart did not happen during ingest")
		}
	})

	t.Run("receiver answering 500 for a while, then 200", func(t *testing.T) {
		s := newFaultSystem(t)
		var start atomic.Int64
		flaky := func(int) (int, time.Duration) {
			if time.Since(time.Unix(0, start.Load())) < 2*time.Second {
				return 500, 0
			}
			return 200, 0
		}
		var fixed atomic.Bool
		down := func(int) (int, time.Duration) {
			if fixed.Load() {
				return 200, 0
			}
			return 500, 0
		}
		a, b := s.addTenant(flaky), s.addTenant(down)
		res := newIngestResult()
		s.ingest(a, 200, 0, res)
		s.ingest(b, 20, 0, res)
		start.Store(time.Now().UnixNano())
		s.startWorker()
		if f := s.account("500 then 200", res, 90*time.Second); f.dead < 20 || f.delivered == 0 {
			t.Errorf("%d dead-lettered, %d delivered; want at least the 20 events of the endpoint that never recovers dead-lettered", f.dead, f.delivered)
		}

		// The endpoint is fixed; an operator replays its dead letters, as the dlq user.
		fixed.Store(true)
		cmd := exec.Command(s.bin, "dlq", "replay", "--tenant", b.id)
		for k, v := range s.natsEnv("dlq") {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "replayed: 20\n") || !strings.Contains(string(out), "] 20/20") {
			t.Fatalf("edgehook dlq replay: %v\n%s", err, out)
		}
		// A tenant replays one of its delivered events through the API.
		var again string
		for id, tn := range res.tenant {
			if tn == a.id {
				again = id
				break
			}
		}
		req, _ := http.NewRequest("POST", "http://"+s.gateway+"/v1/events/"+again+"/replay", nil)
		req.Header.Set("Authorization", "Bearer "+a.apiKey)
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != http.StatusAccepted {
			t.Fatalf("POST replay: %v %v", resp, err)
		}
		resp.Body.Close()
		kv, err := s.js.KeyValue(context.Background(), natsconf.BucketStatus)
		if err != nil {
			t.Fatal(err)
		}
		st := status.NewStore(kv)
		// (The fixed endpoint may still be parked by the worker's breaker: a replay's
		// first attempts can be parked ones, so attempts are not checked.)
		replayed := func(tenantID, id string) bool {
			rec, err := st.Get(context.Background(), tenantID, id)
			return err == nil && rec.Status == status.Delivered && rec.Replays == 1
		}
		waitUntil(t, 60*time.Second, "the replays delivered", func() bool {
			for id, tn := range res.tenant {
				if tn == b.id && !replayed(b.id, id) {
					return false
				}
			}
			return replayed(a.id, again)
		})
		b.ep.mu.Lock()
		for id, tn := range res.tenant {
			if tn == b.id && b.ep.accepted[id] != 1 {
				t.Errorf("dead-lettered event %s: %d deliveries after its replay, want 1 with its webhook-id", id, b.ep.accepted[id])
			}
		}
		b.ep.mu.Unlock()
		a.ep.mu.Lock()
		if n := a.ep.accepted[again]; n != 2 {
			t.Errorf("event %s replayed through the API reached its endpoint %d times with its webhook-id, want 2", again, n)
		}
		a.ep.mu.Unlock()
	})

	t.Run("receiver hanging past the HTTP timeout", func(t *testing.T) {
		s := newFaultSystem(t)
		var start atomic.Int64
		hanging := func(int) (int, time.Duration) {
			if time.Since(time.Unix(0, start.Load())) < 2*time.Second {
				return 200, 3 * time.Second // the worker gives up after 1s
			}
			return 200, 0
		}
		a := s.addTenant(hanging)
		res := newIngestResult()
		s.ingest(a, 200, 0, res)
		start.Store(time.Now().UnixNano())
		s.startWorker()
		if f := s.account("hanging receiver", res, 90*time.Second); f.requests <= f.accepted {
			t.Errorf("%d requests for %d events: no attempt timed out", f.requests, f.accepted)
		}
	})
}

// waitUntil polls cond every 10ms until it holds or limit passes.
func waitUntil(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", limit, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
