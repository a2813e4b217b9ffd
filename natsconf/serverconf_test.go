package natsconf_test

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/edgehook/edgehook/natsconf"
	"github.com/edgehook/edgehook/natsconf/natstest"
)

// The rendering tests: the configuration text ServerSpec.Conf writes, parsed back by
// nats-server's own parser (ServerSpec.Options), carries the spec, and every user has
// exactly the Go value natsconf.Permissions gives its component.

// wantUsers checks that o holds exactly the users a server at site needs: the operator
// (unrestricted), each of site's components with natsconf.Permissions(c, site), all in
// natsconf.Account with the passwords of creds, and the system user in the system
// account when sys is set.
func wantUsers(t *testing.T, o *server.Options, site natsconf.Site, creds natsconf.Credentials, sys bool) {
	t.Helper()
	got := map[string]*server.User{}
	for _, u := range o.Users {
		if _, dup := got[u.Username]; dup {
			t.Errorf("user %s rendered twice", u.Username)
		}
		got[u.Username] = u
	}
	want := []string{natsconf.OperatorUser}
	for _, c := range site.Components() {
		want = append(want, string(c))
	}
	if sys {
		want = append(want, natsconf.SystemUser)
	}
	if names := slices.Sorted(maps.Keys(got)); !slices.Equal(names, slices.Sorted(slices.Values(want))) {
		t.Errorf("users %v, want %v", names, want)
	}
	for _, name := range want {
		u := got[name]
		if u == nil {
			continue
		}
		if u.Password != creds[name] {
			t.Errorf("user %s: password %q, want %q", name, u.Password, creds[name])
		}
		wantAccount := natsconf.Account
		if name == natsconf.SystemUser {
			wantAccount = natsconf.SystemAccount
		}
		if u.Account == nil || u.Account.Name != wantAccount {
			t.Errorf("user %s: account %v, want %s", name, u.Account, wantAccount)
		}
		var wantPerms *server.Permissions
		if c := natsconf.Component(name); slices.Contains(site.Components(), c) {
			wantPerms = natsconf.Permissions(c, site)
		}
		if !reflect.DeepEqual(u.Permissions, wantPerms) {
			t.Errorf("user %s: parsed permissions\n%s\nwant natsconf.Permissions\n%s", name, permString(u.Permissions), permString(wantPerms))
		}
	}
	if sys && o.SystemAccount != natsconf.SystemAccount {
		t.Errorf("system account %q, want %s", o.SystemAccount, natsconf.SystemAccount)
	}
}

func permString(p *server.Permissions) string {
	if p == nil {
		return "unrestricted"
	}
	sp := func(s *server.SubjectPermission) string {
		if s == nil {
			return "nil"
		}
		return fmt.Sprintf("allow %q deny %q", s.Allow, s.Deny)
	}
	return fmt.Sprintf("  publish: %s\n  subscribe: %s\n  response: %v", sp(p.Publish), sp(p.Subscribe), p.Response)
}

// wantServer checks the parts every spec has.
func wantServer(t *testing.T, o *server.Options, spec natsconf.ServerSpec) {
	t.Helper()
	if o.ServerName != spec.Name || o.Host != spec.Host || o.Port != spec.Port {
		t.Errorf("server %q on %s:%d, want %q on %s:%d", o.ServerName, o.Host, o.Port, spec.Name, spec.Host, spec.Port)
	}
	if spec.MonitorPort != 0 && (o.HTTPHost != spec.Host || o.HTTPPort != spec.MonitorPort) {
		t.Errorf("monitoring on %s:%d, want %s:%d", o.HTTPHost, o.HTTPPort, spec.Host, spec.MonitorPort)
	}
	if !o.JetStream || o.StoreDir != spec.StoreDir || o.JetStreamDomain != spec.Domain {
		t.Errorf("JetStream %v store %q domain %q, want on, %q, %q", o.JetStream, o.StoreDir, o.JetStreamDomain, spec.StoreDir, spec.Domain)
	}
	if o.MaxPayload != natsconf.DefaultMaxPayload {
		t.Errorf("max payload %d, want %d", o.MaxPayload, natsconf.DefaultMaxPayload)
	}
	if !o.NoSublistCache {
		t.Error("the sublist cache is on, want it off (per-event subjects only miss it)")
	}
}

