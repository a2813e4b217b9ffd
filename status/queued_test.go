package status_test

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/edgehook/edgehook/status"
)

// TestQueuedMsgEncodesAsEncodingJSONDoes pins the hand-written encoder of the queued
// record to encoding/json, including the records it hands back to encoding/json.
func TestQueuedMsgEncodesAsEncodingJSONDoes(t *testing.T) {
	now := time.Now().UTC()
	berlin := time.FixedZone("CET", 3600)
	for _, rec := range []status.Record{
		{EventID: "evt_1", TenantID: "ten_a", CreatedAt: now, UpdatedAt: now},
		{EventID: "evt_2", TenantID: "ten_b", Type: "order.created", CreatedAt: now.Truncate(time.Second), UpdatedAt: now},
		{EventID: "evt_3", TenantID: "ten_c", Type: "a.b", Attempts: 3, LastStatusCode: 503, LastError: "HTTP 503", CreatedAt: now, UpdatedAt: now},
		{EventID: "evt_4", TenantID: "ten_d", Type: `quote " and \ backslash`, CreatedAt: now, UpdatedAt: now},
		{EventID: "evt_5", TenantID: "ten_e", Type: "<script>&", CreatedAt: now, UpdatedAt: now},
		{EventID: "evt_6", TenantID: "ten_f", Type: "ünïcødé \u2028", CreatedAt: now, UpdatedAt: now},
		{EventID: "evt_7", TenantID: "ten_g", Type: "tab\there", CreatedAt: now.In(berlin), UpdatedAt: now.In(berlin)},
		{EventID: "evt_8", TenantID: "ten_h", CreatedAt: time.Time{}, UpdatedAt: time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC)},
		{EventID: "evt_9", TenantID: "ten_i", Status: status.Delivered, CreatedAt: now, UpdatedAt: now}, // QueuedMsg sets queued
	} {
		m, err := status.QueuedMsg(rec)
		if err != nil {
			t.Fatalf("QueuedMsg(%+v): %v", rec, err)
		}
		rec.Status = status.Queued
		want, err := json.Marshal(rec)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(m.Data, want) {
			t.Errorf("QueuedMsg data\n got %s\nwant %s", m.Data, want)
		}
		if m.Subject != "$KV.status."+rec.TenantID+"."+rec.EventID {
			t.Errorf("subject %q", m.Subject)
		}
		if len(m.Header) != 1 || m.Header.Get(jetstream.ExpectedLastSubjSeqHeader) != "0" {
			t.Errorf("headers %v, want only %s: 0", m.Header, jetstream.ExpectedLastSubjSeqHeader)
		}
	}
}

func TestFillQueuedMsgReusesTheMessage(t *testing.T) {
	now := time.Now().UTC()
	m := &nats.Msg{Header: nats.Header{}}
	long := status.Record{EventID: "evt_long", TenantID: "ten_a", Type: "a.very.long.event.type.name", CreatedAt: now, UpdatedAt: now}
	short := status.Record{EventID: "evt_s", TenantID: "ten_b", CreatedAt: now, UpdatedAt: now}
	if err := status.FillQueuedMsg(m, long); err != nil {
		t.Fatal(err)
	}
	buf := m.Data[:1]
	if err := status.FillQueuedMsg(m, short); err != nil {
		t.Fatal(err)
	}
	fresh, _ := status.QueuedMsg(short)
	if !bytes.Equal(m.Data, fresh.Data) || m.Subject != fresh.Subject {
		t.Errorf("refilled message %s %s, want %s %s", m.Subject, m.Data, fresh.Subject, fresh.Data)
	}
	if &buf[0] != &m.Data[0] {
		t.Error("FillQueuedMsg did not reuse the message's buffer")
	}
	if allocs := testing.AllocsPerRun(100, func() { _ = status.FillQueuedMsg(m, short) }); allocs > 1 {
		t.Errorf("FillQueuedMsg allocates %v times per record, want at most 1 (the subject)", allocs)
	}
}
