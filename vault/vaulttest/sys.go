package vaulttest

import (
	"net/http"
	"slices"
	"strings"
	"time"
)

// mount is a secrets engine mount.
type mount struct {
	path, typ, accessor, uuid, description string
	options                                map[string]string
	created                                time.Time
	kv                                     *kvStore                  // for KV v2 mounts
	kv1                                    map[string]map[string]any // for KV v1 mounts: secret by key
}

// mountFor returns the secrets engine mount with the longest path prefixing path, and
// the rest of path below it.
func (s *Server) mountFor(path string) (*mount, string) {
	var best *mount
	for p, m := range s.mounts {
		if strings.HasPrefix(path, p) && (best == nil || len(p) > len(best.path)) {
			best = m
		}
	}
	if best == nil {
		return nil, ""
	}
	return best, strings.TrimPrefix(path, best.path)
}

// routeSys serves sys/<rest>.
func (s *Server) routeSys(op, rest string) *route {
	// An auth method's tuning, at sys/auth/<path>/tune (root-protected, as all of
	// sys/auth/*) or sys/mounts/auth/<path>/tune.
	if p, ok := strings.CutPrefix(rest, "auth/"); ok {
		if rt := s.routeAuthTune(p, true); rt != nil {
			return rt
		}
	}
	if p, ok := strings.CutPrefix(rest, "mounts/auth/"); ok {
		if rt := s.routeAuthTune(p, false); rt != nil {
			return rt
		}
	}
	switch {
	case rest == "policy" || rest == "policy/" || rest == "policies/acl/":
		acl := rest == "policies/acl/"
		return &route{handler: func(r *request) response { return s.policyList(r, acl) }}
	case strings.HasPrefix(rest, "policy/"), strings.HasPrefix(rest, "policies/acl/"):
		acl := strings.HasPrefix(rest, "policies/acl/")
		name := strings.ToLower(strings.TrimPrefix(strings.TrimPrefix(rest, "policy/"), "policies/acl/"))
		return &route{
			exists:  func() bool { return name == "root" || s.policies[name] != nil },
			handler: func(r *request) response { return s.policyItem(r, name, acl) },
		}
	case rest == "mounts":
		return &route{handler: func(r *request) response {
			if r.op != capRead {
				return unsupported()
			}
			all := map[string]any{}
			for p, m := range s.mounts {
				all[p] = mountInfo(m)
			}
			body := envelope(all, nil, "system")
			for p, info := range all {
				body[p] = info // Vault repeats mounts at the top level for old clients
			}
			return response{status: http.StatusOK, body: body}
		}}
	case strings.HasPrefix(rest, "mounts/"):
		path := strings.Trim(strings.TrimPrefix(rest, "mounts/"), "/") + "/"
		return &route{handler: func(r *request) response { return s.mountItem(r, path) }}
	case rest == "auth":
		return &route{handler: func(r *request) response {
			if r.op != capRead {
				return unsupported()
			}
			all := map[string]any{}
			for p, m := range s.authMounts {
				all[p] = authMountInfo(m)
			}
			body := envelope(all, nil, "system")
			for p, info := range all {
				body[p] = info
			}
			return response{status: http.StatusOK, body: body}
		}}
	case strings.HasPrefix(rest, "auth/"):
		path := strings.Trim(strings.TrimPrefix(rest, "auth/"), "/") + "/"
		return &route{sudo: true, handler: func(r *request) response { return s.authMountItem(r, path) }}
	case rest == "capabilities-self":
		return &route{handler: s.capabilitiesSelf}
	}
	return nil
}

// health answers sys/health like an initialized, active node.
func (s *Server) health() response {
	status := http.StatusOK
	if s.sealed {
		status = http.StatusServiceUnavailable
	}
	return response{status: status, body: map[string]any{
		"initialized":                  true,
		"sealed":                       s.sealed,
		"standby":                      false,
		"performance_standby":          false,
		"replication_performance_mode": "disabled",
		"replication_dr_mode":          "disabled",
		"server_time_utc":              s.now().Unix(),
		"version":                      "1.19.0+vaulttest",
		"cluster_name":                 "vaulttest",
		"cluster_id":                   "00000000-0000-4000-8000-000000000000",
	}}
}

