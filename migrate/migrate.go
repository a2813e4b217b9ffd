// Package migrate imports tenants from the legacy serverless system's DynamoDB tables
// into edgehook: identity (the API key, hashed, with the tenant's status, plan and
// creation time) into the `identity` bucket through identity.Store, and webhook
// configuration (target URL, signing secret, still-valid previous secrets, rotation
// history) into a vault.ConfigStore.
//
// It reads either layout of the legacy system: the two tables TenantIdentity (keyed by
// apiKey) and TenantWebhookConfig (keyed by tenantId), or the single table TenantApiKeys
// that came before them. Tables are read with parallel, paginated scans; records are
// written by a bounded pool of workers. A run is idempotent: a record already migrated
// identically is counted unchanged and nothing is written for it. One bad record never
// stops a run: it is counted failed, with a reason that names the field and never holds
// a secret or an API key.
package migrate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/edgehook/edgehook/identity"
	"github.com/edgehook/edgehook/vault"
)

// Default table names of the legacy system.
const (
	DefaultIdentityTable = "TenantIdentity"
	DefaultConfigTable   = "TenantWebhookConfig"
	DefaultLegacyTable   = "TenantApiKeys"
)

// Defaults of Config.
const (
	DefaultSegments         = 4
	DefaultConcurrency      = 16
	DefaultRotationWindow   = 24 * time.Hour
	DefaultProgressInterval = time.Second
	// maxSegments is DynamoDB's limit on a parallel scan's TotalSegments.
	maxSegments = 1_000_000
	// recordTimeout bounds the reads and writes of one record.
	recordTimeout = 30 * time.Second
)

// Errors matched by Failure.Err.
var (
	// ErrInvalidRecord is a legacy item that cannot become an edgehook tenant as it is: a
	// missing or malformed attribute, a value edgehook does not accept, or a tenant
	// whose other table has no item.
	ErrInvalidRecord = errors.New("invalid legacy record")
	// ErrConflict is a legacy record that contradicts what edgehook already holds: its
	// API key belongs to another tenant, its tenant exists with another API key, or its
	// webhook configuration was changed in edgehook after the legacy record was.
	ErrConflict = errors.New("conflicts with edgehook")
)

// DynamoDB is the part of the DynamoDB API the migration uses; *dynamodb.Client has it.
type DynamoDB interface {
	DescribeTable(ctx context.Context, in *dynamodb.DescribeTableInput, opts ...func(*dynamodb.Options)) (*dynamodb.DescribeTableOutput, error)
	Scan(ctx context.Context, in *dynamodb.ScanInput, opts ...func(*dynamodb.Options)) (*dynamodb.ScanOutput, error)
	BatchGetItem(ctx context.Context, in *dynamodb.BatchGetItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.BatchGetItemOutput, error)
}

// Config says what to migrate and how. The zero value of each field takes its default,
// except the table names: IdentityTable and ConfigTable name the two-table layout's
// tables, and a non-empty LegacyTable selects the single-table layout instead.
type Config struct {
	// IdentityTable is the legacy TenantIdentity table (apiKey → tenantId, status,
	// plan, createdAt).
	IdentityTable string
	// ConfigTable is the legacy TenantWebhookConfig table (tenantId → targetUrl,
	// webhookSecret, rotationHistory, lastUpdated).
	ConfigTable string
	// LegacyTable, when set, is the single table of the older layout (apiKey →
	// tenantId, targetUrl, webhookSecret, isActive, plan, createdAt, updatedAt); it is
	// migrated instead of IdentityTable and ConfigTable.
	LegacyTable string
	// Segments is the number of parallel scan segments of each table.
	Segments int
	// PageSize limits the items of one Scan page (0: DynamoDB's pages of up to 1 MB),
	// to spread the reads of a provisioned table.
	PageSize int
	// Concurrency is the number of records being written at once.
	Concurrency int
	// DryRun reads everything and decides what it would do, and writes nothing.
	DryRun bool
	// RotationWindow is how long a previous secret in a legacy rotationHistory entry
	// stays valid after its rotation when the entry has no expiry of its own.
	RotationWindow time.Duration
	// ProgressInterval is how often Deps.Progress is called.
	ProgressInterval time.Duration
}

func (c Config) withDefaults() (Config, error) {
	if c.Segments == 0 {
		c.Segments = DefaultSegments
	}
	if c.Concurrency == 0 {
		c.Concurrency = DefaultConcurrency
	}
	if c.RotationWindow == 0 {
		c.RotationWindow = DefaultRotationWindow
	}
	if c.ProgressInterval == 0 {
		c.ProgressInterval = DefaultProgressInterval
	}
	switch {
	case c.Segments < 1 || c.Segments > maxSegments:
		return c, fmt.Errorf("migrate: segments must be 1 to %d, not %d", maxSegments, c.Segments)
	case c.PageSize < 0:
		return c, fmt.Errorf("migrate: page size must not be negative")
	case c.Concurrency < 1:
		return c, fmt.Errorf("migrate: concurrency must be at least 1, not %d", c.Concurrency)
	case c.RotationWindow < 0:
		return c, fmt.Errorf("migrate: rotation window must not be negative")
	case c.LegacyTable == "" && (c.IdentityTable == "" || c.ConfigTable == ""):
		return c, errors.New("migrate: name the identity and config tables, or the legacy table")
	}
	return c, nil
}

