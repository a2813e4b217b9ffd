package dlq_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/edgehook/edgehook/natsconf"
	"github.com/edgehook/edgehook/worker/dlq"
)

// writeDeadLetters stores n dead letters in the processor's record format, each after
// a replay request (so DLQ interleaves other subjects, as advisories do), and returns
// their event ids, oldest first. Tenant b gets every third one, and every tenth is
// terminated rather than out of attempts.
func writeDeadLetters(t *testing.T, e *env, a, b string, n int) (all, ofB, terminated []string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := range n {
		noise := nats.NewMsg(natsconf.ReplaySubject(a))
		noise.Header.Set(natsconf.HeaderTenant, a)
		noise.Header.Set(natsconf.HeaderEventID, "evt_unknown")
		if _, err := e.js.PublishMsg(ctx, noise); err != nil {
			t.Fatal(err)
		}
		d := dlq.DeadLetter{TenantID: a, EventID: fmt.Sprintf("evt_%04d", i), Type: "order.created", Attempts: 3,
			LastStatusCode: 503, LastError: "503 Service Unavailable", Reason: dlq.ReasonMaxDeliveries, StreamSeq: uint64(i + 1),
			Payload: []byte(`{}`)}
		if i%3 == 0 {
			d.TenantID = b
			ofB = append(ofB, d.EventID)
		}
		if i%10 == 0 {
			d.Reason = "terminated: 410 Gone"
			terminated = append(terminated, d.EventID)
		}
		if _, err := e.js.PublishMsg(ctx, d.Msg()); err != nil {
			t.Fatal(err)
		}
		all = append(all, d.EventID)
	}
	return all, ofB, terminated
}

// pageAll follows Page's cursors to the end and returns the event ids in order and
// the size of each page.
func pageAll(t *testing.T, e *env, q dlq.PageQuery) ([]string, []int) {
	t.Helper()
	stream := e.stream(t, natsconf.StreamDLQ)
	var ids []string
	var sizes []int
	for range 200 {
		p, err := dlq.Page(context.Background(), stream, q)
		if err != nil {
			t.Fatal(err)
		}
		sizes = append(sizes, len(p.DeadLetters))
		for _, d := range p.DeadLetters {
			ids = append(ids, d.EventID)
		}
		if p.Next == 0 {
			return ids, sizes
		}
		if q.Before != 0 && p.Next >= q.Before {
			t.Fatalf("page cursor went from %d to %d: no progress", q.Before, p.Next)
		}
		q.Before = p.Next
	}
	t.Fatal("Page did not end within 200 pages")
	return nil, nil
}

func reversed(s []string) []string {
	r := slices.Clone(s)
	slices.Reverse(r)
	return r
}

func TestPageWalksDeadLettersNewestFirst(t *testing.T) {
	e := newEnv(t, nil)
	a, b := e.tenant(t), e.tenant(t)
	if got, _ := pageAll(t, e, dlq.PageQuery{Limit: 10}); len(got) != 0 {
		t.Fatalf("an empty DLQ lists %v", got)
	}
	all, ofB, terminated := writeDeadLetters(t, e, a, b, 60)

	got, sizes := pageAll(t, e, dlq.PageQuery{Limit: 25})
	if !slices.Equal(got, reversed(all)) {
		t.Fatalf("all dead letters, newest first:\n got %v\nwant %v", got, reversed(all))
	}
	if fmt.Sprint(sizes) != "[25 25 10]" {
		t.Errorf("page sizes %v, want [25 25 10]", sizes)
	}
	if got, _ := pageAll(t, e, dlq.PageQuery{TenantID: b, Limit: 7}); !slices.Equal(got, reversed(ofB)) {
		t.Errorf("tenant b: got %v, want %v", got, reversed(ofB))
	}
	if got, _ := pageAll(t, e, dlq.PageQuery{Reason: "terminated", Limit: 4}); !slices.Equal(got, reversed(terminated)) {
		t.Errorf("terminated: got %v, want %v", got, reversed(terminated))
	}
	// A read budget far below what the filter needs: pages come out short but in
	// order, each makes progress, and together they hold every match once.
	got, sizes = pageAll(t, e, dlq.PageQuery{Reason: "terminated", Limit: 4, Reads: 5})
	if !slices.Equal(got, reversed(terminated)) {
		t.Errorf("terminated with 5 reads a page: got %v, want %v", got, reversed(terminated))
	}
	if len(sizes) < 6 || slices.Max(sizes) > 4 {
		t.Errorf("with 5 reads a page the page sizes are %v", sizes)
	}
	if _, err := dlq.Page(context.Background(), e.stream(t, natsconf.StreamDLQ), dlq.PageQuery{Limit: dlq.MaxPageLimit + 1}); err == nil {
		t.Error("a page larger than MaxPageLimit was accepted")
	}
}