// wantURLUser checks that u logs in as user with password.
func wantURLUser(t *testing.T, what string, u *url.URL, user, password string) {
	t.Helper()
	pw, _ := u.User.Password()
	if u.User.Username() != user || pw != password {
		t.Errorf("%s %s: user %q password %q, want %q %q", what, u.Redacted(), u.User.Username(), pw, user, password)
	}
}

func hubLayout(nodes int) natsconf.HubLayout {
	l := natsconf.HubLayout{StoreDir: "/var/lib/edgehook/hub"}
	for i := range nodes {
		d := 10 * i
		l.Nodes = append(l.Nodes, natsconf.HubNode{Host: "127.0.0.1", ClientPort: 4222 + d, ClusterPort: 6222 + d, LeafPort: 7422 + d, MonitorPort: 8222 + d})
	}
	return l
}

func TestHubConfCarriesTheSpec(t *testing.T) {
	creds := testCreds()
	layout := hubLayout(3)
	specs, err := layout.Servers(creds)
	if err != nil {
		t.Fatal(err)
	}
	var routes []string
	for _, n := range layout.Nodes {
		routes = append(routes, net.JoinHostPort(n.Host, strconv.Itoa(n.ClusterPort)))
	}
	for i, spec := range specs {
		t.Run(spec.Name, func(t *testing.T) {
			n := layout.Nodes[i]
			if spec.Name != natsconf.NodeName(i+1) || spec.Domain != natsconf.HubDomain || spec.StoreDir != layout.StoreDir+"/"+spec.Name {
				t.Errorf("spec name %q domain %q store %q", spec.Name, spec.Domain, spec.StoreDir)
			}
			o, err := spec.Options()
			if err != nil {
				t.Fatal(err)
			}
			wantServer(t, o, spec)
			wantUsers(t, o, natsconf.HubSite, creds, true)

			if c := o.Cluster; c.Name != natsconf.HubClusterName || c.Host != n.Host || c.Port != n.ClusterPort ||
				c.Username != natsconf.RouteUser || c.Password != creds[natsconf.RouteUser] {
				t.Errorf("cluster %q on %s:%d, user %q password %q", c.Name, c.Host, c.Port, c.Username, c.Password)
			}
			var got []string
			for _, r := range o.Routes {
				got = append(got, r.Host)
				if r.Scheme != "nats-route" {
					t.Errorf("route %s: scheme %q", r.Redacted(), r.Scheme)
				}
				wantURLUser(t, "route", r, natsconf.RouteUser, creds[natsconf.RouteUser])
			}
			if !slices.Equal(got, routes) {
				t.Errorf("routes %v, want %v", got, routes)
			}

			l := o.LeafNode
			if l.Host != n.Host || l.Port != n.LeafPort || len(l.Remotes) != 0 {
				t.Errorf("leaf listener %s:%d, remotes %d", l.Host, l.Port, len(l.Remotes))
			}
			if len(l.Users) != 1 || l.Users[0].Username != natsconf.LeafUser || l.Users[0].Password != creds[natsconf.LeafUser] ||
				l.Users[0].Account == nil || l.Users[0].Account.Name != natsconf.Account {
				t.Errorf("leaf users %+v, want %s bound to %s", l.Users, natsconf.LeafUser, natsconf.Account)
			}
		})
	}
}

