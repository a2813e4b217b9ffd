package nomad

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/nomad/api"
	vaultapi "github.com/hashicorp/vault/api"

	"github.com/edgehook/edgehook/natsconf"
	"github.com/edgehook/edgehook/natsconf/natsproc"
	"github.com/edgehook/edgehook/natsconf/natstest"
	"github.com/edgehook/edgehook/vault"
	"github.com/edgehook/edgehook/vault/vaulttest"
)

// TestHubTasksRunAsTheJobsSayAndGetReady runs each task of the hub-side jobs the way
// Nomad would: the edgehook binary with the job's arguments and nothing in its
// environment but what the job puts there (its env block, its rendered templates, and
// Nomad's runtime values for a node of the test: ports on 127.0.0.1, a secrets
// directory holding a token of the policies its JWT role gives), against a real NATS
// server with the users and passwords of the generated configs and a Vault set up by
// vault.Setup. Each must answer 200 on the path and port its service check probes.
// (The edge gateway needs an edge's leaf server and JetStream domain; the mesh tests
// of cmd/edgehook run it, and the checks above compare its job with the binary.)
func TestHubTasksRunAsTheJobsSayAndGetReady(t *testing.T) {
	d := operatorDeployment(t)

	creds := natsconf.Credentials{}
	for _, name := range natsconf.HubCredentialNames() {
		b, err := os.ReadFile(filepath.Join(d.hubDir, name+".password"))
		if err != nil {
			t.Fatal(err)
		}
		creds[name] = strings.TrimSpace(string(b))
	}
	spec, err := natsconf.SingleServer("127.0.0.1", -1, t.TempDir(), creds)
	if err != nil {
		t.Fatal(err)
	}
	natsURL := natstest.Embedded(t, spec)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := natsconf.Setup(ctx, natstest.ConnectAs(t, natsURL, natsconf.OperatorUser, creds[natsconf.OperatorUser]), natsconf.DefaultTopology()); err != nil {
		t.Fatal(err)
	}

	srv := vaulttest.Start(t)
	cfg := vaultapi.DefaultConfig()
	cfg.Address = srv.Addr()
	root, err := vaultapi.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	root.SetToken(srv.RootToken())
	if _, err := vault.Setup(ctx, root, vault.SetupOptions{NomadJWKSURL: jwksURL(t)}); err != nil {
		t.Fatal(err)
	}

	vars := map[string]string{"hub_nats_url": natsURL, "vault_addr": srv.Addr()}
	for _, j := range loadJobs(t, requiredVars, vars) {
		if strings.Contains(j.file, "edge") {
			continue
		}
		for _, g := range j.job.TaskGroups {
			for _, task := range g.Tasks {
				prog, err := taskProgram(task)
				if err != nil || !prog.edgehook {
					continue
				}
				t.Run(deref(j.job.ID)+"/"+task.Name, func(t *testing.T) {
					runTask(t, ctx, d, root, j.job, g, task, prog)
				})
			}
		}
	}
}

var runtimeRef = regexp.MustCompile(`\$\{([A-Za-z0-9_.]+)\}`)

// runTask starts one task as Nomad would on a node of the test and waits for its
// service check to pass.
func runTask(t *testing.T, ctx context.Context, d *deployment, root *vaultapi.Client, job *api.Job, g *api.TaskGroup, task *api.Task, prog program) {
	if _, err := edgehookHelp(prog.cmd); err != nil {
		t.Fatal(err)
	}
	secrets := t.TempDir()
	runtime := map[string]string{"NOMAD_SECRETS_DIR": secrets}
	for label := range groupPorts(g) {
		port := strconv.Itoa(natsproc.FreePort(t))
		runtime["NOMAD_PORT_"+label] = port
		runtime["NOMAD_ADDR_"+label] = "127.0.0.1:" + port
	}
	if task.Vault != nil {
		// What Nomad obtains with the job's workload identity: a token of the role's
		// policy, written to secrets/vault_token.
		sec, err := root.Logical().ReadWithContext(ctx, "auth/"+vault.DefaultJWTPath+"/role/"+task.Vault.Role)
		if err != nil || sec == nil {
			t.Fatalf("JWT role %s: %v", task.Vault.Role, err)
		}
		var policies []string
		for _, p := range sec.Data["token_policies"].([]any) {
			policies = append(policies, fmt.Sprint(p))
		}
		tok, err := root.Auth().Token().CreateWithContext(ctx, &vaultapi.TokenCreateRequest{Policies: policies, TTL: "1h"})
		if err != nil {
			t.Fatalf("token with policy %v: %v", policies, err)
		}
		if err := os.WriteFile(filepath.Join(secrets, "vault_token"), []byte(tok.Auth.ClientToken), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	env := []string{}
	expand := func(v string) string {
		return runtimeRef.ReplaceAllStringFunc(v, func(ref string) string {
			name := runtimeRef.FindStringSubmatch(ref)[1]
			val, ok := runtime[name]
			if !ok {
				t.Fatalf("the test gives no value for %s", ref)
			}
			return val
		})
	}
	for k, v := range task.Env {
		env = append(env, k+"="+expand(v))
	}
	for _, tmpl := range task.Templates {
		text, err := renderTemplate(tmpl, d.vars, renderEnv{})
		if err != nil {
			t.Fatal(err)
		}
		vals, err := parseEnvFile(text)
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range vals {
			env = append(env, k+"="+v)
		}
	}
	var args []string
	for _, a := range task.Config["args"].([]any) {
		args = append(args, expand(a.(string)))
	}
	var out bytes.Buffer
	cmd := exec.Command(edgehookBinary, args...)
	cmd.Env, cmd.Stdout, cmd.Stderr = env, &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	})

	for _, s := range g.Services {
		if s.TaskName != task.Name {
			continue
		}
		for _, chk := range s.Checks {
			url := "http://" + runtime["NOMAD_ADDR_"+cmpOr(chk.PortLabel, s.PortLabel)] + chk.Path
			if err := waitOK(url, exited); err != nil {
				t.Fatalf("check %s (%s): %v\n%s", chk.Name, url, err, out.String())
			}
		}
	}
}

// waitOK polls url until it answers 200, for at most 30s, or until the process exits.
func waitOK(url string, exited <-chan error) error {
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(30 * time.Second)
	last := "no answer"
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			return fmt.Errorf("the task exited: %v", err)
		default:
		}
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("not ready within 30s: %s", last)
}
