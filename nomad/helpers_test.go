package nomad

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"text/template"

	"github.com/hashicorp/nomad/api"

	"github.com/edgehook/edgehook/natsconf/natsproc"
)

// edgehookBinary is the edgehook binary built once for the package's tests.
var edgehookBinary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "edgehook-nomad-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	edgehookBinary = filepath.Join(dir, "edgehook")
	build := exec.Command("go", "build", "-o", edgehookBinary, "github.com/edgehook/edgehook/cmd/edgehook")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build edgehook:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// The values an operator gives the variables that have no default, and a full set
// that overrides every default.
var (
	requiredVars = map[string]string{
		"edgehook_artifact": "https://releases.example.net/edgehook/v1.0.0/edgehook-linux-amd64.tar.gz",
		"hub_nats_url":      "nats://10.0.1.1:4222,nats://10.0.1.2:4222,nats://10.0.1.3:4222",
		"vault_addr":        "https://vault.example.net:8200",
	}
	overrideVars = map[string]string{
		"datacenters":        `["eu-west-1", "eu-west-2"]`,
		"hub_nodes":          "3",
		"nats_version":       "2.15.2",
		"nats_artifact":      "https://mirror.example.net/nats-server-v2.15.2-linux-amd64.tar.gz",
		"edge_node_class":    "edge-pop",
		"gateway_port":       "18080",
		"worker_count":       "4",
		"dlq_count":          "2",
		"worker_concurrency": "512",
		"receiver_count":     "3",
		"receiver_port":      "18090",
		"admin_count":        "2",
		"admin_port":         "18081",
	}
)

// varsFor returns the entries of sets that the job file declares.
func varsFor(t *testing.T, name string, src []byte, sets ...map[string]string) map[string]string {
	t.Helper()
	decls, err := Variables(name, src)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, d := range decls {
		for _, s := range sets {
			if v, ok := s[d.Name]; ok {
				out[d.Name] = v
			}
		}
	}
	return out
}

// deployedJob is a job file decoded with the required variables.
type deployedJob struct {
	file string
	job  *api.Job
}

func loadJobs(t *testing.T, sets ...map[string]string) []deployedJob {
	t.Helper()
	if len(sets) == 0 {
		sets = []map[string]string{requiredVars}
	}
	var out []deployedJob
	for _, name := range Files() {
		src, err := Source(name)
		if err != nil {
			t.Fatal(err)
		}
		job, err := Parse(name, src, varsFor(t, name, src, sets...))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		out = append(out, deployedJob{name, job})
	}
	return out
}

// help is what a binary's help output says it accepts.
type help struct {
	flags map[string]bool
	envs  map[string]bool
	// listen holds the environment variables of the settings whose default is a
	// host:port: the addresses a command listens on.
	listen map[string]bool
}

var (
	helpMu    sync.Mutex
	helpCache = map[string]help{}
)

var (
	flagLine    = regexp.MustCompile(`^  -([A-Za-z0-9-]+)`)
	envUsage    = regexp.MustCompile(`\(env ([A-Z0-9_]+)\)`)
	hostPortDef = regexp.MustCompile(`\(default "[^":/]*:[0-9]+"\)`)
)