func TestEdgeConfCarriesTheSpec(t *testing.T) {
	creds := testCreds()
	hubURLs := []string{"nats-leaf://127.0.0.1:7422", "nats-leaf://[::1]:7432", "hub-3.example:7442"}
	layout := natsconf.EdgeLayout{Name: "fra-1", Host: "127.0.0.1", ClientPort: 4333, MonitorPort: 8333, HubURLs: hubURLs, StoreDir: "/var/lib/edgehook/edge"}
	spec, err := layout.Server(creds)
	if err != nil {
		t.Fatal(err)
	}
	if spec.Name != natsconf.EdgeDomain(layout.Name) || spec.Domain != natsconf.EdgeDomain(layout.Name) || spec.StoreDir != layout.StoreDir {
		t.Errorf("spec name %q domain %q store %q", spec.Name, spec.Domain, spec.StoreDir)
	}
	o, err := spec.Options()
	if err != nil {
		t.Fatal(err)
	}
	wantServer(t, o, spec)
	wantUsers(t, o, natsconf.EdgeSite(layout.Name), creds, true)
	if o.Cluster.Port != 0 || len(o.Routes) != 0 || o.LeafNode.Port != 0 || len(o.LeafNode.Users) != 0 {
		t.Errorf("edge has cluster port %d, %d routes, leaf listener port %d with %d users; want none", o.Cluster.Port, len(o.Routes), o.LeafNode.Port, len(o.LeafNode.Users))
	}
	if len(o.LeafNode.Remotes) != 1 {
		t.Fatalf("%d leaf remotes, want 1", len(o.LeafNode.Remotes))
	}
	r := o.LeafNode.Remotes[0]
	if r.LocalAccount != natsconf.Account {
		t.Errorf("leaf remote binds account %q, want %s", r.LocalAccount, natsconf.Account)
	}
	var got []string
	for _, u := range r.URLs {
		got = append(got, u.Host)
		if u.Scheme != "nats-leaf" {
			t.Errorf("leaf remote %s: scheme %q", u.Redacted(), u.Scheme)
		}
		wantURLUser(t, "leaf remote", u, natsconf.LeafUser, creds[natsconf.LeafUser])
	}
	if want := []string{"127.0.0.1:7422", "[::1]:7432", "hub-3.example:7442"}; !slices.Equal(got, want) {
		t.Errorf("leaf remote hosts %v, want %v", got, want)
	}
}

func TestSingleServerConfCarriesTheSpec(t *testing.T) {
	creds := testCreds()
	for _, sys := range []bool{true, false} {
		t.Run(fmt.Sprintf("system account %v", sys), func(t *testing.T) {
			c := maps.Clone(creds)
			if !sys {
				delete(c, natsconf.SystemUser)
			}
			spec, err := natsconf.SingleServer("127.0.0.1", 4222, "/var/lib/edgehook/data", c)
			if err != nil {
				t.Fatal(err)
			}
			o, err := spec.Options()
			if err != nil {
				t.Fatal(err)
			}
			wantServer(t, o, spec)
			if o.JetStreamDomain != "" {
				t.Errorf("domain %q, want none", o.JetStreamDomain)
			}
			wantUsers(t, o, natsconf.HubSite, c, sys)
			if !sys && o.SystemAccount != "" && o.SystemAccount != server.DEFAULT_SYSTEM_ACCOUNT {
				t.Errorf("system account %q without a system password", o.SystemAccount)
			}
			if o.Cluster.Port != 0 || len(o.Routes) != 0 || o.LeafNode.Port != 0 || len(o.LeafNode.Remotes) != 0 {
				t.Errorf("single server has cluster port %d, %d routes, leaf port %d, %d remotes; want none", o.Cluster.Port, len(o.Routes), o.LeafNode.Port, len(o.LeafNode.Remotes))
			}
		})
	}
	if _, err := natsconf.SingleServer("127.0.0.1", 4222, "/tmp/x", natsconf.Credentials{natsconf.OperatorUser: "x"}); err == nil ||
		!strings.Contains(err.Error(), string(natsconf.Gateway)) {
		t.Errorf("single server without the gateway's password: %v, want an error naming the user", err)
	}
}

// awkwardPasswords need quoting in a config file or escaping in a URL.
var awkwardPasswords = []string{
	`"quoted"`, `it's`, `back\slash\`, `\"`, `\x41`, `$HOME`, `${HOME}`, `$`, `with space`, ` leading and trailing `,
	"tab\tnew\nline\rreturn", "nul\x00del\x7fesc\x1b", `#not a comment`, `// nor this`, `; : , = { } [ ] ( )`,
	`ünïcødé 密码 🔑`, `url:@/?#%20&+`, "invalid \xff utf-8", `include x.conf`, `true`, `123`, `1h`,
}

// strconvOnlyPasswords hold characters strconv.Quote escapes as \u, \U, \a, \b, \f or \v.
var strconvOnlyPasswords = []string{
	"no-break\u00a0space", "zero\u200dwidth", "line\u2028separator", "bom\ufeff", "bell\a", "back\bspace", "form\ffeed", "vertical\vtab",
}

