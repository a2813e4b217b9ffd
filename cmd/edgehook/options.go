package main

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/edgehook/edgehook/natsconf"
	"github.com/edgehook/edgehook/vault"
	"github.com/edgehook/edgehook/worker"
)

// natsOptions says how a component reaches NATS.
type natsOptions struct {
	url      string
	creds    string
	user     string
	password string
	// passwords, set by `up` and `bench`, gives each component (and the operator, for
	// setup) its own user on the embedded server, keyed by user name.
	passwords natsconf.Credentials
	// inProcess, set by `up`, is the embedded server its components reach through an
	// in-memory connection instead of loopback TCP (the url still names it for logs).
	inProcess nats.InProcessConnProvider
}

func (o *natsOptions) register(s *settings) {
	s.String(&o.url, "nats-url", "EDGEHOOK_NATS_URL", "nats://127.0.0.1:4222", "NATS server URL(s), comma-separated")
	s.String(&o.creds, "nats-creds", "EDGEHOOK_NATS_CREDS", "", "NATS credentials file of this component's user")
	s.String(&o.user, "nats-user", "EDGEHOOK_NATS_USER", "", "NATS user of this component")
	s.Secret(&o.password, "nats-password", "EDGEHOOK_NATS_PASSWORD", "NATS password of this component's user")
}

// connect opens a connection named after the component that reconnects forever, and
// its JetStream context. It receives replies below the component's own inbox prefix,
// the only inbox its NATS user may subscribe to.
func (o natsOptions) connect(name string, log *slog.Logger) (*nats.Conn, jetstream.JetStream, error) {
	opts := []nats.Option{
		nats.Name("edgehook-" + name),
		nats.CustomInboxPrefix(natsconf.InboxPrefix(natsconf.Component(name))),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("nats disconnected", "component", name, "error", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) { log.Info("nats reconnected", "component", name, "url", nc.ConnectedUrlRedacted()) }),
	}
	if o.inProcess != nil {
		// An in-process connection is a pipe whose reader is the server's own read
		// loop, which reads as long as the server runs and closes the pipe when it
		// stops, so a write cannot hang on a peer that went away. The flusher's write
		// deadline (armed and cleared around every write, a timer each time) guards
		// against nothing here: it is off, on these connections only.
		opts = append(opts, nats.InProcessServer(o.inProcess), nats.FlusherTimeout(0))
	}
	switch pw, ok := o.passwords[name]; {
	case ok:
		opts = append(opts, nats.UserInfo(name, pw))
	case o.creds != "":
		opts = append(opts, nats.UserCredentials(o.creds))
	case o.user != "":
		opts = append(opts, nats.UserInfo(o.user, o.password))
	}
	nc, err := nats.Connect(o.url, opts...)
	if err != nil {
		return nil, nil, fmt.Errorf("connect to NATS at %s (EDGEHOOK_NATS_URL): %w", natsconf.RedactURL(o.url), err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("jetstream: %w", err)
	}
	return nc, js, nil
}

// topologyOptions are the JetStream layout settings shared by `setup nats` and `up`.
type topologyOptions struct {
	natsconf.Topology
	retrySchedule string
}

func (o *topologyOptions) register(s *settings) {
	d := natsconf.DefaultTopology()
	s.Int(&o.Replicas, "replicas", "EDGEHOOK_REPLICAS", d.Replicas, "replicas of every stream and bucket")
	s.Duration(&o.Retention, "retention", "EDGEHOOK_RETENTION", d.Retention, "how long events, statuses and received webhooks are kept")
	s.Duration(&o.DuplicateWindow, "duplicate-window", "EDGEHOOK_DUPLICATE_WINDOW", d.DuplicateWindow, "how long an Idempotency-Key is remembered")
	s.Duration(&o.ReceivedDuplicateWindow, "received-duplicate-window", "EDGEHOOK_RECEIVED_DUPLICATE_WINDOW", d.ReceivedDuplicateWindow, "how long the receiver remembers a webhook-id")
	s.Int(&o.MaxAckPending, "max-ack-pending", "EDGEHOOK_MAX_ACK_PENDING", d.MaxAckPending, "events handed to workers and not settled, across all workers: in flight, waiting for their tenant's cap, retries due within a minute (longer waits are parked outside the consumer)")
	s.Duration(&o.DeadLetterRetention, "dlq-retention", "EDGEHOOK_DLQ_RETENTION", d.DeadLetterRetention, "how long dead letters are kept (at least the retention)")
	o.registerDelivery(s)
}

