package dlq_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/edgehook/edgehook/natsconf"
	"github.com/edgehook/edgehook/status"
	"github.com/edgehook/edgehook/worker"
	"github.com/edgehook/edgehook/worker/dlq"
)

func TestExhaustedEventIsDeadLetteredWithItsHistory(t *testing.T) {
	e := newEnv(t, nil)
	tn := e.tenant(t)
	e.ep.answer(tn, 502)
	payload := []byte(`{"type":"order.created","data":{"orderId":42}}`)
	before := time.Now().UTC()
	id := e.publish(t, tn, payload)
	e.startProcessor(t)
	e.startWorker(t)

	d := e.waitDeadLetter(t, tn, id)
	if d.TenantID != tn || d.EventID != id || d.Type != "order.created" || !bytes.Equal(d.Payload, payload) {
		t.Errorf("dead letter %+v does not carry the event", d)
	}
	if d.Attempts != 3 || d.LastStatusCode != 502 || d.LastError != "HTTP 502" || d.Reason != dlq.ReasonMaxDeliveries {
		t.Errorf("dead letter: attempts %d last %d %q reason %q; want 3 attempts, last 502 HTTP 502, max deliveries",
			d.Attempts, d.LastStatusCode, d.LastError, d.Reason)
	}
	if d.FirstAttempt.Before(before) || d.LastAttempt.Before(d.FirstAttempt) || d.IngestTime.Before(before.Add(-time.Second)) {
		t.Errorf("dead letter times: first %s last %s ingest %s", d.FirstAttempt, d.LastAttempt, d.IngestTime)
	}
	rec := e.waitStatus(t, tn, id, status.Failed)
	if rec.Attempts != 3 || rec.LastStatusCode != 502 || rec.Seq != d.StreamSeq {
		t.Errorf("status %+v, want failed after 3 attempts at seq %d", rec, d.StreamSeq)
	}
	if n := len(e.ep.hitsFor(id)); n != 3 {
		t.Errorf("endpoint saw %d attempts, want 3", n)
	}
}

// TestParkedEventIsDeadLetteredWithItsWholeHistory: an event whose retries waited as
// parked copies (new messages of EVENTS) runs out of attempts on the same budget and is
// dead-lettered like any other: max deliveries, every attempt counted, the first and
// last attempt times of the whole round.
func TestParkedEventIsDeadLetteredWithItsWholeHistory(t *testing.T) {
	e := newEnv(t, func(tp *natsconf.Topology) { tp.RetrySchedule = []time.Duration{time.Second} })
	tn := e.tenant(t)
	e.ep.answer(tn, 502)
	before := time.Now().UTC()
	id := e.publish(t, tn, []byte(`{"type":"order.created"}`))
	e.startProcessor(t)
	e.startWorkerWith(t, func(c *worker.Config) { c.MaxNakDelay = 100 * time.Millisecond })

	d := e.waitDeadLetter(t, tn, id)
	if d.Attempts != 3 || d.LastStatusCode != 502 || d.Reason != dlq.ReasonMaxDeliveries {
		t.Errorf("dead letter: attempts %d last %d reason %q; want 3 attempts, last 502, max deliveries", d.Attempts, d.LastStatusCode, d.Reason)
	}
	if d.FirstAttempt.Before(before) || d.LastAttempt.Sub(d.FirstAttempt) < 1500*time.Millisecond {
		t.Errorf("dead letter times: first %s last %s; want the whole round, two retries a second apart", d.FirstAttempt, d.LastAttempt)
	}
	rec := e.waitStatus(t, tn, id, status.Failed)
	if rec.Attempts != 3 || rec.Seq != d.StreamSeq {
		t.Errorf("status %+v, want failed after 3 attempts at seq %d", rec, d.StreamSeq)
	}
	hits := e.ep.hitsFor(id)
	if len(hits) != 3 {
		t.Fatalf("endpoint saw %d attempts, want 3", len(hits))
	}
}

