package admin

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/edgehook/edgehook/console"
	"github.com/edgehook/edgehook/identity"
	"github.com/edgehook/edgehook/vault"
)

// Defaults applied by New to zero-valued Config fields.
const (
	DefaultAddr           = "127.0.0.1:8081"
	DefaultMaxBodyBytes   = 64 << 10
	DefaultRotationWindow = 24 * time.Hour
	DefaultStoreTimeout   = 10 * time.Second
	DefaultDrainTimeout   = 10 * time.Second
)

// MinTokenLen is the shortest admin token New accepts, so the admin API is never
// guarded by a guessable password.
const MinTokenLen = 16

// ErrInvalidConfig is wrapped by every error New returns for a Config or Deps that
// cannot work; the message names the setting.
var ErrInvalidConfig = errors.New("admin: invalid configuration")

// Config is the admin API's configuration. Zero values take the documented defaults.
type Config struct {
	// Addr is the listen address (default 127.0.0.1:8081; port 0 picks a free port).
	Addr string
	// Token is the admin bearer token, at least MinTokenLen characters; required. It
	// is compared in constant time and never logged.
	Token string
	// MaxBodyBytes is the largest accepted request body (default 64 KiB).
	MaxBodyBytes int
	// RotationWindow is how long a rotated-out signing secret stays valid (default 24h).
	RotationWindow time.Duration
	// StoreTimeout bounds each identity or webhook-config store call (default 10s).
	StoreTimeout time.Duration
	// DrainTimeout bounds how long Run waits for in-flight requests after its context
	// is cancelled (default 10s).
	DrainTimeout time.Duration
	// AllowPrivateTargets lets target URLs name loopback and private addresses
	// (EDGEHOOK_ALLOW_PRIVATE_TARGETS, as the worker; true in `edgehook up`).
	AllowPrivateTargets bool
	// ConsoleSessionTTL is how long a session of the operator console (at /console/,
	// signed in with Token) lasts (default 15m, at most 12h).
	ConsoleSessionTTL time.Duration
	// ConsoleSecureCookies marks the console's cookies Secure on plain HTTP too (set
	// it behind a TLS-terminating proxy).
	ConsoleSecureCookies bool
	// ConsoleRatesStep is the step of the console's rate charts: how often the admin
	// samples the stream counters (default 1m, 1s to 1h).
	ConsoleRatesStep time.Duration
}

// Deps are the admin API's collaborators; it does not own them.
type Deps struct {
	// Identity writes tenant records (the admin NATS user's connection).
	Identity *identity.Store
	// Configs reads and writes webhook configuration (Vault, with the admin policy).
	Configs vault.ConfigStore
	// NATS is the admin user's connection: every webhook configuration write is
	// announced on it (natsconf.ConfigChangedPrefix), and readiness follows it.
	NATS *nats.Conn
	// JS is the operator console's JetStream context on NATS (default: one made on
	// NATS with the connection's own inbox prefix).
	JS jetstream.JetStream
	// Ready, when set, must also hold for /readyz to answer 200 (e.g. the Vault
	// client's login).
	Ready func() bool
	// Logger receives structured logs (default: discarded).
	Logger *slog.Logger
	// Registerer is where the admin API registers its metrics.
	Registerer prometheus.Registerer
	// Gatherer is what GET /metrics serves.
	Gatherer prometheus.Gatherer
}

// withDefaults returns cfg with zero fields set to their defaults, or an error naming
// the first setting that cannot work.
func (cfg Config) withDefaults() (Config, error) {
	if cfg.Addr == "" {
		cfg.Addr = DefaultAddr
	}
	if len(cfg.Token) < MinTokenLen {
		return cfg, fmt.Errorf("%w: Token (the admin token) must be at least %d characters", ErrInvalidConfig, MinTokenLen)
	}
	if cfg.MaxBodyBytes == 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.MaxBodyBytes < 0 {
		return cfg, fmt.Errorf("%w: MaxBodyBytes must be positive, got %d", ErrInvalidConfig, cfg.MaxBodyBytes)
	}
	for _, d := range []struct {
		name string
		p    *time.Duration
		def  time.Duration
	}{
		{"RotationWindow", &cfg.RotationWindow, DefaultRotationWindow},
		{"StoreTimeout", &cfg.StoreTimeout, DefaultStoreTimeout},
		{"DrainTimeout", &cfg.DrainTimeout, DefaultDrainTimeout},
		{"ConsoleRatesStep", &cfg.ConsoleRatesStep, DefaultConsoleRatesStep},
	} {
		switch {
		case *d.p == 0:
			*d.p = d.def
		case *d.p < 0:
			return cfg, fmt.Errorf("%w: %s must be positive, got %s", ErrInvalidConfig, d.name, *d.p)
		}
	}
	if cfg.ConsoleSessionTTL < 0 || cfg.ConsoleSessionTTL > console.MaxSessionTTL {
		return cfg, fmt.Errorf("%w: ConsoleSessionTTL must be between 0 (the default, %s) and %s, got %s",
			ErrInvalidConfig, console.DefaultSessionTTL, console.MaxSessionTTL, cfg.ConsoleSessionTTL)
	}
	if cfg.ConsoleRatesStep < time.Second || cfg.ConsoleRatesStep > ratesSpan {
		return cfg, fmt.Errorf("%w: ConsoleRatesStep must be between 1s and %s, got %s", ErrInvalidConfig, ratesSpan, cfg.ConsoleRatesStep)
	}
	return cfg, nil
}

// validate checks that every dependency is present.
func (d Deps) validate() error {
	switch {
	case d.Identity == nil:
		return fmt.Errorf("%w: Deps.Identity is required", ErrInvalidConfig)
	case d.Configs == nil:
		return fmt.Errorf("%w: Deps.Configs is required", ErrInvalidConfig)
	case d.NATS == nil:
		return fmt.Errorf("%w: Deps.NATS is required", ErrInvalidConfig)
	case d.Registerer == nil:
		return fmt.Errorf("%w: Deps.Registerer is required", ErrInvalidConfig)
	case d.Gatherer == nil:
		return fmt.Errorf("%w: Deps.Gatherer is required", ErrInvalidConfig)
	}
	return nil
}
