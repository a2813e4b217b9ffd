package console

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"time"
)

// PortalSource is what the tenant portal reads and changes. The gateway implements it
// on the same code as its JSON API; every method but Authenticate takes the principal
// the session signed in as (its tenant, scopes and API key) and must return only that
// tenant's data. The portal checks scopes itself before calling a method that changes
// something, so a source need not.
type PortalSource interface {
	// Authenticate resolves an API key to its tenant and scopes. An unknown key is
	// ErrUnauthenticated; a key whose tenant may not sign in (suspended) is ErrForbidden.
	Authenticate(ctx context.Context, apiKey Secret) (Principal, error)
	// ListEvents returns one page of the tenant's events, newest first, matching filter.
	// A malformed cursor is an InvalidError.
	ListEvents(ctx context.Context, p Principal, filter EventFilter) (EventPage, error)
	// Event returns one of the tenant's events, or ErrNotFound (also for another
	// tenant's event id).
	Event(ctx context.Context, p Principal, eventID string) (Event, error)
	// Attempts returns the delivery attempts of one of the tenant's events, oldest first.
	Attempts(ctx context.Context, p Principal, eventID string) ([]Attempt, error)
	// Replay queues a failed or delivered event for delivery again; an event in any
	// other status is ErrConflict.
	Replay(ctx context.Context, p Principal, eventID string) error
	// Endpoint returns the tenant's webhook endpoint and its recent delivery figures.
	Endpoint(ctx context.Context, p Principal) (Endpoint, error)
	// RotateSecret creates a new signing secret; the old one stays valid until the
	// returned OldExpiresAt.
	RotateSecret(ctx context.Context, p Principal) (RotatedSecret, error)
}

// OperatorSource is what the operator console reads and changes. The admin component
// implements it on the same code as the admin API; the console has checked the admin
// token before any call.
type OperatorSource interface {
	// ListTenants returns one page of tenants whose id, plan or status contains
	// filter.Query (all tenants for an empty query). A list need not fill TargetURL
	// (the admin component keeps it in Vault and does not read Vault per row), and a
	// page of a narrow query may be short and still have a Next.
	ListTenants(ctx context.Context, filter TenantFilter) (TenantPage, error)
	// CreateTenant creates a tenant and returns its first API key and signing secret.
	CreateTenant(ctx context.Context, req NewTenant) (CreatedTenant, error)
	// SetStatus changes a tenant's status (active or suspended); an unknown tenant is
	// ErrNotFound.
	SetStatus(ctx context.Context, tenantID string, status TenantStatus) error
	// DeadLetters returns one page of dead letters, newest first, matching filter
	// (TenantID exactly, Reason as a substring). A page of a narrow filter may be
	// short and still have a Next: a source bounds what one page reads.
	DeadLetters(ctx context.Context, filter DeadLetterFilter) (DeadLetterPage, error)
	// ReplayDeadLetters asks for the events of the given dead letters to be delivered
	// again and reports which requests were accepted (stored); Failed says why the
	// others were not.
	ReplayDeadLetters(ctx context.Context, ids []string) (ReplayResult, error)
	// Mesh describes the hub nodes, the edges' links and the consumers.
	Mesh(ctx context.Context) (Mesh, error)
	// Rates returns ingest and delivery counts per step over the window before now
	// (the admin component's cover only the time since it started).
	Rates(ctx context.Context, window time.Duration) (Rates, error)
}

// Errors a source returns (wrapped or as they are); the handlers map them to pages in
// one place (errors.go). Any other error is shown as a generic 500 and logged.
var (
	ErrUnauthenticated = errors.New("console: unknown credential")
	ErrForbidden       = errors.New("console: not allowed")
	ErrNotFound        = errors.New("console: not found")
	ErrConflict        = errors.New("console: conflicts with the current state")
	ErrInvalid         = errors.New("console: invalid input")
)

// InvalidError is bad input a person can fix; Message is shown to them. It matches
// ErrInvalid with errors.Is.
type InvalidError struct{ Message string }

func (e *InvalidError) Error() string        { return "console: invalid input: " + e.Message }
func (e *InvalidError) Is(target error) bool { return target == ErrInvalid }

// Secret is credential or key material. It prints REDACTED in every formatting and log
// path; only Reveal gives the value, and the console calls it only on the one page
// that shows a secret just created or rotated.
type Secret string

// Reveal returns the secret's value.
func (s Secret) Reveal() string { return string(s) }

// String returns REDACTED.
func (s Secret) String() string { return "REDACTED" }

// GoString returns REDACTED.
func (s Secret) GoString() string { return "REDACTED" }

// LogValue returns REDACTED.
func (s Secret) LogValue() slog.Value { return slog.StringValue("REDACTED") }

// MarshalText returns REDACTED.
func (s Secret) MarshalText() ([]byte, error) { return []byte("REDACTED"), nil }

// Scope is what an API key may do.
type Scope string

// The API key scopes. The portal lets read and manage keys read, and only manage keys
// change anything (replay, rotate); a send-only key cannot sign in.
const (
	ScopeSend   Scope = "send"
	ScopeRead   Scope = "read"
	ScopeManage Scope = "manage"
)

// Principal is who an API key signs in as. The portal sets Key to the key the session
// signed in with before it calls a source, so a source can act with the tenant's own
// credential (the gateway relays endpoint requests to the admin API with it).
type Principal struct {
	TenantID string
	Scopes   []Scope
	Key      Secret
}

// CanRead reports whether the principal may read the portal's pages.
func (p Principal) CanRead() bool {
	return slices.Contains(p.Scopes, ScopeRead) || slices.Contains(p.Scopes, ScopeManage)
}