// Layout names the legacy layout being migrated.
func (c Config) Layout() string {
	if c.LegacyTable != "" {
		return "single-table"
	}
	return "two-table"
}

// Deps are the systems a migration reads and writes.
type Deps struct {
	// DynamoDB reads the legacy tables.
	DynamoDB DynamoDB
	// Identity is the `identity` bucket, opened by a connection allowed to write it.
	Identity jetstream.KeyValue
	// Configs is where webhook configuration goes (Vault in production).
	Configs vault.ConfigStore
	// Progress, when set, is called every Config.ProgressInterval and once at the end.
	Progress func(Progress)
	// Log receives the few events worth a log line (a rollback that failed); nil
	// discards them.
	Log *slog.Logger
	// Now is the clock (default time.Now): it decides which previous secrets are still
	// valid.
	Now func() time.Time
}

// Migrator migrates the legacy tables named by its Config.
type Migrator struct {
	cfg   Config
	deps  Deps
	store *identity.Store
	keys  *identity.View
}

// New returns a Migrator. It makes no request.
func New(cfg Config, deps Deps) (*Migrator, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if deps.DynamoDB == nil || deps.Identity == nil || deps.Configs == nil {
		return nil, errors.New("migrate: DynamoDB, Identity and Configs are required")
	}
	if deps.Log == nil {
		deps.Log = slog.New(slog.DiscardHandler)
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	return &Migrator{
		cfg:   cfg,
		deps:  deps,
		store: identity.NewStore(deps.Identity),
		// A View that is never Run answers every lookup with a direct read of the
		// bucket: the current key record and tenant record, never a stale copy.
		keys: identity.NewView(deps.Identity, deps.Log),
	}, nil
}

// Counts are the records a run has handled so far.
type Counts struct {
	// Read is the number of legacy records read: items of the identity (or legacy)
	// table, and items of the config table that no identity item refers to.
	Read int `json:"read"`
	// Created counts tenants new to edgehook.
	Created int `json:"created"`
	// Updated counts tenants already in edgehook whose identity or webhook
	// configuration differed from the legacy record and was replaced.
	Updated int `json:"updated"`
	// Unchanged counts tenants already migrated identically: nothing was written.
	Unchanged int `json:"unchanged"`
	// Failed counts records that were not migrated; Report.Failures says why.
	Failed int `json:"failed"`
}

// Migrated is the number of records written: created plus updated.
func (c Counts) Migrated() int { return c.Created + c.Updated }

// Done is the number of records handled: migrated, unchanged or failed.
func (c Counts) Done() int { return c.Created + c.Updated + c.Unchanged + c.Failed }

// Progress is a snapshot of a running migration.
type Progress struct {
	Counts
	// Total estimates the records to read (DynamoDB's item count of the tables, which
	// AWS refreshes about every six hours); 0 when unknown.
	Total int
	// Elapsed is the time since the run started.
	Elapsed time.Duration
}

// Rate is the records handled per second so far.
func (p Progress) Rate() float64 {
	if p.Elapsed <= 0 {
		return 0
	}
	return float64(p.Done()) / p.Elapsed.Seconds()
}

// Report is the outcome of a run.
type Report struct {
	Counts
	// Layout is "two-table" or "single-table".
	Layout string
	// Tables are the legacy tables read.
	Tables []string
	// DryRun reports that nothing was written: Created, Updated and Unchanged say what a
	// real run would do.
	DryRun bool
	// Elapsed is the run's duration.
	Elapsed time.Duration
	// Failures lists every failed record, ordered by tenant id.
	Failures []Failure
}

// Rate is the records handled per second.
func (r Report) Rate() float64 {
	return Progress{Counts: r.Counts, Elapsed: r.Elapsed}.Rate()
}

// Failure is one record that was not migrated. It never holds a secret or an API key.
type Failure struct {
	// TenantID is the legacy tenantId as read (possibly empty or invalid, shortened to
	// 100 bytes).
	TenantID string `json:"tenantId"`
	// Key identifies the legacy API key without revealing it: "sha256:" and the first
	// 12 hex digits of its SHA-256, the start of its key record's name in the identity
	// bucket. Empty when the item had no usable key.
	Key string `json:"apiKeySha256,omitempty"`
	// Table is the legacy table the record's problem is in.
	Table string `json:"table"`
	// Reason says what is wrong.
	Reason string `json:"reason"`
	// Err is the error behind Reason; it matches ErrInvalidRecord, ErrConflict, or an
	// error of identity or vault.
	Err error `json:"-"`
}

// KeyRef returns how a Failure refers to apiKey: "sha256:" and the first 12 hex
// digits of identity.HashKey(apiKey).
func KeyRef(apiKey string) string {
	if apiKey == "" {
		return ""
	}
	return "sha256:" + identity.HashKey([]byte(apiKey)).String()[:12]
}
