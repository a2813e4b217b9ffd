package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestReplayAfterFixingTheTargetIsDelivered is the sequence a new user tries: the
// target fails, the tenant's events are dead-lettered (their endpoint parked on the
// way), the target is fixed, and each replayed event is delivered within 2 s of its
// replay. Once with a target that refuses connections, fixed to another origin (a
// breaker of its own); once with a path that answers 503, fixed to another path of the
// same origin (the config change resets the parked endpoint's breaker).
func TestReplayAfterFixingTheTargetIsDelivered(t *testing.T) {
	for _, sameOrigin := range []bool{false, true} {
		name := map[bool]string{false: "new origin", true: "same origin"}[sameOrigin]
		t.Run(name, func(t *testing.T) {
			sys := startUp(t, map[string]string{
				"EDGEHOOK_RETRY_SCHEDULE":    "100ms,3s", // a parked event's last attempt comes 3s on: past the 2s
				"EDGEHOOK_MAX_DELIVER":       "3",
				"EDGEHOOK_HTTP_TIMEOUT":      "1s",
				"EDGEHOOK_BREAKER_THRESHOLD": "2",
				"EDGEHOOK_BREAKER_COOLDOWN":  "30s", // no probe within the test: the fix must do it
			})
			tn := sys.createTenant(t)

			hits := make(chan string, 16)
			receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != "/fixed" {
					w.WriteHeader(http.StatusServiceUnavailable)
					return
				}
				hits <- r.Header.Get("webhook-id")
				w.WriteHeader(http.StatusNoContent)
			}))
			defer receiver.Close()
			setTarget := func(url string) {
				t.Helper()
				if code := call(t, "PATCH", "http://"+sys.admin+"/v1/tenants/"+tn.TenantID, sys.adminToken, map[string]string{"targetUrl": url}, nil); code != 200 {
					t.Fatalf("PATCH target %s: %d", url, code)
				}
			}
			if sameOrigin {
				setTarget(receiver.URL + "/broken")
			} else {
				setTarget("http://" + freeAddr(t) + "/hooks") // a port that refuses connections
			}

			var ids []string
			for range 3 {
				var ack struct{ EventID string }
				if code := call(t, "POST", "http://"+sys.api+"/v1/events", tn.APIKey, map[string]string{"type": "t"}, &ack); code != 202 {
					t.Fatalf("ingest: %d", code)
				}
				ids = append(ids, ack.EventID)
			}
			status := func(id string) (string, string) {
				var st struct{ Status, LastError string }
				call(t, "GET", "http://"+sys.api+"/v1/events/"+id, tn.APIKey, nil, &st)
				return st.Status, st.LastError
			}
			for _, id := range ids {
				waitUntil(t, 30*time.Second, "event "+id+" dead-lettered", func() bool { s, _ := status(id); return s == "failed" })
			}

			setTarget(receiver.URL + "/fixed")

			for _, id := range ids {
				var rr struct{ ReplayRequested bool }
				if code := call(t, "POST", "http://"+sys.api+"/v1/events/"+id+"/replay", tn.APIKey, nil, &rr); code != 202 || !rr.ReplayRequested {
					t.Fatalf("replay %s: %d %+v", id, code, rr)
				}
				replayed := time.Now()
				for {
					if s, lastErr := status(id); s == "delivered" {
						break
					} else if time.Since(replayed) > 2*time.Second {
						t.Fatalf("event %s is %s (%s) 2s after its replay, want delivered", id, s, lastErr)
					}
					time.Sleep(20 * time.Millisecond)
				}
			}
			got := map[string]bool{}
			for len(got) < len(ids) {
				select {
				case id := <-hits:
					got[id] = true
				case <-time.After(5 * time.Second):
					t.Fatalf("the fixed target saw %v, want %s", got, strings.Join(ids, ", "))
				}
			}
		})
	}
}
