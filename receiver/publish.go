package receiver

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/valyala/fastjson"

	"github.com/edgehook/edgehook/natsconf"
	"github.com/edgehook/edgehook/webhook"
)

// outMsg is a reusable RECEIVED message: its header map and value slices are kept
// between webhooks, and all header values share one string per message.
type outMsg struct {
	msg nats.Msg
	buf []byte
	// one-element value slices, reused for every message
	msgID, id, ts, tenant, event, verify, contentType []string
	ack                                               fastjson.Parser // reads the publish ack
}

const headerContentType = "Content-Type"

// newOutMsg is the New function of Server.msgs.
func newOutMsg() any {
	m := &outMsg{
		msgID: make([]string, 1), id: make([]string, 1), ts: make([]string, 1),
		tenant: make([]string, 1), event: make([]string, 1), verify: make([]string, 1),
		contentType: make([]string, 1),
	}
	m.msg.Header = nats.Header{
		jetstream.MsgIDHeader:     m.msgID,
		webhook.HeaderID:          m.id,
		webhook.HeaderTimestamp:   m.ts,
		natsconf.HeaderTenant:     m.tenant,
		natsconf.HeaderEventID:    m.event,
		natsconf.HeaderVerifyTime: m.verify,
	}
	return m
}

// publish stores a verified webhook on received.<tenant> and waits for the JetStream
// ack, which reports whether RECEIVED already held this webhook-id (dup). The
// message id is tenant + ":" + webhook-id, so JetStream's duplicate window dedupes
// redeliveries of one webhook and never mixes tenants.
func (s *Server) publish(tenantID string, id, ts, contentType, body []byte, verifiedAt time.Time) (dup bool, err error) {
	m := s.msgs.Get().(*outMsg)
	defer func() {
		m.msg.Data = nil
		s.msgs.Put(m)
	}()

	// Lay every value out in one buffer, convert it once, then slice the string.
	b := append(m.buf[:0], natsconf.ReceivedSubjectPrefix...)
	b = append(b, tenantID...)
	subjectEnd := len(b)
	b = append(b, ':')
	b = append(b, id...)
	msgIDEnd := len(b)
	b = append(b, ts...)
	tsEnd := len(b)
	b = strconv.AppendInt(b, verifiedAt.UnixNano(), 10)
	verifyEnd := len(b)
	b = append(b, contentType...)
	m.buf = b
	all := string(b)

	subject := all[:subjectEnd]
	tenant := subject[len(natsconf.ReceivedSubjectPrefix):]
	msgID := all[len(natsconf.ReceivedSubjectPrefix):msgIDEnd]
	eventID := msgID[len(tenant)+1:]
	m.msg.Subject = subject
	m.msgID[0] = msgID
	m.id[0] = eventID
	m.event[0] = eventID
	m.tenant[0] = tenant
	m.ts[0] = all[msgIDEnd:tsEnd]
	m.verify[0] = all[tsEnd:verifyEnd]
	if ct := all[verifyEnd:]; ct != "" {
		m.contentType[0] = ct
		m.msg.Header[headerContentType] = m.contentType
	} else {
		delete(m.msg.Header, headerContentType)
	}
	m.msg.Data = body

	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.PublishTimeout)
	defer cancel()
	start := time.Now()
	dup, err = s.request(ctx, m)
	if err != nil {
		return false, fmt.Errorf("receiver: publish to %s: %w", subject, err)
	}
	s.metrics.publishSeconds.Observe(time.Since(start).Seconds())
	return dup, nil
}

// Retries of a publish that found no stream listening (as jetstream.PublishMsg does by
// default: a stream leader may be moving).
const (
	noResponderRetries = 2
	noResponderWait    = 250 * time.Millisecond
)

// request publishes m's message as a request and reads JetStream's ack with m's
// parser, without reflection: it is jetstream.PublishMsg for a message without
// publish options.
func (s *Server) request(ctx context.Context, m *outMsg) (dup bool, err error) {
	var resp *nats.Msg
	for try := 0; ; try++ {
		resp, err = s.js.Conn().RequestMsgWithContext(ctx, &m.msg)
		if !errors.Is(err, nats.ErrNoResponders) || try == noResponderRetries {
			break
		}
		select {
		case <-ctx.Done():
			return false, fmt.Errorf("%w: %w", jetstream.ErrNoStreamResponse, ctx.Err())
		case <-time.After(noResponderWait):
		}
	}
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		return false, jetstream.ErrNoStreamResponse
	case err != nil:
		return false, err
	}
	return parseAck(&m.ack, resp.Data)
}

// parseAck reads a JetStream publish ack: whether the message was a duplicate, or
// the API error the server answered with.
func parseAck(p *fastjson.Parser, data []byte) (dup bool, err error) {
	v, err := p.ParseBytes(data)
	if err != nil {
		return false, fmt.Errorf("%w: %w", jetstream.ErrInvalidJSAck, err)
	}
	if e := v.Get("error"); e != nil {
		return false, &jetstream.APIError{
			Code:        e.GetInt("code"),
			ErrorCode:   jetstream.ErrorCode(e.GetUint("err_code")),
			Description: string(e.GetStringBytes("description")),
		}
	}
	if len(v.GetStringBytes("stream")) == 0 {
		return false, jetstream.ErrInvalidJSAck
	}
	return v.GetBool("duplicate"), nil
}
