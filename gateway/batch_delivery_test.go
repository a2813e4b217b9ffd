package gateway_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/edgehook/edgehook/webhook"
	"github.com/edgehook/edgehook/worker"
)

// TestBatchEventsAreDelivered: every event of a batch reaches the tenant's endpoint
// through a real worker, once, signed, with its own id and body.
func TestBatchEventsAreDelivered(t *testing.T) {
	e := start(t, options{})
	var (
		mu       sync.Mutex
		secret   webhook.Secret
		received = map[string]string{} // webhook-id -> body
		bad      []string
	)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	endpoint := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		id := r.Header.Get(webhook.HeaderID)
		mu.Lock()
		defer mu.Unlock()
		if err := webhook.Verify(id, r.Header.Get(webhook.HeaderTimestamp), r.Header.Get(webhook.HeaderSignature), body, time.Now(), 5*time.Minute, secret); err != nil {
			bad = append(bad, id+": "+err.Error())
		}
		if _, dup := received[id]; dup {
			bad = append(bad, id+": delivered twice")
		}
		received[id] = string(body)
		w.WriteHeader(http.StatusNoContent)
	})}
	go endpoint.Serve(ln)
	t.Cleanup(func() { endpoint.Close() })

	c := e.createTenant(`{"targetUrl":"http://` + ln.Addr().String() + `/hook"}`)
	mu.Lock()
	secret, err = webhook.ParseSecret(c.WebhookSecret)
	mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}

	w, err := worker.New(worker.Config{AllowPrivateTargets: true, DrainTimeout: 2 * time.Second},
		worker.Deps{JS: e.js, Configs: e.configs, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("worker Run: %v", err)
		}
	})

	const n = 50
	events := make([]string, n)
	keys := make([]string, n)
	for i := range events {
		events[i] = `{"type":"order.created","i":` + strconv.Itoa(i) + `}`
		if i%2 == 0 {
			keys[i] = "order-" + strconv.Itoa(i)
		}
	}
	a, _ := e.postBatch(c.APIKey, batchBody(events, keys))
	e.eventually(20*time.Second, "every event of the batch delivered", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(received) >= n
	})
	for i, ev := range a.Events {
		e.eventually(10*time.Second, "status delivered", func() bool {
			r := e.do("GET", "/v1/events/"+ev.EventID, c.APIKey, "")
			return r.code == http.StatusOK && r.json(t)["status"] == "delivered"
		})
		mu.Lock()
		got, ok := received[ev.EventID]
		mu.Unlock()
		if !ok || got != events[i] {
			t.Errorf("event %d (%s) delivered as %q (%v), want %q", i, ev.EventID, got, ok, events[i])
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(bad) > 0 || len(received) != n {
		t.Errorf("%d deliveries for %d events; faults: %v", len(received), n, bad)
	}
}