func TestNatsCLIReadsADeadLetter(t *testing.T) {
	cli, err := filepath.Abs("../../bin/nats")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(cli); err != nil {
		t.Fatalf("the nats CLI is not installed in bin/: run make tools (%v)", err)
	}
	e := newEnv(t, nil)
	tn := e.tenant(t)
	e.ep.answer(tn, 503)
	id := e.publish(t, tn, []byte(`{"orderId":7}`))
	e.startProcessor(t)
	e.startWorker(t)
	e.waitDeadLetter(t, tn, id)

	// What the README tells operators to run.
	home := t.TempDir()
	nats := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(cli, append([]string{"--server", e.srv.URL}, args...)...)
		cmd.Env = append(os.Environ(), "HOME="+home)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("nats %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	got := nats("stream", "get", natsconf.StreamDLQ, "--last-for", natsconf.DeadLetterSubject(tn, id))
	for _, want := range []string{
		natsconf.HeaderTenant + ": " + tn,
		natsconf.HeaderEventID + ": " + id,
		dlq.HeaderAttempts + ": 3",
		dlq.HeaderLastError + ": HTTP 503",
		dlq.HeaderLastStatusCode + ": 503",
		dlq.HeaderFirstAttempt + ": ",
		`{"orderId":7}`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("nats stream get output lacks %q:\n%s", want, got)
		}
	}
	// `nats stream view` pages interactively and insists on a terminal: give it one.
	script, err := exec.LookPath("script")
	if err != nil {
		t.Fatalf("script (util-linux) is needed to give nats stream view a terminal: %v", err)
	}
	cmd := exec.Command(script, "-qec", cli+" --server "+e.srv.URL+" stream view "+natsconf.StreamDLQ+" --subject 'dlq.>'", "/dev/null")
	cmd.Env = append(os.Environ(), "HOME="+home, "TERM=dumb")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("nats stream view: %v\n%s", err, out)
	}
	if view := string(out); !strings.Contains(view, natsconf.DeadLetterSubject(tn, id)) || !strings.Contains(view, dlq.HeaderLastError+": HTTP 503") {
		t.Errorf("nats stream view output lacks the dead letter:\n%s", view)
	}
}

func TestTerminatedEventIsDeadLetteredAtOnce(t *testing.T) {
	e := newEnv(t, nil)
	tn := e.tenant(t)
	e.ep.answer(tn, 410)
	id := e.publish(t, tn, []byte(`{}`))
	e.startProcessor(t)
	e.startWorker(t)
	d := e.waitDeadLetter(t, tn, id)
	if d.Attempts != 1 || d.LastStatusCode != 410 || !strings.HasPrefix(d.Reason, "terminated: HTTP 410") {
		t.Errorf("dead letter of a 410: attempts %d code %d reason %q", d.Attempts, d.LastStatusCode, d.Reason)
	}
}

func TestTheSameAdvisoryTwiceMakesOneDeadLetter(t *testing.T) {
	// A duplicate window of 1s, so the second handling also comes after it.
	e := newEnv(t, func(tp *natsconf.Topology) { tp.DuplicateWindow = time.Second })
	tn := e.tenant(t)
	e.ep.answer(tn, 500)
	id := e.publish(t, tn, []byte(`{}`))
	reg := e.startProcessor(t)
	e.startWorker(t)
	first := e.waitDeadLetter(t, tn, id)
	waitFor(t, 10*time.Second, "the advisory handled", func() bool { return counter(t, reg, "edgehook_dlq_advisories_total", "recorded") == 1 })

	// The server delivers the advisory again (say the processor crashed before its
	// ack): once within the duplicate window, once after it.
	adv, err := e.stream(t, natsconf.StreamDLQ).GetLastMsgForSubject(context.Background(), natsconf.AdvisoryMaxDeliveries)
	if err != nil {
		t.Fatal(err)
	}
	nc := e.srv.Connect(t)
	for i, pause := range []time.Duration{0, 1500 * time.Millisecond} {
		time.Sleep(pause)
		if err := nc.Publish(natsconf.AdvisoryMaxDeliveries, adv.Data); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 10*time.Second, "the repeated advisory handled", func() bool {
			return counter(t, reg, "edgehook_dlq_advisories_total", "duplicate") == float64(i+1)
		})
	}
	all := e.deadLetters(t, tn, id)
	if len(all) != 1 || all[0].Seq != first.Seq {
		t.Errorf("%d dead letters after three advisories, want the one at seq %d", len(all), first.Seq)
	}
}

