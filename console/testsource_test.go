package console

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// memSource is an in-memory PortalSource and OperatorSource for the console's own tests
// only: it stands in for the gateway's and admin component's stores, which are wired
// in a later step. Replay flips an event to delivered and logs a 200 attempt, so a
// test can watch the page change the way a real redelivery would change it.
type memSource struct {
	mu          sync.Mutex
	keys        map[string]Principal // API key → principal
	suspended   map[string]bool      // tenant → cannot sign in
	events      map[string][]*Event  // tenant → events, newest first
	byID        map[string]*Event    // tenant + "/" + event id → event
	attempts    map[string][]Attempt // event id → attempts
	endpoints   map[string]Endpoint
	tenants     []Tenant
	deadLetters []DeadLetter // newest first
	replayedDLQ []string
	mesh        Mesh
	rates       Rates
	rotations   int
	seq         int
}

func newMemSource() *memSource {
	return &memSource{
		keys:      make(map[string]Principal),
		suspended: make(map[string]bool),
		events:    make(map[string][]*Event),
		byID:      make(map[string]*Event),
		attempts:  make(map[string][]Attempt),
		endpoints: make(map[string]Endpoint),
	}
}

// addKey lets key sign in as tenant with scopes.
func (m *memSource) addKey(key, tenant string, scopes ...Scope) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.keys[key] = Principal{TenantID: tenant, Scopes: scopes}
}

func (m *memSource) revokeKey(key string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.keys, key)
}

// addEvent adds an event as the tenant's newest, with its attempts.
func (m *memSource) addEvent(tenant string, ev Event, attempts ...Attempt) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e := ev
	m.events[tenant] = slices.Insert(m.events[tenant], 0, &e)
	m.byID[tenant+"/"+ev.ID] = &e
	m.attempts[ev.ID] = attempts
}

func (m *memSource) status(tenant, id string) EventStatus {
	m.mu.Lock()
	defer m.mu.Unlock()
	if e, ok := m.byID[tenant+"/"+id]; ok {
		return e.Status
	}
	return ""
}

func (m *memSource) Authenticate(_ context.Context, key Secret) (Principal, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p, ok := m.keys[key.Reveal()]
	if !ok {
		return Principal{}, ErrUnauthenticated
	}
	if m.suspended[p.TenantID] {
		return Principal{}, ErrForbidden
	}
	return p, nil
}

func (m *memSource) ListEvents(_ context.Context, p Principal, f EventFilter) (EventPage, error) {
	tenant := p.TenantID
	m.mu.Lock()
	defer m.mu.Unlock()
	evs := m.events[tenant]
	start := 0
	if f.Cursor != "" {
		n, err := strconv.Atoi(f.Cursor)
		if err != nil || n < 0 || n > len(evs) {
			return EventPage{}, &InvalidError{Message: "The page link is not valid."}
		}
		start = n
	}
	var page EventPage
	for i := start; i < len(evs); i++ {
		e := evs[i]
		if (f.Status != "" && e.Status != f.Status) || (f.Type != "" && e.Type != f.Type) {
			continue
		}
		if len(page.Events) == f.Limit {
			page.Next = strconv.Itoa(i)
			break
		}
		page.Events = append(page.Events, e.EventSummary)
	}
	return page, nil
}

func (m *memSource) find(tenant, id string) (*Event, error) {
	if e, ok := m.byID[tenant+"/"+id]; ok {
		return e, nil
	}
	return nil, fmt.Errorf("event %s: %w", id, ErrNotFound)
}

func (m *memSource) Event(_ context.Context, p Principal, id string) (Event, error) {
	tenant := p.TenantID
	m.mu.Lock()
	defer m.mu.Unlock()
	e, err := m.find(tenant, id)
	if err != nil {
		return Event{}, err
	}
	return *e, nil
}

func (m *memSource) Attempts(_ context.Context, p Principal, id string) ([]Attempt, error) {
	tenant := p.TenantID
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, err := m.find(tenant, id); err != nil {
		return nil, err
	}
	return slices.Clone(m.attempts[id]), nil
}

