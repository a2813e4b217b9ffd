package gateway

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/edgehook/edgehook/identity"
	"github.com/edgehook/edgehook/natsconf"
	"github.com/edgehook/edgehook/status"
)

// Defaults applied by New to zero-valued Config fields.
const (
	DefaultMaxBodyBytes   = 256 << 10
	DefaultPublishTimeout = 5 * time.Second
	DefaultStoreTimeout   = 10 * time.Second
	DefaultDrainTimeout   = 10 * time.Second
	DefaultAdminTimeout   = 5 * time.Second
)

// ErrInvalidConfig is wrapped by every error New returns for a Config or Deps that
// cannot work; the message names the setting.
var ErrInvalidConfig = errors.New("gateway: invalid configuration")

// Config is the gateway's configuration. Zero values take the documented defaults.
type Config struct {
	// Addr is the listen address, e.g. 127.0.0.1:8080 (port 0 picks a free port).
	Addr string
	// MaxBodyBytes is the largest accepted event body (default 256 KiB); larger
	// bodies get 413.
	MaxBodyBytes int
	// PublishTimeout bounds the wait for the JetStream acks of one event (default 5s);
	// on expiry the client gets 503.
	PublishTimeout time.Duration
	// StoreTimeout bounds each status store call made while serving one request
	// (default 10s).
	StoreTimeout time.Duration
	// AdminTimeout bounds the wait for the admin API's answer to a relayed tenant
	// request (default 5s); on expiry the client gets 503.
	AdminTimeout time.Duration
	// DrainTimeout bounds how long Run waits for in-flight requests after its context
	// is cancelled (default 10s).
	DrainTimeout time.Duration
	// Edge is the name of the edge this gateway serves, connected to that edge's leaf
	// node; empty for a gateway at the hub (or in `up`). See edge.go.
	Edge string
	// HubTimeout bounds an edge gateway's reads from the hub and each link probe
	// (default 2s).
	HubTimeout time.Duration
	// LinkProbeInterval is how often an edge gateway probes its hub link (default 1s).
	LinkProbeInterval time.Duration
	// Portal configures the tenant portal under /portal/ (see portal.go).
	Portal PortalConfig
}

// Deps are the gateway's collaborators. The gateway does not own them: it neither
// runs the View nor closes the NATS connection. It has no identity writer and no
// webhook configuration store: those are the admin API's (package admin).
type Deps struct {
	// JS publishes events and their queued status records. The gateway derives its
	// own publisher on JS.Conn() (same domain or API prefix) whose async acks time
	// out after Config.PublishTimeout.
	JS jetstream.JetStream
	// View authenticates API keys in memory; the caller runs View.Run.
	View *identity.View
	// Status reads the event status records tenants ask for (at an edge, the hub's,
	// through a lazy store).
	Status *status.Store
	// Queued is an edge gateway's own queued-record bucket (natsconf.EdgeQueuedBucket);
	// required with Config.Edge, unused without.
	Queued *status.Store
	// Hub is a JetStream context in the hub's domain, for an edge gateway's link probe;
	// required with Config.Edge.
	Hub jetstream.JetStream
	// Logger receives structured logs (default: discarded).
	Logger *slog.Logger
	// Registerer is where the gateway registers its metrics.
	Registerer prometheus.Registerer
	// Gatherer is what GET /metrics serves.
	Gatherer prometheus.Gatherer
}

// withDefaults returns cfg with zero fields set to their defaults, or an error naming
// the first setting that cannot work.
func (cfg Config) withDefaults() (Config, error) {
	if cfg.Addr == "" {
		return cfg, fmt.Errorf("%w: Addr must be set (host:port)", ErrInvalidConfig)
	}
	if cfg.MaxBodyBytes == 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.MaxBodyBytes < 0 {
		return cfg, fmt.Errorf("%w: MaxBodyBytes must be positive, got %d", ErrInvalidConfig, cfg.MaxBodyBytes)
	}
	var err error
	if cfg.PublishTimeout, err = positiveDuration("PublishTimeout", cfg.PublishTimeout, DefaultPublishTimeout); err != nil {
		return cfg, err
	}
	if cfg.StoreTimeout, err = positiveDuration("StoreTimeout", cfg.StoreTimeout, DefaultStoreTimeout); err != nil {
		return cfg, err
	}
	if cfg.AdminTimeout, err = positiveDuration("AdminTimeout", cfg.AdminTimeout, DefaultAdminTimeout); err != nil {
		return cfg, err
	}
	if cfg.DrainTimeout, err = positiveDuration("DrainTimeout", cfg.DrainTimeout, DefaultDrainTimeout); err != nil {
		return cfg, err
	}
	if cfg.HubTimeout, err = positiveDuration("HubTimeout", cfg.HubTimeout, DefaultHubTimeout); err != nil {
		return cfg, err
	}
	if cfg.LinkProbeInterval, err = positiveDuration("LinkProbeInterval", cfg.LinkProbeInterval, DefaultLinkProbeInterval); err != nil {
		return cfg, err
	}
	if cfg.Edge != "" {
		if err := natsconf.ValidateEdgeName(cfg.Edge); err != nil {
			return cfg, fmt.Errorf("%w: Edge: %w", ErrInvalidConfig, err)
		}
	}
	return cfg, nil
}

func positiveDuration(name string, d, def time.Duration) (time.Duration, error) {
	switch {
	case d == 0:
		return def, nil
	case d < 0:
		return d, fmt.Errorf("%w: %s must be positive, got %s", ErrInvalidConfig, name, d)
	}
	return d, nil
}

// validate checks that every dependency the configuration needs is present.
func (d Deps) validate(edge bool) error {
	switch {
	case edge && d.Queued == nil:
		return fmt.Errorf("%w: Deps.Queued is required at an edge", ErrInvalidConfig)
	case edge && d.Hub == nil:
		return fmt.Errorf("%w: Deps.Hub is required at an edge", ErrInvalidConfig)
	case d.JS == nil:
		return fmt.Errorf("%w: Deps.JS is required", ErrInvalidConfig)
	case d.View == nil:
		return fmt.Errorf("%w: Deps.View is required", ErrInvalidConfig)
	case d.Status == nil:
		return fmt.Errorf("%w: Deps.Status is required", ErrInvalidConfig)
	case d.Registerer == nil:
		return fmt.Errorf("%w: Deps.Registerer is required", ErrInvalidConfig)
	case d.Gatherer == nil:
		return fmt.Errorf("%w: Deps.Gatherer is required", ErrInvalidConfig)
	}
	return nil
}
