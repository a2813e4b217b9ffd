package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nats-io/nats-server/v2/server"
	"golang.org/x/crypto/bcrypt"

	"github.com/edgehook/edgehook/natsconf"
)

// runSetupConfig runs `edgehook setup nats-config args...` with env and returns its
// output and error.
func runSetupConfig(t *testing.T, env map[string]string, args ...string) (string, string, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), append([]string{"edgehook", "setup", "nats-config"}, args...),
		func(k string) string { return env[k] }, &stdout, &stderr)
	return stdout.String(), stderr.String(), err
}

// parsedUsers reads a generated config the way nats-server does and returns its
// edgehook account's users by name.
func parsedUsers(t *testing.T, path string) (*server.Options, map[string]*server.User) {
	t.Helper()
	o, err := server.ProcessConfigFile(path)
	if err != nil {
		t.Fatalf("nats-server cannot read %s: %v", path, err)
	}
	users := map[string]*server.User{}
	for _, u := range o.Users {
		if u.Account != nil && u.Account.Name == natsconf.Account {
			users[u.Username] = u
		}
	}
	return o, users
}

func TestSetupNATSConfigWritesHubAndEdgeConfigs(t *testing.T) {
	dir, edgeDir := t.TempDir(), t.TempDir()
	env := map[string]string{"EDGEHOOK_NATS_PASSWORD_WORKER": `pw "from" env $x`}
	out, errOut, err := runSetupConfig(t, env, "--role", "hub", "--out", dir, "--port-stride", "1", "--client-port", "14222")
	if err != nil {
		t.Fatalf("hub: %v\n%s", err, errOut)
	}
	passwords := map[string]string{}
	for _, name := range natsconf.HubCredentialNames() {
		b, err := os.ReadFile(filepath.Join(dir, name+".password"))
		if name == "worker" {
			if err == nil {
				t.Errorf("worker's password came from the environment, yet %s.password was written", name)
			}
			passwords[name] = env["EDGEHOOK_NATS_PASSWORD_WORKER"]
			continue
		}
		if err != nil {
			t.Fatalf("password of %s: %v", name, err)
		}
		passwords[name] = strings.TrimSpace(string(b))
	}
	for _, pw := range passwords {
		if strings.Contains(out+errOut, pw) {
			t.Fatalf("setup nats-config printed a password:\n%s%s", out, errOut)
		}
	}
	for i := 1; i <= 3; i++ {
		path := filepath.Join(dir, natsconf.NodeName(i)+".conf")
		if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v, mode %v, want 0600", path, err, fi.Mode().Perm())
		}
		o, users := parsedUsers(t, path)
		if o.ServerName != natsconf.NodeName(i) || o.JetStreamDomain != natsconf.HubDomain || o.Port != 14222+i-1 {
			t.Errorf("%s: server %s domain %q port %d", path, o.ServerName, o.JetStreamDomain, o.Port)
		}
		if len(o.Routes) != 3 || o.LeafNode.Port == 0 || o.Cluster.Name != natsconf.HubClusterName {
			t.Errorf("%s: %d routes, leaf port %d, cluster %q", path, len(o.Routes), o.LeafNode.Port, o.Cluster.Name)
		}
		for _, c := range natsconf.Components {
			u := users[string(c)]
			if u == nil {
				t.Fatalf("%s has no user %s", path, c)
			}
			if bcrypt.CompareHashAndPassword([]byte(u.Password), []byte(passwords[string(c)])) != nil {
				t.Errorf("%s: user %s's stored password is not the bcrypt hash of its password", path, c)
			}
		}
		if strings.Contains(readFile(t, path), passwords["worker"]) {
			t.Errorf("%s holds a user's plain password", path)
		}
	}

	// A second run keeps every password.
	if _, errOut, err := runSetupConfig(t, env, "--role", "hub", "--out", dir, "--port-stride", "1"); err != nil {
		t.Fatalf("second run: %v\n%s", err, errOut)
	}
	for name, pw := range passwords {
		if name != "worker" && strings.TrimSpace(readFile(t, filepath.Join(dir, name+".password"))) != pw {
			t.Errorf("second run changed %s's password", name)
		}
	}

	// An edge needs the hub's leaf password: it is never made up.
	_, _, err = runSetupConfig(t, nil, "--role", "edge", "--name", "a", "--hub", "nats-leaf://127.0.0.1:7422", "--out", edgeDir)
	var ue usageError
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), "leaf.password") {
		t.Fatalf("edge without the hub's leaf password: %v, want a usage error naming leaf.password", err)
	}
	if err := os.WriteFile(filepath.Join(edgeDir, "leaf.password"), []byte(passwords["leaf"]+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, errOut, err := runSetupConfig(t, nil, "--role", "edge", "--name", "a", "--hub", "nats-leaf://127.0.0.1:7422", "--out", edgeDir); err != nil {
		t.Fatalf("edge: %v\n%s", err, errOut)
	}
	o, users := parsedUsers(t, filepath.Join(edgeDir, "edge-a.conf"))
	if o.JetStreamDomain != natsconf.EdgeDomain("a") || len(o.LeafNode.Remotes) != 1 {
		t.Fatalf("edge config: domain %q, %d leaf remotes", o.JetStreamDomain, len(o.LeafNode.Remotes))
	}
	remote := o.LeafNode.Remotes[0].URLs[0]
	if pw, _ := remote.User.Password(); remote.User.Username() != natsconf.LeafUser || pw != passwords["leaf"] || remote.Host != "127.0.0.1:7422" {
		t.Errorf("edge's leaf remote is %s, want the hub's leaf user and password at 127.0.0.1:7422", natsconf.RedactURL(remote.String()))
	}
	if _, ok := users["worker"]; ok || users["gateway"] == nil {
		t.Errorf("edge users = %v, want the gateway and no hub component", users)
	}
}

func TestSetupNATSConfigRefusesWhatCannotWork(t *testing.T) {
	for _, tc := range []struct {
		name, want string
		args       []string
	}{
		{"no --out", "--out DIR is required", []string{"--role", "hub"}},
		{"unknown role", `--role must be hub or edge, got "spoke"`, []string{"--role", "spoke"}},
		{"nodes sharing their ports", "nodes on one host need different ports", []string{"--role", "hub"}},
		{"bad edge name", `invalid edge name "A!"`, []string{"--role", "edge", "--name", "A!", "--hub", "nats-leaf://h:7422"}},
		{"edge without a hub", "needs --hub nats-leaf://HOST:PORT", []string{"--role", "edge", "--name", "a"}},
		{"hub URL of another scheme", `--hub "nats://u:xxxxx@h:4222": want nats-leaf://HOST:PORT`, []string{"--role", "edge", "--name", "a", "--hub", "nats://u:secret@h:4222"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "out")
			args := tc.args
			if tc.name != "no --out" {
				args = append(args, "--out", dir)
			}
			_, _, err := runSetupConfig(t, map[string]string{"EDGEHOOK_NATS_PASSWORD_LEAF": "leaf-pw"}, args...)
			var ue usageError
			if !errors.As(err, &ue) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want a usage error saying %q", err, tc.want)
			}
			if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("a refused run wrote %s", dir)
			}
		})
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestNATSURLPasswordsStayOutOfErrors: a password in EDGEHOOK_NATS_URL is redacted in
// the error a failed connection reports.
func TestNATSURLPasswordsStayOutOfErrors(t *testing.T) {
	var stdout, stderr bytes.Buffer
	env := map[string]string{"EDGEHOOK_NATS_URL": "nats://operator:s3cret-in-url@127.0.0.1:1"}
	err := run(context.Background(), []string{"edgehook", "setup", "nats"}, func(k string) string { return env[k] }, &stdout, &stderr)
	if err == nil {
		t.Fatal("setup nats connected to a closed port")
	}
	if all := err.Error() + stdout.String() + stderr.String(); strings.Contains(all, "s3cret-in-url") || !strings.Contains(err.Error(), "operator:xxxxx@127.0.0.1:1") {
		t.Errorf("error %q (output %q): want the URL with its password redacted", err, stdout.String()+stderr.String())
	}
}
