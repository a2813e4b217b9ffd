package nomad

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/nomad/api"
	vaultapi "github.com/hashicorp/vault/api"
	"github.com/zclconf/go-cty/cty"

	"github.com/edgehook/edgehook/natsconf/natsproc"
	"github.com/edgehook/edgehook/vault"
	"github.com/edgehook/edgehook/vault/vaulttest"
)

// The jobs the issue asks for, by file: their id and type.
var wantJobs = map[string]struct{ id, typ string }{
	"admin.nomad.hcl":    {"edgehook-admin", "service"},
	"edge.nomad.hcl":     {"edgehook-edge", "system"},
	"hub-nats.nomad.hcl": {"edgehook-hub-nats", "service"},
	"receiver.nomad.hcl": {"edgehook-receiver", "service"},
	"worker.nomad.hcl":   {"edgehook-worker", "service"},
}

// TestJobFilesDecode: every job file decodes into api.Job with its defaults, and every
// variable a deployment sets reaches the job.
func TestJobFilesDecode(t *testing.T) {
	if got := Files(); !slices.Equal(got, []string{"admin.nomad.hcl", "edge.nomad.hcl", "hub-nats.nomad.hcl", "receiver.nomad.hcl", "worker.nomad.hcl"}) {
		t.Fatalf("job files: %v", got)
	}
	for _, j := range loadJobs(t) {
		want := wantJobs[j.file]
		if deref(j.job.ID) != want.id || deref(j.job.Type) != want.typ {
			t.Errorf("%s: job %s of type %s, want %s of type %s", j.file, deref(j.job.ID), deref(j.job.Type), want.id, want.typ)
		}
		if !slices.Equal(j.job.Datacenters, []string{"*"}) {
			t.Errorf("%s: datacenters %v by default, want [*]", j.file, j.job.Datacenters)
		}
		if j.job.Update == nil || deref(j.job.Update.MaxParallel) != 1 || deref(j.job.Update.HealthCheck) != "checks" {
			t.Errorf("%s: want a rolling update, one at a time, health-checked: %+v", j.file, j.job.Update)
		}
		if want.typ == "service" && !strings.Contains(j.file, "hub") && !deref(j.job.Update.AutoRevert) {
			t.Errorf("%s: a stateless service job should auto-revert a failed update", j.file)
		}
	}

	byFile := map[string]*api.Job{}
	for _, j := range loadJobs(t, requiredVars, overrideVars) {
		byFile[j.file] = j.job
		if !slices.Equal(j.job.Datacenters, []string{"eu-west-1", "eu-west-2"}) {
			t.Errorf("%s: datacenters %v, want the -var's", j.file, j.job.Datacenters)
		}
	}
	count := func(file, group string) int {
		for _, g := range byFile[file].TaskGroups {
			if deref(g.Name) == group {
				return deref(g.Count)
			}
		}
		t.Fatalf("%s has no group %s", file, group)
		return 0
	}
	for _, c := range []struct {
		file, group string
		want        int
	}{{"worker.nomad.hcl", "worker", 4}, {"worker.nomad.hcl", "dlq", 2}, {"receiver.nomad.hcl", "receiver", 3}, {"admin.nomad.hcl", "admin", 2}, {"hub-nats.nomad.hcl", "nats", 3}} {
		if got := count(c.file, c.group); got != c.want {
			t.Errorf("%s group %s: count %d, want %d", c.file, c.group, got, c.want)
		}
	}
	edge := byFile["edge.nomad.hcl"]
	if got := groupPorts(edge.TaskGroups[0])["http"]; got != 18080 {
		t.Errorf("edge gateway port %d, want the -var's 18080", got)
	}
	if c := edge.Constraints[0]; c.LTarget != "${node.class}" || c.RTarget != "edge-pop" {
		t.Errorf("edge constraint %+v, want ${node.class} = edge-pop", c)
	}
	worker := byFile["worker.nomad.hcl"].TaskGroups[0].Tasks[0]
	if worker.Env["EDGEHOOK_NATS_URL"] != requiredVars["hub_nats_url"] || worker.Env["EDGEHOOK_CONCURRENCY"] != "512" || worker.Env["VAULT_ADDR"] != requiredVars["vault_addr"] {
		t.Errorf("worker env %v: want the -var's hub address, concurrency and Vault address", worker.Env)
	}
	if got := deref(worker.Artifacts[0].GetterSource); got != requiredVars["edgehook_artifact"] {
		t.Errorf("worker artifact %q, want the -var's", got)
	}
	hubTask := byFile["hub-nats.nomad.hcl"].TaskGroups[0].Tasks[0]
	if got := deref(hubTask.Artifacts[0].GetterSource); got != overrideVars["nats_artifact"] {
		t.Errorf("hub nats-server artifact %q, want the -var's", got)
	}
}