// registerDelivery registers the settings the worker and the consumer must agree on.
// resolve must run after parsing.
func (o *topologyOptions) registerDelivery(s *settings) {
	d := natsconf.DefaultTopology()
	s.Duration(&o.HTTPTimeout, "http-timeout", "EDGEHOOK_HTTP_TIMEOUT", d.HTTPTimeout, "total timeout of one delivery attempt (the consumer's AckWait is this plus 10s)")
	s.Int(&o.MaxDeliver, "max-deliver", "EDGEHOOK_MAX_DELIVER", d.MaxDeliver, "delivery attempts before an event is dead-lettered")
	s.String(&o.retrySchedule, "retry-schedule", "EDGEHOOK_RETRY_SCHEDULE", "5s,5m,30m,2h,5h,10h,10h", "delays after each failed attempt, comma-separated Go durations (the consumer's BackOff follows them)")
}

// resolve parses the retry schedule into the topology; the error names
// EDGEHOOK_RETRY_SCHEDULE.
func (o *topologyOptions) resolve() error {
	schedule, err := worker.ParseRetrySchedule(o.retrySchedule)
	if err != nil {
		return usageError{err}
	}
	o.RetrySchedule = schedule
	return nil
}

// workerOptions are the delivery settings of `worker` and `up`.
type workerOptions struct {
	concurrency       int
	tenantConcurrency int
	breakerThreshold  int
	breakerCooldown   time.Duration
	breakerMaxWait    time.Duration
	allowPrivate      bool
	connectTimeout    time.Duration
	drainTimeout      time.Duration
}

func (o *workerOptions) register(s *settings, allowPrivateDefault bool) {
	s.Int(&o.concurrency, "concurrency", "EDGEHOOK_CONCURRENCY", 256, "deliveries in flight in this worker")
	s.Int(&o.tenantConcurrency, "tenant-concurrency", "EDGEHOOK_TENANT_CONCURRENCY", 0, "deliveries of one tenant in flight in this worker (0: a quarter of the concurrency)")
	s.Int(&o.breakerThreshold, "breaker-threshold", "EDGEHOOK_BREAKER_THRESHOLD", worker.DefaultBreakerThreshold, "consecutive failures that park an endpoint (-1: never)")
	s.Duration(&o.breakerCooldown, "breaker-cooldown", "EDGEHOOK_BREAKER_COOLDOWN", worker.DefaultBreakerCooldown, "how long a parked endpoint gets no requests before a probe (doubles per failed probe, up to --breaker-max-cooldown)")
	s.Duration(&o.breakerMaxWait, "breaker-max-cooldown", "EDGEHOOK_BREAKER_MAX_COOLDOWN", 0, "the longest wait between probes of a parked endpoint (0: 10m, or the cooldown if longer): how long at most an endpoint that answers again waits for its events")
	s.Bool(&o.allowPrivate, "allow-private-targets", "EDGEHOOK_ALLOW_PRIVATE_TARGETS", allowPrivateDefault, "allow webhook targets on loopback and private addresses")
	s.Duration(&o.connectTimeout, "connect-timeout", "EDGEHOOK_CONNECT_TIMEOUT", 5*time.Second, "TCP connect timeout of a delivery")
	s.Duration(&o.drainTimeout, "drain-timeout", "EDGEHOOK_DRAIN_TIMEOUT", 15*time.Second, "on shutdown, how long in-flight deliveries may finish")
}

// config builds the worker's config from the options and the delivery topology (whose
// retry schedule resolve has parsed).
func (o workerOptions) config(t natsconf.Topology) (worker.Config, error) {
	if o.breakerMaxWait < 0 || (o.breakerMaxWait > 0 && o.breakerMaxWait < o.breakerCooldown) {
		return worker.Config{}, usageError{fmt.Errorf("EDGEHOOK_BREAKER_MAX_COOLDOWN (--breaker-max-cooldown) %s must be at least EDGEHOOK_BREAKER_COOLDOWN (--breaker-cooldown) %s, or 0 for the default", o.breakerMaxWait, o.breakerCooldown)}
	}
	return worker.Config{
		Concurrency:         o.concurrency,
		HTTPTimeout:         t.HTTPTimeout,
		ConnectTimeout:      o.connectTimeout,
		RetrySchedule:       t.RetrySchedule,
		MaxDeliver:          t.MaxDeliver,
		AllowPrivateTargets: o.allowPrivate,
		DrainTimeout:        o.drainTimeout,
		TenantConcurrency:   o.tenantConcurrency,
		BreakerThreshold:    o.breakerThreshold,
		BreakerCooldown:     o.breakerCooldown,
		BreakerMaxCooldown:  o.breakerMaxWait,
	}, nil
}