func (m *memSource) Replay(_ context.Context, p Principal, id string) error {
	tenant := p.TenantID
	m.mu.Lock()
	defer m.mu.Unlock()
	e, err := m.find(tenant, id)
	if err != nil {
		return err
	}
	if !e.Status.Replayable() {
		return fmt.Errorf("event %s is %s: %w", id, e.Status, ErrConflict)
	}
	e.Status, e.Attempts, e.LastStatusCode, e.LastError = StatusDelivered, e.Attempts+1, 200, ""
	e.UpdatedAt = time.Now()
	m.attempts[id] = append(m.attempts[id], Attempt{N: e.Attempts, At: e.UpdatedAt, StatusCode: 200,
		Latency: 12 * time.Millisecond, ResponseBody: "ok"})
	return nil
}

func (m *memSource) Endpoint(_ context.Context, p Principal) (Endpoint, error) {
	tenant := p.TenantID
	m.mu.Lock()
	defer m.mu.Unlock()
	ep, ok := m.endpoints[tenant]
	if !ok {
		return Endpoint{}, ErrNotFound
	}
	return ep, nil
}

func (m *memSource) RotateSecret(_ context.Context, p Principal) (RotatedSecret, error) {
	tenant := p.TenantID
	m.mu.Lock()
	defer m.mu.Unlock()
	ep, ok := m.endpoints[tenant]
	if !ok {
		return RotatedSecret{}, ErrNotFound
	}
	m.rotations++
	now := time.Now()
	ep.SecretRotatedAt, ep.PreviousExpiresAt = now, now.Add(24*time.Hour)
	m.endpoints[tenant] = ep
	return RotatedSecret{Secret: Secret(fmt.Sprintf("whsec_rotated%04d", m.rotations)), OldExpiresAt: ep.PreviousExpiresAt}, nil
}

func (m *memSource) ListTenants(_ context.Context, f TenantFilter) (TenantPage, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var match []Tenant
	for _, t := range m.tenants {
		if f.Query == "" || strings.Contains(t.ID+" "+t.TargetURL+" "+t.Plan, f.Query) {
			match = append(match, t)
		}
	}
	var page TenantPage
	var err error
	page.Tenants, page.Next, err = pageOf(match, f.Cursor, f.Limit)
	return page, err
}

func (m *memSource) CreateTenant(_ context.Context, req NewTenant) (CreatedTenant, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !strings.HasPrefix(req.TargetURL, "https://") && !strings.HasPrefix(req.TargetURL, "http://") {
		return CreatedTenant{}, &InvalidError{Message: "The target URL must be http or https."}
	}
	m.seq++
	t := Tenant{ID: fmt.Sprintf("t_new%03d", m.seq), TargetURL: req.TargetURL, Plan: req.Plan, Status: TenantActive, CreatedAt: time.Now()}
	m.tenants = append(m.tenants, t)
	return CreatedTenant{Tenant: t, APIKey: Secret(fmt.Sprintf("ehk_created%03d", m.seq)), WebhookSecret: Secret(fmt.Sprintf("whsec_created%03d", m.seq))}, nil
}

// pageOf returns the page of items starting at cursor (an index) and the next cursor.
func pageOf[T any](items []T, cursor string, limit int) ([]T, string, error) {
	start := 0
	if cursor != "" {
		n, err := strconv.Atoi(cursor)
		if err != nil || n < 0 || n > len(items) {
			return nil, "", &InvalidError{Message: "The page link is not valid."}
		}
		start = n
	}
	end := min(start+limit, len(items))
	if end == len(items) {
		return items[start:end], "", nil
	}
	return items[start:end], strconv.Itoa(end), nil
}

func (m *memSource) SetStatus(_ context.Context, id string, st TenantStatus) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i := range m.tenants {
		if m.tenants[i].ID == id {
			m.tenants[i].Status = st
			m.suspended[id] = st == TenantSuspended
			return nil
		}
	}
	return ErrNotFound
}

func (m *memSource) DeadLetters(_ context.Context, f DeadLetterFilter) (DeadLetterPage, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var match []DeadLetter
	for _, d := range m.deadLetters {
		if (f.TenantID == "" || d.TenantID == f.TenantID) && (f.Reason == "" || d.Reason == f.Reason) {
			match = append(match, d)
		}
	}
	var page DeadLetterPage
	var err error
	page.DeadLetters, page.Next, err = pageOf(match, f.Cursor, f.Limit)
	return page, err
}

