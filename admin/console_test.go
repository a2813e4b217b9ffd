package admin_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/edgehook/edgehook/admin"
	"github.com/edgehook/edgehook/admin/admintest"
	"github.com/edgehook/edgehook/api/apitest"
	"github.com/edgehook/edgehook/console/consoletest"
	"github.com/edgehook/edgehook/natsconf"
	"github.com/edgehook/edgehook/natsconf/natstest"
	"github.com/edgehook/edgehook/worker/dlq"
)

// consoleEnv is an admin API connected as the NATS user admin, with that user's
// permissions, on the embedded server `edgehook up` runs; op is the operator's
// connection, for what other components would write.
type consoleEnv struct {
	t    testing.TB
	srv  *admintest.Server
	op   jetstream.JetStream
	logs *apitest.Logs
	api  *http.Client
}

func startConsole(t testing.TB, cfg admin.Config) *consoleEnv {
	t.Helper()
	creds := natsconf.Credentials{natsconf.OperatorUser: "operator-password"}
	for _, c := range natsconf.Components {
		creds[string(c)] = string(c) + "-password"
	}
	spec, err := natsconf.SingleServer("127.0.0.1", -1, t.TempDir(), creds)
	if err != nil {
		t.Fatal(err)
	}
	url := natstest.Embedded(t, spec)
	op := connectAs(t, url, natsconf.OperatorUser, creds)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := natsconf.Setup(ctx, op, natsconf.DefaultTopology()); err != nil {
		t.Fatal(err)
	}
	adm := connectAs(t, url, string(natsconf.Admin), creds)
	logs := &apitest.Logs{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("admin logs:\n%s", logs.String())
		}
	})
	srv := admintest.Start(t, adm.Conn(), admintest.Options{Config: cfg,
		Logger: slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	e := &consoleEnv{t: t, srv: srv, op: op, logs: logs, api: &http.Client{Timeout: 15 * time.Second}}
	t.Cleanup(e.api.CloseIdleConnections)
	return e
}

// connectAs connects as user with the inbox prefix of the component of that name.
func connectAs(t testing.TB, url, user string, creds natsconf.Credentials) jetstream.JetStream {
	t.Helper()
	opts := []nats.Option{nats.UserInfo(user, creds[user])}
	if user != natsconf.OperatorUser {
		opts = append(opts, nats.CustomInboxPrefix(natsconf.InboxPrefix(natsconf.Component(user))))
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// browser is a person at the console: a browser-like client and the session's CSRF
// token.
type browser struct {
	*consoletest.Client
	t    testing.TB
	csrf string
}

// signIn signs in to the console at base with token and returns the signed-in browser,
// failing the test unless the console lands on the tenants page.
func signIn(t testing.TB, base, token string) *browser {
	t.Helper()
	b, status, _ := trySignIn(t, base, token)
	if status != http.StatusSeeOther {
		t.Fatalf("sign in: %d", status)
	}
	return b
}

// trySignIn submits the sign-in form with token and returns the answer's status and
// body.
func trySignIn(t testing.TB, base, token string) (*browser, int, string) {
	t.Helper()
	b := &browser{Client: consoletest.NewClient(t, base), t: t}
	p := b.SignIn("/console/", "token", token)
	if p.Status == http.StatusSeeOther {
		if loc := p.Header.Get("Location"); !strings.HasSuffix(loc, "/console/tenants") {
			t.Fatalf("signed in to %s", loc)
		}
		b.csrf = consoletest.CSRF(t, b.Get("/console/tenants"))
	}
	return b, p.Status, p.Body
}

func (b *browser) get(path string) (int, string) {
	b.t.Helper()
	p := b.Get(path)
	return p.Status, p.Body
}

// post submits a form (with the session's CSRF token unless form has one).
func (b *browser) post(path string, form url.Values) (int, string, string) {
	b.t.Helper()
	if form.Get("csrf") == "" {
		form.Set("csrf", b.csrf)
	}
	p := b.Post(path, form)
	return p.Status, p.Body, p.Header.Get("Location")
}

// mustGet reads a page that must answer 200.
func (b *browser) mustGet(path string) string {
	b.t.Helper()
	status, body := b.get(path)
	if status != http.StatusOK {
		b.t.Fatalf("GET %s: %d\n%s", path, status, body)
	}
	return body
}

func TestConsoleListsCreatesAndSuspendsTenants(t *testing.T) {
	e := startConsole(t, admin.Config{})
	var ids []string
	for _, plan := range []string{"free", "pro", "pro", "enterprise"} {
		ids = append(ids, e.srv.CreateTenant(t, e.api, `{"targetUrl":"https://hooks.example/x","plan":"`+plan+`"}`).TenantID)
	}
	b := signIn(t, e.srv.URL, admintest.Token)

	page := b.mustGet("/console/tenants")
	for _, id := range ids {
		if !strings.Contains(page, id) {
			t.Errorf("the tenants page lacks %s", id)
		}
	}
	pro := b.mustGet("/console/tenants?q=pro")
	if strings.Contains(pro, ids[0]) || !strings.Contains(pro, ids[1]) || !strings.Contains(pro, ids[2]) || strings.Contains(pro, ids[3]) {
		t.Errorf("searching pro shows the wrong tenants:\n%s", pro)
	}
	one := b.mustGet("/console/tenants?q=" + ids[3])
	if rows := tenantRowRe.FindAllString(one, -1); len(rows) != 1 || !strings.Contains(rows[0], ids[3]) || !strings.Contains(one, "https://hooks.example/x") {
		t.Errorf("searching an id shows %v", rows)
	}
	if strings.Contains(page, "Target URL</th>") || strings.Contains(page, "https://hooks.example/x") {
		t.Error("the tenant list shows a target URL column it does not fill")
	}
	if status, body := b.get("/console/tenants?cursor=nope"); status != http.StatusBadRequest || !strings.Contains(body, "The page link is not valid.") {
		t.Errorf("a forged cursor: %d\n%s", status, body)
	}

	// Suspend one from the console: the admin API sees it, and the tenant's key is
	// refused a change.
	status, _, loc := b.post("/console/tenants/"+ids[1]+"/status", url.Values{"status": {"suspended"}})
	if status != http.StatusSeeOther || !strings.Contains(loc, "done=status") {
		t.Fatalf("suspend: %d to %s", status, loc)
	}
	if r := apitest.Do(t, e.api, "GET", e.srv.URL+"/v1/tenants/"+ids[1], admintest.Token, ""); !strings.Contains(string(r.Body), `"status":"suspended"`) {
		t.Errorf("after suspending from the console the admin API shows %s", r.Body)
	}
	if page := b.mustGet("/console/tenants?q=suspended"); !strings.Contains(page, ids[1]) || strings.Contains(page, ids[0]) {
		t.Errorf("searching suspended:\n%s", page)
	}
	if status, body, _ := b.post("/console/tenants/ten_nosuchtenant/status", url.Values{"status": {"active"}}); status != http.StatusNotFound {
		t.Errorf("suspending an unknown tenant: %d\n%s", status, body)
	}

	// Create one from the console, as POST /v1/tenants would: its key works at once,
	// a bad target URL gets the API's own reason.
	status, body, _ := b.post("/console/tenants", url.Values{"targetUrl": {"https://hooks.example/new/{tenantId}"}})
	if status != http.StatusCreated {
		t.Fatalf("create: %d\n%s", status, body)
	}
	key := regexp.MustCompile(`id="api-key">(ehk_[^<]+)<`).FindStringSubmatch(body)
	tid := regexp.MustCompile(`id="tenant-id">(ten_[^<]+)<`).FindStringSubmatch(body)
	if key == nil || tid == nil || !strings.Contains(body, "https://hooks.example/new/"+tid[1]) || !strings.Contains(body, "whsec_") {
		t.Fatalf("the created page:\n%s", body)
	}
	if r := apitest.Do(t, e.api, "GET", e.srv.URL+"/v1/tenant", key[1], ""); r.Code != http.StatusOK || !strings.Contains(string(r.Body), `"plan":"free"`) {
		t.Errorf("the new tenant's key: %d %s", r.Code, r.Body)
	}
	if status, body, _ := b.post("/console/tenants", url.Values{"targetUrl": {"ftp://hooks.example/"}}); status != http.StatusBadRequest || !strings.Contains(body, "targetUrl") {
		t.Errorf("a bad target URL: %d\n%s", status, body)
	}
	if strings.Contains(e.logs.String(), key[1]) {
		t.Error("the new API key is in the admin's logs")
	}
}

func TestConsoleRefusesAWrongTokenAndAnExpiredSession(t *testing.T) {
	e := startConsole(t, admin.Config{ConsoleSessionTTL: time.Second})
	_, status, body := trySignIn(t, e.srv.URL, "not-the-admin-token-at-all")
	if status != http.StatusUnauthorized || !strings.Contains(body, "That token was not accepted.") {
		t.Fatalf("a wrong token: %d\n%s", status, body)
	}
	b := signIn(t, e.srv.URL, admintest.Token)
	b.mustGet("/console/dlq")
	// A client that keeps sending the cookie after its Max-Age (the jar drops it).
	cookies := b.Cookies("/console/")
	if len(cookies) != 1 {
		t.Fatalf("the console set cookies %v, want one session cookie", cookies)
	}
	stale := consoletest.NewClient(t, e.srv.URL)
	withStaleCookie := func(method, path string, form url.Values) consoletest.Page {
		req, err := http.NewRequest(method, e.srv.URL+path, strings.NewReader(form.Encode()))
		if err != nil {
			t.Fatal(err)
		}
		if form != nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		req.AddCookie(cookies[0])
		return stale.Do(req)
	}
	deadline := time.Now().Add(10 * time.Second)
	for withStaleCookie(http.MethodGet, "/console/dlq", nil).Status != http.StatusSeeOther {
		if time.Now().After(deadline) {
			t.Fatal("the session outlived its TTL by 9s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if p := withStaleCookie(http.MethodPost, "/console/dlq/replay", url.Values{"id": {"1"}, "csrf": {b.csrf}}); p.Status != http.StatusUnauthorized || !strings.Contains(p.Body, "Your session has ended.") {
		t.Errorf("a replay on an expired session: %d\n%s", p.Status, p.Body)
	}
	// The admin API's own routes and token are unchanged beside the console.
	if r := apitest.Do(t, e.api, "GET", e.srv.URL+"/v1/tenants/ten_x", "wrong", ""); r.Code != http.StatusUnauthorized {
		t.Errorf("the admin API with a wrong token: %d", r.Code)
	}
}

// putDeadLetters writes n dead letters of tenant in the DLQ processor's format, each
// after its advisory-like neighbour (a replay request of another tenant).
func putDeadLetters(t testing.TB, js jetstream.JetStream, tenant string, n int, reason string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var ids []string
	for i := range n {
		d := dlq.DeadLetter{TenantID: tenant, EventID: fmt.Sprintf("evt_%s_%05d", tenant, i), Type: "order.created",
			Attempts: 3, LastStatusCode: 503, LastError: "503 Service Unavailable", Reason: reason,
			StreamSeq: uint64(i + 1), Payload: []byte(`{"n":1}`)}
		if _, err := js.PublishMsg(ctx, d.Msg()); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, d.EventID)
	}
	return ids
}

// tenantRowRe matches the status form of each row of the tenants page.
var tenantRowRe = regexp.MustCompile(`/console/tenants/ten_[0-9a-f]+/status`)

var dlqRowRe = regexp.MustCompile(`id="replay-(\d+)"`)

func TestConsolePagesFiltersAndReplaysDeadLetters(t *testing.T) {
	e := startConsole(t, admin.Config{})
	a := putDeadLetters(t, e.op, "ten_a", 70, dlq.ReasonMaxDeliveries)
	bIDs := putDeadLetters(t, e.op, "ten_b", 3, "terminated: 410 Gone")
	b := signIn(t, e.srv.URL, admintest.Token)

	page := b.mustGet("/console/dlq")
	rows := dlqRowRe.FindAllStringSubmatch(page, -1)
	if len(rows) != 50 || !strings.Contains(page, bIDs[2]) || !strings.Contains(page, "Older") {
		t.Fatalf("the first page has %d rows (want 50, the newest first, and a link to older ones)", len(rows))
	}
	older := regexp.MustCompile(`href="(/console/dlq\?cursor=\d+)"`).FindStringSubmatch(page)
	if older == nil {
		t.Fatal("no link to older dead letters")
	}
	if page2 := b.mustGet(older[1]); len(dlqRowRe.FindAllString(page2, -1)) != 23 || !strings.Contains(page2, a[0]) {
		t.Errorf("the second page has %d rows, want 23 ending with the oldest", len(dlqRowRe.FindAllString(page2, -1)))
	}
	onlyB := b.mustGet("/console/dlq?tenant=ten_b")
	if got := dlqRowRe.FindAllStringSubmatch(onlyB, -1); len(got) != 3 || strings.Contains(onlyB, "ten_a") {
		t.Errorf("filtered by tenant ten_b: %d rows", len(got))
	}
	if page := b.mustGet("/console/dlq?reason=terminated"); len(dlqRowRe.FindAllString(page, -1)) != 3 {
		t.Errorf("filtered by reason: %d rows", len(dlqRowRe.FindAllString(page, -1)))
	}
	if status, _ := b.get("/console/dlq?tenant=ten_a.*"); status != http.StatusBadRequest {
		t.Errorf("a tenant filter with subject wildcards: %d", status)
	}

	// Replay the newest of ten_b and a bogus id: the request is on DLQ as the tenant
	// API's would be; submitting again stores nothing new.
	newest := dlqRowRe.FindStringSubmatch(onlyB)[1]
	for range 2 {
		status, body, _ := b.post("/console/dlq/replay?tenant=ten_b", url.Values{"id": {newest, "999999"}})
		if status != http.StatusOK || !strings.Contains(body, "Replayed 1 dead letter.") || !strings.Contains(body, "no such dead letter") {
			t.Fatalf("replay: %d\n%s", status, body)
		}
	}
	stream, err := e.op.Stream(context.Background(), natsconf.StreamDLQ)
	if err != nil {
		t.Fatal(err)
	}
	req, err := stream.GetLastMsgForSubject(context.Background(), natsconf.ReplaySubject("ten_b"))
	if err != nil {
		t.Fatalf("no replay request on DLQ: %v", err)
	}
	if req.Header.Get(natsconf.HeaderTenant) != "ten_b" || req.Header.Get(natsconf.HeaderEventID) != bIDs[2] {
		t.Errorf("the replay request names %s/%s", req.Header.Get(natsconf.HeaderTenant), req.Header.Get(natsconf.HeaderEventID))
	}
	info, err := stream.Info(context.Background(), jetstream.WithSubjectFilter(natsconf.ReplaySubject("ten_b")))
	if err != nil {
		t.Fatal(err)
	}
	if n := info.State.Subjects[natsconf.ReplaySubject("ten_b")]; n != 1 {
		t.Errorf("%d replay requests stored for two submissions, want 1", n)
	}
}

func TestConsoleShowsTheMesh(t *testing.T) {
	e := startConsole(t, admin.Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Two edges: paris, whose leaf link never came up (EVENTS sources from its domain
	// in vain), and lyon, whose ingest stream this server holds itself, so its source
	// is live.
	topo := natsconf.DefaultTopology()
	if _, err := e.op.CreateStream(ctx, topo.EdgeStreamConfig("lyon")); err != nil {
		t.Fatal(err)
	}
	lyon := natsconf.EventsSource("lyon")
	lyon.Domain = ""
	events, err := e.op.Stream(ctx, natsconf.StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	cfg := events.CachedInfo().Config
	cfg.Sources = append(cfg.Sources, natsconf.EventsSource("paris"), lyon)
	if _, err := e.op.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	if _, err := e.op.Publish(ctx, natsconf.EdgeSubjectPrefix("lyon")+"ten_a", []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		info, err := events.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.State.Msgs == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("EVENTS holds %d messages, want lyon's one", info.State.Msgs)
		}
	}
	for range 2 {
		if _, err := e.op.Publish(ctx, natsconf.EventSubject("ten_a"), []byte(`{}`)); err != nil {
			t.Fatal(err)
		}
	}
	b := signIn(t, e.srv.URL, admintest.Token)
	page := b.mustGet("/console/mesh")
	for _, want := range []string{
		`<td>paris</td><td><span class="link link-down">down</span></td>`,
		`<td>lyon</td><td><span class="link link-up">up</span></td><td>0</td>`,
		"<td>EVENTS</td><td>deliver</td><td>3</td>", "<td>DLQ</td><td>dlq</td>", "leader",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("the mesh page lacks %q:\n%s", want, page)
		}
	}
}
