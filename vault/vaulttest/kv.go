package vaulttest

import (
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// kvDefaultMaxVersions is how many versions KV v2 keeps by default.
const kvDefaultMaxVersions = 10

// kvStore is one KV v2 secrets engine.
type kvStore struct {
	keys map[string]*kvKey
	// The engine's config (<mount>/config): defaults for keys that set none.
	maxVersions int
	casRequired bool
}

func newKVStore() *kvStore { return &kvStore{keys: map[string]*kvKey{}} }

// kvKey is a secret with its versions and metadata.
type kvKey struct {
	versions       map[int]*kvVersion
	current        int
	oldest         int
	created        time.Time
	updated        time.Time
	maxVersions    int
	casRequired    bool
	customMetadata map[string]string
}

type kvVersion struct {
	data      map[string]any
	created   time.Time
	deleted   time.Time
	destroyed bool
}

// routeKV serves <mount>/data/<key> and <mount>/metadata/<key> of KV v2 mounts.
func (s *Server) routeKV(op, path string) *route {
	m, rest := s.mountFor(path)
	if m == nil {
		return nil
	}
	if m.kv1 != nil {
		return s.routeKVv1(m, rest)
	}
	if m.kv == nil {
		return nil
	}
	kv := m.kv
	switch {
	case rest == "config":
		return &route{handler: func(r *request) response { return s.kvConfig(kv, r) }}
	case strings.HasPrefix(rest, "data/"):
		key := strings.TrimPrefix(rest, "data/")
		if key == "" || strings.HasSuffix(key, "/") {
			return nil
		}
		if op == capRead {
			s.kvReads[path]++
		}
		return &route{
			exists:  func() bool { return kv.keys[key] != nil },
			handler: func(r *request) response { return s.kvData(kv, key, r) },
		}
	case rest == "metadata" || strings.HasPrefix(rest, "metadata/"):
		key := strings.TrimPrefix(strings.TrimPrefix(rest, "metadata"), "/")
		return &route{
			exists:  func() bool { return kv.keys[key] != nil },
			handler: func(r *request) response { return s.kvMetadata(kv, key, r) },
		}
	}
	return nil
}

func (s *Server) kvData(kv *kvStore, key string, r *request) response {
	switch r.op {
	case capRead:
		k := kv.keys[key]
		if k == nil {
			return notFound()
		}
		v := k.current
		if q := r.query.Get("version"); q != "" && q != "0" {
			n, err := strconv.Atoi(q)
			if err != nil {
				return badRequest("invalid version %q", q)
			}
			v = n
		}
		ver := k.versions[v]
		if ver == nil {
			return notFound()
		}
		meta := versionMetadata(k, v, ver)
		if ver.destroyed || !ver.deleted.IsZero() {
			// Vault answers 404 but still shows the version's metadata.
			return response{status: http.StatusNotFound, body: envelope(map[string]any{"data": nil, "metadata": meta}, nil, "kv")}
		}
		return dataResponse(map[string]any{"data": ver.data, "metadata": meta}, "kv")
	case capCreate, capUpdate:
		data, ok := r.body["data"].(map[string]any)
		if !ok {
			return badRequest("no data provided")
		}
		k := kv.keys[key]
		if opts, ok := r.body["options"].(map[string]any); ok {
			if _, has := opts["cas"]; has {
				cas, _, err := paramInt(opts, "cas")
				if err != nil {
					return badRequest("%v", err)
				}
				cur := 0
				if k != nil {
					cur = k.current
				}
				if cas != cur {
					return badRequest("check-and-set parameter did not match the current version")
				}
			} else if kv.casRequired || (k != nil && k.casRequired) {
				return badRequest("check-and-set parameter required for this call")
			}
		} else if kv.casRequired || (k != nil && k.casRequired) {
			return badRequest("check-and-set parameter required for this call")
		}
		now := s.now()
		if k == nil {
			k = &kvKey{versions: map[int]*kvVersion{}, created: now}
			kv.keys[key] = k
		}
		k.current++
		k.updated = now
		ver := &kvVersion{data: data, created: now}
		k.versions[k.current] = ver
		if k.oldest == 0 {
			k.oldest = k.current
		}
		maxV := k.maxVersions
		if maxV == 0 {
			maxV = kv.maxVersions
		}
		if maxV == 0 {
			maxV = kvDefaultMaxVersions
		}
		for k.current-k.oldest+1 > maxV {
			delete(k.versions, k.oldest)
			k.oldest++
		}
		return dataResponse(versionMetadata(k, k.current, ver), "kv")
	case capDelete:
		// Soft-deletes the latest version.
		if k := kv.keys[key]; k != nil {
			if ver := k.versions[k.current]; ver != nil && ver.deleted.IsZero() {
				ver.deleted = s.now()
				k.updated = ver.deleted
			}
		}
		return noContent()
	}
	return unsupported()
}

func (s *Server) kvMetadata(kv *kvStore, key string, r *request) response {
	switch r.op {
	case capList:
		prefix := key
		var keys []string
		for full := range kv.keys {
			rest, ok := strings.CutPrefix(full, prefix)
			if !ok || rest == "" {
				continue
			}
			if i := strings.Index(rest, "/"); i >= 0 {
				rest = rest[:i+1]
			}
			if !slices.Contains(keys, rest) {
				keys = append(keys, rest)
			}
		}
		if len(keys) == 0 {
			return notFound()
		}
		slices.Sort(keys)
		return dataResponse(map[string]any{"keys": keys}, "kv")
	case capRead:
		k := kv.keys[key]
		if key == "" || k == nil {
			return notFound()
		}
		versions := map[string]any{}
		for n, v := range k.versions {
			versions[strconv.Itoa(n)] = map[string]any{
				"created_time":  timeString(v.created),
				"deletion_time": timeString(v.deleted),
				"destroyed":     v.destroyed,
			}
		}
		var custom any
		if k.customMetadata != nil {
			custom = k.customMetadata
		}
		return dataResponse(map[string]any{
			"cas_required":         k.casRequired,
			"created_time":         timeString(k.created),
			"current_version":      k.current,
			"custom_metadata":      custom,
			"delete_version_after": "0s",
			"max_versions":         k.maxVersions,
			"oldest_version":       k.oldest,
			"updated_time":         timeString(k.updated),
			"versions":             versions,
		}, "kv")
	case capCreate, capUpdate:
		if key == "" {
			return unsupported()
		}
		k := kv.keys[key]
		now := s.now()
		if k == nil {
			k = &kvKey{versions: map[int]*kvVersion{}, created: now, updated: now}
			kv.keys[key] = k
		}
		if n, ok, err := paramInt(r.body, "max_versions"); err != nil {
			return badRequest("%v", err)
		} else if ok {
			k.maxVersions = n
		}
		if b, ok, err := paramBool(r.body, "cas_required"); err != nil {
			return badRequest("%v", err)
		} else if ok {
			k.casRequired = b
		}
		if cm, ok := r.body["custom_metadata"].(map[string]any); ok {
			k.customMetadata = map[string]string{}
			for name, v := range cm {
				sv, ok := v.(string)
				if !ok {
					b, _ := json.Marshal(v)
					sv = string(b)
				}
				k.customMetadata[name] = sv
			}
		}
		return noContent()
	case capDelete:
		if key != "" {
			delete(kv.keys, key)
		}
		return noContent()
	}
	return unsupported()
}

// versionMetadata is the "metadata" of one version in a KV v2 read or write.
func versionMetadata(k *kvKey, n int, v *kvVersion) map[string]any {
	var custom any
	if k.customMetadata != nil {
		custom = k.customMetadata
	}
	return map[string]any{
		"created_time":    timeString(v.created),
		"custom_metadata": custom,
		"deletion_time":   timeString(v.deleted),
		"destroyed":       v.destroyed,
		"version":         n,
	}
}

// kvConfig serves <mount>/config of a KV v2 engine: the mount-wide max_versions and
// cas_required that apply to keys which set none. delete_version_after is not
// implemented and only its zero value is accepted.
func (s *Server) kvConfig(kv *kvStore, r *request) response {
	switch r.op {
	case capRead:
		return dataResponse(map[string]any{
			"cas_required":         kv.casRequired,
			"delete_version_after": "0s",
			"max_versions":         kv.maxVersions,
		}, "kv")
	case capCreate, capUpdate:
		n, setN, err := paramInt(r.body, "max_versions")
		if err != nil || n < 0 {
			return badRequest("max_versions must be a non-negative integer")
		}
		cas, setCAS, err := paramBool(r.body, "cas_required")
		if err != nil {
			return badRequest("%v", err)
		}
		if d, _, err := paramDuration(r.body, "delete_version_after"); err != nil || d != 0 {
			return badRequest("vaulttest does not implement delete_version_after")
		}
		if setN {
			kv.maxVersions = n
		}
		if setCAS {
			kv.casRequired = cas
		}
		return noContent()
	}
	return unsupported()
}

// kvV1LeaseDuration is the lease_duration Vault reports on KV v1 reads (its default
// lease TTL, 768h), a refresh hint rather than a real lease.
const kvV1LeaseDuration = 768 * 60 * 60

// routeKVv1 serves <mount>/<key> of a KV version 1 engine: unversioned secrets whose
// whole request body is the secret.
func (s *Server) routeKVv1(m *mount, key string) *route {
	return &route{
		exists: func() bool { return m.kv1[key] != nil },
		handler: func(r *request) response {
			switch r.op {
			case capList:
				var keys []string
				for full := range m.kv1 {
					rest, ok := strings.CutPrefix(full, key)
					if !ok || rest == "" {
						continue
					}
					if i := strings.Index(rest, "/"); i >= 0 {
						rest = rest[:i+1]
					}
					if !slices.Contains(keys, rest) {
						keys = append(keys, rest)
					}
				}
				if len(keys) == 0 {
					return notFound()
				}
				slices.Sort(keys)
				return dataResponse(map[string]any{"keys": keys}, "kv")
			case capRead:
				data := m.kv1[key]
				if key == "" || data == nil {
					return notFound()
				}
				body := envelope(data, nil, "kv")
				body["lease_duration"] = kvV1LeaseDuration
				return response{status: http.StatusOK, body: body}
			case capCreate, capUpdate:
				if key == "" || strings.HasSuffix(key, "/") {
					return unsupported()
				}
				if len(r.body) == 0 {
					return badRequest("missing data fields")
				}
				m.kv1[key] = r.body
				return noContent()
			case capDelete:
				delete(m.kv1, key)
				return noContent()
			}
			return unsupported()
		},
	}
}