func (m *memSource) ReplayDeadLetters(_ context.Context, ids []string) (ReplayResult, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	res := ReplayResult{Failed: map[string]string{}}
	for _, id := range ids {
		i := slices.IndexFunc(m.deadLetters, func(d DeadLetter) bool { return d.ID == id })
		if i < 0 {
			res.Failed[id] = "no such dead letter"
			continue
		}
		m.deadLetters = slices.Delete(m.deadLetters, i, i+1)
		m.replayedDLQ = append(m.replayedDLQ, id)
		res.Replayed = append(res.Replayed, id)
	}
	return res, nil
}

func (m *memSource) Mesh(context.Context) (Mesh, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.mesh, nil
}

func (m *memSource) Rates(_ context.Context, window time.Duration) (Rates, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r := m.rates
	r.Window = window
	return r, nil
}

func (m *memSource) replayedDeadLetters() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.replayedDLQ)
}

// fillEvents gives tenant n more events (the newest last made), a fifth of them failed
// with three attempts, the rest delivered with one.
func (m *memSource) fillEvents(tenant string, n int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	start := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	fresh := make([]*Event, n)
	for i := range n {
		at := start.Add(time.Duration(i) * time.Second)
		e := &Event{EventSummary: EventSummary{ID: fmt.Sprintf("evt_bulk%06d", i), Type: "order.created", Status: StatusDelivered,
			Attempts: 1, LastStatusCode: 200, CreatedAt: at, UpdatedAt: at.Add(40 * time.Millisecond)},
			Payload: []byte(fmt.Sprintf(`{"order":%d,"items":[{"sku":"A-1","qty":2}]}`, i))}
		att := []Attempt{{N: 1, At: e.UpdatedAt, StatusCode: 200, Latency: 40 * time.Millisecond, ResponseBody: "ok"}}
		if i%5 == 0 {
			e.Status, e.Attempts, e.LastStatusCode, e.LastError = StatusFailed, 3, 503, "503 Service Unavailable"
			att = []Attempt{{N: 1, At: at, StatusCode: 503, Latency: 90 * time.Millisecond, ResponseBody: "down"},
				{N: 2, At: at, StatusCode: 503, Latency: 95 * time.Millisecond, ResponseBody: "down"},
				{N: 3, At: at, StatusCode: 503, Latency: 99 * time.Millisecond, ResponseBody: "down"}}
		}
		fresh[n-1-i] = e
		m.byID[tenant+"/"+e.ID] = e
		m.attempts[e.ID] = att
	}
	m.events[tenant] = append(fresh, m.events[tenant]...)
}

// Fixture keys and tokens of the tests.
const (
	keyManageA = "ehk_manage_tenant_a_0001"
	keyReadA   = "ehk_read_tenant_a_0002"
	keySendA   = "ehk_send_tenant_a_0003"
	keyManageB = "ehk_manage_tenant_b_0004"
	adminToken = "admin-token-for-console-tests"
)