// edgehookHelp runs `edgehook <cmd...> -h` and reads its flags and their environment
// variables.
func edgehookHelp(cmd []string) (help, error) {
	key := "edgehook " + strings.Join(cmd, " ")
	helpMu.Lock()
	defer helpMu.Unlock()
	if h, ok := helpCache[key]; ok {
		return h, nil
	}
	var out bytes.Buffer
	c := exec.Command(edgehookBinary, append(slices.Clone(cmd), "-h")...)
	c.Stdout, c.Stderr = &out, &out
	if err := c.Run(); err != nil {
		return help{}, fmt.Errorf("the binary has no command %q: `%s -h`: %w\n%s", strings.Join(cmd, " "), key, err, lastLine(out.String()))
	}
	h := help{flags: map[string]bool{}, envs: map[string]bool{}, listen: map[string]bool{}}
	flag := ""
	for line := range strings.SplitSeq(out.String(), "\n") {
		if m := flagLine.FindStringSubmatch(line); m != nil {
			flag = m[1]
			h.flags[flag] = true
			continue
		}
		if m := envUsage.FindStringSubmatch(line); m != nil && flag != "" {
			h.envs[m[1]] = true
			if hostPortDef.MatchString(line) {
				h.listen[m[1]] = true
			}
		}
	}
	if len(h.flags) == 0 {
		return help{}, fmt.Errorf("%s -h lists no flags:\n%s", key, out.String())
	}
	helpCache[key] = h
	return h, nil
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

var natsOption = regexp.MustCompile(`^ {4,}(-[^ ].*?)(?:  |$)`)

// natsServerHelp reads the options of bin/nats-server from its --help.
func natsServerHelp(t *testing.T) help {
	t.Helper()
	helpMu.Lock()
	defer helpMu.Unlock()
	if h, ok := helpCache["nats-server"]; ok {
		return h
	}
	bin, err := natsproc.ModuleBinary()
	if err != nil {
		t.Fatal(err)
	}
	out, _ := exec.Command(bin, "--help").CombinedOutput()
	h := help{flags: map[string]bool{}, envs: map[string]bool{}, listen: map[string]bool{}}
	for line := range strings.SplitSeq(string(out), "\n") {
		m := natsOption.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		for _, part := range strings.FieldsFunc(m[1], func(r rune) bool { return r == ',' || r == ' ' }) {
			if strings.HasPrefix(part, "-") {
				h.flags[strings.TrimLeft(part, "-")] = true
			}
		}
	}
	if !h.flags["c"] || !h.flags["config"] {
		t.Fatalf("nats-server --help: no -c/--config found in:\n%s", out)
	}
	helpCache["nats-server"] = h
	return h
}

// program says what a task runs: edgehook with its subcommand, or nats-server.
type program struct {
	edgehook bool
	cmd      []string // edgehook's subcommand words
	flags    []string // the flags given, without dashes and values
}

func taskProgram(task *api.Task) (program, error) {
	command, _ := task.Config["command"].(string)
	var args []string
	if raw, ok := task.Config["args"].([]any); ok {
		for _, a := range raw {
			s, ok := a.(string)
			if !ok {
				return program{}, fmt.Errorf("args holds a non-string %v", a)
			}
			args = append(args, s)
		}
	}
	var p program
	switch filepath.Base(command) {
	case "edgehook":
		p.edgehook = true
		for len(args) > 0 && !strings.HasPrefix(args[0], "-") {
			p.cmd = append(p.cmd, args[0])
			args = args[1:]
		}
		if len(p.cmd) == 0 {
			return program{}, fmt.Errorf("runs edgehook without a command")
		}
	case "nats-server":
	default:
		return program{}, fmt.Errorf("runs %q: neither edgehook nor nats-server", command)
	}
	for _, a := range args {
		if strings.HasPrefix(a, "-") {
			name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
			p.flags = append(p.flags, name)
		}
	}
	return p, nil
}

// component is the edgehook component a task runs ("" for nats-server).
func (p program) component() string {
	if !p.edgehook {
		return ""
	}
	return p.cmd[0]
}

// renderEnv is what a task's environment holds for a template: the task's env block,
// Nomad's runtime values a test sets, and the node's meta as "meta.<key>".
type renderEnv map[string]string

// renderTemplate renders a template's data as Nomad does, with Go's text/template and
// the Nomad functions the job files use: nomadVar (from vars, keyed by path) and env.
func renderTemplate(tmpl *api.Template, vars map[string]map[string]string, env renderEnv) (string, error) {
	if tmpl.EmbeddedTmpl == nil {
		return "", fmt.Errorf("template %s has no data", deref(tmpl.DestPath))
	}
	funcs := template.FuncMap{
		"nomadVar": func(path string) (map[string]varItem, error) {
			v, ok := vars[path]
			if !ok {
				return nil, fmt.Errorf("no Nomad Variable at %s", path)
			}
			items := map[string]varItem{}
			for k, val := range v {
				items[k] = varItem{Key: k, Value: val}
			}
			return items, nil
		},
		"env": func(name string) string { return env[name] },
	}
	missing := "missingkey=default" // Nomad renders "<no value>"
	if deref(tmpl.ErrMissingKey) {
		missing = "missingkey=error"
	}
	t, err := template.New(deref(tmpl.DestPath)).Funcs(funcs).Option(missing).Parse(*tmpl.EmbeddedTmpl)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	if err := t.Execute(&b, nil); err != nil {
		return "", err
	}
	return b.String(), nil
}

// varItem is an item of a Nomad Variable as Nomad's templates see it: a value that
// prints as itself, not a string.
type varItem struct{ Key, Value string }

func (v varItem) String() string { return v.Value }

// parseEnvFile reads the KEY=value lines a template with env = true renders.
func parseEnvFile(text string) (map[string]string, error) {
	out := map[string]string{}
	for line := range strings.SplitSeq(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("line %q is not KEY=value", line)
		}
		out[k] = v
	}
	return out, nil
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}
