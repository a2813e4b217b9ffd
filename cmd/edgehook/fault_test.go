package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/edgehook/edgehook/gateway"
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
// verify every signature. Each scenario ends with an exact count, once the system is
// idle: every event sent was answered 202; every event answered 202 is delivered or
// dead-lettered, not both, none is lost; exactly the events the scenario expects are
// dead-lettered; an event reaching its endpoint twice does so with the same
// webhook-id. Every process the test stops must exit 0 (or die by SIGKILL when it is
// killed), and none may exit on its own.

// Delivery settings of every fault scenario: attempts time out after 1s (so the
// consumer's ack wait is 11s), retries come quickly, a parked endpoint is probed
// after 1s.
const (
	faultHTTPTimeout = "1s"
	faultSchedule    = "200ms,500ms,1s"
	faultMaxDeliver  = "6"
)

// ingestPatience is how long a client keeps sending one event before the test fails
// for want of its 202; a restart of nats-server takes a second or two.
const ingestPatience = 30 * time.Second

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
	// Kept by the test goroutine: the signal the test stopped the process with (0
	// until it does), whether how it ended has been checked (end) or reported, and
	// whether its output has been shown with a failure.
	sig   syscall.Signal
	ended bool
	shown bool
}

// startProc starts bin with args and env (on top of PATH and HOME only) and, unless
// the caller stops it itself (manual), ends it when the test ends: SIGTERM, then
// SIGKILL after 15s, and it must have been running until then and exit 0 (see end).
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
			p.end(t, syscall.SIGTERM)
		}
		if t.Failed() && !p.shown {
			t.Logf("output of %s (last 4 KiB):\n%s", name, p.tail())
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
	p.sig = sig
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.exited:
	case <-time.After(15 * time.Second):
		t.Errorf("%s did not stop within 15s of %s", p.name, sig)
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// end stops the process with sig (see stop) and checks how it ended, once: it must
// not have exited before the test stopped it, and it must exit 0 after SIGTERM and
// die by the signal after SIGKILL.
func (p *proc) end(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if p.ended {
		return
	}
	p.ended = true
	select {
	case <-p.exited:
		p.shown = true
		t.Errorf("%s exited on its own before the test stopped it: %v; its output ends:\n%s", p.name, p.err, p.tail())
		return
	default:
	}
	p.stop(t, sig)
	if err := p.exitError(sig); err != nil {
		p.shown = true
		t.Errorf("%s: %v; its output ends:\n%s", p.name, err, p.tail())
	}
}

// exitError says what is wrong with how the process ended after sig, or nil.
func (p *proc) exitError(sig syscall.Signal) error {
	var ws syscall.WaitStatus
	if p.cmd.ProcessState != nil {
		ws, _ = p.cmd.ProcessState.Sys().(syscall.WaitStatus)
	}
	switch {
	case sig == syscall.SIGKILL:
		if ws.Signaled() && ws.Signal() == syscall.SIGKILL {
			return nil
		}
		return fmt.Errorf("ended with %v after SIGKILL, want death by SIGKILL", p.err)
	case p.err != nil:
		return fmt.Errorf("ended with %v after %s, want exit status 0", p.err, sig)
	}
	return nil
}

// running fails the test if the process has exited.
func (p *proc) running(t *testing.T) {
	t.Helper()
	select {
	case <-p.exited:
		p.ended, p.shown = true, true // reported here
		t.Fatalf("%s exited: %v\n%s", p.name, p.err, p.tail())
	default:
	}
}

// tail is the end of the process's output (4 KiB), without its debug lines.
func (p *proc) tail() string {
	var keep []string
	for l := range strings.Lines(p.out.String()) {
		if !strings.Contains(l, `"level":"DEBUG"`) {
			keep = append(keep, l)
		}
	}
	return tail(strings.Join(keep, ""), 4096)
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
	procs      []*proc // every edgehook process started, workers included
	workers    []*proc
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
	t.Cleanup(func() { s.nats.end(t, syscall.SIGTERM) }) // after every edgehook process

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

// restartNATS stops nats-server gracefully (it must exit 0) and starts it again on the
// same store.
func (s *faultSystem) restartNATS() {
	s.t.Helper()
	s.nats.end(s.t, syscall.SIGTERM)
	if s.t.Failed() {
		s.t.FailNow()
	}
	s.startNATS()
}

// alive fails the test if a process of the scenario has exited without the test
// stopping it.
func (s *faultSystem) alive() {
	s.t.Helper()
	for _, p := range append([]*proc{s.nats}, s.procs...) {
		if p.sig != 0 {
			continue
		}
		select {
		case <-p.exited:
			p.ended, p.shown = true, true
			s.t.Fatalf("%s exited on its own during the scenario: %v; its output ends:\n%s", p.name, p.err, p.tail())
		default:
		}
	}
}

// waitUntil polls cond every 10ms until it holds or limit passes, failing the test
// meanwhile if a process exits on its own.
func (s *faultSystem) waitUntil(limit time.Duration, what string, cond func() bool) {
	s.t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		s.alive()
		if time.Now().After(deadline) {
			s.t.Fatalf("timed out after %s waiting for %s", limit, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
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

// start runs `edgehook <args>` as its NATS user (user is args[0]); it is ended with
// SIGTERM when the test ends.
func (s *faultSystem) start(user string, extra map[string]string, args ...string) *proc {
	env := s.natsEnv(user)
	for k, v := range extra {
		env[k] = v
	}
	p := startProc(s.t, "edgehook "+strings.Join(args, " "), s.bin, false, env, args...)
	s.procs = append(s.procs, p)
	return p
}

// run runs `edgehook <args>` to completion; it must exit 0.
func (s *faultSystem) run(user string, env map[string]string, args ...string) string {
	s.t.Helper()
	cmd := exec.Command(s.bin, args...)
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		s.t.Fatalf("edgehook %s (as %s): %v\n%s", strings.Join(args, " "), user, err, out)
	}
	return string(out)
}

// startWorker starts a worker process and waits until it is ready. It logs at debug
// level, every delivery, so a count that does not add up can be traced.
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
		"EDGEHOOK_LOG_LEVEL":             "debug",
	}, "worker")
	s.workers = append(s.workers, p)
	waitHTTP(s.t, "http://"+metrics+"/readyz")
	s.alive()
	return p
}

// addTenant creates a tenant (identity record with an API key, webhook config in
// Vault) whose endpoint answers as answer says.
func (s *faultSystem) addTenant(answer func(n int) (code int, hang time.Duration)) *faultTenant {
	s.t.Helper()
	var tn *faultTenant
	id, key, secret := s.provisionTenant(func(secret webhook.Secret) string {
		tn = &faultTenant{ep: newFaultEndpoint(s.t, secret, answer)}
		return tn.ep.srv.URL + "/hook"
	})
	tn.id, tn.apiKey, tn.secret = id, key, secret
	s.tenants = append(s.tenants, tn)
	return tn
}

// provisionTenant creates a tenant as the admin API would: an identity record with a
// new API key, and a webhook config in Vault with a new secret and the target that
// target returns for it. It returns once the gateway knows the key.
func (s *faultSystem) provisionTenant(target func(webhook.Secret) string) (id, key string, secret webhook.Secret) {
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
	if secret, err = webhook.NewSecret(); err != nil {
		s.t.Fatal(err)
	}
	admin, err := vault.NewClient(s.vault.ClientConfig(s.vault.Token(s.t, vault.RoleAdmin, 0)))
	if err != nil {
		s.t.Fatal(err)
	}
	if err := admin.PutWebhookConfig(ctx, vault.WebhookConfig{TenantID: id, TargetURL: target(secret), Secret: secret, LastUpdated: time.Now().UTC()}); err != nil {
		s.t.Fatal(err)
	}
	// The gateway's identity view follows the bucket; wait until it knows the key.
	deadline := time.Now().Add(10 * time.Second)
	for {
		req, _ := http.NewRequest("GET", "http://"+s.gateway+"/v1/tenant", nil)
		req.Header.Set("Authorization", "Bearer "+key)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return id, key, secret
			}
		}
		if time.Now().After(deadline) {
			s.t.Fatal("the gateway does not know the new tenant's key")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// tenant returns the scenario's tenant with id, or nil.
func (s *faultSystem) tenant(id string) *faultTenant {
	for _, tn := range s.tenants {
		if tn.id == id {
			return tn
		}
	}
	return nil
}

// faultEndpoint is a tenant's webhook endpoint: it verifies every request and answers
// per its policy, recording per webhook-id what it saw and answered.
type faultEndpoint struct {
	srv    *httptest.Server
	secret webhook.Secret
	answer func(n int) (int, time.Duration)
	n      atomic.Int64 // verified requests

	mu       sync.Mutex
	accepted map[string]int         // webhook-id -> 2xx answers
	okAt     map[string][]time.Time // webhook-id -> when each 2xx answer was given
	signedLog
	idsOf    map[string][]string // nonce -> the webhook-ids that carried it
	codes    map[int]int         // answers given, by status code
	cutOff   map[string]int      // webhook-id -> requests the worker left before the answer
	inFlight atomic.Int64
}

// signedLog is what a test endpoint records of the webhooks it is sent: the nonce of
// each webhook-id's body, the ids that came with two different bodies, and the requests
// whose signature failed. The endpoint's own mutex guards it.
type signedLog struct {
	nonces    map[string]string // webhook-id -> nonce of its body
	badSigs   int
	conflicts []string // webhook-ids that came with two different bodies
}

// verify reads r's body and checks its Standard Webhooks signature against secret,
// holding mu (the endpoint's lock over l). A bad signature is counted and answered 401,
// and ok is false; a good one has the nonce of its body recorded against its id.
func (l *signedLog) verify(mu *sync.Mutex, secret webhook.Secret, w http.ResponseWriter, r *http.Request) (id, nonce string, ok bool) {
	body, _ := io.ReadAll(r.Body)
	id = r.Header.Get(webhook.HeaderID)
	err := webhook.Verify(id, r.Header.Get(webhook.HeaderTimestamp), r.Header.Get(webhook.HeaderSignature), body, time.Now(), webhook.DefaultTolerance, secret)
	var ev struct{ Nonce string }
	_ = json.Unmarshal(body, &ev)
	mu.Lock()
	defer mu.Unlock()
	if err != nil {
		l.badSigs++
		w.WriteHeader(http.StatusUnauthorized)
		return id, "", false
	}
	if l.nonces == nil {
		l.nonces = map[string]string{}
	}
	if prev, seen := l.nonces[id]; seen && prev != ev.Nonce {
		l.conflicts = append(l.conflicts, id)
	}
	l.nonces[id] = ev.Nonce
	return id, ev.Nonce, true
}

func newFaultEndpoint(t *testing.T, secret webhook.Secret, answer func(n int) (int, time.Duration)) *faultEndpoint {
	ep := &faultEndpoint{secret: secret, answer: answer}
	ep.makeMaps()
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

// answered returns how many requests the endpoint answered with code.
func (ep *faultEndpoint) answered(code int) int {
	ep.mu.Lock()
	defer ep.mu.Unlock()
	return ep.codes[code]
}

// makeMaps makes the maps an endpoint built without newFaultEndpoint lacks.
func (ep *faultEndpoint) makeMaps() {
	for _, m := range []*map[string]int{&ep.accepted, &ep.cutOff} {
		if *m == nil {
			*m = map[string]int{}
		}
	}
	if ep.okAt == nil {
		ep.okAt = map[string][]time.Time{}
	}
	if ep.idsOf == nil {
		ep.idsOf = map[string][]string{}
	}
	if ep.codes == nil {
		ep.codes = map[int]int{}
	}
}

func (ep *faultEndpoint) serve(w http.ResponseWriter, r *http.Request) {
	ep.inFlight.Add(1)
	defer ep.inFlight.Add(-1)
	id, nonce, ok := ep.verify(&ep.mu, ep.secret, w, r)
	if !ok {
		return
	}
	ep.mu.Lock()
	ep.makeMaps()
	if !slices.Contains(ep.idsOf[nonce], id) {
		ep.idsOf[nonce] = append(ep.idsOf[nonce], id)
	}
	ep.mu.Unlock()
	code, hang := ep.answer(int(ep.n.Add(1)))
	if hang > 0 {
		select {
		case <-time.After(hang):
		case <-r.Context().Done(): // the worker gave up (or died): it never sees an answer
			ep.mu.Lock()
			ep.cutOff[id]++
			ep.mu.Unlock()
			return
		}
	}
	ep.mu.Lock()
	ep.codes[code]++
	if code/100 == 2 {
		ep.accepted[id]++
		ep.okAt[id] = append(ep.okAt[id], time.Now())
	}
	ep.mu.Unlock()
	w.WriteHeader(code)
}

// ingestResult is what clients sent and were told.
type ingestResult struct {
	mu       sync.Mutex
	sent     int               // events the clients set out to send
	ok       int               // events answered 202 (each once: its client then moves on)
	accepted map[string]string // event id -> nonce, for every 202
	tenant   map[string]string // event id -> tenant id
	failed   []string          // events never answered 202, with the reason
	refused  int               // requests sent again: answered 503, or not at all
	again    int               // 202s saying the event had been stored already (an earlier answer was lost)
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
// event has a nonce in its body and uses it as Idempotency-Key, so sending it again is
// sending the same event: a client sends each event until it is answered 202 (see
// send). An event that is not fails the scenario (account reports it), and the clients
// stop sending: the rest are recorded as not sent.
func (s *faultSystem) ingest(tn *faultTenant, n int, pace time.Duration, res *ingestResult) {
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 10 * time.Second}
	res.mu.Lock()
	res.sent += n
	res.mu.Unlock()
	for c := range 4 {
		wg.Go(func() {
			for i := c; i < n; i += 4 {
				nonce := fmt.Sprintf("%s-%d-%d", tn.id, time.Now().UnixNano(), i)
				res.mu.Lock()
				stop := len(res.failed) > 0
				res.mu.Unlock()
				var id string
				err := errors.New("not sent: an earlier event was never answered 202")
				if !stop {
					id, err = s.send(client, tn, nonce, res)
				}
				res.mu.Lock()
				switch {
				case err != nil:
					res.failed = append(res.failed, fmt.Sprintf("event %s of tenant %s: %v", nonce, tn.id, err))
				default:
					res.ok++
					if prev, ok := res.accepted[id]; ok && prev != nonce {
						res.failed = append(res.failed, fmt.Sprintf("event id %s answered for two events, %s and %s", id, prev, nonce))
					}
					res.accepted[id] = nonce
					res.tenant[id] = tn.id
				}
				res.mu.Unlock()
				time.Sleep(pace)
			}
		})
	}
	wg.Wait()
}

// send posts the event with nonce until it is answered 202 and returns its event id.
// It sends again, 100ms apart and for up to ingestPatience, what was answered 503 (the
// gateway cannot store events while NATS is down) or not answered at all (connection
// refused or cut while the gateway restarts its link); any other answer is an error.
func (s *faultSystem) send(client *http.Client, tn *faultTenant, nonce string, res *ingestResult) (string, error) {
	body := fmt.Sprintf(`{"type":"fault.test","nonce":%q}`, nonce)
	deadline := time.Now().Add(ingestPatience)
	for tries := 1; ; tries++ {
		req, err := http.NewRequest("POST", "http://"+s.gateway+"/v1/events", strings.NewReader(body))
		if err != nil {
			return "", err
		}
		req.Header.Set("Authorization", "Bearer "+tn.apiKey)
		req.Header.Set(gateway.HeaderIdempotencyKey, nonce)
		var why string
		resp, err := client.Do(req)
		if err != nil {
			why = err.Error()
		} else {
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			resp.Body.Close()
			switch resp.StatusCode {
			case http.StatusAccepted:
				var ack struct{ EventID string }
				if err := json.Unmarshal(b, &ack); err != nil || ack.EventID == "" {
					return "", fmt.Errorf("202 without an event id: %q", b)
				}
				if resp.Header.Get(gateway.HeaderIdempotentReplayed) != "" {
					res.mu.Lock()
					res.again++
					res.mu.Unlock()
				}
				return ack.EventID, nil
			case http.StatusServiceUnavailable:
				why = fmt.Sprintf("503 %s", b)
			default:
				return "", fmt.Errorf("answered %d after %d tries: %s", resp.StatusCode, tries, b)
			}
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("no 202 within %s (%d tries); last: %s", ingestPatience, tries, why)
		}
		res.mu.Lock()
		res.refused++
		res.mu.Unlock()
		time.Sleep(100 * time.Millisecond)
	}
}

// expectation is what a scenario's accounting expects: the events of the tenants in
// dead are dead-lettered (and not replayed since), those of the tenants in replayed
// were dead-lettered and replayed since, every other event is delivered; replays is
// how many times each event has been replayed (0 for an event not listed).
type expectation struct {
	dead, replayed []*faultTenant
	replays        map[string]int
}

// figures are one scenario's counts, as account found them once the system was idle.
type figures struct {
	name           string
	sent, accepted int // events sent; events answered 202
	delivered      int // events whose webhook-id an endpoint answered 2xx
	dead           int // events with a dead letter on DLQ
	replayed       int // of those, replayed since
	dups           int // 2xx answers beyond one per delivered round, each with its event's webhook-id
	requests       int // verified requests the endpoints saw
	cutOff         int // of those, left by the worker before the answer (timeout, kill)
	retried, again int // ingest requests sent again; 202s for an event stored already
	took           time.Duration
}

// faultTable collects the figures of every scenario.
type faultTable []figures

func (ft *faultTable) add(f figures) { *ft = append(*ft, f) }

// log logs the table.
func (ft faultTable) log(t *testing.T) {
	if len(ft) == 0 {
		return
	}
	var b strings.Builder
	w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "scenario\tsent\t202\tdelivered\tdead-lettered\treplayed\tduplicates\tendpoint requests\tcut off\tingest retries\tsettled in\t")
	for _, f := range ft {
		fmt.Fprintf(w, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t\n", f.name, f.sent, f.accepted, f.delivered, f.dead, f.replayed,
			f.dups, f.requests, f.cutOff, f.retried, f.took.Round(100*time.Millisecond))
	}
	w.Flush()
	t.Logf("fault scenarios: delivered + dead-lettered - replayed = 202 = sent; duplicates all with their event's webhook-id\n%s", b.String())
}

// ledger is what the system and the endpoints say about a scenario's events.
type ledger struct {
	dead map[string][]dlq.DeadLetter // event id -> its dead letters, oldest first
	recs map[string]status.Record    // event id -> status record
	ok   map[string][]time.Time      // webhook-id -> the 2xx answers of the endpoints
}

// readLedger reads the dead letters of the scenario's tenants from DLQ, every status
// record, and what the endpoints answered.
func (s *faultSystem) readLedger(ctx context.Context) (*ledger, error) {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	l := &ledger{dead: map[string][]dlq.DeadLetter{}, recs: map[string]status.Record{}, ok: map[string][]time.Time{}}
	stream, err := s.js.Stream(ctx, natsconf.StreamDLQ)
	if err != nil {
		return nil, err
	}
	for _, tn := range s.tenants {
		if err := dlq.Scan(ctx, stream, dlq.Filter{TenantID: tn.id}, func(d dlq.DeadLetter) error {
			l.dead[d.EventID] = append(l.dead[d.EventID], d)
			return nil
		}); err != nil {
			return nil, err
		}
	}
	kv, err := s.js.KeyValue(ctx, natsconf.BucketStatus)
	if err != nil {
		return nil, err
	}
	w, err := kv.Watch(ctx, "*.*", jetstream.IgnoreDeletes()) // status records, not the attempt log
	if err != nil {
		return nil, err
	}
	defer w.Stop()
	for e := range w.Updates() {
		if e == nil {
			break
		}
		var rec status.Record
		if err := json.Unmarshal(e.Value(), &rec); err != nil {
			return nil, fmt.Errorf("status record %s: %w", e.Key(), err)
		}
		l.recs[rec.EventID] = rec
	}
	if ctx.Err() != nil {
		return nil, fmt.Errorf("reading status records: %w", ctx.Err())
	}
	for _, tn := range s.tenants {
		tn.ep.mu.Lock()
		for id, at := range tn.ep.okAt {
			l.ok[id] = append(l.ok[id], at...)
		}
		tn.ep.mu.Unlock()
	}
	return l, nil
}

// deadRounds returns the rounds (0 for the original, k for the k-th replay) in which
// event id was dead-lettered.
func (l *ledger) deadRounds(id string) []int {
	var rounds []int
	for _, d := range l.dead[id] {
		if !slices.Contains(rounds, d.Replay) {
			rounds = append(rounds, d.Replay)
		}
	}
	return rounds
}

// outstanding reports whether event id's latest dead letter is its latest state (it
// was not replayed since).
func (l *ledger) outstanding(id string) bool {
	dls := l.dead[id]
	return len(dls) > 0 && dls[len(dls)-1].Replay >= l.recs[id].Replays
}

// deliveredRounds is how many of event id's rounds (the original and each replay)
// ended delivered.
func (l *ledger) deliveredRounds(id string) int {
	return 1 + l.recs[id].Replays - len(l.deadRounds(id))
}

// settled reports whether event id has reached its end, and why not: dead-lettered
// (and marked failed), or delivered (marked so, its endpoint having answered 2xx to
// its webhook-id once per delivered round at least), after its expected replays.
func (l *ledger) settled(id string, want expectation) (bool, string) {
	rec, ok := l.recs[id]
	switch {
	case !ok:
		return false, "no status record"
	case rec.Replays < want.replays[id]:
		return false, fmt.Sprintf("status %s after %d replays, want %d", rec.Status, rec.Replays, want.replays[id])
	case l.outstanding(id):
		if rec.Status != status.Failed {
			return false, fmt.Sprintf("dead-lettered, but its status is %s", rec.Status)
		}
		return true, ""
	case rec.Status != status.Delivered:
		return false, fmt.Sprintf("status %s after %d attempts (last %d %q)", rec.Status, rec.Attempts, rec.LastStatusCode, rec.LastError)
	case len(l.ok[id]) < l.deliveredRounds(id):
		return false, fmt.Sprintf("status delivered, but its endpoint answered 2xx %d times for %d delivered rounds", len(l.ok[id]), l.deliveredRounds(id))
	}
	return true, ""
}

// unsettled returns the accepted events that have not settled, each with why.
func (l *ledger) unsettled(res *ingestResult, want expectation) map[string]string {
	out := map[string]string{}
	for id := range res.accepted {
		if ok, why := l.settled(id, want); !ok {
			out[id] = why
		}
	}
	return out
}

// idle returns why the system may still act on its events, or "" when it will not:
// the workers' and the DLQ processor's consumers have nothing pending or unacked, no
// parked copy waits on PARKED, EVENTS has taken in every copy that came due, and no
// endpoint has a request in flight.
func (s *faultSystem) idle(ctx context.Context) string {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	for _, c := range [][2]string{{natsconf.StreamEvents, natsconf.ConsumerDeliver}, {natsconf.StreamDLQ, natsconf.ConsumerDLQ}} {
		cons, err := s.js.Consumer(ctx, c[0], c[1])
		if err != nil {
			return fmt.Sprintf("consumer %s: %v", c[1], err)
		}
		info, err := cons.Info(ctx)
		if err != nil {
			return fmt.Sprintf("consumer %s: %v", c[1], err)
		}
		if info.NumPending > 0 || info.NumAckPending > 0 {
			return fmt.Sprintf("consumer %s: %d pending, %d unacknowledged", c[1], info.NumPending, info.NumAckPending)
		}
	}
	parked, err := s.js.Stream(ctx, natsconf.StreamParked)
	if err != nil {
		return fmt.Sprintf("stream %s: %v", natsconf.StreamParked, err)
	}
	pinfo, err := parked.Info(ctx, jetstream.WithSubjectFilter(natsconf.ParkedSubjectPrefix+">"))
	if err != nil {
		return fmt.Sprintf("stream %s: %v", natsconf.StreamParked, err)
	}
	if n := len(pinfo.State.Subjects); n > 0 {
		return fmt.Sprintf("%d parked copies wait on %s", n, natsconf.StreamParked)
	}
	events, err := s.js.Stream(ctx, natsconf.StreamEvents)
	if err != nil {
		return fmt.Sprintf("stream %s: %v", natsconf.StreamEvents, err)
	}
	einfo, err := events.Info(ctx)
	if err != nil {
		return fmt.Sprintf("stream %s: %v", natsconf.StreamEvents, err)
	}
	for _, src := range einfo.Sources {
		if src.Lag > 0 {
			return fmt.Sprintf("%s lags %d messages behind its source %s", natsconf.StreamEvents, src.Lag, src.Name)
		}
	}
	for _, tn := range s.tenants {
		if n := tn.ep.inFlight.Load(); n > 0 {
			return fmt.Sprintf("%d requests in flight at tenant %s's endpoint", n, tn.id)
		}
	}
	return ""
}

// eventsOf returns the accepted events of the tenants.
func eventsOf(res *ingestResult, tenants []*faultTenant) map[string]bool {
	out := map[string]bool{}
	for id, tid := range res.tenant {
		if slices.ContainsFunc(tenants, func(tn *faultTenant) bool { return tn.id == tid }) {
			out[id] = true
		}
	}
	return out
}

// account waits until the system is idle and every accepted event has settled (see
// ledger.settled), then counts exactly: every event sent answered 202; delivered +
// dead-lettered (not replayed since) = the 202s, no event both; the dead-lettered and
// replayed events exactly those want names; no webhook for an event not answered 202
// or at another tenant's endpoint, no event under two webhook-ids, every webhook-id
// carrying its event's body. It returns the figures.
func (s *faultSystem) account(name string, res *ingestResult, within time.Duration, want expectation) figures {
	s.t.Helper()
	start := time.Now()
	ctx := context.Background()
	res.mu.Lock()
	failed, sent, acked, accepted := slices.Clone(res.failed), res.sent, res.ok, len(res.accepted)
	retried, again := res.refused, res.again
	res.mu.Unlock()
	if len(failed) > 0 {
		s.t.Fatalf("%s: %d of %d events sent were never answered 202:\n%s", name, len(failed), sent, strings.Join(failed[:min(len(failed), 10)], "\n"))
	}
	if acked != sent || accepted != acked {
		s.t.Fatalf("%s: %d events sent, %d answered 202, %d distinct event ids", name, sent, acked, accepted)
	}

	var l *ledger
	deadline := start.Add(within)
	for {
		s.alive()
		why := s.idle(ctx)
		if why == "" {
			var err error
			if l, err = s.readLedger(ctx); err != nil {
				why = err.Error()
			} else if pending := l.unsettled(res, want); len(pending) > 0 {
				why = fmt.Sprintf("the system is idle, but %d events have not settled", len(pending))
			} else if why = s.idle(ctx); why == "" {
				break
			}
		}
		if time.Now().After(deadline) {
			l, err := s.readLedger(ctx)
			if err != nil {
				s.t.Fatalf("%s: not settled within %s: %s; ledger: %v", name, within, why, err)
			}
			pending := l.unsettled(res, want)
			s.explain(res, l, pending)
			s.t.Fatalf("%s: not settled within %s: %s; %d of %d accepted events neither delivered nor dead-lettered (LOST or stuck)",
				name, within, why, len(pending), accepted)
		}
		time.Sleep(200 * time.Millisecond)
	}
	took := time.Since(start)

	flagged := map[string]string{}
	var problems []string
	bad := func(id, format string, args ...any) {
		msg := fmt.Sprintf(format, args...)
		problems = append(problems, msg)
		if _, ok := flagged[id]; id != "" && !ok {
			flagged[id] = msg
		}
	}
	f := figures{name: name, sent: sent, accepted: accepted, retried: retried, again: again, took: took}

	// What the endpoints saw.
	for _, tn := range s.tenants {
		f.requests += int(tn.ep.n.Load())
		tn.ep.mu.Lock()
		for id := range tn.ep.accepted {
			switch tid, ok := res.tenant[id]; {
			case !ok:
				bad(id, "webhook-id %s answered 2xx at tenant %s's endpoint, but no event of that id was answered 202", id, tn.id)
			case tid != tn.id:
				bad(id, "event %s of tenant %s reached tenant %s's endpoint", id, tid, tn.id)
			}
		}
		for id, nonce := range tn.ep.nonces {
			if want, ok := res.accepted[id]; ok && want != nonce {
				bad(id, "webhook-id %s carried the body of event %s, accepted as %s", id, nonce, want)
			}
		}
		for nonce, ids := range tn.ep.idsOf {
			if len(ids) > 1 {
				bad(ids[0], "event %s reached its endpoint with %d webhook-ids: %v", nonce, len(ids), ids)
			}
		}
		for _, id := range tn.ep.conflicts {
			bad(id, "webhook-id %s came with two different bodies", id)
		}
		if tn.ep.badSigs > 0 {
			bad("", "%d webhooks failed signature verification at tenant %s's endpoint", tn.ep.badSigs, tn.id)
		}
		for _, n := range tn.ep.cutOff {
			f.cutOff += n
		}
		tn.ep.mu.Unlock()
	}

	// What DLQ holds.
	for id, dls := range l.dead {
		if _, ok := res.accepted[id]; !ok {
			bad(id, "event %s dead-lettered, but no event of that id was answered 202", id)
		}
		if len(l.deadRounds(id)) < len(dls) {
			bad(id, "event %s dead-lettered %d times in %d rounds", id, len(dls), len(l.deadRounds(id)))
		}
	}

	// Every accepted event: delivered or dead-lettered, as expected.
	wantDead, wantReplayed := eventsOf(res, want.dead), eventsOf(res, want.replayed)
	dead := 0
	for id := range res.accepted {
		rec, dls, ok := l.recs[id], l.dead[id], l.ok[id]
		out := l.outstanding(id)
		if len(ok) > 0 {
			f.delivered++
		}
		if len(dls) > 0 {
			f.dead++
		}
		switch {
		case out:
			dead++
			if len(ok) > 0 {
				bad(id, "event %s both delivered (%d 2xx answers) and dead-lettered, not replayed since", id, len(ok))
			}
		case len(dls) > 0:
			f.replayed++
		}
		if len(dls) > 0 && dls[0].Replay == 0 {
			for _, at := range ok {
				if at.Before(dls[0].Time) {
					bad(id, "event %s answered 2xx at %s, before it was dead-lettered at %s", id, at.Format(time.StampMilli), dls[0].Time.Format(time.StampMilli))
					break
				}
			}
		}
		if !out {
			f.dups += len(ok) - l.deliveredRounds(id)
		}
		switch {
		case out && !wantDead[id]:
			bad(id, "event %s of tenant %s dead-lettered (%s), want it delivered", id, res.tenant[id], dls[len(dls)-1].Reason)
		case !out && wantDead[id]:
			bad(id, "event %s of tenant %s delivered, want it dead-lettered", id, res.tenant[id])
		case !out && len(dls) > 0 && !wantReplayed[id]:
			bad(id, "event %s of tenant %s dead-lettered and replayed, want it delivered without", id, res.tenant[id])
		case !out && len(dls) == 0 && wantReplayed[id]:
			bad(id, "event %s of tenant %s delivered without being dead-lettered, want it dead-lettered and replayed", id, res.tenant[id])
		}
		if rec.Replays != want.replays[id] {
			bad(id, "event %s replayed %d times, want %d", id, rec.Replays, want.replays[id])
		}
	}
	if f.delivered+dead != accepted {
		bad("", "delivered %d + dead-lettered (not replayed since) %d != %d answered 202", f.delivered, dead, accepted)
	}
	if len(problems) > 0 {
		s.explain(res, l, flagged)
		for _, p := range problems[:min(len(problems), 20)] {
			s.t.Errorf("%s: %s", name, p)
		}
		if len(problems) > 20 {
			s.t.Errorf("%s: and %d more problems", name, len(problems)-20)
		}
	}
	s.t.Logf("%s: sent %d, answered 202 %d (%d ingest requests sent again, %d of them already stored), delivered %d, dead-lettered %d (%d replayed since), duplicates %d (same webhook-id); endpoint requests %d, %d of them left before the answer; settled in %s",
		name, f.sent, f.accepted, f.retried, f.again, f.delivered, f.dead, f.replayed, f.dups, f.requests, f.cutOff, took.Round(time.Millisecond))
	return f
}

// explain logs what the system says about the events in ids (at most 5): their status
// and attempt log through the API, their dead letters, what their endpoint saw, and
// the workers' log lines about them.
func (s *faultSystem) explain(res *ingestResult, l *ledger, ids map[string]string) {
	s.t.Helper()
	keys := slices.Sorted(maps.Keys(ids))
	for _, id := range keys[:min(len(keys), 5)] {
		var b strings.Builder
		fmt.Fprintf(&b, "event %s (tenant %s, nonce %s): %s\n", id, res.tenant[id], res.accepted[id], ids[id])
		if tn := s.tenant(res.tenant[id]); tn != nil {
			for _, path := range []string{"/v1/events/" + id, "/v1/events/" + id + "/attempts"} {
				fmt.Fprintf(&b, "  GET %s: %s\n", path, s.apiGet(tn, path))
			}
			tn.ep.mu.Lock()
			fmt.Fprintf(&b, "  endpoint: %d 2xx answers at %v, %d requests left before the answer\n", tn.ep.accepted[id], tn.ep.okAt[id], tn.ep.cutOff[id])
			tn.ep.mu.Unlock()
		}
		for _, d := range l.dead[id] {
			fmt.Fprintf(&b, "  dead letter DLQ seq %d at %s: EVENTS seq %d, round %d, %d attempts, %s (last %d %q)\n",
				d.Seq, d.Time.Format(time.StampMilli), d.StreamSeq, d.Replay, d.Attempts, d.Reason, d.LastStatusCode, d.LastError)
		}
		for _, w := range s.workers {
			n := 0
			for line := range strings.Lines(w.out.String()) {
				if strings.Contains(line, id) && n < 40 {
					fmt.Fprintf(&b, "  %s: %s", w.name, line)
					n++
				}
			}
		}
		s.t.Log(b.String())
	}
}

// apiGet returns the answer of the gateway to tn's GET path, for a log.
func (s *faultSystem) apiGet(tn *faultTenant, path string) string {
	req, _ := http.NewRequest("GET", "http://"+s.gateway+path, nil)
	req.Header.Set("Authorization", "Bearer "+tn.apiKey)
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return fmt.Sprintf("%d %s", resp.StatusCode, strings.TrimSpace(string(b)))
}

func TestFaults(t *testing.T) {
	// The scenarios share the binary; each has its own NATS, Vault and processes.
	var table faultTable
	defer func() { table.log(t) }()

	t.Run("worker killed with SIGKILL mid-delivery", func(t *testing.T) {
		s := newFaultSystem(t)
		slow := func(int) (int, time.Duration) { return 200, 150 * time.Millisecond }
		a, b := s.addTenant(slow), s.addTenant(slow)
		res := newIngestResult()
		s.ingest(a, 150, 0, res)
		s.ingest(b, 150, 0, res)
		w := s.startWorker()
		// Kill it while deliveries are in flight and some are done.
		s.waitUntil(20*time.Second, "deliveries in flight, some done", func() bool {
			return a.ep.inFlight.Load()+b.ep.inFlight.Load() > 0 && a.ep.delivered()+b.ep.delivered() >= 20
		})
		w.end(t, syscall.SIGKILL)
		if n := a.ep.delivered() + b.ep.delivered(); n >= res.count() {
			t.Fatalf("all %d events were delivered before the kill", n)
		}
		s.startWorker()
		f := s.account("SIGKILL", res, 60*time.Second, expectation{})
		table.add(f)
		if f.cutOff == 0 {
			t.Error("no endpoint saw a request cut off: no delivery was in flight when the worker was killed")
		}
		if f.requests <= f.accepted {
			t.Errorf("%d requests for %d events: the deliveries cut off by the kill were not made again", f.requests, f.accepted)
		}
	})

	t.Run("nats-server restarted during ingest and delivery", func(t *testing.T) {
		s := newFaultSystem(t)
		ok := func(int) (int, time.Duration) { return 200, 20 * time.Millisecond }
		a, b := s.addTenant(ok), s.addTenant(ok)
		s.startWorker()
		res := newIngestResult()
		const perTenant = 600
		done := make(chan struct{})
		go func() {
			defer close(done)
			var wg sync.WaitGroup
			wg.Go(func() { s.ingest(a, perTenant, 5*time.Millisecond, res) })
			wg.Go(func() { s.ingest(b, perTenant, 5*time.Millisecond, res) })
			wg.Wait()
		}()
		s.waitUntil(20*time.Second, "ingest and deliveries under way", func() bool {
			return res.count() > 100 && a.ep.delivered() > 10
		})
		ingested, delivered := res.count(), a.ep.delivered()+b.ep.delivered()
		s.restartNATS()
		// The clients give up on an event after ingestPatience, and then on the rest.
		s.waitUntil(2*ingestPatience, "the clients done", func() bool {
			select {
			case <-done:
				return true
			default:
				return false
			}
		})
		if ingested >= 2*perTenant || delivered >= 2*perTenant {
			t.Errorf("at the restart %d events were answered 202 and %d delivered of %d: the restart was not during ingest and delivery", ingested, delivered, 2*perTenant)
		}
		s.alive()
		f := s.account("NATS restart", res, 60*time.Second, expectation{})
		table.add(f)
		if f.retried == 0 {
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
		// a's endpoint recovers: all its events are delivered; b's never does: exactly
		// its 20 events are dead-lettered.
		table.add(s.account("500 then 200", res, 90*time.Second, expectation{dead: []*faultTenant{b}}))
		if n := a.ep.answered(500); n == 0 {
			t.Error("the recovering endpoint never answered 500")
		}

		// The endpoint is fixed; an operator replays its dead letters, as the dlq user.
		fixed.Store(true)
		out := s.run("dlq", s.natsEnv("dlq"), "dlq", "replay", "--tenant", b.id)
		if !strings.Contains(out, "replayed: 20\n") || !strings.Contains(out, "] 20/20") {
			t.Fatalf("edgehook dlq replay: want 20 of 20 replayed:\n%s", out)
		}
		// A tenant replays one of its delivered events through the API: one its
		// endpoint answered 2xx once.
		replays := map[string]int{}
		var again string
		a.ep.mu.Lock()
		for id, tn := range res.tenant {
			switch {
			case tn == b.id:
				replays[id] = 1
			case again == "" && a.ep.accepted[id] == 1:
				again = id
			}
		}
		a.ep.mu.Unlock()
		if again == "" {
			t.Fatal("every event of the recovering endpoint reached it more than once")
		}
		replays[again] = 1
		req, _ := http.NewRequest("POST", "http://"+s.gateway+"/v1/events/"+again+"/replay", nil)
		req.Header.Set("Authorization", "Bearer "+a.apiKey)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("POST replay: %v", err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("POST replay: %s", resp.Status)
		}
		// Every replay delivered: b's events are dead-lettered and replayed, all 220
		// delivered.
		table.add(s.account("500 then 200, after replay", res, 60*time.Second, expectation{replayed: []*faultTenant{b}, replays: replays}))
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
		f := s.account("hanging receiver", res, 90*time.Second, expectation{})
		table.add(f)
		if f.cutOff == 0 {
			t.Error("the worker gave up on no request: no attempt hung past the HTTP timeout")
		}
		if f.requests <= f.accepted {
			t.Errorf("%d requests for %d events: no attempt was made again", f.requests, f.accepted)
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