// TestAwkwardPasswordsSurviveQuoting parses and serves users whose passwords hold
// characters a config file or URL must quote, and logs in with them.
func TestAwkwardPasswordsSurviveQuoting(t *testing.T) {
	t.Run("config and URLs", func(t *testing.T) { checkPasswords(t, awkwardPasswords) })
	// strconv.Quote would write these with escapes nats-server's parser rejects.
	t.Run("characters strconv.Quote escapes", func(t *testing.T) { checkPasswords(t, strconvOnlyPasswords) })
}

// checkPasswords gives each user of a single server, a hub node and an edge one of
// passwords, checks every parsed password, route and leaf URL, then starts the single
// server and logs in as each user (and fails to with a wrong password).
func checkPasswords(t *testing.T, passwords []string) {
	t.Helper()
	creds := natsconf.Credentials{}
	names := append(natsconf.HubCredentialNames(), natsconf.EdgeCredentialNames()...)
	for i, n := range names {
		creds[n] = passwords[i%len(passwords)]
	}
	hub, err := hubLayout(2).Servers(creds)
	if err != nil {
		t.Fatal(err)
	}
	edge, err := natsconf.EdgeLayout{Name: "e1", Host: "127.0.0.1", ClientPort: 4333, HubURLs: []string{"nats-leaf://127.0.0.1:7422"}, StoreDir: "/tmp/e"}.Server(creds)
	if err != nil {
		t.Fatal(err)
	}
	for _, spec := range []natsconf.ServerSpec{hub[0], edge} {
		o, err := spec.Options()
		if err != nil {
			t.Fatalf("%s: %v", spec.Name, err)
		}
		for _, u := range append(slices.Clone(o.Users), o.LeafNode.Users...) {
			if u.Password != creds[u.Username] {
				t.Errorf("%s: user %s: password %q, want %q", spec.Name, u.Username, u.Password, creds[u.Username])
			}
		}
		if spec.Cluster != nil && o.Cluster.Password != creds[natsconf.RouteUser] {
			t.Errorf("%s: cluster password %q, want %q", spec.Name, o.Cluster.Password, creds[natsconf.RouteUser])
		}
		for _, r := range o.Routes {
			wantURLUser(t, spec.Name+" route", r, natsconf.RouteUser, creds[natsconf.RouteUser])
		}
		for _, r := range o.LeafNode.Remotes {
			for _, u := range r.URLs {
				wantURLUser(t, spec.Name+" leaf remote", u, natsconf.LeafUser, creds[natsconf.LeafUser])
			}
		}
	}

	spec, err := natsconf.SingleServer("127.0.0.1", -1, t.TempDir(), creds)
	if err != nil {
		t.Fatal(err)
	}
	url := natstest.Embedded(t, spec)
	for _, u := range spec.Users {
		nc, err := nats.Connect(url, nats.UserInfo(u.Name, u.Password), nats.NoReconnect())
		if err != nil {
			t.Errorf("log in as %s with password %q: %v", u.Name, u.Password, err)
			continue
		}
		nc.Close()
		if _, err := nats.Connect(url, nats.UserInfo(u.Name, u.Password+"x"), nats.NoReconnect()); !errors.Is(err, nats.ErrAuthorization) {
			t.Errorf("log in as %s with a wrong password: %v, want an authorization violation", u.Name, err)
		}
	}
}

// TestStartEmbeddedSaysItsPortIsTaken: with the client port already listened on,
// StartEmbedded fails at once, naming the address, rather than after its 30-second
// readiness wait.
func TestStartEmbeddedSaysItsPortIsTaken(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	spec, err := natsconf.SingleServer("127.0.0.1", port, t.TempDir(), testCreds())
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	s, err := natsconf.StartEmbedded(spec)
	if err == nil {
		s.Shutdown()
		t.Fatal("StartEmbedded started a server on a port in use")
	}
	if addr := ln.Addr().String(); !strings.Contains(err.Error(), addr) || !strings.Contains(err.Error(), "address already in use") {
		t.Errorf("error %q does not name %s as in use", err, addr)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("StartEmbedded took %s to say its port is taken", took)
	}
}

