// Package worker delivers accepted events as signed webhooks: a JetStream pull consumer
// on EVENTS with bounded concurrency that signs each event per Standard Webhooks, POSTs
// it to the tenant's target through an SSRF-guarded HTTP client without following
// redirects, acks on 2xx, terminates on 410, retries everything else on a schedule, and
// records each attempt in the event's attempt log and status record. It is fair
// between tenants: each has a cap on concurrent deliveries, and an endpoint that keeps
// failing is parked by a circuit breaker instead of being sent requests.
package worker

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/edgehook/edgehook/natsconf"
	"github.com/edgehook/edgehook/vault"
)

// Defaults applied by New to zero-valued Config fields.
const (
	DefaultConcurrency    = 256
	DefaultHTTPTimeout    = 10 * time.Second
	DefaultConnectTimeout = 5 * time.Second
	DefaultMaxDeliver     = 8
	DefaultMaxRetryAfter  = time.Hour
	DefaultDrainTimeout   = 15 * time.Second
	DefaultUserAgent      = "edgehook-webhooks/1"
	// DefaultBreakerThreshold is how many consecutive failures park an endpoint.
	DefaultBreakerThreshold = 5
	// DefaultBreakerCooldown is how long an endpoint stays parked the first time; each
	// failed probe doubles it, up to DefaultBreakerMaxCooldown.
	DefaultBreakerCooldown    = 30 * time.Second
	DefaultBreakerMaxCooldown = 10 * time.Minute
	// DefaultMaxWaiting and DefaultMaxWaitingBytes bound the events waiting for their
	// tenant's concurrency cap.
	DefaultMaxWaiting      = 10000
	DefaultMaxWaitingBytes = 64 << 20
	// DefaultMaxNakDelay is the longest retry kept in the delivery consumer.
	DefaultMaxNakDelay = time.Minute
)

// DefaultRetrySchedule returns the Standard Webhooks schedule: the delays after failed
// attempts 1..7 (the first attempt is immediate).
func DefaultRetrySchedule() []time.Duration { return natsconf.DefaultRetrySchedule() }

// DefaultTenantConcurrency is the per-tenant cap for a worker of the given concurrency:
// a quarter of it, at least 1.
func DefaultTenantConcurrency(concurrency int) int { return max(1, concurrency/4) }

// ErrInvalidConfig is wrapped by every error New and Run return for a setting that
// cannot work; the message names the setting.
var ErrInvalidConfig = errors.New("worker: invalid configuration")

// Config holds the worker's settings. Zero values take the defaults above.
type Config struct {
	// Concurrency is the most deliveries this worker has in flight (default 256).
	Concurrency int
	// HTTPTimeout bounds one delivery attempt from dial to response headers
	// (default 10s). It must be less than the consumer's AckWait.
	HTTPTimeout time.Duration
	// ConnectTimeout bounds DNS resolution plus TCP connect (default 5s).
	ConnectTimeout time.Duration
	// RetrySchedule gives the delay after failed attempt n as
	// RetrySchedule[min(n-1, len-1)], with ±10% jitter (default DefaultRetrySchedule).
	RetrySchedule []time.Duration
	// MaxDeliver is the number of attempts before an event is given up as failed
	// (default 8). It must equal the consumer's MaxDeliver.
	MaxDeliver int
	// AllowPrivateTargets turns the SSRF guard off, allowing loopback, private and
	// link-local targets. Only for local development and tests.
	AllowPrivateTargets bool
	// MaxRetryAfter caps a Retry-After honoured on 429 and 503 (default 1h).
	MaxRetryAfter time.Duration
	// DrainTimeout is how long Run waits for in-flight deliveries at shutdown before
	// it naks them for redelivery (default 15s).
	DrainTimeout time.Duration
	// UserAgent is sent with every webhook (default DefaultUserAgent).
	UserAgent string
	// TenantConcurrency caps one tenant's deliveries in flight in this worker (default
	// DefaultTenantConcurrency(Concurrency)); its further events wait without holding
	// a delivery slot.
	TenantConcurrency int
	// MaxWaiting and MaxWaitingBytes bound the events of all tenants waiting for their
	// tenant's cap, in number (default 10000) and payload
	// bytes (default 64 MiB); when
	// either is reached the worker takes no further events until one leaves. They
	// should let the events arriving during one HTTPTimeout wait, which is how long a
	// hanging endpoint takes to be parked.
	MaxWaiting      int
	MaxWaitingBytes int
	// BreakerThreshold is how many consecutive failures (no answer, 5xx, 429) park an
	// endpoint (default 5; -1 turns the breaker off).
	BreakerThreshold int
	// BreakerCooldown is how long a parked endpoint gets no requests before one probe
	// (default 30s); a failed probe doubles it up to BreakerMaxCooldown (default 10m).
	BreakerCooldown    time.Duration
	BreakerMaxCooldown time.Duration
	// MaxNakDelay is the longest retry delay an event waits for in the delivery
	// consumer (a delayed nak, default 1m); a later retry waits as a parked copy
	// instead, so the consumer's MaxAckPending bounds only what is in flight and short
	// retries.
	MaxNakDelay time.Duration
}

