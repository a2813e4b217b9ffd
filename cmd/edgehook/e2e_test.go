package main

import (
	"bytes"
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
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/edgehook/edgehook/api/apitest"
	"github.com/edgehook/edgehook/natsconf"
	"github.com/edgehook/edgehook/natsconf/natsproc"
)

// system is an `edgehook up` running in-process on free loopback ports.
type system struct {
	api, admin, receiver, natsURL, adminToken, dataDir string
	stdout, stderr                                     *syncBuffer
	done                                               chan error
	cancel                                             context.CancelFunc
}

// freeAddr returns a loopback address that was free a moment ago and that no other
// call in this test binary returned (natsproc.FreePort): the kernel may hand a port
// just closed to the next listener, and two of one system's listeners on one port make
// it fail to start.
func freeAddr(t *testing.T) string {
	t.Helper()
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(natsproc.FreePort(t)))
}

// syncBuffer collects a logger's output for the test to read.
type syncBuffer = apitest.Logs

// startUp runs `edgehook up` with env on top of test defaults and waits for the quick
// start banner.
func startUp(t *testing.T, env map[string]string) *system {
	t.Helper()
	sys := &system{
		api:        freeAddr(t),
		admin:      freeAddr(t),
		receiver:   freeAddr(t),
		natsURL:    freeAddr(t),
		adminToken: "test-admin-token",
		dataDir:    t.TempDir(),
		stdout:     &syncBuffer{},
		stderr:     &syncBuffer{},
		done:       make(chan error, 1),
	}
	vars := map[string]string{
		"EDGEHOOK_DATA_DIR":      sys.dataDir,
		"EDGEHOOK_HTTP_ADDR":     sys.api,
		"EDGEHOOK_ADMIN_ADDR":    sys.admin,
		"EDGEHOOK_RECEIVER_ADDR": sys.receiver,
		"EDGEHOOK_NATS_ADDR":     sys.natsURL,
		"EDGEHOOK_ADMIN_TOKEN":   sys.adminToken,
		"EDGEHOOK_LOG_LEVEL":     "warn",
	}
	for k, v := range env {
		vars[k] = v
	}
	ctx, cancel := context.WithCancel(context.Background())
	sys.cancel = cancel
	stderr := sys.stderr
	go func() {
		sys.done <- run(ctx, []string{"edgehook", "up"}, func(k string) string { return vars[k] }, sys.stdout, stderr)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-sys.done:
			if err != nil {
				t.Errorf("up returned %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("up did not stop within 30s")
		}
		if t.Failed() {
			t.Logf("stderr of up:\n%s", stderr.String())
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(sys.stdout.String(), "edgehook is up") {
		select {
		case err := <-sys.done:
			sys.done <- err // for the cleanup, which would wait for it
			t.Fatalf("up exited early: %v\n%s", err, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("up not ready after 30s\n%s", stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return sys
}

// quickStartAddrs are the system's addresses as the quick start names them.
func (sys *system) quickStartAddrs() quickStartAddrs {
	return quickStartAddrs{api: sys.api, admin: sys.admin, receiver: sys.receiver, nats: sys.natsURL, data: sys.dataDir}
}

// operator returns the option that connects as the NATS operator of the system.
func (sys *system) operator(t *testing.T) nats.Option {
	t.Helper()
	pw, err := os.ReadFile(filepath.Join(sys.dataDir, operatorPasswordFile))
	if err != nil {
		t.Fatal(err)
	}
	return nats.UserInfo(natsconf.OperatorUser, strings.TrimSpace(string(pw)))
}

// call sends a JSON request and decodes a JSON answer into out (when non-nil).
func call(t *testing.T, method, url, token string, body any, out any) int {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %d %s: %v", method, url, resp.StatusCode, b, err)
		}
	}
	return resp.StatusCode
}

type createdTenant struct {
	TenantID      string `json:"tenantId"`
	APIKey        string `json:"apiKey"`
	WebhookSecret string `json:"webhookSecret"`
	TargetURL     string `json:"targetUrl"`
	Status        string `json:"status"`
}

// createTenant creates a tenant whose webhooks go to the system's own receiver.
func (s *system) createTenant(t *testing.T) createdTenant {
	t.Helper()
	var c createdTenant
	if code := call(t, "POST", "http://"+s.admin+"/v1/tenants", s.adminToken, map[string]string{"targetUrl": "http://example.invalid/", "plan": "pro"}, &c); code != 201 {
		t.Fatalf("create tenant: %d", code)
	}
	target := "http://" + s.receiver + "/webhooks/" + c.TenantID
	if code := call(t, "PATCH", "http://"+s.admin+"/v1/tenants/"+c.TenantID, s.adminToken, map[string]string{"targetUrl": target}, nil); code != 200 {
		t.Fatalf("set target: %d", code)
	}
	c.TargetURL = target
	return c
}

func TestEndToEndTwoTenantsThousandEventsEach(t *testing.T) {
	sys := startUp(t, nil)
	tenants := []createdTenant{sys.createTenant(t), sys.createTenant(t)}
	const perTenant = 1000

	owner := make(map[string]string, 2*perTenant) // event id -> tenant id
	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for _, tn := range tenants {
		for w := 0; w < 8; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				client := &http.Client{Timeout: 10 * time.Second}
				for i := w; i < perTenant; i += 8 {
					body := fmt.Sprintf(`{"type":"order.created","data":{"n":%d,"tenant":%q}}`, i, tn.TenantID)
					req, _ := http.NewRequest("POST", "http://"+sys.api+"/v1/events", strings.NewReader(body))
					req.Header.Set("Authorization", "Bearer "+tn.APIKey)
					resp, err := client.Do(req)
					if err != nil {
						errs <- err
						return
					}
					var ack struct{ EventID, Status string }
					json.NewDecoder(resp.Body).Decode(&ack)
					resp.Body.Close()
					if resp.StatusCode != 202 || ack.Status != "queued" || ack.EventID == "" {
						errs <- fmt.Errorf("ingest: %d %+v", resp.StatusCode, ack)
						return
					}
					mu.Lock()
					owner[ack.EventID] = tn.TenantID
					mu.Unlock()
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if len(owner) != 2*perTenant {
		t.Fatalf("%d distinct event ids, want %d", len(owner), 2*perTenant)
	}

	// Every verified webhook lands in RECEIVED under the tenant it was sent for.
	nc, err := nats.Connect("nats://"+sys.natsURL, sys.operator(t))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cons, err := js.OrderedConsumer(ctx, natsconf.StreamReceived, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	seen := make(map[string]int)
	for len(seen) < 2*perTenant {
		batch, err := cons.Fetch(500, jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		for m := range batch.Messages() {
			id := m.Headers().Get(natsconf.HeaderEventID)
			want, ok := owner[id]
			if !ok {
				t.Fatalf("received unknown event %q", id)
			}
			if m.Subject() != natsconf.ReceivedSubject(want) {
				t.Fatalf("event %s of %s received as %s", id, want, m.Subject())
			}
			var payload struct{ Data struct{ Tenant string } }
			if err := json.Unmarshal(m.Data(), &payload); err != nil || payload.Data.Tenant != want {
				t.Fatalf("event %s body %s not the one %s sent", id, m.Data(), want)
			}
			seen[id]++
		}
		if ctx.Err() != nil {
			t.Fatalf("only %d of %d webhooks verified by the receiver", len(seen), 2*perTenant)
		}
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("event %s received %d times", id, n)
		}
	}

	// Each event reads as delivered, to its owner only.
	byTenant := map[string]createdTenant{tenants[0].TenantID: tenants[0], tenants[1].TenantID: tenants[1]}
	checked := 0
	for id, tid := range owner {
		var st struct {
			EventID  string `json:"eventId"`
			Status   string `json:"status"`
			Attempts int    `json:"attempts"`
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			code := call(t, "GET", "http://"+sys.api+"/v1/events/"+id, byTenant[tid].APIKey, nil, &st)
			if code == 200 && st.Status == "delivered" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("event %s: %d %+v, want delivered", id, code, st)
			}
			time.Sleep(20 * time.Millisecond)
		}
		if st.Attempts != 1 {
			t.Errorf("event %s delivered after %d attempts, want 1", id, st.Attempts)
		}
		if checked%100 == 0 {
			other := tenants[0]
			if other.TenantID == tid {
				other = tenants[1]
			}
			if code := call(t, "GET", "http://"+sys.api+"/v1/events/"+id, other.APIKey, nil, nil); code != 404 {
				t.Errorf("tenant %s reading %s's event: %d, want 404", other.TenantID, tid, code)
			}
		}
		checked++
	}
}

// TestQuickStartFromTheReadme runs the README's quick start, as `up` prints it, against a
// live system, and checks the event is delivered and visible with the nats CLI.
func TestQuickStartFromTheReadme(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	shown := renderQuickStart("<the token up printed>", quickStartAddrs{api: "127.0.0.1:8080", admin: "127.0.0.1:8081", receiver: "127.0.0.1:8090", nats: "127.0.0.1:4222", data: "./data"})
	if !strings.Contains(string(readme), shown) {
		t.Fatalf("README.md does not show the quick start that up prints:\n%s", shown)
	}
	natsCLI, err := filepath.Abs("../../bin/nats")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(natsCLI); err != nil {
		t.Fatalf("the nats CLI is not installed in bin/ (run `make tools`): %v", err)
	}
	sys := startUp(t, nil)
	// The token was supplied, so the printed script reads it from the environment.
	printed := renderQuickStart(suppliedTokenPlaceholder, sys.quickStartAddrs())
	if !strings.Contains(sys.stdout.String(), printed) {
		t.Fatalf("up did not print the quick start:\n%s", sys.stdout.String())
	}
	script := strings.ReplaceAll(printed, "bin/nats ", natsCLI+" ")
	cmd := exec.Command("bash", "-euo", "pipefail", "-c", script)
	cmd.Env = append(os.Environ(), "EDGEHOOK_ADMIN_TOKEN="+sys.adminToken)
	cmd.Dir = t.TempDir()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("quick start failed: %v\n%s", err, out)
	}
	for _, want := range []string{`"apiKey":"ehk_`, `"status":"delivered"`, `"attempts":1`, `order.created`, `"orderId":42`} {
		if !strings.Contains(string(out), want) {
			t.Errorf("quick start output lacks %s:\n%s", want, out)
		}
	}
}

// TestTargetChangeIsUsedWithinOneSecond changes a tenant's target URL at the admin API;
// the worker's cached config (TTL 30 s) is dropped by the change notice, so the next
// event goes to the new target.
func TestTargetChangeIsUsedWithinOneSecond(t *testing.T) {
	sys := startUp(t, nil)
	tn := sys.createTenant(t)
	send := func() string {
		var ack struct{ EventID string }
		if code := call(t, "POST", "http://"+sys.api+"/v1/events", tn.APIKey, map[string]string{"type": "t"}, &ack); code != 202 {
			t.Fatalf("ingest: %d", code)
		}
		return ack.EventID
	}
	waitStatus := func(id string) {
		deadline := time.Now().Add(5 * time.Second)
		for {
			var st struct{ Status string }
			call(t, "GET", "http://"+sys.api+"/v1/events/"+id, tn.APIKey, nil, &st)
			if st.Status == "delivered" {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("event %s: %s, want delivered", id, st.Status)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitStatus(send()) // the config is now cached

	hits := make(chan string, 4)
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits <- r.Header.Get("webhook-id")
		w.WriteHeader(204)
	}))
	defer target.Close()
	if code := call(t, "PATCH", "http://"+sys.admin+"/v1/tenants/"+tn.TenantID, sys.adminToken, map[string]string{"targetUrl": target.URL + "/new"}, nil); code != 200 {
		t.Fatalf("PATCH target: %d", code)
	}
	changed := time.Now()
	id := send()
	select {
	case got := <-hits:
		if got != id {
			t.Errorf("new target got %s, want %s", got, id)
		}
		if d := time.Since(changed); d > time.Second {
			t.Errorf("new target used after %s, want within 1s", d)
		}
	case <-time.After(time.Second):
		t.Fatal("event not delivered to the new target within 1s of the change")
	}
}