// TestJobFilesNeedTheirRequiredVariables: a job whose artifact, hub address or Vault
// address is not given is refused with the variable's name, never run with a blank.
func TestJobFilesNeedTheirRequiredVariables(t *testing.T) {
	for _, name := range Files() {
		src, _ := Source(name)
		decls, err := Variables(name, src)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range decls {
			if d.Default != cty.NilVal {
				continue
			}
			vars := varsFor(t, name, src, requiredVars)
			delete(vars, d.Name)
			_, err := Parse(name, src, vars)
			if err == nil || !strings.Contains(err.Error(), `variable "`+d.Name+`" has no default`) {
				t.Errorf("%s without %s: %v, want an error naming it", name, d.Name, err)
			}
		}
	}
	src, _ := Source("worker.nomad.hcl")
	vars := varsFor(t, "worker.nomad.hcl", src, requiredVars)
	vars["worker_cuont"] = "3"
	if _, err := Parse("worker.nomad.hcl", src, vars); err == nil || !strings.Contains(err.Error(), "worker_cuont") {
		t.Errorf("an undeclared -var: %v, want an error naming it", err)
	}
	vars = varsFor(t, "worker.nomad.hcl", src, requiredVars)
	vars["worker_count"] = "three"
	if _, err := Parse("worker.nomad.hcl", src, vars); err == nil || !strings.Contains(err.Error(), "worker_count") {
		t.Errorf("-var worker_count=three: %v, want an error naming it", err)
	}
}

// TestDecodeRefusesUnknownSettings: a misspelled attribute or block anywhere in a job is
// an error naming it and its line, as `nomad job run` refuses it.
func TestDecodeRefusesUnknownSettings(t *testing.T) {
	for _, c := range []struct{ file, old, new, want string }{
		{"worker.nomad.hcl", "max_parallel", "max_paralel", `"max_paralel" is not expected`},
		{"worker.nomad.hcl", `change_mode = "noop"`, `chnage_mode = "noop"`, `"chnage_mode" is not expected`},
		{"receiver.nomad.hcl", "    vault {", "    vualt {", `"vualt" are not expected`},
		{"edge.nomad.hcl", `path     = "/readyz"`, `paht     = "/readyz"`, `"paht" is not expected`},
		{"hub-nats.nomad.hcl", "job \"edgehook-hub-nats\" {", "locals {}\njob \"edgehook-hub-nats\" {", `"locals" are not expected`},
		{"admin.nomad.hcl", `kill_timeout = "15s"`, `kill_timeout = "15 seconds"`, "kill_timeout"},
		{"worker.nomad.hcl", `count = var.worker_count`, `count = "many"`, "count"},
	} {
		src, _ := Source(c.file)
		mod := mutate(t, c.file, src, c.old, c.new)
		_, err := Parse(c.file, mod, varsFor(t, c.file, src, requiredVars))
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), c.file+":") {
			t.Errorf("%s with %q: %v, want an error with %q and the place", c.file, c.new, err, c.want)
		}
	}
}

