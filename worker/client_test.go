package worker

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/edgehook/edgehook/webhook"
)

// post sends an empty POST through c.
func post(c *fasthttp.Client, url string) error {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI(url)
	req.Header.SetMethod(fasthttp.MethodPost)
	return c.DoTimeout(req, resp, 2*time.Second)
}

// TestClientRetriesOnceOnStaleKeepAlive: an endpoint that closes each connection after
// answering, without saying so, leaves a dead connection in the pool; the next webhook
// must still get through.
func TestClientRetriesOnceOnStaleKeepAlive(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var conns atomic.Int32
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			go func() {
				defer c.Close()
				req, err := http.ReadRequest(bufio.NewReader(c))
				if err != nil {
					return
				}
				_, _ = io.Copy(io.Discard, req.Body)
				_, _ = io.WriteString(c, "HTTP/1.1 204 No Content\r\n\r\n")
			}()
		}
	}()
	cfg, _ := Config{Concurrency: 4, HTTPTimeout: 2 * time.Second}.withDefaults()
	c := newHTTPClient(cfg, newDialGuard(true, time.Second))
	for i := range 3 {
		if err := post(c, "http://"+ln.Addr().String()+"/hook"); err != nil {
			t.Fatalf("webhook %d: %v", i+1, err)
		}
	}
	if n := conns.Load(); n < 3 {
		t.Errorf("%d connections for 3 webhooks to an endpoint that closes each one", n)
	}
}

func TestPostReadsOnlyABodyPrefix(t *testing.T) {
	big := strings.Repeat("x", 100<<10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/big" {
			_, _ = io.WriteString(w, big)
			return
		}
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = io.WriteString(w, "try later")
	}))
	defer srv.Close()
	cfg, _ := Config{Concurrency: 4, HTTPTimeout: 2 * time.Second}.withDefaults()
	w := &Worker{cfg: cfg, client: newHTTPClient(cfg, newDialGuard(true, time.Second))}
	b := newAttemptBuffers()
	ev := &event{id: "evt_1", tenant: "t1", payload: []byte(`{}`)}
	secret := mustSecret(t)
	for range 2 {
		r := w.post(b, srv.URL+"/big", []webhook.Secret{secret}, ev, time.Now())
		if !r.delivered() || len(r.bodyPrefix) != bodyPrefixBytes || r.lastError != "" {
			t.Errorf("200 with a 100 KiB body: delivered=%v prefix=%d lastError=%q; want delivered with a 1 KiB prefix",
				r.delivered(), len(r.bodyPrefix), r.lastError)
		}
		r = w.post(b, srv.URL+"/small", []webhook.Secret{secret}, ev, time.Now())
		if r.statusCode != 500 || string(r.bodyPrefix) != "try later" || r.lastError != "HTTP 500" {
			t.Errorf("500: status %d prefix %q lastError %q", r.statusCode, r.bodyPrefix, r.lastError)
		}
	}
}