func TestDeadLetterOutlivesTheEventAndReplaysFromIt(t *testing.T) {
	// Events and statuses are kept 3s; dead letters for the default 30 days.
	e := newEnv(t, func(tp *natsconf.Topology) {
		tp.Retention, tp.DuplicateWindow, tp.ReceivedDuplicateWindow, tp.MaxDeliver = 3*time.Second, time.Second, time.Second, 2
	})
	tn := e.tenant(t)
	e.ep.answer(tn, 500)
	payload := []byte(`{"survives":true}`)
	id := e.publish(t, tn, payload)
	e.startProcessor(t)
	e.startWorker(t)
	d := e.waitDeadLetter(t, tn, id)

	events := e.stream(t, natsconf.StreamEvents)
	waitFor(t, 15*time.Second, "the event to expire from EVENTS", func() bool {
		info, err := events.Info(context.Background())
		return err == nil && info.State.Msgs == 0
	})
	if _, err := events.GetMsg(context.Background(), d.StreamSeq); err == nil {
		t.Fatal("the original is still on EVENTS")
	}
	waitFor(t, 15*time.Second, "the status record to expire", func() bool {
		_, err := e.status.Get(context.Background(), tn, id)
		return errors.Is(err, status.ErrNotFound)
	})
	still := e.deadLetters(t, tn, id)
	if len(still) != 1 || !bytes.Equal(still[0].Payload, payload) {
		t.Fatalf("dead letters after the event expired: %+v", still)
	}

	// An operator replays it (what `edgehook dlq replay` does): same webhook-id, a
	// fresh attempt count, attempts logged after the earlier two.
	e.ep.answer(tn, 200)
	r, err := dlq.NewReplayer(context.Background(), e.js, e.status)
	if err != nil {
		t.Fatal(err)
	}
	res, err := r.ReplayDeadLetter(context.Background(), still[0], false)
	if err != nil || res.Duplicate || res.Replay != 1 {
		t.Fatalf("replay: %+v %v", res, err)
	}
	rec := e.waitStatus(t, tn, id, status.Delivered)
	if rec.Attempts != 1 || rec.Replays != 1 || rec.TotalAttempts != 3 {
		t.Errorf("status after replay %+v, want delivered on attempt 1 of replay 1, 3 attempts logged", rec)
	}
	hits := e.ep.hitsFor(id)
	if len(hits) != 3 || hits[2].verifyErr != nil || !bytes.Equal(hits[2].body, payload) {
		t.Errorf("endpoint got %d webhooks for %s, want 2 failed and 1 replayed, signed, same body", len(hits), id)
	}
	// Replaying the same dead letter again is refused: it was superseded.
	if _, err := r.ReplayDeadLetter(context.Background(), still[0], false); !errors.Is(err, dlq.ErrSuperseded) {
		t.Errorf("second replay of the same dead letter: %v, want ErrSuperseded", err)
	}
}

