package api

import "testing"

func TestRouterMatch(t *testing.T) {
	r := NewRouter(
		NewRoute("/v1/events"), NewRoute("/v1/events/{id}"), NewRoute("/v1/events/{id}/attempts"),
		NewRoute("/v1/tenant"), NewRoute("/v1/tenants/{id}"), NewRoute("/v1/tenants/{id}/keys"),
		NewRoute("/v1/tenants/{id}/keys/{keyId}"), NewRoute("/v1/tenants/{id}/keys/{keyId}/rotate"),
		NewRoute("/v1/tenant/keys/{keyId}"),
	)
	for path, want := range map[string][3]string{
		"/v1/tenants/t/keys":          {"/v1/tenants/{id}/keys", "t"},
		"/v1/tenants/t/keys/k":        {"/v1/tenants/{id}/keys/{keyId}", "t", "k"},
		"/v1/tenants/t/keys/k/rotate": {"/v1/tenants/{id}/keys/{keyId}/rotate", "t", "k"},
		"/v1/tenants/t/keys/k/x":      {RouteUnmatched},
		"/v1/tenants/t/keys/":         {RouteUnmatched},
		"/v1/tenant/keys/k":           {"/v1/tenant/keys/{keyId}", "k"},
		"/v1/tenant/keys":             {RouteUnmatched},
		"/v1/events":                  {"/v1/events", ""},
		"/v1/events/evt_1":            {"/v1/events/{id}", "evt_1"},
		"/v1/events/e/attempts":       {"/v1/events/{id}/attempts", "e"},
		"/v1/tenant":                  {"/v1/tenant", ""},
		"/v1/tenants/ten_a":           {"/v1/tenants/{id}", "ten_a"},
		"/v1/events/":                 {RouteUnmatched},
		"/v1/events//attempts":        {RouteUnmatched},
		"/v1/events/e/":               {RouteUnmatched},
		"/v1/events/e/attempts/":      {RouteUnmatched},
		"/v1/events/e/x/y":            {RouteUnmatched},
		"/v1/tenants":                 {RouteUnmatched},
		"/v1/eventsx":                 {RouteUnmatched},
		"":                            {RouteUnmatched},
	} {
		rt, id, id2 := r.Match([]byte(path))
		if rt.Label() != want[0] || id != want[1] || id2 != want[2] {
			t.Errorf("Match(%q) = %s %q %q, want %q", path, rt.Label(), id, id2, want)
		}
	}
}
