package gateway_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/edgehook/edgehook/gateway"
	"github.com/edgehook/edgehook/natsconf"
)

// TestBadInputs drives every kind of bad request through real HTTP and checks the
// status code and the exact JSON error a client sees.
func TestBadInputs(t *testing.T) {
	e := start(t, options{})
	good := e.createTenant(`{"targetUrl":"http://127.0.0.1:9/hook"}`)
	suspended := e.createTenant(`{"targetUrl":"http://127.0.0.1:9/hook"}`)
	if r := e.do("PATCH", "/v1/tenants/"+suspended.TenantID, testAdminToken, `{"status":"suspended"}`); r.code != 200 {
		t.Fatalf("suspend: %d %s", r.code, r.body)
	}
	e.eventually(time.Second, "suspension visible", func() bool {
		return e.do("POST", "/v1/events", suspended.APIKey, `{}`).code == http.StatusForbidden
	})

	const unauthorizedMsg = "missing or unknown API key"
	oversize := `{"pad":"` + strings.Repeat("x", gateway.DefaultMaxBodyBytes) + `"}`
	type tc struct {
		name           string
		method, path   string
		token, body    string
		headers        []string
		code           int
		errCode        string
		msg            string // exact message, or a substring when msgContains
		msgContains    bool
		allow          string
		retryAfterWant string
	}
	cases := []tc{
		{name: "no key", method: "POST", path: "/v1/events", body: `{}`, code: 401, errCode: "unauthorized", msg: unauthorizedMsg},
		{name: "unknown key", method: "POST", path: "/v1/events", token: "ehk_not-a-real-key", body: `{}`, code: 401, errCode: "unauthorized", msg: unauthorizedMsg},
		{name: "basic auth instead of bearer", method: "POST", path: "/v1/events", body: `{}`, headers: []string{"Authorization", "Basic " + good.APIKey}, code: 401, errCode: "unauthorized", msg: unauthorizedMsg},
		{name: "admin token as API key", method: "POST", path: "/v1/events", token: testAdminToken, body: `{}`, code: 401, errCode: "unauthorized", msg: unauthorizedMsg},
		{name: "unknown key reading an event", method: "GET", path: "/v1/events/evt_x", token: "ehk_nope", code: 401, errCode: "unauthorized", msg: unauthorizedMsg},
		{name: "suspended tenant", method: "POST", path: "/v1/events", token: suspended.APIKey, body: `{}`, code: 403, errCode: "forbidden", msg: "tenant is not active"},
		{name: "suspended tenant changing its config", method: "PATCH", path: "/v1/tenant", token: suspended.APIKey, body: `{"targetUrl":"http://127.0.0.1:9/x"}`, code: 403, errCode: "forbidden", msg: "tenant is not active"},
		{name: "body over the limit", method: "POST", path: "/v1/events", token: good.APIKey, body: oversize, code: 413, errCode: "payload_too_large", msg: fmt.Sprintf("request body exceeds the limit of %d bytes", gateway.DefaultMaxBodyBytes)},
		{name: "empty body", method: "POST", path: "/v1/events", token: good.APIKey, body: ``, code: 400, errCode: "invalid_json", msg: "request body is empty; send a JSON object"},
		{name: "not JSON", method: "POST", path: "/v1/events", token: good.APIKey, body: `hello`, code: 400, errCode: "invalid_json", msg: "request body is not valid JSON: ", msgContains: true},
		{name: "truncated JSON", method: "POST", path: "/v1/events", token: good.APIKey, body: `{"a":1`, code: 400, errCode: "invalid_json", msg: "request body is not valid JSON: ", msgContains: true},
		{name: "bad escape", method: "POST", path: "/v1/events", token: good.APIKey, body: `{"a":"\q"}`, code: 400, errCode: "invalid_json", msg: "request body is not valid JSON: ", msgContains: true},
		{name: "trailing data", method: "POST", path: "/v1/events", token: good.APIKey, body: `{} {}`, code: 400, errCode: "invalid_json", msg: "request body is not valid JSON: ", msgContains: true},
		{name: "raw control character next to an escape", method: "POST", path: "/v1/events", token: good.APIKey, body: "{\"a\":\"\x1d\\b\"}", code: 400, errCode: "invalid_json", msg: "request body is not valid JSON: a string holds an unescaped control character"},
		{name: "raw tab before an escape", method: "POST", path: "/v1/events", token: good.APIKey, body: "{\"a\":\"\tx\\n\"}", code: 400, errCode: "invalid_json", msg: "request body is not valid JSON: a string holds an unescaped control character"},
		{name: "JSON array", method: "POST", path: "/v1/events", token: good.APIKey, body: `[{"a":1}]`, code: 400, errCode: "invalid_json", msg: "request body must be a JSON object"},
		{name: "JSON string", method: "POST", path: "/v1/events", token: good.APIKey, body: `"event"`, code: 400, errCode: "invalid_json", msg: "request body must be a JSON object"},
		{name: "JSON null", method: "POST", path: "/v1/events", token: good.APIKey, body: `null`, code: 400, errCode: "invalid_json", msg: "request body must be a JSON object"},
		{name: "type not a string", method: "POST", path: "/v1/events", token: good.APIKey, body: `{"type":42}`, code: 400, errCode: "invalid_request", msg: `field "type" must be a string of at most 256 bytes without control characters`},
		{name: "type with newline", method: "POST", path: "/v1/events", token: good.APIKey, body: `{"type":"a\nb"}`, code: 400, errCode: "invalid_request", msg: `field "type" must be a string of at most 256 bytes without control characters`},
		{name: "Idempotency-Key too long", method: "POST", path: "/v1/events", token: good.APIKey, body: `{}`, headers: []string{"Idempotency-Key", strings.Repeat("k", 256)}, code: 400, errCode: "invalid_request", msg: "Idempotency-Key must be 1-255 printable ASCII characters"},
		{name: "Idempotency-Key not ASCII", method: "POST", path: "/v1/events", token: good.APIKey, body: `{}`, headers: []string{"Idempotency-Key", "clé"}, code: 400, errCode: "invalid_request", msg: "Idempotency-Key must be 1-255 printable ASCII characters"},
		{name: "unknown event id", method: "GET", path: "/v1/events/evt_doesnotexist", token: good.APIKey, code: 404, errCode: "not_found", msg: "event not found"},
		{name: "malformed event id", method: "GET", path: "/v1/events/a.b.c", token: good.APIKey, code: 404, errCode: "not_found", msg: "event not found"},
		{name: "unknown route", method: "GET", path: "/v1/nope", code: 404, errCode: "not_found", msg: "no such route"},
		{name: "root", method: "GET", path: "/", code: 404, errCode: "not_found", msg: "no such route"},
		{name: "attempts of an unknown event", method: "GET", path: "/v1/events/evt_x/attempts", token: good.APIKey, code: 404, errCode: "not_found", msg: "event not found"},
		{name: "replay of an unknown event", method: "POST", path: "/v1/events/evt_x/replay", token: good.APIKey, code: 404, errCode: "not_found", msg: "event not found"},
		{name: "replay by a suspended tenant", method: "POST", path: "/v1/events/evt_x/replay", token: suspended.APIKey, code: 403, errCode: "forbidden", msg: "tenant is not active"},
		{name: "GET on replay", method: "GET", path: "/v1/events/evt_x/replay", token: good.APIKey, code: 405, errCode: "method_not_allowed", msg: "method not allowed on this route", allow: "POST"},
		{name: "below an event", method: "GET", path: "/v1/events/evt_x/nope", token: good.APIKey, code: 404, errCode: "not_found", msg: "no such route"},
		{name: "trailing slash", method: "GET", path: "/v1/tenants/" + good.TenantID + "/", token: testAdminToken, code: 404, errCode: "not_found", msg: "no such route"},
		{name: "GET on ingest", method: "GET", path: "/v1/events", token: good.APIKey, code: 405, errCode: "method_not_allowed", msg: "method not allowed on this route", allow: "POST"},
		{name: "DELETE tenant", method: "DELETE", path: "/v1/tenant", token: good.APIKey, code: 405, errCode: "method_not_allowed", msg: "method not allowed on this route", allow: "GET, PATCH"},
		{name: "DELETE admin tenant", method: "DELETE", path: "/v1/tenants/" + good.TenantID, token: testAdminToken, code: 405, errCode: "method_not_allowed", msg: "method not allowed on this route", allow: "GET, PATCH"},
		{name: "GET rotate-secret", method: "GET", path: "/v1/tenants/" + good.TenantID + "/rotate-secret", token: testAdminToken, code: 405, errCode: "method_not_allowed", msg: "method not allowed on this route", allow: "POST"},
		{name: "admin without token", method: "POST", path: "/v1/tenants", body: `{"targetUrl":"http://127.0.0.1:9/"}`, code: 401, errCode: "unauthorized", msg: "missing or invalid admin token"},
		{name: "admin with wrong token", method: "POST", path: "/v1/tenants", token: testAdminToken + "x", body: `{"targetUrl":"http://127.0.0.1:9/"}`, code: 401, errCode: "unauthorized", msg: "missing or invalid admin token"},
		{name: "admin with a tenant key", method: "GET", path: "/v1/tenants/" + good.TenantID, token: good.APIKey, code: 401, errCode: "unauthorized", msg: "missing or invalid admin token"},
		{name: "admin rotate without token", method: "POST", path: "/v1/tenants/" + good.TenantID + "/rotate-secret", code: 401, errCode: "unauthorized", msg: "missing or invalid admin token"},
	}
	const notAllowed = `field "targetUrl" is not allowed: `
	const targetMsg = notAllowed + "scheme must be http or https"
	const requiredMsg = `field "targetUrl" is required: an absolute http or https URL`
	for u, reason := range map[string]string{
		`ftp://example.com/x`: "scheme must be http or https", `not a url`: "scheme must be http or https",
		`http://`: "no host", `/relative/path`: "scheme must be http or https", `http:///nohost`: "no host",
		`https://user:pw@example.com/`:    "credentials in the URL (user:password@) are not allowed",
		`https://hooks.example.com:99999`: "port 99999 is out of range 1-65535",
	} {
		cases = append(cases, tc{name: "bad targetUrl " + u, method: "POST", path: "/v1/tenants", token: testAdminToken,
			body: fmt.Sprintf(`{"targetUrl":%q}`, u), code: 400, errCode: "invalid_request", msg: notAllowed + reason})
	}
	cases = append(cases,
		tc{name: "targetUrl missing", method: "POST", path: "/v1/tenants", token: testAdminToken, body: `{"plan":"pro"}`, code: 400, errCode: "invalid_request", msg: requiredMsg},
		tc{name: "targetUrl empty", method: "POST", path: "/v1/tenants", token: testAdminToken, body: `{"targetUrl":""}`, code: 400, errCode: "invalid_request", msg: requiredMsg},
		tc{name: "targetUrl not a string", method: "POST", path: "/v1/tenants", token: testAdminToken, body: `{"targetUrl":5}`, code: 400, errCode: "invalid_request", msg: `field "targetUrl" must be a string`},
		tc{name: "bad plan", method: "POST", path: "/v1/tenants", token: testAdminToken, body: `{"targetUrl":"https://example.com/h","plan":"gold"}`, code: 400, errCode: "invalid_request", msg: `field "plan" must be one of free, pro, enterprise`},
		tc{name: "unknown field", method: "POST", path: "/v1/tenants", token: testAdminToken, body: `{"targetUrl":"https://example.com/h","webhookSecret":"x"}`, code: 400, errCode: "invalid_request", msg: `unknown field "webhookSecret"`},
		tc{name: "admin body not JSON", method: "POST", path: "/v1/tenants", token: testAdminToken, body: `targetUrl=x`, code: 400, errCode: "invalid_json", msg: "request body is not valid JSON: ", msgContains: true},
		tc{name: "admin body an array", method: "POST", path: "/v1/tenants", token: testAdminToken, body: `[]`, code: 400, errCode: "invalid_json", msg: "request body must be a JSON object"},
		tc{name: "patch bad status", method: "PATCH", path: "/v1/tenants/" + good.TenantID, token: testAdminToken, body: `{"status":"deleted"}`, code: 400, errCode: "invalid_request", msg: `field "status" must be active or suspended`},
		tc{name: "patch bad plan", method: "PATCH", path: "/v1/tenants/" + good.TenantID, token: testAdminToken, body: `{"plan":"gold"}`, code: 400, errCode: "invalid_request", msg: `field "plan" must be one of free, pro, enterprise`},
		tc{name: "patch bad targetUrl", method: "PATCH", path: "/v1/tenants/" + good.TenantID, token: testAdminToken, body: `{"targetUrl":"gopher://x"}`, code: 400, errCode: "invalid_request", msg: targetMsg},
		tc{name: "patch nothing", method: "PATCH", path: "/v1/tenants/" + good.TenantID, token: testAdminToken, body: `{}`, code: 400, errCode: "invalid_request", msg: `set at least one of "status", "plan", "targetUrl"`},
		tc{name: "patch unknown tenant", method: "PATCH", path: "/v1/tenants/ten_nope", token: testAdminToken, body: `{"plan":"pro"}`, code: 404, errCode: "not_found", msg: "tenant not found"},
		tc{name: "get unknown tenant", method: "GET", path: "/v1/tenants/ten_nope", token: testAdminToken, code: 404, errCode: "not_found", msg: "tenant not found"},
		tc{name: "get tenant with bad id", method: "GET", path: "/v1/tenants/a.b", token: testAdminToken, code: 404, errCode: "not_found", msg: "tenant not found"},
		tc{name: "rotate unknown tenant", method: "POST", path: "/v1/tenants/ten_nope/rotate-secret", token: testAdminToken, code: 404, errCode: "not_found", msg: "webhook configuration not found"},
		tc{name: "tenant patch bad targetUrl", method: "PATCH", path: "/v1/tenant", token: good.APIKey, body: `{"targetUrl":"javascript:alert(1)"}`, code: 400, errCode: "invalid_request", msg: targetMsg},
		tc{name: "tenant patch missing targetUrl", method: "PATCH", path: "/v1/tenant", token: good.APIKey, body: `{}`, code: 400, errCode: "invalid_request", msg: `field "targetUrl" is required`},
	)

	var unauthorizedBody []byte
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := e.do(c.method, c.path, c.token, c.body, c.headers...)
			if r.code != c.code {
				t.Fatalf("status %d, want %d; body %s", r.code, c.code, r.body)
			}
			code, msg := r.errorBody(t)
			if code != c.errCode {
				t.Errorf("error code %q, want %q", code, c.errCode)
			}
			if c.msgContains && !strings.Contains(msg, c.msg) || !c.msgContains && msg != c.msg {
				t.Errorf("error message %q, want %q", msg, c.msg)
			}
			if got := r.header.Get("Allow"); got != c.allow {
				t.Errorf("Allow = %q, want %q", got, c.allow)
			}
			if c.code == 401 && c.msg == unauthorizedMsg {
				// Missing and unknown keys must be indistinguishable.
				if unauthorizedBody == nil {
					unauthorizedBody = r.body
				} else if string(r.body) != string(unauthorizedBody) {
					t.Errorf("401 body %s differs from %s", r.body, unauthorizedBody)
				}
			}
		})
	}
	// Nothing above may have been stored.
	if n := e.subjectCount(good.TenantID); n != 0 {
		t.Errorf("EVENTS holds %d messages of the tenant after bad requests only", n)
	}
}