// mutate returns a copy of a job file with the first match of old replaced by repl, where
// a run of spaces in old matches any run of spaces (alignment may change).
func mutate(t *testing.T, file string, src []byte, old, repl string) []byte {
	t.Helper()
	re := regexp.MustCompile(regexp.MustCompile(` +`).ReplaceAllString(regexp.QuoteMeta(old), `[ \t]+`))
	loc := re.FindIndex(src)
	if loc == nil {
		t.Fatalf("%s holds no %q to change", file, old)
	}
	return slices.Concat(src[:loc[0]], []byte(repl), src[loc[1]:])
}

// TestJobsMatchTheBinary checks every job against the edgehook binary's and
// nats-server's help, the NATS configs `setup nats-config` writes and the Nomad
// Variables README tells an operator to put, and vault/.
func TestJobsMatchTheBinary(t *testing.T) {
	d := operatorDeployment(t)
	for _, j := range loadJobs(t) {
		t.Run(j.file, func(t *testing.T) {
			for _, p := range checkJob(t, d, j.job) {
				t.Error(p)
			}
		})
	}
}

// TestChecksCatchMistakes feeds modified copies of the jobs to the checks: each mistake
// an operator or a change could make is reported.
func TestChecksCatchMistakes(t *testing.T) {
	d := operatorDeployment(t)
	for _, c := range []struct{ name, file, old, new, want string }{
		{"env the binary lacks", "worker.nomad.hcl", "EDGEHOOK_CONCURRENCY  = var.worker_concurrency", "EDGEHOOK_CONCURENCY  = var.worker_concurrency",
			"sets EDGEHOOK_CONCURENCY, which the command does not read"},
		{"env of another command", "worker.nomad.hcl", `EDGEHOOK_NATS_USER    = "dlq"`, `EDGEHOOK_NATS_USER    = "dlq"
        EDGEHOOK_CONCURRENCY  = 4`, "(edgehook dlq): sets EDGEHOOK_CONCURRENCY"},
		{"flag the binary lacks", "worker.nomad.hcl", `args    = ["worker"]`, `args    = ["worker", "--concurency", "5"]`,
			"flag -concurency is not one the command has"},
		{"nats-server flag", "hub-nats.nomad.hcl", `args    = ["-c", "secrets/nats.conf"]`, `args    = ["--confg", "secrets/nats.conf"]`,
			"flag -confg is not one the command has"},
		{"another component's NATS user", "worker.nomad.hcl", `EDGEHOOK_NATS_USER    = "worker"`, `EDGEHOOK_NATS_USER    = "dlq"`,
			`connects to NATS as "dlq"`},
		{"password of another user", "receiver.nomad.hcl", `nomadVar "nomad/jobs/edgehook-receiver/receiver/receiver"`, `nomadVar "nomad/jobs/edgehook-worker/worker/worker"`,
			"belong in its own path"},
		{"hub client port", "receiver.nomad.hcl", "EDGEHOOK_NATS_URL      = var.hub_nats_url", `EDGEHOOK_NATS_URL      = "nats://10.0.1.1:4223"`,
			`port "4223", the servers listen on 4222`},
		{"command no artifact brings", "hub-nats.nomad.hcl", `destination = "local/nats"`, `destination = "local/nats-server"`, "which no artifact unpacks"},
		{"health path", "receiver.nomad.hcl", `path     = "/readyz"`, `path     = "/ready"`, `probes "/ready"`},
		{"check on a port nobody listens on", "worker.nomad.hcl", `EDGEHOOK_METRICS_ADDR = "${NOMAD_ADDR_metrics}"
        EDGEHOOK_NATS_URL     = var.hub_nats_url
        EDGEHOOK_NATS_USER    = "worker"`, `EDGEHOOK_METRICS_ADDR = "127.0.0.1:9091"
        EDGEHOOK_NATS_URL     = var.hub_nats_url
        EDGEHOOK_NATS_USER    = "worker"`, "a listen address must be ${NOMAD_ADDR_<port>}"},
		{"vault role", "receiver.nomad.hcl", `role        = "edgehook-receiver"`, `role        = "edgehook-reciever"`, `vault role "edgehook-reciever"`},
		{"vault token in env", "worker.nomad.hcl", `env         = false`, `env         = true`, "vault env must be false"},
		{"vault restart", "receiver.nomad.hcl", `change_mode = "noop"`, `change_mode = "restart"`, `vault change_mode "restart"`},
		{"env template not restarted", "edge.nomad.hcl", `change_mode = "restart"`, `change_mode = "noop"`, `change_mode "noop": only "restart"`},
		{"missing item unnoticed", "worker.nomad.hcl", "error_on_missing_key = true", "error_on_missing_key = false", "without error_on_missing_key"},
		{"misnamed item", "receiver.nomad.hcl", "{{ .nats_password }}", "{{ .password }}", `map has no entry for key "password"`},
		{"nats config not reloaded", "hub-nats.nomad.hcl", `change_signal = "SIGHUP"`, `change_signal = "SIGINT"`, `wants change_mode "signal" with SIGHUP`},
		{"monitor port", "hub-nats.nomad.hcl", "static = 8222", "static = 8223", "the config listens on 8222"},
		{"leaf client port", "edge.nomad.hcl", "static = 4222", "static = 4333", "EDGEHOOK_NATS_URL uses port"},
		{"store off the volume", "edge.nomad.hcl", `destination = "/data"`, `destination = "/srv"`, "JetStream store /data is on no host volume"},
		{"template outside secrets", "worker.nomad.hcl", `destination = "secrets/nats.env"`, `destination = "local/nats.env"`, "credentials belong in secrets/"},
	} {
		t.Run(c.name, func(t *testing.T) {
			src, _ := Source(c.file)
			mod := mutate(t, c.file, src, c.old, c.new)
			job, err := Parse(c.file, mod, varsFor(t, c.file, src, requiredVars))
			if err != nil {
				t.Fatal(err)
			}
			problems := checkJob(t, d, job)
			if !slices.ContainsFunc(problems, func(p string) bool { return strings.Contains(p, c.want) }) {
				t.Errorf("problems %q, want one with %q", problems, c.want)
			}
		})
	}
}

