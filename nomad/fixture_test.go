package nomad

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/nats-io/nats-server/v2/server"
)

// The deployment the tests check the jobs against, made as README's "Deploying with
// Nomad" tells an operator: the hub's and one edge's configs from `edgehook setup
// nats-config`, and the Nomad Variables `nomad var put` fills from them.
const (
	testEdge  = "paris"
	hubPeers  = "10.0.1.1,10.0.1.2,10.0.1.3"
	hubLeaves = "nats-leaf://10.0.1.1:7422,nats-leaf://10.0.1.2:7422,nats-leaf://10.0.1.3:7422"
	storeDir  = "/data"
)

// deployment is what the operator prepared.
type deployment struct {
	hubDir, edgeDir string
	// hubConfs and edgeConf are the generated configs, by server name.
	hubConfs map[string]string
	edgeConf string
	// vars are the Nomad Variables, by path, item name and value.
	vars map[string]map[string]string
}

var (
	deployOnce sync.Once
	deployed   *deployment
	deployErr  error
)

// operatorDeployment runs `setup nats-config` for the hub and the edge (once per test
// binary: bcrypt makes it slow on purpose) and fills the Nomad Variables.
func operatorDeployment(t *testing.T) *deployment {
	t.Helper()
	deployOnce.Do(func() { deployed, deployErr = makeDeployment(filepath.Dir(edgehookBinary)) })
	if deployErr != nil {
		t.Fatal(deployErr)
	}
	return deployed
}

func makeDeployment(dir string) (*deployment, error) {
	d := &deployment{
		hubDir: filepath.Join(dir, "hub"), edgeDir: filepath.Join(dir, "edge-"+testEdge),
		hubConfs: map[string]string{}, vars: map[string]map[string]string{},
	}
	run := func(args ...string) error {
		var out bytes.Buffer
		c := exec.Command(edgehookBinary, args...)
		c.Stdout, c.Stderr, c.Env = &out, &out, []string{}
		if err := c.Run(); err != nil {
			return &cmdError{args, err, out.String()}
		}
		return nil
	}
	if err := run("setup", "nats-config", "--role", "hub", "--peers", hubPeers, "--store-dir", storeDir, "--out", d.hubDir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(d.edgeDir, 0o700); err != nil {
		return nil, err
	}
	leaf, err := os.ReadFile(filepath.Join(d.hubDir, "leaf.password"))
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(d.edgeDir, "leaf.password"), leaf, 0o600); err != nil {
		return nil, err
	}
	if err := run("setup", "nats-config", "--role", "edge", "--name", testEdge, "--hub", hubLeaves, "--store-dir", storeDir, "--out", d.edgeDir); err != nil {
		return nil, err
	}
	read := func(path string) (string, error) {
		b, err := os.ReadFile(path)
		return string(b), err
	}
	// nomad var put nomad/jobs/edgehook-hub-nats/nats/nats hub-1=@hub/hub-1.conf ...
	hubVar := map[string]string{}
	for _, node := range []string{"hub-1", "hub-2", "hub-3"} {
		conf, err := read(filepath.Join(d.hubDir, node+".conf"))
		if err != nil {
			return nil, err
		}
		d.hubConfs[node] = conf
		hubVar[node] = conf
	}
	d.vars["nomad/jobs/edgehook-hub-nats/nats/nats"] = hubVar
	if d.edgeConf, err = read(filepath.Join(d.edgeDir, "edge-"+testEdge+".conf")); err != nil {
		return nil, err
	}
	// nomad var put nomad/jobs/edgehook-edge/edge/nats paris=@edge-paris/edge-paris.conf
	d.vars["nomad/jobs/edgehook-edge/edge/nats"] = map[string]string{testEdge: d.edgeConf}
	gw, err := read(filepath.Join(d.edgeDir, "gateway.password"))
	if err != nil {
		return nil, err
	}
	// nomad var put nomad/jobs/edgehook-edge/edge/gateway paris=@edge-paris/gateway.password
	d.vars["nomad/jobs/edgehook-edge/edge/gateway"] = map[string]string{testEdge: gw}
	for _, c := range []struct{ job, group, task string }{
		{"edgehook-worker", "worker", "worker"}, {"edgehook-worker", "dlq", "dlq"},
		{"edgehook-receiver", "receiver", "receiver"}, {"edgehook-admin", "admin", "admin"},
	} {
		pw, err := read(filepath.Join(d.hubDir, c.task+".password"))
		if err != nil {
			return nil, err
		}
		d.vars["nomad/jobs/"+c.job+"/"+c.group+"/"+c.task] = map[string]string{"nats_password": pw}
	}
	d.vars["nomad/jobs/edgehook-admin/admin/admin"]["admin_token"] = "admin-token-of-the-test"
	return d, nil
}

type cmdError struct {
	args []string
	err  error
	out  string
}

func (e *cmdError) Error() string {
	return "edgehook " + strings.Join(e.args, " ") + ": " + e.err.Error() + "\n" + e.out
}

// parseConf parses a nats-server config as nats-server does.
func parseConf(text string) (*server.Options, error) {
	o := &server.Options{}
	if err := o.ProcessConfigString(text); err != nil {
		return nil, err
	}
	return o, nil
}