// fixture fills a source with two tenants, a mix of events, an endpoint each, dead
// letters, a mesh and an hour of rates.
func fixture() *memSource {
	m := newMemSource()
	m.addKey(keyManageA, "t_alpha", ScopeRead, ScopeManage)
	m.addKey(keyReadA, "t_alpha", ScopeRead)
	m.addKey(keySendA, "t_alpha", ScopeSend)
	m.addKey(keyManageB, "t_beta", ScopeManage)
	base := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	statuses := []EventStatus{StatusDelivered, StatusDelivered, StatusFailed, StatusRetrying, StatusQueued}
	for i := range 12 {
		st := statuses[i%len(statuses)]
		ev := Event{EventSummary: EventSummary{ID: fmt.Sprintf("evt_a%03d", i), Type: "order.created", Status: st,
			CreatedAt: base.Add(time.Duration(i) * time.Minute), UpdatedAt: base.Add(time.Duration(i)*time.Minute + time.Second)},
			Payload: []byte(fmt.Sprintf(`{"order":%d}`, i))}
		var at []Attempt
		switch st {
		case StatusDelivered:
			ev.Attempts, ev.LastStatusCode = 1, 200
			at = []Attempt{{N: 1, At: ev.UpdatedAt, StatusCode: 200, Latency: 31 * time.Millisecond, ResponseBody: "ok"}}
		case StatusFailed:
			ev.Attempts, ev.LastStatusCode, ev.LastError = 3, 503, "503 Service Unavailable"
			for n := 1; n <= 3; n++ {
				at = append(at, Attempt{N: n, At: ev.CreatedAt.Add(time.Duration(n) * time.Second), StatusCode: 503,
					Latency: time.Duration(100+n) * time.Millisecond, Error: "503 Service Unavailable", ResponseBody: "upstream down for maintenance"})
			}
		case StatusRetrying:
			ev.Attempts, ev.LastError = 1, "dial tcp: connection refused"
			at = []Attempt{{N: 1, At: ev.UpdatedAt, Latency: 2 * time.Millisecond, Error: "dial tcp: connection refused"}}
		}
		m.addEvent("t_alpha", ev, at...)
	}
	m.addEvent("t_beta", Event{EventSummary: EventSummary{ID: "evt_beta_secret", Type: "beta.private", Status: StatusFailed,
		CreatedAt: base, UpdatedAt: base}, Payload: []byte(`{"beta":"only"}`)})
	var recent []RatePoint
	for i := range 30 {
		recent = append(recent, RatePoint{At: base.Add(time.Duration(i) * time.Minute), Delivered: 40 + i%7, Failed: (i * 3) % 11})
	}
	m.endpoints["t_alpha"] = Endpoint{TargetURL: "https://hooks.alpha.example/receive", Breaker: BreakerClosed, Recent: recent, SecretRotatedAt: base.Add(-72 * time.Hour)}
	m.endpoints["t_beta"] = Endpoint{TargetURL: "https://beta.example/hook", Breaker: BreakerOpen}
	m.tenants = []Tenant{
		{ID: "t_alpha", TargetURL: "https://hooks.alpha.example/receive", Plan: "standard", Status: TenantActive, CreatedAt: base.Add(-30 * 24 * time.Hour)},
		{ID: "t_beta", TargetURL: "https://beta.example/hook", Plan: "pro", Status: TenantActive, CreatedAt: base.Add(-7 * 24 * time.Hour)},
	}
	m.deadLetters = []DeadLetter{
		{ID: "dlq_0003", TenantID: "t_alpha", EventID: "evt_a002", Type: "order.created", Reason: "max_deliveries", Attempts: 8, LastError: "503 Service Unavailable", At: base.Add(50 * time.Minute)},
		{ID: "dlq_0002", TenantID: "t_beta", EventID: "evt_beta_secret", Type: "beta.private", Reason: "terminated", Attempts: 1, LastError: "410 Gone", At: base.Add(40 * time.Minute)},
		{ID: "dlq_0001", TenantID: "t_alpha", EventID: "evt_a007", Type: "order.created", Reason: "max_deliveries", Attempts: 8, LastError: "timeout", At: base.Add(30 * time.Minute)},
	}
	m.mesh = Mesh{
		Hub: []HubNode{{Name: "hub-1", Leader: true, Connected: true}, {Name: "hub-2", Connected: true}, {Name: "hub-3", Connected: false}},
		Edges: []Edge{{Name: "edge-a", Link: LinkUp, SourcingLag: 0, LastSeen: base.Add(59 * time.Minute)},
			{Name: "edge-b", Link: LinkDown, SourcingLag: 1432, LastSeen: base.Add(41 * time.Minute)}},
		Consumers: []Consumer{{Stream: "EVENTS", Name: "deliver", Pending: 120, AckPending: 16, Redelivered: 7},
			{Stream: "DLQ", Name: "dlq", Pending: 0, AckPending: 0, Redelivered: 0}},
	}
	m.rates = Rates{Step: time.Minute}
	for i := range 60 {
		m.rates.Points = append(m.rates.Points, RatePoint{At: base.Add(time.Duration(i) * time.Minute),
			Ingested: 300 + (i*37)%120, Delivered: 290 + (i*29)%110, Failed: (i * 7) % 13})
	}
	return m
}
