package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"

	"github.com/edgehook/edgehook/identity"
	"github.com/edgehook/edgehook/natsconf"
	"github.com/edgehook/edgehook/natsconf/natstest"
	"github.com/edgehook/edgehook/vault"
)

const fuzzToken = "fuzz-admin-token-0123456789"

// fuzzRoutes are the requests FuzzAdminRequest sends its bodies to; {id} is a tenant
// the fuzzer created first.
var fuzzRoutes = []struct{ method, path string }{
	{"POST", "/v1/tenants"},
	{"PATCH", "/v1/tenants/{id}"},
	{"POST", "/v1/tenants/{id}/rotate-secret"},
	{"GET", "/v1/tenants/{id}"},
}

// FuzzAdminRequest sends arbitrary JSON bodies to the admin API's routes, through its
// real handler over a real JetStream server and a file-backed config store: it never
// panics nor answers 5xx, every refusal is a 400 in the one error shape, and whatever it
// accepts it stores valid (a target URL validateTargetURL accepts, a known plan and
// status).
func FuzzAdminRequest(f *testing.F) {
	for _, s := range []string{
		`{"targetUrl":"https://hooks.example.com/in"}`, `{"targetUrl":"http://127.0.0.1:9/{tenantId}","plan":"pro"}`,
		`{"targetUrl":"https://h.example:0/"}`, `{"targetUrl":"https://h.example:99999/"}`, `{"plan":"gold"}`,
		`{"status":"suspended"}`, `{"status":"active","plan":"enterprise","targetUrl":"https://x.example/"}`,
		`{}`, `[]`, `null`, `{"targetUrl":5}`, `{"targetUrl":"https://u:p@x.example/"}`, `{"x":1}`, `{"plan":"free"} {}`,
		`{"targetUrl":"{tenantId}"}`, "{\"targetUrl\":\"https://x.example/\x00\"}", ``,
	} {
		for i := range fuzzRoutes {
			f.Add(uint8(i), []byte(s))
		}
	}
	ns := natstest.Start(f, nil)
	nc := ns.Connect(f)
	js, err := jetstream.New(nc)
	if err != nil {
		f.Fatal(err)
	}
	kv, err := js.KeyValue(context.Background(), natsconf.BucketIdentity)
	if err != nil {
		f.Fatal(err)
	}
	dev, err := vault.OpenDevStore(filepath.Join(f.TempDir(), "dev-secrets.json"))
	if err != nil {
		f.Fatal(err)
	}
	store := identity.NewStore(kv)
	reg := prometheus.NewRegistry()
	s, err := New(Config{Token: fuzzToken, StoreTimeout: 5 * time.Second},
		Deps{Identity: store, Configs: dev, NATS: nc, Registerer: reg, Gatherer: reg})
	if err != nil {
		f.Fatal(err)
	}
	h := s.Handler()
	serve := func(method, path string, body []byte) *fasthttp.RequestCtx {
		var ctx fasthttp.RequestCtx
		ctx.Request.Header.SetMethod(method)
		ctx.Request.SetRequestURI(path)
		ctx.Request.Header.Set("Authorization", "Bearer "+fuzzToken)
		ctx.Request.SetBody(body)
		h(&ctx)
		return &ctx
	}
	first := serve("POST", "/v1/tenants", []byte(`{"targetUrl":"https://hooks.example.com/in"}`))
	var tn struct{ TenantID string }
	if err := json.Unmarshal(first.Response.Body(), &tn); err != nil || tn.TenantID == "" {
		f.Fatalf("create the fuzzed tenant: %d %s", first.Response.StatusCode(), first.Response.Body())
	}

	f.Fuzz(func(t *testing.T, route uint8, body []byte) {
		r := fuzzRoutes[int(route)%len(fuzzRoutes)]
		ctx := serve(r.method, strings.ReplaceAll(r.path, "{id}", tn.TenantID), body)
		code, answer := ctx.Response.StatusCode(), ctx.Response.Body()
		if bytes.Contains(answer, []byte(fuzzToken)) {
			t.Fatalf("answer holds the admin token: %s", answer)
		}
		if code >= 300 {
			var eb struct {
				Error struct{ Code, Message string } `json:"error"`
			}
			dec := json.NewDecoder(bytes.NewReader(answer))
			dec.DisallowUnknownFields()
			if code != 400 || dec.Decode(&eb) != nil || eb.Error.Code == "" || eb.Error.Message == "" {
				t.Fatalf("%s %s %q: %d %s", r.method, r.path, body, code, answer)
			}
			return
		}
		var got struct {
			TenantID, TargetURL, Plan, Status string
		}
		if err := json.Unmarshal(answer, &got); err != nil || got.TenantID == "" {
			t.Fatalf("%s %s %q: %d %s is not a tenant answer", r.method, r.path, body, code, answer)
		}
		wc, err := dev.WebhookConfig(context.Background(), got.TenantID)
		if err != nil || validateTargetURL(wc.TargetURL, false) != nil {
			t.Fatalf("%s %q stored target %q (%v)", r.method, body, wc.TargetURL, err)
		}
		rec, err := store.Get(context.Background(), got.TenantID)
		if err != nil || rec.Validate() != nil {
			t.Fatalf("%s %q stored identity %+v (%v)", r.method, body, rec, err)
		}
	})
}