// vaultOptions say where webhook configuration lives and how a component logs in to
// Vault: a token, a token file (Nomad workload identity), or AppRole.
type vaultOptions struct {
	addr         string
	token        string
	tokenFile    string
	roleID       string
	secretID     string
	secretIDFile string
	appRoleMount string
	mount        string
	prefix       string
	cacheTTL     time.Duration
	// The AppRole mount's user lockout, as tuned in Vault (user_lockout_config).
	lockoutThreshold    int
	lockoutDuration     time.Duration
	lockoutCounterReset time.Duration
}

func (o *vaultOptions) register(s *settings) {
	s.String(&o.addr, "vault-addr", "VAULT_ADDR", "", "Vault address; webhook configuration and secrets live there")
	s.Secret(&o.token, "vault-token", "VAULT_TOKEN", "Vault token")
	s.String(&o.tokenFile, "vault-token-file", "VAULT_TOKEN_FILE", "", "file holding the Vault token (Nomad workload identity); re-read when the token is no longer valid")
	s.Secret(&o.roleID, "vault-role-id", "VAULT_ROLE_ID", "AppRole role id (AppRole login instead of a token)")
	s.Secret(&o.secretID, "vault-secret-id", "VAULT_SECRET_ID", "AppRole secret id")
	s.String(&o.secretIDFile, "vault-secret-id-file", "VAULT_SECRET_ID_FILE", "", "file holding the AppRole secret id, re-read at every login")
	s.String(&o.appRoleMount, "vault-approle-mount", "EDGEHOOK_VAULT_APPROLE_MOUNT", vault.DefaultAppRoleMount, "path of the AppRole auth method")
	s.String(&o.mount, "vault-mount", "EDGEHOOK_VAULT_MOUNT", vault.DefaultMount, "Vault KV v2 mount")
	s.String(&o.prefix, "vault-prefix", "EDGEHOOK_VAULT_PREFIX", vault.DefaultPrefix, "path of webhook configs under the mount")
	s.Duration(&o.cacheTTL, "config-cache-ttl", "EDGEHOOK_CONFIG_CACHE_TTL", 30*time.Second, "how long a tenant's webhook config is cached (changes made at the admin API are seen at once)")
	s.Int(&o.lockoutThreshold, "vault-lockout-threshold", "EDGEHOOK_VAULT_LOCKOUT_THRESHOLD", vault.DefaultLockoutThreshold, "failed AppRole logins after which Vault locks the role id out (the mount's lockout_threshold); logins are spaced to stay below it")
	s.Duration(&o.lockoutDuration, "vault-lockout-duration", "EDGEHOOK_VAULT_LOCKOUT_DURATION", vault.DefaultLockoutDuration, "how long Vault keeps a role id locked out (the mount's lockout_duration)")
	s.Duration(&o.lockoutCounterReset, "vault-lockout-counter-reset", "EDGEHOOK_VAULT_LOCKOUT_COUNTER_RESET", vault.DefaultLockoutCounterReset, "how long without a failed login before Vault forgets earlier failures (the mount's lockout_counter_reset)")
}

// client opens the Vault client. It needs VAULT_ADDR. Readers that retry on their own
// (worker, receiver) pass retry=false, so a Vault outage turns into a prompt nak.
func (o vaultOptions) client(log *slog.Logger, retry bool) (*vault.Client, error) {
	if o.addr == "" {
		return nil, usageError{fmt.Errorf("VAULT_ADDR is not set: this component reads webhook configuration from Vault")}
	}
	switch {
	case o.lockoutThreshold < 1:
		return nil, usageError{fmt.Errorf("EDGEHOOK_VAULT_LOCKOUT_THRESHOLD (--vault-lockout-threshold) is %d: it must be at least 1, as Vault's lockout_threshold", o.lockoutThreshold)}
	case o.lockoutDuration <= 0:
		return nil, usageError{fmt.Errorf("EDGEHOOK_VAULT_LOCKOUT_DURATION (--vault-lockout-duration) must be positive")}
	case o.lockoutCounterReset <= 0:
		return nil, usageError{fmt.Errorf("EDGEHOOK_VAULT_LOCKOUT_COUNTER_RESET (--vault-lockout-counter-reset) must be positive")}
	}
	cfg := vault.ClientConfig{
		Address: o.addr, Token: o.token, TokenFile: o.tokenFile,
		RoleID: o.roleID, SecretID: o.secretID, SecretIDFile: o.secretIDFile, AppRoleMount: o.appRoleMount,
		Mount: o.mount, Prefix: o.prefix, Log: log,
		LockoutThreshold: o.lockoutThreshold, LockoutDuration: o.lockoutDuration, LockoutCounterReset: o.lockoutCounterReset,
	}
	if !retry {
		cfg.MaxRetries = -1
	}
	c, err := vault.NewClient(cfg)
	if err != nil {
		return nil, usageError{err}
	}
	return c, nil
}
