package natsconf

import (
	"net/url"
	"strings"
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

// RedactURL returns the NATS server URL list urls (comma-separated) with any password
// replaced by "xxxxx", for logs and errors.
func RedactURL(urls string) string {
	parts := strings.Split(urls, ",")
	for i, p := range parts {
		u, err := url.Parse(strings.TrimSpace(p))
		if err != nil {
			parts[i] = "<unparsable URL>"
			continue
		}
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
		}
		parts[i] = u.String()
	}
	return strings.Join(parts, ",")
}
