package bench

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/edgehook/edgehook/natsconf"
	"github.com/edgehook/edgehook/webhook"
)

// adminTimeout bounds one admin API call.
const adminTimeout = 30 * time.Second

// system is a Target the bench is connected to: its own NATS connection and an HTTP
// client for the admin API. It remembers the tenants it creates.
type system struct {
	Target
	nc      *nats.Conn
	js      jetstream.JetStream
	http    *http.Client
	tenants []tenant
	log     func(msg string, args ...any)
}

// tenant is one tenant the bench created, with the credentials the admin API
// returned once.
type tenant struct {
	ID     string
	APIKey string
	Secret webhook.Secret
}

// open launches (or reuses) a system for needs and connects to it. The returned
// function disconnects and releases it; on a shared system it first suspends the
// tenants the bench created there.
func (b *Bench) open(ctx context.Context, needs Needs) (*system, func(), error) {
	t, release, err := b.launch(ctx, needs)
	if err != nil {
		return nil, nil, fmt.Errorf("launch system: %w", err)
	}
	opts := append([]nats.Option{nats.Name("edgehook-bench"), nats.MaxReconnects(-1)}, t.NATSOptions...)
	nc, err := nats.Connect(t.NATSURL, opts...)
	if err != nil {
		release()
		return nil, nil, fmt.Errorf("connect to NATS at %s: %w", t.NATSURL, err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		release()
		return nil, nil, fmt.Errorf("jetstream: %w", err)
	}
	s := &system{
		Target: t, nc: nc, js: js,
		http: &http.Client{Timeout: adminTimeout},
		log:  b.log.Warn,
	}
	if t.Shared {
		s.waitIdle(ctx, b.cfg.DrainTimeout)
	}
	return s, func() {
		if t.Shared {
			s.suspendTenants()
		}
		nc.Close()
		release()
	}, nil
}

// createTenant creates a tenant whose webhooks go to targetURL, in which the admin API
// replaces {tenantId} with the new tenant's id.
func (s *system) createTenant(ctx context.Context, targetURL string) (tenant, error) {
	var out struct {
		TenantID      string `json:"tenantId"`
		APIKey        string `json:"apiKey"`
		WebhookSecret string `json:"webhookSecret"`
	}
	if err := s.admin(ctx, http.MethodPost, "/v1/tenants", map[string]string{"targetUrl": targetURL, "plan": "enterprise"}, &out); err != nil {
		return tenant{}, fmt.Errorf("create tenant: %w", err)
	}
	secret, err := webhook.ParseSecret(out.WebhookSecret)
	if err != nil {
		return tenant{}, fmt.Errorf("create tenant: the admin API answered an unusable signing secret: %w", err)
	}
	t := tenant{ID: out.TenantID, APIKey: out.APIKey, Secret: secret}
	s.tenants = append(s.tenants, t)
	return t, nil
}

// receiverTarget is the target URL of a tenant delivering to the system's receiver.
func (s *system) receiverTarget() string {
	return strings.TrimRight(s.ReceiverURL, "/") + "/webhooks/{tenantId}"
}

// admin calls the admin API and decodes a 2xx JSON answer into out (when non-nil).
func (s *system) admin(ctx context.Context, method, path string, body, out any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, adminTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(s.AdminURL, "/")+path, bytes.NewReader(b))
	if err != nil {
		return fmt.Errorf("%w: admin API URL: %w", ErrInvalidConfig, err)
	}
	req.Header.Set("Authorization", "Bearer "+s.AdminToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.http.Do(req)
	if err != nil {
		return fmt.Errorf("admin API: %w", err)
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("admin API: read answer: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		if json.Unmarshal(answer, &e) == nil && e.Error.Message != "" {
			return fmt.Errorf("admin API: %s %s: %d %s: %s", method, path, resp.StatusCode, e.Error.Code, e.Error.Message)
		}
		return fmt.Errorf("admin API: %s %s: %s", method, path, resp.Status)
	}
	if out != nil {
		if err := json.Unmarshal(answer, out); err != nil {
			return fmt.Errorf("admin API: %s %s: undecodable answer: %w", method, path, err)
		}
	}
	return nil
}

// suspendTenants suspends the tenants the bench created on a shared system, so their
// API keys stop working. Failures are logged; the run's results stand.
func (s *system) suspendTenants() {
	ctx, cancel := context.WithTimeout(context.Background(), adminTimeout)
	defer cancel()
	for _, t := range s.tenants {
		if err := s.admin(ctx, http.MethodPatch, "/v1/tenants/"+t.ID, map[string]string{"status": "suspended"}, nil); err != nil {
			s.log("could not suspend a bench tenant", "tenant", t.ID, "error", err)
		}
	}
}

// pending is the number of events on EVENTS the deliver consumer has not settled.
func (s *system) pending(ctx context.Context) (uint64, error) {
	c, err := s.js.Consumer(ctx, natsconf.StreamEvents, natsconf.ConsumerDeliver)
	if err != nil {
		return 0, err
	}
	info, err := c.Info(ctx)
	if err != nil {
		return 0, err
	}
	return info.NumPending + uint64(info.NumAckPending), nil
}

// waitIdle waits, at most within, until the deliver consumer has nothing pending, so
// an earlier scenario's backlog does not compete with the next one on a shared
// system. A consumer still busy afterwards is logged, not an error.
func (s *system) waitIdle(ctx context.Context, within time.Duration) {
	deadline := time.Now().Add(within)
	for {
		n, err := s.pending(ctx)
		if err != nil {
			s.log("cannot read the deliver consumer; not waiting for earlier events to drain", "error", err)
			return
		}
		if n == 0 {
			return
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			s.log("the deliver consumer is still busy with earlier events; they compete with this scenario", "pending", n)
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// runID returns a short random id that makes this run's webhook ids and scratch
// names unique.
func runID() string {
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		return fmt.Sprintf("%x", time.Now().UnixNano())
	}
	return hex.EncodeToString(b[:])
}