// TestBodyFarOverLimit announces a body much larger than the limit: fasthttp refuses
// it before reading, and the client still gets the JSON 413.
func TestBodyFarOverLimit(t *testing.T) {
	e := start(t, options{})
	c := e.createTenant(`{"targetUrl":"http://127.0.0.1:9/hook"}`)
	conn, err := net.Dial("tcp", strings.TrimPrefix(e.base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(conn, "POST /v1/events HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n{",
		c.APIKey, 64<<20)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	if _, err := bufio.NewReader(resp.Body).WriteTo(&b); err != nil {
		t.Fatal(err)
	}
	r := response{code: resp.StatusCode, header: resp.Header, body: []byte(b.String())}
	if r.code != http.StatusRequestEntityTooLarge {
		t.Fatalf("status %d, want 413; body %s", r.code, r.body)
	}
	if code, _ := r.errorBody(t); code != "payload_too_large" {
		t.Errorf("code %q", code)
	}
}

// TestJetStreamUnavailable: when JetStream cannot store an event the client gets 503
// with Retry-After, never a 202.
func TestJetStreamUnavailable(t *testing.T) {
	check := func(t *testing.T, r response) {
		t.Helper()
		if r.code != http.StatusServiceUnavailable {
			t.Fatalf("status %d, want 503; body %s", r.code, r.body)
		}
		if ra := r.header.Get("Retry-After"); ra != "1" {
			t.Errorf("Retry-After = %q, want 1", ra)
		}
		code, msg := r.errorBody(t)
		if code != "unavailable" || msg != "event store is unavailable; retry later" {
			t.Errorf("error %q %q", code, msg)
		}
	}

	t.Run("EVENTS stream deleted", func(t *testing.T) {
		e := start(t, options{})
		c := e.createTenant(`{"targetUrl":"http://127.0.0.1:9/hook"}`)
		e.ingest(c.APIKey, `{"n":1}`)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := e.js.DeleteStream(ctx, natsconf.StreamEvents); err != nil {
			t.Fatal(err)
		}
		check(t, e.do("POST", "/v1/events", c.APIKey, `{"n":2}`))
		check(t, e.do("POST", "/v1/events", c.APIKey, `{"n":3}`, "Idempotency-Key", "k1"))
	})

	t.Run("NATS server down", func(t *testing.T) {
		e := start(t, options{cfg: gateway.Config{PublishTimeout: 300 * time.Millisecond}})
		c := e.createTenant(`{"targetUrl":"http://127.0.0.1:9/hook"}`)
		e.ingest(c.APIKey, `{"n":1}`)
		if r := e.do("GET", "/readyz", "", ""); r.code != 200 {
			t.Fatalf("readyz before: %d %s", r.code, r.body)
		}
		e.nats.Shutdown()
		e.nats.WaitForShutdown()
		begin := time.Now()
		check(t, e.do("POST", "/v1/events", c.APIKey, `{"n":2}`))
		if d := time.Since(begin); d > 3*time.Second {
			t.Errorf("503 took %s; the publish timeout is 300ms", d)
		}
		r := e.do("GET", "/readyz", "", "")
		if r.code != http.StatusServiceUnavailable {
			t.Errorf("readyz with NATS down: %d %s", r.code, r.body)
		}
		if r := e.do("GET", "/healthz", "", ""); r.code != 200 {
			t.Errorf("healthz with NATS down: %d", r.code)
		}
	})
}
