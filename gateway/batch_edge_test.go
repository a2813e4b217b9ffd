package gateway_test

import (
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/edgehook/edgehook/status"
)

// TestEdgeBatchWhileTheHubIsAway: an edge gateway stores a batch in its own stream
// while its link to the hub is cut, answers each event's status from its own queued
// records, dedupes a re-sent batch's keys, and once healed the hub has every event
// exactly once.
func TestEdgeBatchWhileTheHubIsAway(t *testing.T) {
	e := startEdge(t)
	key, tn := e.hubTenant("ten_edgebatch")
	e.eventually(5*time.Second, "tenant accepted at the edge", func() bool {
		return e.do("POST", "/v1/events/batch", key, batchBody([]string{`{"type":"probe"}`}, nil)).code == http.StatusAccepted
	})
	e.eventually(5*time.Second, "link reported up", func() bool { return e.metric("edgehook_edge_hub_link_up") == "1" })

	e.link.Cut()
	e.eventually(5*time.Second, "link reported down", func() bool { return e.metric("edgehook_edge_hub_link_up") == "0" })
	events, keys := make([]string, 20), make([]string, 20)
	for i := range events {
		events[i] = `{"type":"during.cut","n":` + strconv.Itoa(i) + `}`
		keys[i] = "cut-" + strconv.Itoa(i)
	}
	a, _ := e.postBatch(key, batchBody(events, keys))
	again, _ := e.postBatch(key, batchBody(events, keys))
	for i, ev := range a.Events {
		if again.Events[i].EventID != ev.EventID || !again.Events[i].Replayed {
			t.Errorf("re-sent event %d: %+v, want %s replayed", i, again.Events[i], ev.EventID)
		}
		if code, st := e.eventStatus(key, ev.EventID); code != 200 || st != status.Queued {
			t.Errorf("event %d during the cut: GET = %d %s, want 200 queued", i, code, st)
		}
	}

	if got := e.healAndCountAtHub(tn.TenantID); got != 21 {
		t.Errorf("hub EVENTS holds %d of the tenant's events, want 21 (the probe and the batch once)", got)
	}
}
