package receiver

import (
	"errors"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/valyala/fastjson"
)

// TestParseAckReadsWhatJetStreamAnswers covers the ack forms of the publish path
// that are hard to provoke through the HTTP surface: API errors and malformed acks.
func TestParseAckReadsWhatJetStreamAnswers(t *testing.T) {
	var p fastjson.Parser
	for _, c := range []struct {
		ack     string
		dup     bool
		errCode jetstream.ErrorCode // 0: no API error
		invalid bool
	}{
		{ack: `{"stream":"RECEIVED","seq":42}`},
		{ack: `{"stream":"RECEIVED","domain":"hub","seq":42,"duplicate":true}`, dup: true},
		{ack: `{"error":{"code":503,"err_code":10077,"description":"maximum messages exceeded"}}`, errCode: 10077},
		{ack: `{"seq":42}`, invalid: true},
		{ack: `not json`, invalid: true},
		{ack: ``, invalid: true},
	} {
		dup, err := parseAck(&p, []byte(c.ack))
		var apiErr *jetstream.APIError
		switch {
		case c.errCode != 0:
			if !errors.As(err, &apiErr) || apiErr.ErrorCode != c.errCode || apiErr.Code != 503 || apiErr.Description == "" {
				t.Errorf("%s: error %v, want the API error %d", c.ack, err, c.errCode)
			}
		case c.invalid:
			if !errors.Is(err, jetstream.ErrInvalidJSAck) {
				t.Errorf("%s: error %v, want ErrInvalidJSAck", c.ack, err)
			}
		case err != nil || dup != c.dup:
			t.Errorf("%s: dup %v err %v, want dup %v", c.ack, dup, err, c.dup)
		}
	}
}
