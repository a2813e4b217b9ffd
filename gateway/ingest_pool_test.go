package gateway_test

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/edgehook/edgehook/gateway"
)

// The ingest path reuses its outgoing messages across requests; nothing of one
// event, such as its Idempotency-Key, may carry over to the next.
func TestReusedMessagesCarryNothingOverBetweenEvents(t *testing.T) {
	e := start(t, options{})
	a := e.createTenant(`{"targetUrl":"http://127.0.0.1:9/a"}`)
	b := e.createTenant(`{"targetUrl":"http://127.0.0.1:9/b"}`)
	seen := map[string]bool{}
	for i := range 40 {
		tn, headers := a, []string(nil)
		if i%2 == 1 {
			tn = b
		}
		if i%4 == 0 {
			headers = []string{gateway.HeaderIdempotencyKey, fmt.Sprintf("key-%d", i)}
		}
		id, r := e.ingest(tn.APIKey, fmt.Sprintf(`{"type":"t%d","n":%d}`, i, i), headers...)
		if r.code != http.StatusAccepted || r.header.Get(gateway.HeaderIdempotentReplayed) != "" {
			t.Fatalf("event %d: %d, replayed %q", i, r.code, r.header.Get(gateway.HeaderIdempotentReplayed))
		}
		if seen[id] {
			t.Fatalf("event %d got the id %s of an earlier event", i, id)
		}
		seen[id] = true
		st := e.do("GET", "/v1/events/"+id, tn.APIKey, "")
		if st.code != http.StatusOK || st.json(t)["type"] != fmt.Sprintf("t%d", i) {
			t.Fatalf("event %d status: %d %s", i, st.code, st.body)
		}
	}
	if got := e.subjectCount(a.TenantID) + e.subjectCount(b.TenantID); got != 40 {
		t.Errorf("EVENTS holds %d events, want 40", got)
	}
	if got := e.subjectCount(a.TenantID); got != 20 {
		t.Errorf("EVENTS holds %d events of tenant a, want 20 (no event went to the other tenant's subject)", got)
	}
}
