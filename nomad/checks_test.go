package nomad

import (
	"fmt"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/hashicorp/nomad/api"
	"github.com/nats-io/nats-server/v2/server"
	"golang.org/x/crypto/bcrypt"

	"github.com/edgehook/edgehook/natsconf"
	"github.com/edgehook/edgehook/vault"
)

// checker checks one decoded job against the binary, the generated NATS configs and
// vault/, collecting every problem as a sentence naming the task and the setting.
type checker struct {
	t        *testing.T
	d        *deployment
	job      *api.Job
	problems []string
}

func checkJob(t *testing.T, d *deployment, job *api.Job) []string {
	t.Helper()
	c := &checker{t: t, d: d, job: job}
	for _, g := range job.TaskGroups {
		c.group(g)
	}
	return c.problems
}

func (c *checker) addf(format string, args ...any) {
	c.problems = append(c.problems, fmt.Sprintf("job %s: ", deref(c.job.ID))+fmt.Sprintf(format, args...))
}

// runtime interpolations a listen address or a URL may hold.
var (
	addrRef = regexp.MustCompile(`^\$\{NOMAD_ADDR_([A-Za-z0-9_]+)\}$`)
	portRef = regexp.MustCompile(`\$\{NOMAD_PORT_([A-Za-z0-9_]+)\}`)
	varRef  = regexp.MustCompile(`nomadVar "([^"]+)"`)
)

// groupPorts maps a group's port labels to their static value (0: dynamic).
func groupPorts(g *api.TaskGroup) map[string]int {
	out := map[string]int{}
	for _, n := range g.Networks {
		for _, p := range n.ReservedPorts {
			out[p.Label] = p.Value
		}
		for _, p := range n.DynamicPorts {
			out[p.Label] = 0
		}
	}
	return out
}

func (c *checker) group(g *api.TaskGroup) {
	gname := deref(g.Name)
	ports := groupPorts(g)
	for _, s := range g.Services {
		if _, ok := ports[s.PortLabel]; !ok {
			c.addf("group %s: service %s uses port %q, which the group's network does not declare", gname, s.Name, s.PortLabel)
		}
		if !slices.ContainsFunc(g.Tasks, func(t *api.Task) bool { return t.Name == s.TaskName }) {
			c.addf("group %s: service %s names task %q, which the group does not have", gname, s.Name, s.TaskName)
		}
	}
	if c.job.Update == nil && g.Update == nil {
		c.addf("group %s has no update block", gname)
	}
	if g.RestartPolicy == nil {
		c.addf("group %s has no restart block", gname)
	}
	for _, task := range g.Tasks {
		c.task(g, task, ports)
	}
}

func (c *checker) task(g *api.TaskGroup, task *api.Task, ports map[string]int) {
	where := fmt.Sprintf("task %s/%s", deref(g.Name), task.Name)
	prog, err := taskProgram(task)
	if err != nil {
		c.addf("%s: %v", where, err)
		return
	}
	var h help
	if prog.edgehook {
		where += " (edgehook " + strings.Join(prog.cmd, " ") + ")"
		if h, err = edgehookHelp(prog.cmd); err != nil {
			c.addf("%s: %v", where, err)
			return
		}
	} else {
		h = natsServerHelp(c.t)
		where += " (nats-server)"
	}
	// The command is one an artifact brings into the task.
	command, _ := task.Config["command"].(string)
	if !slices.ContainsFunc(task.Artifacts, func(a *api.TaskArtifact) bool {
		return deref(a.GetterSource) != "" && strings.HasPrefix(command, strings.TrimSuffix(deref(a.RelativeDest), "/")+"/")
	}) {
		c.addf("%s: runs %s, which no artifact unpacks", where, command)
	}
	for _, f := range prog.flags {
		if !h.flags[f] {
			c.addf("%s: flag -%s is not one the command has", where, f)
		}
	}
	if task.Resources == nil || deref(task.Resources.CPU) == 0 || deref(task.Resources.MemoryMB) == 0 {
		c.addf("%s: resources must give cpu and memory", where)
	}

	// Everything that ends up in the task's environment: the env block and the
	// templates rendered into it.
	env := map[string]string{}
	for k, v := range task.Env {
		env[k] = v
	}
	for _, renderEnv := range c.renderEnvs(task, env) {
		for _, tmpl := range task.Templates {
			c.template(where, g, task, prog, tmpl, renderEnv, env)
		}
	}
	for k := range env {
		if !h.envs[k] {
			c.addf("%s: sets %s, which the command does not read", where, k)
		}
	}
	c.vaultAccess(where, task, prog, h, env)
	c.listeners(where, g, task, prog, h, env, ports)
	if prog.edgehook && h.envs["EDGEHOOK_NATS_USER"] {
		c.natsUser(where, prog, env, ports)
	}
	if !prog.edgehook {
		c.natsServer(where, g, task, ports)
	}
}