// Deps are the worker's collaborators.
type Deps struct {
	// JS reaches the natsconf.ConsumerDeliver consumer on natsconf.StreamEvents; the
	// worker also writes status records and attempt logs through it.
	JS jetstream.JetStream
	// Configs reads tenants' webhook configuration; it should be cached (vault.Cache),
	// since it is called for every message.
	Configs vault.ConfigReader
	// Logger receives one line per failed attempt and terminal outcome (nil: discard).
	Logger *slog.Logger
	// Registerer receives the worker's metrics (nil: not registered).
	Registerer prometheus.Registerer
}

// withDefaults fills zero fields and validates the rest, naming the first bad setting.
func (c Config) withDefaults() (Config, error) {
	if c.Concurrency == 0 {
		c.Concurrency = DefaultConcurrency
	}
	if c.HTTPTimeout == 0 {
		c.HTTPTimeout = DefaultHTTPTimeout
	}
	if c.ConnectTimeout == 0 {
		c.ConnectTimeout = DefaultConnectTimeout
	}
	if c.RetrySchedule == nil {
		c.RetrySchedule = DefaultRetrySchedule()
	}
	if c.MaxDeliver == 0 {
		c.MaxDeliver = DefaultMaxDeliver
	}
	if c.MaxRetryAfter == 0 {
		c.MaxRetryAfter = DefaultMaxRetryAfter
	}
	if c.DrainTimeout == 0 {
		c.DrainTimeout = DefaultDrainTimeout
	}
	if c.MaxNakDelay == 0 {
		c.MaxNakDelay = DefaultMaxNakDelay
	}
	if c.UserAgent == "" {
		c.UserAgent = DefaultUserAgent
	}
	if c.TenantConcurrency == 0 {
		c.TenantConcurrency = DefaultTenantConcurrency(c.Concurrency)
	}
	if c.MaxWaiting == 0 {
		c.MaxWaiting = DefaultMaxWaiting
	}
	if c.MaxWaitingBytes == 0 {
		c.MaxWaitingBytes = DefaultMaxWaitingBytes
	}
	if c.BreakerThreshold == 0 {
		c.BreakerThreshold = DefaultBreakerThreshold
	}
	if c.BreakerCooldown == 0 {
		c.BreakerCooldown = DefaultBreakerCooldown
	}
	if c.BreakerMaxCooldown == 0 {
		c.BreakerMaxCooldown = max(DefaultBreakerMaxCooldown, c.BreakerCooldown)
	}
	switch {
	case c.Concurrency < 1:
		return c, fmt.Errorf("%w: Concurrency (EDGEHOOK_CONCURRENCY) must be at least 1, got %d", ErrInvalidConfig, c.Concurrency)
	case c.HTTPTimeout < 0:
		return c, fmt.Errorf("%w: HTTPTimeout (EDGEHOOK_HTTP_TIMEOUT) must be positive, got %s", ErrInvalidConfig, c.HTTPTimeout)
	case c.ConnectTimeout < 0:
		return c, fmt.Errorf("%w: ConnectTimeout (EDGEHOOK_CONNECT_TIMEOUT) must be positive, got %s", ErrInvalidConfig, c.ConnectTimeout)
	case len(c.RetrySchedule) == 0:
		return c, fmt.Errorf("%w: RetrySchedule (EDGEHOOK_RETRY_SCHEDULE) is empty", ErrInvalidConfig)
	case c.MaxDeliver < 1:
		return c, fmt.Errorf("%w: MaxDeliver (EDGEHOOK_MAX_DELIVER) must be at least 1, got %d", ErrInvalidConfig, c.MaxDeliver)
	case c.MaxRetryAfter < 0:
		return c, fmt.Errorf("%w: MaxRetryAfter must not be negative, got %s", ErrInvalidConfig, c.MaxRetryAfter)
	case c.DrainTimeout < 0:
		return c, fmt.Errorf("%w: DrainTimeout (EDGEHOOK_DRAIN_TIMEOUT) must not be negative, got %s", ErrInvalidConfig, c.DrainTimeout)
	case c.TenantConcurrency < 1 || c.TenantConcurrency > c.Concurrency:
		return c, fmt.Errorf("%w: TenantConcurrency (EDGEHOOK_TENANT_CONCURRENCY) must be 1..Concurrency (%d), got %d", ErrInvalidConfig, c.Concurrency, c.TenantConcurrency)
	case c.MaxWaiting < 1:
		return c, fmt.Errorf("%w: MaxWaiting must be at least 1, got %d", ErrInvalidConfig, c.MaxWaiting)
	case c.MaxWaitingBytes < 1:
		return c, fmt.Errorf("%w: MaxWaitingBytes must be at least 1, got %d", ErrInvalidConfig, c.MaxWaitingBytes)
	case c.BreakerThreshold < -1:
		return c, fmt.Errorf("%w: BreakerThreshold (EDGEHOOK_BREAKER_THRESHOLD) must be at least 1, or -1 for no breaker, got %d", ErrInvalidConfig, c.BreakerThreshold)
	case c.BreakerCooldown < 0:
		return c, fmt.Errorf("%w: BreakerCooldown (EDGEHOOK_BREAKER_COOLDOWN) must be positive, got %s", ErrInvalidConfig, c.BreakerCooldown)
	case c.BreakerMaxCooldown < c.BreakerCooldown:
		return c, fmt.Errorf("%w: BreakerMaxCooldown (EDGEHOOK_BREAKER_MAX_COOLDOWN) must be at least BreakerCooldown (EDGEHOOK_BREAKER_COOLDOWN) %s, got %s", ErrInvalidConfig, c.BreakerCooldown, c.BreakerMaxCooldown)
	}
	for i, d := range c.RetrySchedule {
		if d < 0 {
			return c, fmt.Errorf("%w: RetrySchedule (EDGEHOOK_RETRY_SCHEDULE) entry %d is negative: %s", ErrInvalidConfig, i+1, d)
		}
	}
	return c, nil
}

// ParseRetrySchedule parses a comma-separated list of Go durations ("5s,5m,30m"), the
// form of EDGEHOOK_RETRY_SCHEDULE. Entries must not be negative; the list must not be
// empty. The error names EDGEHOOK_RETRY_SCHEDULE.
func ParseRetrySchedule(s string) ([]time.Duration, error) {
	if strings.TrimSpace(s) == "" {
		return nil, fmt.Errorf("%w: EDGEHOOK_RETRY_SCHEDULE is empty", ErrInvalidConfig)
	}
	parts := strings.Split(s, ",")
	out := make([]time.Duration, 0, len(parts))
	for i, p := range parts {
		p = strings.TrimSpace(p)
		d, err := time.ParseDuration(p)
		if err != nil {
			return nil, fmt.Errorf("%w: EDGEHOOK_RETRY_SCHEDULE entry %d %q is not a duration (like 5s or 30m)", ErrInvalidConfig, i+1, p)
		}
		if d < 0 {
			return nil, fmt.Errorf("%w: EDGEHOOK_RETRY_SCHEDULE entry %d %q is negative", ErrInvalidConfig, i+1, p)
		}
		out = append(out, d)
	}
	return out, nil
}