func TestReplayRequestsKeepTheWebhookID(t *testing.T) {
	e := newEnv(t, nil)
	tn := e.tenant(t)
	id := e.publish(t, tn, []byte(`{"n":1}`))
	reg := e.startProcessor(t)
	e.startWorker(t)
	e.waitStatus(t, tn, id, status.Delivered)

	// The gateway's replay request, twice (a client retrying): one replay. The gateway
	// names the request by the state it replays (the status record's revision).
	_, rev, err := e.status.Entry(context.Background(), tn, id)
	if err != nil {
		t.Fatal(err)
	}
	request := func() *jetstream.PubAck {
		m := nats.NewMsg(natsconf.ReplaySubject(tn))
		m.Header.Set(natsconf.HeaderTenant, tn)
		m.Header.Set(natsconf.HeaderEventID, id)
		m.Header.Set(jetstream.MsgIDHeader, "replay:"+tn+":"+id+":"+strconv.FormatUint(rev, 10))
		ack, err := e.js.PublishMsg(context.Background(), m)
		if err != nil {
			t.Fatal(err)
		}
		return ack
	}
	request()
	if ack := request(); !ack.Duplicate {
		t.Errorf("the repeated request was stored again (seq %d), want it taken for a duplicate", ack.Sequence)
	}
	waitFor(t, 10*time.Second, "the request handled", func() bool {
		return counter(t, reg, "edgehook_replays_total", "replayed") == 1
	})
	rec := e.waitStatus(t, tn, id, status.Delivered)
	if rec.Replays != 1 || rec.Attempts != 1 || rec.TotalAttempts != 2 {
		t.Errorf("status after replay %+v, want replay 1 delivered on its attempt 1, 2 attempts logged", rec)
	}
	hits := e.ep.hitsFor(id)
	if len(hits) != 2 {
		t.Fatalf("endpoint got %d webhooks with webhook-id %s, want the original and one replay", len(hits), id)
	}
	if !bytes.Equal(hits[0].body, hits[1].body) || hits[1].verifyErr != nil {
		t.Errorf("the replay differs from the original or does not verify")
	}
	log, err := e.status.Attempts(context.Background(), tn, id)
	if err != nil || len(log) != 2 || log[0].Replay != 0 || log[1].Replay != 1 || log[1].N != 2 || log[1].Attempt != 1 {
		t.Errorf("attempt log %+v (%v), want the original attempt and replay 1's first", log, err)
	}

	// A replay of an event that is not failed or delivered is rejected.
	e.ep.answer(tn, 500)
	busy := e.publish(t, tn, []byte(`{}`))
	e.waitStatus(t, tn, busy, status.Retrying)
	r, err := dlq.NewReplayer(context.Background(), e.js, e.status)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Replay(context.Background(), tn, busy); !errors.Is(err, dlq.ErrNotReplayable) && !errors.Is(err, dlq.ErrNoPayload) {
		// ErrNoPayload only if it failed for good in between.
		rec, _ := e.status.Get(context.Background(), tn, busy)
		if rec.Status != status.Failed {
			t.Errorf("replay of a retrying event: %v, want ErrNotReplayable", err)
		}
	}
	if _, err := r.Replay(context.Background(), tn, "evt_unknown"); !errors.Is(err, status.ErrNotFound) {
		t.Errorf("replay of an unknown event: %v, want status.ErrNotFound", err)
	}
}

func TestScanSelectsByTenantAndTime(t *testing.T) {
	e := newEnv(t, func(tp *natsconf.Topology) { tp.MaxDeliver = 1 })
	a, b := e.tenant(t), e.tenant(t)
	e.ep.answer(a, 500)
	e.ep.answer(b, 500)
	ida := e.publish(t, a, []byte(`{}`))
	e.startProcessor(t)
	e.startWorker(t)
	e.waitDeadLetter(t, a, ida)
	mid := time.Now()
	time.Sleep(50 * time.Millisecond)
	idb := e.publish(t, b, []byte(`{}`))
	e.waitDeadLetter(t, b, idb)

	scan := func(f dlq.Filter) []string {
		var ids []string
		if err := dlq.Scan(context.Background(), e.stream(t, natsconf.StreamDLQ), f, func(d dlq.DeadLetter) error {
			ids = append(ids, d.EventID)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return ids
	}
	if got := scan(dlq.Filter{}); len(got) != 2 || got[0] != ida || got[1] != idb {
		t.Errorf("scan all = %v, want [%s %s]", got, ida, idb)
	}
	if got := scan(dlq.Filter{TenantID: b}); len(got) != 1 || got[0] != idb {
		t.Errorf("scan tenant b = %v", got)
	}
	if got := scan(dlq.Filter{Since: mid}); len(got) != 1 || got[0] != idb {
		t.Errorf("scan since = %v", got)
	}
}

func TestDeadLetterHeadersAreSafe(t *testing.T) {
	d := dlq.DeadLetter{TenantID: "ten_a", EventID: "evt_1", Attempts: 2, StreamSeq: 9,
		LastError: "bad\r\nInjected: yes" + strings.Repeat("x", 1000), Reason: dlq.ReasonMaxDeliveries}
	m := d.Msg()
	v := m.Header.Get(dlq.HeaderLastError)
	if strings.ContainsAny(v, "\r\n") || len(v) > 512 {
		t.Errorf("last error header %q is not one safe line", v)
	}
	if m.Subject != "dlq.ten_a.evt_1" || m.Header.Get(dlq.HeaderStreamSeq) != strconv.Itoa(9) {
		t.Errorf("subject %s seq header %q", m.Subject, m.Header.Get(dlq.HeaderStreamSeq))
	}
}

// counter reads the value of name{result=value} from reg.
func counter(t *testing.T, reg prometheus.Gatherer, name, value string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if hasLabel(m, value) {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

func hasLabel(m *dto.Metric, value string) bool {
	for _, l := range m.GetLabel() {
		if l.GetValue() == value {
			return true
		}
	}
	return false
}