// renderEnvs are the nodes a task's templates are rendered for: every hub node for the
// hub, the test's edge for an edge job, one node otherwise.
func (c *checker) renderEnvs(task *api.Task, env map[string]string) []renderEnv {
	base := renderEnv{}
	for k, v := range env {
		base[k] = v
	}
	var out []renderEnv
	for _, tmpl := range task.Templates {
		data := deref(tmpl.EmbeddedTmpl)
		switch {
		case strings.Contains(data, `"meta.edgehook_hub_node"`):
			for node := range c.d.hubConfs {
				e := renderEnv{"meta.edgehook_hub_node": node}
				out = append(out, e)
			}
			return out
		case strings.Contains(data, `"meta.edgehook_edge"`):
			base["meta.edgehook_edge"] = testEdge
		}
	}
	return []renderEnv{base}
}

// template checks one template and adds the variables an env template renders to env.
func (c *checker) template(where string, g *api.TaskGroup, task *api.Task, prog program, tmpl *api.Template, renderEnv renderEnv, env map[string]string) {
	dest := deref(tmpl.DestPath)
	where += " template " + dest
	if !strings.HasPrefix(dest, "secrets/") {
		c.addf("%s: credentials belong in secrets/, not %s", where, dest)
	}
	if deref(tmpl.Perms) != "0600" {
		c.addf("%s: perms %q, want \"0600\"", where, deref(tmpl.Perms))
	}
	// Nomad lets a task read the Variables of its job, group and task paths; a secret
	// of one task belongs in its own path, where its group's other tasks cannot read it.
	own := path.Join("nomad/jobs", deref(c.job.ID), deref(g.Name), task.Name)
	for _, m := range varRef.FindAllStringSubmatch(deref(tmpl.EmbeddedTmpl), -1) {
		if m[1] != own {
			c.addf("%s: reads Nomad Variable %s; a task's secrets belong in its own path %s", where, m[1], own)
		}
	}
	text, err := renderTemplate(tmpl, c.d.vars, renderEnv)
	if err != nil {
		c.addf("%s: does not render: %v", where, err)
		return
	}
	mode := deref(tmpl.ChangeMode)
	switch {
	case deref(tmpl.Envvars):
		// The environment is read once, at start: only a restart brings a new value in.
		if mode != "restart" {
			c.addf("%s: renders environment variables with change_mode %q: only \"restart\" brings a new value to the task", where, mode)
		}
		if !deref(tmpl.ErrMissingKey) {
			c.addf("%s: without error_on_missing_key a missing item renders \"<no value>\" into the environment", where)
		}
		vars, err := parseEnvFile(text)
		if err != nil {
			c.addf("%s: %v", where, err)
			return
		}
		for k, v := range vars {
			if v == "" || v == "<no value>" {
				c.addf("%s: renders %s empty", where, k)
			}
			env[k] = v
		}
	case !prog.edgehook:
		// nats-server reloads its config on SIGHUP.
		if mode != "signal" || deref(tmpl.ChangeSignal) != "SIGHUP" {
			c.addf("%s: a nats-server config wants change_mode \"signal\" with SIGHUP, got %q %q", where, mode, deref(tmpl.ChangeSignal))
		}
		c.renderedConf(where, renderEnv, text)
	default:
		c.addf("%s: edgehook reads no file a template renders; render environment variables (env = true)", where)
	}
}

// renderedConf checks that a nats-server config template renders, for its node, the
// config `setup nats-config` wrote for it.
func (c *checker) renderedConf(where string, e renderEnv, text string) {
	want := ""
	switch {
	case e["meta.edgehook_hub_node"] != "":
		want = c.d.hubConfs[e["meta.edgehook_hub_node"]]
	case e["meta.edgehook_edge"] != "":
		want = c.d.edgeConf
	}
	if want == "" || strings.TrimSpace(text) != strings.TrimSpace(want) {
		c.addf("%s: renders for %v something other than the config setup nats-config wrote for that node", where, map[string]string(e))
	}
}

