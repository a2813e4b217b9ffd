package status

import (
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/edgehook/edgehook/natsconf"
)

// expectNoRecord is the ExpectedLastSubjSeq header value of a queued write: create
// only. Shared by every message; never modified.
var expectNoRecord = []string{"0"}

// FillQueuedMsg turns m into the message QueuedMsg returns for rec, reusing m's Data
// buffer and Header map (which must not be nil), so a caller that pools its messages
// encodes a record with a single small allocation, for the subject. m must not be in
// flight.
func FillQueuedMsg(m *nats.Msg, rec Record) error {
	return FillQueuedMsgIn(m, natsconf.BucketStatus, rec)
}

// FillQueuedMsgIn is FillQueuedMsg for the record in bucket, a bucket keyed like the
// status bucket (an edge's queued bucket).
func FillQueuedMsgIn(m *nats.Msg, bucket string, rec Record) error {
	rec.Status = Queued
	b, err := encodeRecord(m.Data[:0], rec)
	if err != nil {
		return err
	}
	m.Subject = bucketSubject(bucket, rec.TenantID, rec.EventID)
	m.Data = b
	m.Header[jetstream.ExpectedLastSubjSeqHeader] = expectNoRecord
	return nil
}
