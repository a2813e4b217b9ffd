package status

import (
	"errors"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/valyala/fastjson"
)

// TestCheckAckReadsWhatJetStreamAnswers covers the ack forms of a delivery's write
// that a healthy server does not send: API errors and malformed acks.
func TestCheckAckReadsWhatJetStreamAnswers(t *testing.T) {
	var p fastjson.Parser
	if err := checkAck(&p, []byte(`{"stream":"KV_status","domain":"hub","seq":7}`)); err != nil {
		t.Errorf("good ack: %v", err)
	}
	err := checkAck(&p, []byte(`{"error":{"code":400,"err_code":10071,"description":"wrong last sequence: 3"}}`))
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) || apiErr.ErrorCode != jetstream.JSErrCodeStreamWrongLastSequence || apiErr.Code != 400 {
		t.Errorf("error ack: %v, want the API error 10071", err)
	}
	for _, bad := range []string{`{"seq":7}`, `{"stream":""}`, `<html>`, ``} {
		if err := checkAck(&p, []byte(bad)); !errors.Is(err, jetstream.ErrInvalidJSAck) {
			t.Errorf("ack %q: %v, want ErrInvalidJSAck", bad, err)
		}
	}
}