// vaultAccess checks a task's Vault identity against vault/ and its token settings
// against what the binary reads.
func (c *checker) vaultAccess(where string, task *api.Task, prog program, h help, env map[string]string) {
	needs := prog.edgehook && slices.Contains(vault.Roles(), prog.component()) && h.envs["VAULT_ADDR"]
	v := task.Vault
	if v == nil {
		if needs {
			c.addf("%s: %s reads Vault but has no vault block", where, prog.component())
		}
		for k := range env {
			if strings.HasPrefix(k, "VAULT_") {
				c.addf("%s: sets %s without a vault block", where, k)
			}
		}
		return
	}
	if !needs {
		c.addf("%s: has a vault block, but %s gets no Vault policy (vault.Roles)", where, prog.component())
		return
	}
	role := prog.component()
	if v.Role != vault.PolicyName(role) {
		c.addf("%s: vault role %q, want %q, the JWT role `setup vault` creates for %s", where, v.Role, vault.PolicyName(role), role)
	}
	if deref(c.job.ID) != vault.PolicyName(role) {
		c.addf("%s: the JWT role %s accepts only the Nomad job %s", where, vault.PolicyName(role), vault.PolicyName(role))
	}
	if _, err := vault.Policy(role, "", ""); err != nil {
		c.addf("%s: vault/policies has no policy for %s: %v", where, role, err)
	}
	for _, p := range v.Policies {
		if !slices.ContainsFunc(vault.Roles(), func(r string) bool { return vault.PolicyName(r) == p }) {
			c.addf("%s: vault policy %s is not one of vault/policies", where, p)
		}
	}
	// The binary takes one of VAULT_TOKEN and VAULT_TOKEN_FILE, and re-reads only the
	// file: Nomad's token file, not its environment variable.
	if v.Env == nil || *v.Env {
		c.addf("%s: vault env must be false: Nomad's VAULT_TOKEN would clash with VAULT_TOKEN_FILE and never be re-read", where)
	}
	if env["VAULT_TOKEN_FILE"] != "${NOMAD_SECRETS_DIR}/vault_token" {
		c.addf("%s: VAULT_TOKEN_FILE = %q, want the file Nomad renews, ${NOMAD_SECRETS_DIR}/vault_token", where, env["VAULT_TOKEN_FILE"])
	}
	if deref(v.DisableFile) {
		c.addf("%s: vault disable_file leaves the binary no token", where)
	}
	if m := deref(v.ChangeMode); m != "noop" {
		c.addf("%s: vault change_mode %q: the binary re-reads the token file when its token stops being valid, so a new token needs %q", where, m, "noop")
	}
	if env["VAULT_ADDR"] == "" {
		c.addf("%s: VAULT_ADDR is not set", where)
	}
}

// listeners checks that each address the task listens on is a port of its group and
// that each health check probes an address the task listens on, on a path it serves.
func (c *checker) listeners(where string, g *api.TaskGroup, task *api.Task, prog program, h help, env map[string]string, ports map[string]int) {
	listening := map[string]string{} // port label -> env variable
	for k, v := range env {
		if !h.listen[k] {
			continue
		}
		m := addrRef.FindStringSubmatch(v)
		if m == nil {
			c.addf("%s: %s = %q: a listen address must be ${NOMAD_ADDR_<port>}, a port of the group", where, k, v)
			continue
		}
		if _, ok := ports[m[1]]; !ok {
			c.addf("%s: %s listens on port %q, which the group's network does not declare", where, k, m[1])
			continue
		}
		listening[m[1]] = k
	}
	checked := false
	for _, s := range g.Services {
		if s.TaskName != task.Name {
			continue
		}
		for _, chk := range s.Checks {
			checked = true
			label := cmpOr(chk.PortLabel, s.PortLabel)
			if chk.Type != "http" {
				c.addf("%s: check %s is %q; the components answer health over HTTP", where, chk.Name, chk.Type)
				continue
			}
			if !prog.edgehook {
				continue // natsServer checks nats-server's monitoring port
			}
			if chk.Path != "/readyz" {
				c.addf("%s: check %s probes %q; edgehook components report readiness on /readyz", where, chk.Name, chk.Path)
			}
			if _, ok := listening[label]; !ok {
				c.addf("%s: check %s probes port %q, on which the task does not listen (%v)", where, chk.Name, label, listening)
			}
		}
	}
	if prog.edgehook && !checked {
		c.addf("%s: no service check: a rolling update cannot tell when it is ready", where)
	}
}

// siteConf returns the generated config of the server a component connects to: its
// edge's for an edge gateway, a hub node's otherwise.
func (c *checker) siteConf(env map[string]string) (string, *server.Options, error) {
	text := c.d.hubConfs["hub-1"]
	if env["EDGEHOOK_EDGE"] != "" {
		text = c.d.edgeConf
	}
	o, err := parseConf(text)
	return text, o, err
}