// TestRenderedNATSConfigsLoad: the config each hub node and the edge render is one the
// real nats-server accepts, and a node whose meta names no config renders one it
// refuses, so the task fails loudly instead of running an open server.
func TestRenderedNATSConfigsLoad(t *testing.T) {
	d := operatorDeployment(t)
	bin := natsproc.Binary(t)
	dir := t.TempDir()
	jobs := map[string]*api.Job{}
	for _, j := range loadJobs(t) {
		jobs[j.file] = j.job
	}
	natsTemplate := func(file string) *api.Template {
		for _, g := range jobs[file].TaskGroups {
			for _, task := range g.Tasks {
				if task.Name == "nats" {
					return task.Templates[0]
				}
			}
		}
		t.Fatalf("%s has no nats task", file)
		return nil
	}
	// missing is what nats-server's refusal must say; "" for a config it accepts.
	test := func(name string, tmpl *api.Template, env renderEnv, missing string) {
		wantOK := missing == ""
		text, err := renderTemplate(tmpl, d.vars, env)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		path := filepath.Join(dir, name+".conf")
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(bin, "-t", "-c", path).CombinedOutput()
		if (err == nil) != wantOK {
			t.Errorf("%s: nats-server -t: %v, want ok=%v\n%s", name, err, wantOK, out)
		}
		if !wantOK && !strings.Contains(string(out), missing) {
			t.Errorf("%s: nats-server's error does not say what is missing:\n%s", name, out)
		}
	}
	for node := range d.hubConfs {
		test(node, natsTemplate("hub-nats.nomad.hcl"), renderEnv{"meta.edgehook_hub_node": node}, "")
	}
	test("hub-9", natsTemplate("hub-nats.nomad.hcl"), renderEnv{"meta.edgehook_hub_node": "hub-9"}, "no config for this node")
	test("edge-"+testEdge, natsTemplate("edge.nomad.hcl"), renderEnv{"meta.edgehook_edge": testEdge}, "")
	test("edge-lyon", natsTemplate("edge.nomad.hcl"), renderEnv{"meta.edgehook_edge": "lyon"}, "no config for this edge")
}