func TestHubLayoutValidateNamesTheSetting(t *testing.T) {
	for name, tc := range map[string]struct {
		edit func(*natsconf.HubLayout)
		want []string
	}{
		"port of two nodes": {func(l *natsconf.HubLayout) { l.Nodes[1].ClientPort = l.Nodes[0].ClusterPort },
			[]string{"127.0.0.1:6222", "node 2", "node 1's cluster port"}},
		"two ports of one node": {func(l *natsconf.HubLayout) { l.Nodes[2].MonitorPort = l.Nodes[2].LeafPort },
			[]string{"127.0.0.1:7442", "node 3"}},
		"port out of range": {func(l *natsconf.HubLayout) { l.Nodes[0].LeafPort = 70000 }, []string{"leaf port 70000"}},
		"port missing":      {func(l *natsconf.HubLayout) { l.Nodes[1].MonitorPort = 0 }, []string{"node 2", "monitor port 0"}},
		"host missing":      {func(l *natsconf.HubLayout) { l.Nodes[0].Host = "" }, []string{"node 1", "host"}},
		"no nodes":          {func(l *natsconf.HubLayout) { l.Nodes = nil }, []string{"at least one node"}},
		"no store":          {func(l *natsconf.HubLayout) { l.StoreDir = "" }, []string{"store directory"}},
	} {
		l := hubLayout(3)
		tc.edit(&l)
		err := l.Validate()
		if err == nil {
			t.Errorf("%s: layout accepted", name)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not say %q", name, err, w)
			}
		}
		if _, serr := l.Servers(testCreds()); serr == nil || !strings.Contains(serr.Error(), err.Error()) {
			t.Errorf("%s: Servers returned %v, want Validate's error %q", name, serr, err)
		}
	}
	// The same ports on different hosts are fine: one node per machine.
	l := hubLayout(3)
	for i := range l.Nodes {
		l.Nodes[i] = natsconf.HubNode{Host: fmt.Sprintf("10.0.0.%d", i+1), ClientPort: 4222, ClusterPort: 6222, LeafPort: 7422, MonitorPort: 8222}
	}
	if err := l.Validate(); err != nil {
		t.Errorf("one node per host: %v", err)
	}
	if err := hubLayout(3).Validate(); err != nil {
		t.Errorf("three nodes on one host, distinct ports: %v", err)
	}
	creds := testCreds()
	delete(creds, natsconf.RouteUser)
	if _, err := hubLayout(3).Servers(creds); err == nil || !strings.Contains(err.Error(), natsconf.RouteUser) {
		t.Errorf("hub without the route password: %v, want an error naming %s", err, natsconf.RouteUser)
	}
}

func TestEdgeLayoutRejectsBadEdges(t *testing.T) {
	edge := func(name string) natsconf.EdgeLayout {
		return natsconf.EdgeLayout{Name: name, Host: "127.0.0.1", ClientPort: 4333, HubURLs: []string{"nats-leaf://127.0.0.1:7422"}, StoreDir: "/tmp/e"}
	}
	for _, name := range []string{"", "Fra", "-fra", "fra_1", "fra.1", "fra 1", "fra>", "fra*", "frå", strings.Repeat("a", 33)} {
		_, err := edge(name).Server(testCreds())
		if !errors.Is(err, natsconf.ErrInvalidEdgeName) {
			t.Errorf("edge %q: %v, want ErrInvalidEdgeName", name, err)
		}
	}
	for _, name := range []string{"a", "0", "fra-1", "a-", strings.Repeat("a", 32)} {
		if _, err := edge(name).Server(testCreds()); err != nil {
			t.Errorf("edge %q: %v", name, err)
		}
	}
	noHub := edge("fra")
	noHub.HubURLs = nil
	if _, err := noHub.Server(testCreds()); err == nil || !strings.Contains(err.Error(), "leaf URL") {
		t.Errorf("edge without hub URLs: %v, want an error asking for the hub's leaf URL", err)
	}
	creds := testCreds()
	delete(creds, string(natsconf.Gateway))
	if _, err := edge("fra").Server(creds); err == nil || !strings.Contains(err.Error(), string(natsconf.Gateway)) {
		t.Errorf("edge without the gateway's password: %v, want an error naming the user", err)
	}
}