func (s *Server) policyNames() []string {
	names := []string{"root"}
	for n := range s.policies {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

func (s *Server) policyList(r *request, acl bool) response {
	if r.op != capRead && r.op != capList {
		return unsupported()
	}
	names := s.policyNames()
	if acl {
		return dataResponse(map[string]any{"keys": names}, "system")
	}
	body := envelope(map[string]any{"keys": names, "policies": names}, nil, "system")
	body["keys"], body["policies"] = names, names
	return response{status: http.StatusOK, body: body}
}

func (s *Server) policyItem(r *request, name string, acl bool) response {
	switch r.op {
	case capRead:
		var text string
		if name != "root" {
			p := s.policies[name]
			if p == nil {
				return notFound()
			}
			text = p.text
		}
		if acl {
			return dataResponse(map[string]any{"name": name, "policy": text}, "system")
		}
		body := envelope(map[string]any{"name": name, "rules": text}, nil, "system")
		body["name"], body["rules"] = name, text
		return response{status: http.StatusOK, body: body}
	case capCreate, capUpdate:
		if name == "root" {
			return badRequest(`cannot update "root" policy`)
		}
		text, _ := paramString(r.body, "policy")
		if text == "" && !acl {
			text, _ = paramString(r.body, "rules")
		}
		if strings.TrimSpace(text) == "" {
			return badRequest("'policy' parameter not supplied or empty")
		}
		p, err := parsePolicy(name, text)
		if err != nil {
			return badRequest("failed to parse policy: %v", err)
		}
		s.policies[name] = p
		return noContent()
	case capDelete:
		if name == "root" || name == "default" {
			return badRequest("cannot delete %q policy", name)
		}
		delete(s.policies, name)
		return noContent()
	}
	return unsupported()
}

func mountInfo(m *mount) map[string]any {
	var opts any
	if m.options != nil {
		opts = m.options
	}
	return map[string]any{
		"accessor":                m.accessor,
		"config":                  map[string]any{"default_lease_ttl": 0, "force_no_cache": false, "max_lease_ttl": 0},
		"description":             m.description,
		"external_entropy_access": false,
		"local":                   false,
		"options":                 opts,
		"plugin_version":          "",
		"running_plugin_version":  "",
		"running_sha256":          "",
		"seal_wrap":               false,
		"type":                    m.typ,
		"uuid":                    m.uuid,
	}
}

func (s *Server) mountItem(r *request, path string) response {
	switch r.op {
	case capRead:
		m := s.mounts[path]
		if m == nil {
			return badRequest("No secret engine mount at %s", path)
		}
		return dataResponse(mountInfo(m), "system")
	case capCreate, capUpdate:
		typ, _ := paramString(r.body, "type")
		var options map[string]string
		if opts, ok := r.body["options"].(map[string]any); ok {
			options = map[string]string{}
			for k := range opts {
				v, err := paramString(opts, k)
				if err != nil {
					return badRequest("%v", err)
				}
				options[k] = v
			}
		}
		// Like Vault, kv-v1 and kv-v2 are aliases of kv with options.version set, and kv
		// without a version is KV version 1.
		switch typ {
		case "kv-v1", "kv-v2":
			if options == nil {
				options = map[string]string{}
			}
			options["version"] = typ[len(typ)-1:]
			typ = "kv"
		case "kv":
		case "":
			return badRequest("backend type must be specified as a string")
		default:
			return badRequest("vaulttest supports only KV secrets engines (kv, kv-v1, kv-v2), not %q", typ)
		}
		version := options["version"]
		if version != "" && version != "1" && version != "2" {
			return badRequest("invalid KV version %q", version)
		}
		if strings.HasPrefix(path, "auth/") || path == "/" {
			return badRequest("cannot mount under %s", path)
		}
		for p := range s.mounts {
			if strings.HasPrefix(path, p) || strings.HasPrefix(p, path) {
				return badRequest("path is already in use at %s", p)
			}
		}
		desc, _ := paramString(r.body, "description")
		m := &mount{
			path: path, typ: typ, options: options, description: desc,
			accessor: "kv_" + randomHex(4), uuid: randomUUID(), created: s.now(),
		}
		if version == "2" {
			m.kv = newKVStore()
		} else {
			m.kv1 = map[string]map[string]any{}
		}
		s.mounts[path] = m
		return noContent()
	case capDelete:
		if m := s.mounts[path]; m != nil && (m.kv != nil || m.kv1 != nil) {
			delete(s.mounts, path)
		}
		return noContent()
	}
	return unsupported()
}

func authMountInfo(m *authMount) map[string]any {
	return map[string]any{
		"accessor":                m.accessor,
		"config":                  map[string]any{"default_lease_ttl": 0, "force_no_cache": false, "max_lease_ttl": 0, "token_type": "default-service"},
		"description":             m.description,
		"external_entropy_access": false,
		"local":                   false,
		"options":                 nil,
		"plugin_version":          "",
		"running_plugin_version":  "",
		"running_sha256":          "",
		"seal_wrap":               false,
		"type":                    m.typ,
		"uuid":                    m.uuid,
	}
}

func (s *Server) authMountItem(r *request, path string) response {
	switch r.op {
	case capRead:
		m := s.authMounts[path]
		if m == nil {
			return badRequest("No auth engine at %s", path)
		}
		return dataResponse(authMountInfo(m), "system")
	case capCreate, capUpdate:
		typ, _ := paramString(r.body, "type")
		switch typ {
		case "approle", "jwt":
		case "":
			return badRequest("backend type must be specified as a string")
		default:
			return badRequest("vaulttest supports only the approle and jwt auth methods, not %q", typ)
		}
		for p := range s.authMounts {
			if strings.HasPrefix(path, p) || strings.HasPrefix(p, path) {
				return badRequest("path is already in use at auth/%s", p)
			}
		}
		desc, _ := paramString(r.body, "description")
		s.authMounts[path] = &authMount{
			path: path, typ: typ, description: desc, accessor: "auth_" + typ + "_" + randomHex(4), uuid: randomUUID(),
			roles: map[string]*approleRole{}, jwtRoles: map[string]*jwtRole{}, failed: map[string]*failedLogins{},
		}
		return noContent()
	case capDelete:
		if path != "token/" {
			delete(s.authMounts, path)
		}
		return noContent()
	}
	return unsupported()
}

// capabilitiesSelf serves sys/capabilities-self: the calling token's capabilities on
// each requested path ("root" for root tokens, "deny" where nothing is granted).
func (s *Server) capabilitiesSelf(r *request) response {
	if r.op != capUpdate {
		return unsupported()
	}
	paths, _, err := paramStrings(r.body, "paths")
	if err != nil {
		return badRequest("%v", err)
	}
	if p, _ := paramString(r.body, "path"); p != "" {
		paths = append(paths, p)
	}
	if len(paths) == 0 {
		return badRequest("'paths' must be supplied")
	}
	a := s.aclFor(r.tok)
	data := map[string]any{}
	var last []string
	for _, p := range paths {
		caps := []string{"deny"}
		switch {
		case a.root:
			caps = []string{"root"}
		case len(a.capabilities(p)) > 0:
			caps = a.capabilities(p)
		}
		data[p] = caps
		last = caps
	}
	if len(paths) == 1 {
		data["capabilities"] = last
	}
	body := envelope(data, nil, "system")
	for k, v := range data {
		body[k] = v
	}
	return response{status: http.StatusOK, body: body}
}
