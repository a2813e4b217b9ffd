package natsconf

import (
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Publisher returns a JetStream context on js's connection, in the same domain or
// under the same API prefix, whose asynchronous publishes fail after timeout instead
// of waiting for an ack forever. The gateway and the status recorder publish through
// one, so a request never waits longer than its configured bound.
func Publisher(js jetstream.JetStream, timeout time.Duration) (jetstream.JetStream, error) {
	opts := js.Options()
	jsOpts := []jetstream.JetStreamOpt{jetstream.WithPublishAsyncTimeout(timeout)}
	if opts.DefaultTimeout > 0 {
		jsOpts = append(jsOpts, jetstream.WithDefaultTimeout(opts.DefaultTimeout))
	}
	switch {
	case opts.Domain != "":
		return jetstream.NewWithDomain(js.Conn(), opts.Domain, jsOpts...)
	case opts.APIPrefix != "":
		return jetstream.NewWithAPIPrefix(js.Conn(), opts.APIPrefix, jsOpts...)
	default:
		return jetstream.New(js.Conn(), jsOpts...)
	}
}
