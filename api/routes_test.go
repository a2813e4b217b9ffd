package api

import "testing"

func TestRouterMatch(t *testing.T) {
	r := NewRouter(
		NewRoute("/v1/events"), NewRoute("/v1/events/{id}"), NewRoute("/v1/events/{id}/attempts"),
		NewRoute("/v1/tenant"), NewRoute("/v1/tenants/{id}"),
	)
	for path, want := range map[string][2]string{
		"/v1/events":             {"/v1/events", ""},
		"/v1/events/evt_1":       {"/v1/events/{id}", "evt_1"},
		"/v1/events/e/attempts":  {"/v1/events/{id}/attempts", "e"},
		"/v1/tenant":             {"/v1/tenant", ""},
		"/v1/tenants/ten_a":      {"/v1/tenants/{id}", "ten_a"},
		"/v1/events/":            {RouteUnmatched, ""},
		"/v1/events//attempts":   {RouteUnmatched, ""},
		"/v1/events/e/":          {RouteUnmatched, ""},
		"/v1/events/e/attempts/": {RouteUnmatched, ""},
		"/v1/events/e/x/y":       {RouteUnmatched, ""},
		"/v1/tenants":            {RouteUnmatched, ""},
		"/v1/eventsx":            {RouteUnmatched, ""},
		"":                       {RouteUnmatched, ""},
	} {
		rt, id := r.Match([]byte(path))
		if rt.Label() != want[0] || id != want[1] {
			t.Errorf("Match(%q) = %s %q, want %s %q", path, rt.Label(), id, want[0], want[1])
		}
	}
}