// natsUser checks that a component connects as its own NATS user, which the generated
// config has, with the password its template renders, and that a URL naming a port of
// the group names the port the server listens on.
func (c *checker) natsUser(where string, prog program, env map[string]string, ports map[string]int) {
	user := env["EDGEHOOK_NATS_USER"]
	if user != prog.component() {
		c.addf("%s: connects to NATS as %q; each component has its own user, %q", where, user, prog.component())
	}
	if !slices.Contains(natsconf.Components, natsconf.Component(user)) {
		c.addf("%s: NATS user %q is no component of natsconf", where, user)
	}
	_, o, err := c.siteConf(env)
	if err != nil {
		c.addf("%s: generated NATS config: %v", where, err)
		return
	}
	i := slices.IndexFunc(o.Users, func(u *server.User) bool { return u.Username == user })
	if i < 0 {
		c.addf("%s: NATS user %q is not in the config setup nats-config generates", where, user)
		return
	}
	pw := env["EDGEHOOK_NATS_PASSWORD"]
	if pw == "" {
		c.addf("%s: no NATS password rendered for %s", where, user)
	} else if !passwordMatches(o.Users[i].Password, pw) {
		c.addf("%s: the rendered password of %s is not the one the NATS config checks", where, user)
	}
	// A URL of the hub's nodes names their client port.
	for u := range strings.SplitSeq(env["EDGEHOOK_NATS_URL"], ",") {
		if portRef.MatchString(u) {
			continue
		}
		if _, port, _ := strings.Cut(strings.TrimPrefix(strings.TrimSpace(u), "nats://"), ":"); port != strconv.Itoa(o.Port) {
			c.addf("%s: EDGEHOOK_NATS_URL %q: port %q, the servers listen on %d", where, u, port, o.Port)
		}
	}
	if m := portRef.FindStringSubmatch(env["EDGEHOOK_NATS_URL"]); m != nil {
		if ports[m[1]] != o.Port {
			c.addf("%s: EDGEHOOK_NATS_URL uses port %q (%d), the server listens on %d", where, m[1], ports[m[1]], o.Port)
		}
		if !strings.Contains(env["EDGEHOOK_NATS_URL"], "://"+o.Host+":") {
			c.addf("%s: EDGEHOOK_NATS_URL %q is not the host the server listens on, %s", where, env["EDGEHOOK_NATS_URL"], o.Host)
		}
	}
}

// natsServer checks a nats-server task's ports, health check and store against the
// config it renders.
func (c *checker) natsServer(where string, g *api.TaskGroup, task *api.Task, ports map[string]int) {
	text := c.d.edgeConf
	if slices.ContainsFunc(task.Templates, func(t *api.Template) bool {
		return strings.Contains(deref(t.EmbeddedTmpl), `"meta.edgehook_hub_node"`)
	}) {
		text = c.d.hubConfs["hub-1"]
	}
	o, err := parseConf(text)
	if err != nil {
		c.addf("%s: generated config: %v", where, err)
		return
	}
	want := []int{o.Port, o.HTTPPort}
	if o.Cluster.Port != 0 {
		want = append(want, o.Cluster.Port)
	}
	if o.LeafNode.Port != 0 {
		want = append(want, o.LeafNode.Port)
	}
	var static []int
	for label, p := range ports {
		if p == 0 {
			c.addf("%s: port %q is dynamic; nats-server listens on the ports of its config", where, label)
		}
		static = append(static, p)
	}
	for _, p := range want {
		if !slices.Contains(static, p) {
			c.addf("%s: the config listens on %d, which the group does not reserve (%v)", where, p, ports)
		}
	}
	for _, s := range g.Services {
		if s.TaskName != task.Name {
			continue
		}
		for _, chk := range s.Checks {
			label := cmpOr(chk.PortLabel, s.PortLabel)
			if ports[label] != o.HTTPPort || chk.Path != "/healthz" {
				c.addf("%s: check %s probes %q on port %q (%d); nats-server serves /healthz on its monitoring port %d", where, chk.Name, chk.Path, label, ports[label], o.HTTPPort)
			}
		}
	}
	mounted := false
	for _, vm := range task.VolumeMounts {
		dest := deref(vm.Destination)
		if o.StoreDir == dest || strings.HasPrefix(o.StoreDir, strings.TrimSuffix(dest, "/")+"/") {
			if vr, ok := g.Volumes[deref(vm.Volume)]; ok && vr.Type == "host" {
				mounted = true
			}
		}
	}
	if !mounted {
		c.addf("%s: JetStream store %s is on no host volume the task mounts", where, o.StoreDir)
	}
}

// bcryptChecked remembers bcrypt comparisons, which are slow on purpose: the checks
// compare the same few passwords for every job and every modified copy.
var bcryptChecked sync.Map

func passwordMatches(hash, password string) bool {
	key := hash + "\x00" + password
	if ok, found := bcryptChecked.Load(key); found {
		return ok.(bool)
	}
	ok := bcrypt.CompareHashAndPassword([]byte(hash), []byte(password)) == nil
	bcryptChecked.Store(key, ok)
	return ok
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
