package admin_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/edgehook/edgehook/admin"
	"github.com/edgehook/edgehook/admin/admintest"
	"github.com/edgehook/edgehook/identity"
	"github.com/edgehook/edgehook/natsconf"
	"github.com/edgehook/edgehook/natsconf/natstest"
)

// TestHealthAndMetrics: the admin API answers health and readiness without a token,
// counts its requests by route pattern under server="admin", and refuses everything
// else without the admin token.
func TestHealthAndMetrics(t *testing.T) {
	e := start(t, admintest.Options{})
	for _, p := range []string{"/healthz", "/readyz"} {
		if r := e.do("GET", p, "", ""); r.Code != 200 || r.Header.Get("Content-Type") != "application/json" {
			t.Errorf("%s: %d %s", p, r.Code, r.Body)
		}
	}
	c := e.createTenant(`{"targetUrl":"https://hooks.example.com/in"}`)
	e.do("GET", "/v1/tenants/"+c.TenantID, testAdminToken, "")
	if r := e.do("GET", "/v1/tenants/"+c.TenantID, c.APIKey, ""); r.Code != 401 {
		t.Errorf("a tenant key at the admin API: %d", r.Code)
	}
	e.do("GET", "/v1/events", "", "")
	r := e.do("GET", "/metrics", "", "")
	text := string(r.Body)
	for _, want := range []string{
		`edgehook_http_requests_total{code="201",route="/v1/tenants",server="admin"} 1`,
		`edgehook_http_requests_total{code="200",route="/v1/tenants/{id}",server="admin"} 1`,
		`edgehook_http_requests_total{code="401",route="/v1/tenants/{id}",server="admin"} 1`,
		`edgehook_http_requests_total{code="404",route="unmatched",server="admin"} 1`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if strings.Contains(text, c.TenantID) {
		t.Errorf("metrics name a tenant")
	}
}

// TestConfigChangesAreAnnounced: every webhook configuration write (creation, a new
// target, a rotation) is announced on edgehook.config.changed.<tenantId>, which workers
// and receivers follow to drop their cached copy; a change of plan only is not.
func TestConfigChangesAreAnnounced(t *testing.T) {
	e := start(t, admintest.Options{})
	nc := e.nats.Connect(t)
	sub, err := nc.SubscribeSync(natsconf.ConfigChangedPrefix + "*")
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	c := e.createTenant(`{"targetUrl":"https://hooks.example.com/in"}`)
	for _, req := range [][3]string{
		{"PATCH", "/v1/tenants/" + c.TenantID, `{"targetUrl":"https://hooks.example.com/v2"}`},
		{"PATCH", "/v1/tenants/" + c.TenantID, `{"plan":"pro"}`},
		{"POST", "/v1/tenants/" + c.TenantID + "/rotate-secret", ""},
	} {
		if r := e.do(req[0], req[1], testAdminToken, req[2]); r.Code != 200 {
			t.Fatalf("%s %s: %d %s", req[0], req[1], r.Code, r.Body)
		}
	}
	for i := range 3 {
		m, err := sub.NextMsg(5 * time.Second)
		if err != nil {
			t.Fatalf("notice %d: %v", i+1, err)
		}
		if m.Subject != natsconf.ConfigChangedPrefix+c.TenantID {
			t.Errorf("notice on %s", m.Subject)
		}
	}
	if m, err := sub.NextMsg(300 * time.Millisecond); err == nil {
		t.Errorf("a fourth notice, on %s, for a change of plan only", m.Subject)
	}
}

// TestTargetPortOutOfRange: a target URL's port must be 1-65535.
func TestTargetPortOutOfRange(t *testing.T) {
	e := start(t, admintest.Options{})
	for _, port := range []string{"0", "65536", "99999"} {
		r := e.do("POST", "/v1/tenants", testAdminToken, `{"targetUrl":"https://hooks.example.com:`+port+`/in"}`)
		if code, msg := r.ErrorBody(t); r.Code != 400 || code != "invalid_request" || msg != `field "targetUrl" is not allowed: port `+port+` is out of range 1-65535` {
			t.Errorf("port %s: %d %s", port, r.Code, r.Body)
		}
	}
	if n := e.storedConfigs(); n != 0 {
		t.Errorf("%d configs stored", n)
	}
	e.createTenant(`{"targetUrl":"https://hooks.example.com:65535/in"}`)
}

// TestPrivateTargetsAreRefusedWhenSet: unless the admin API allows private targets
// (as `up` does), a target URL naming a loopback, private or link-local address or a
// localhost name is refused when it is set, with the class named, and nothing is stored;
// allowed, the same URLs are accepted.
func TestPrivateTargetsAreRefusedWhenSet(t *testing.T) {
	refusing := start(t, admintest.Options{RefusePrivateTargets: true})
	good := refusing.createTenant(`{"targetUrl":"https://hooks.example.com/in"}`)
	for u, class := range map[string]string{
		"http://127.0.0.1:9/hook":    "host is a loopback address",
		"http://10.1.2.3/hook":       "host is a private address",
		"http://169.254.169.254/":    "host is a link-local address",
		"http://[::1]:8080/":         "host is a loopback address",
		"http://localhost:8080/hook": "host is a loopback name (localhost)",
	} {
		want := `field "targetUrl" is not allowed: ` + class
		r := refusing.do("POST", "/v1/tenants", testAdminToken, `{"targetUrl":"`+u+`"}`)
		if code, msg := r.ErrorBody(t); r.Code != 400 || code != "invalid_request" || msg != want {
			t.Errorf("create with %s: %d %s, want 400 %q", u, r.Code, r.Body, want)
		}
		r = refusing.do("PATCH", "/v1/tenants/"+good.TenantID, testAdminToken, `{"targetUrl":"`+u+`"}`)
		if code, msg := r.ErrorBody(t); r.Code != 400 || code != "invalid_request" || msg != want {
			t.Errorf("patch to %s: %d %s, want 400 %q", u, r.Code, r.Body, want)
		}
	}
	if n := refusing.storedConfigs(); n != 1 {
		t.Errorf("%d configs stored, want only the good tenant's", n)
	}
	allowing := start(t, admintest.Options{})
	allowing.createTenant(`{"targetUrl":"http://127.0.0.1:9/hook"}`)
	allowing.createTenant(`{"targetUrl":"http://localhost:8080/hook"}`)
}

// TestNewValidates: a configuration that cannot work is refused with an error naming
// the setting.
func TestNewValidates(t *testing.T) {
	ns := natstest.Start(t, nil)
	nc := ns.Connect(t)
	kv, err := ns.JetStream(t).KeyValue(context.Background(), natsconf.BucketIdentity)
	if err != nil {
		t.Fatal(err)
	}
	srv := admintest.Start(t, nc, admintest.Options{})
	reg := prometheus.NewRegistry()
	ok := admin.Deps{Identity: identity.NewStore(kv), Configs: srv.Configs, NATS: nc, Registerer: reg, Gatherer: reg}
	token := admintest.Token
	for _, c := range []struct {
		name    string
		cfg     admin.Config
		deps    func(admin.Deps) admin.Deps
		setting string
	}{
		{"no token", admin.Config{}, nil, "Token"},
		{"short token", admin.Config{Token: "short"}, nil, "Token"},
		{"negative body limit", admin.Config{Token: token, MaxBodyBytes: -1}, nil, "MaxBodyBytes"},
		{"negative rotation window", admin.Config{Token: token, RotationWindow: -time.Hour}, nil, "RotationWindow"},
		{"negative store timeout", admin.Config{Token: token, StoreTimeout: -time.Second}, nil, "StoreTimeout"},
		{"no identity", admin.Config{Token: token}, func(d admin.Deps) admin.Deps { d.Identity = nil; return d }, "Deps.Identity"},
		{"no configs", admin.Config{Token: token}, func(d admin.Deps) admin.Deps { d.Configs = nil; return d }, "Deps.Configs"},
		{"no NATS", admin.Config{Token: token}, func(d admin.Deps) admin.Deps { d.NATS = nil; return d }, "Deps.NATS"},
		{"no registerer", admin.Config{Token: token}, func(d admin.Deps) admin.Deps { d.Registerer = nil; return d }, "Deps.Registerer"},
	} {
		t.Run(c.name, func(t *testing.T) {
			d := ok
			if c.deps != nil {
				d = c.deps(d)
			}
			_, err := admin.New(c.cfg, d)
			if !errors.Is(err, admin.ErrInvalidConfig) || !strings.Contains(err.Error(), c.setting) {
				t.Fatalf("err = %v, want ErrInvalidConfig naming %s", err, c.setting)
			}
			if strings.Contains(err.Error(), token) {
				t.Errorf("error shows the token")
			}
		})
	}
	if _, err := admin.New(admin.Config{Token: token}, ok); err != nil {
		t.Fatalf("valid config refused: %v", err)
	}
}