// CanManage reports whether the principal may replay events and rotate the secret.
func (p Principal) CanManage() bool { return slices.Contains(p.Scopes, ScopeManage) }

// EventStatus is where an event is in its delivery.
type EventStatus string

// The event statuses.
const (
	StatusQueued    EventStatus = "queued"
	StatusRetrying  EventStatus = "retrying"
	StatusDelivered EventStatus = "delivered"
	StatusFailed    EventStatus = "failed"
)

// EventStatuses lists the statuses in the order the filter offers them.
var EventStatuses = []EventStatus{StatusQueued, StatusRetrying, StatusDelivered, StatusFailed}

// Replayable reports whether an event in this status may be replayed.
func (s EventStatus) Replayable() bool { return s == StatusFailed || s == StatusDelivered }

// EventFilter selects a page of events. Empty fields match everything. Cursor is the
// Next of the previous page ("" for the newest); Limit is the page size (the portal
// always sets it, at most MaxPageSize).
type EventFilter struct {
	Status EventStatus
	Type   string
	Cursor string
	Limit  int
}

// EventSummary is one row of the events list.
type EventSummary struct {
	ID             string
	Type           string
	Status         EventStatus
	Attempts       int
	LastStatusCode int
	CreatedAt      time.Time
	UpdatedAt      time.Time
}

// EventPage is one page of events; Next is the cursor of the following (older) page,
// "" on the last. Truncated says the tenant has older events than the source lists
// (its index is bounded), which the page tells the reader.
type EventPage struct {
	Events    []EventSummary
	Next      string
	Truncated bool
}

// Event is one event with its payload, as the tenant sent it. A source that cannot
// read payloads back (the gateway may not read EVENTS) leaves Payload nil and the page
// says so.
type Event struct {
	EventSummary
	Payload   []byte
	LastError string
}

// Attempt is one delivery attempt. ResponseBody is what the endpoint answered (the
// source truncates it).
type Attempt struct {
	N            int
	At           time.Time
	StatusCode   int
	Latency      time.Duration
	Error        string
	ResponseBody string
}

// BreakerState is the state of the endpoint's circuit breaker.
type BreakerState string

// The breaker states.
const (
	BreakerClosed   BreakerState = "closed"
	BreakerOpen     BreakerState = "open"
	BreakerHalfOpen BreakerState = "half-open"
)

// Endpoint is the tenant's webhook endpoint. Recent holds delivery counts per step,
// oldest first, for the success-rate chart.
type Endpoint struct {
	TargetURL string
	Breaker   BreakerState
	Recent    []RatePoint
	// SecretRotatedAt is when the current secret was made; PreviousExpiresAt, when
	// non-zero, is when the previous one stops being accepted.
	SecretRotatedAt   time.Time
	PreviousExpiresAt time.Time
}

// RatePoint is the counts of one step of a chart: events ingested, deliveries that
// succeeded and deliveries that failed.
type RatePoint struct {
	At        time.Time
	Ingested  int
	Delivered int
	Failed    int
}

// RotatedSecret is the result of a rotation: the new secret (shown once) and when the
// old one expires.
type RotatedSecret struct {
	Secret       Secret
	OldExpiresAt time.Time
}

// TenantStatus is whether a tenant may use the system.
type TenantStatus string

// The tenant statuses.
const (
	TenantActive    TenantStatus = "active"
	TenantSuspended TenantStatus = "suspended"
)

// TenantFilter selects a page of tenants.
type TenantFilter struct {
	Query  string
	Cursor string
	Limit  int
}

// Tenant is one tenant as the operator sees it.
type Tenant struct {
	ID        string
	TargetURL string
	Plan      string
	Status    TenantStatus
	CreatedAt time.Time
}

// TenantPage is one page of tenants.
type TenantPage struct {
	Tenants []Tenant
	Next    string
}

// NewTenant is what the operator fills in to create a tenant.
type NewTenant struct {
	TargetURL string
	Plan      string
}

// CreatedTenant is a new tenant with its first credentials, shown once.
type CreatedTenant struct {
	Tenant        Tenant
	APIKey        Secret
	WebhookSecret Secret
}

// DeadLetterFilter selects a page of dead letters. Empty fields match everything.
type DeadLetterFilter struct {
	TenantID string
	Reason   string
	Cursor   string
	Limit    int
}

// DeadLetter is one entry of the DLQ stream.
type DeadLetter struct {
	ID        string
	TenantID  string
	EventID   string
	Type      string
	Reason    string
	Attempts  int
	LastError string
	At        time.Time
}

// DeadLetterPage is one page of dead letters.
type DeadLetterPage struct {
	DeadLetters []DeadLetter
	Next        string
}

// ReplayResult says which dead letters were replayed; Failed maps the others to why.
type ReplayResult struct {
	Replayed []string
	Failed   map[string]string
}

// Mesh is the state of the NATS mesh.
type Mesh struct {
	Hub       []HubNode
	Edges     []Edge
	Consumers []Consumer
}

// HubNode is one server of the hub cluster.
type HubNode struct {
	Name      string
	Leader    bool
	Connected bool
}

// LinkState is the state of an edge's leaf link to the hub.
type LinkState string

// The link states.
const (
	LinkUp   LinkState = "up"
	LinkDown LinkState = "down"
)

// Edge is one edge node: its leaf link and how far the hub's sourcing lags behind it.
type Edge struct {
	Name        string
	Link        LinkState
	SourcingLag uint64
	LastSeen    time.Time
}

// Consumer is one JetStream consumer with its backlog.
type Consumer struct {
	Stream      string
	Name        string
	Pending     uint64
	AckPending  int
	Redelivered int
}

// Rates are counts per Step over the last Window, oldest first.
type Rates struct {
	Window time.Duration
	Step   time.Duration
	Points []RatePoint
}