// TestEdgeWithoutGatewayPasswordFailsToStart: an edge node whose meta names no item of
// the gateways' Variable renders no password but a line Nomad cannot read as an
// environment file, saying what is missing, so the gateway does not start.
func TestEdgeWithoutGatewayPasswordFailsToStart(t *testing.T) {
	d := operatorDeployment(t)
	var gateway *api.Task
	for _, j := range loadJobs(t) {
		if j.file == "edge.nomad.hcl" {
			gateway = j.job.TaskGroups[0].Tasks[1]
		}
	}
	if gateway == nil || gateway.Name != "gateway" {
		t.Fatalf("edge job's second task: %+v", gateway)
	}
	text, err := renderTemplate(gateway.Templates[0], d.vars, renderEnv{"meta.edgehook_edge": "lyon"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := parseEnvFile(text); err == nil || !strings.Contains(err.Error(), "no gateway password for this edge") {
		t.Errorf("rendered %q: %v, want a line that is no KEY=value and says what is missing", text, err)
	}
}

// TestSetupVaultCreatesTheJobsRoles: `setup vault` (vault.Setup with Nomad's JWKS)
// creates, for every vault role a job names, a JWT role bound to that job's id in the
// default namespace, with a policy Vault holds.
func TestSetupVaultCreatesTheJobsRoles(t *testing.T) {
	srv := vaulttest.Start(t)
	cfg := vaultapi.DefaultConfig()
	cfg.Address = srv.Addr()
	root, err := vaultapi.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	root.SetToken(srv.RootToken())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rep, err := vault.Setup(ctx, root, vault.SetupOptions{NomadJWKSURL: jwksURL(t)})
	if err != nil {
		t.Fatal(err)
	}
	named := 0
	for _, j := range loadJobs(t) {
		for _, g := range j.job.TaskGroups {
			for _, task := range g.Tasks {
				if task.Vault == nil {
					continue
				}
				named++
				role := task.Vault.Role
				sec, err := root.Logical().ReadWithContext(ctx, "auth/"+rep.JWTPath+"/role/"+role)
				if err != nil || sec == nil {
					t.Errorf("%s task %s: JWT role %s: %v (setup created %v)", j.file, task.Name, role, err, rep.JWTRoles)
					continue
				}
				claims, _ := sec.Data["bound_claims"].(map[string]any)
				if claims["nomad_job_id"] != deref(j.job.ID) || claims["nomad_namespace"] != "default" {
					t.Errorf("%s task %s: JWT role %s is bound to %v, want job %s in namespace default", j.file, task.Name, role, claims, deref(j.job.ID))
				}
				policies, _ := sec.Data["token_policies"].([]any)
				if len(policies) == 0 {
					t.Errorf("%s task %s: JWT role %s gives no policy", j.file, task.Name, role)
				}
				for _, p := range policies {
					text, err := root.Sys().GetPolicyWithContext(ctx, fmt.Sprint(p))
					if err != nil || text == "" {
						t.Errorf("%s task %s: policy %v of role %s is not in Vault: %v", j.file, task.Name, p, role, err)
					}
				}
			}
		}
	}
	if named != 3 {
		t.Errorf("%d tasks name a Vault role, want 3 (worker, receiver, admin)", named)
	}
}

// jwksURL serves a JWKS like Nomad's on 127.0.0.1 for the test's lifetime.
func jwksURL(t *testing.T) string {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	b64 := base64.RawURLEncoding.EncodeToString
	body := fmt.Sprintf(`{"keys":[{"kty":"RSA","use":"sig","alg":"RS256","kid":"nomad","n":%q,"e":%q}]}`,
		b64(key.N.Bytes()), b64(big.NewInt(int64(key.E)).Bytes()))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, body)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String() + "/.well-known/jwks.json"
}
