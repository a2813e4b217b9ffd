// Package bench is edgehook's load generator: the scenarios behind `edgehook bench`
// that measure ingest, delivery, end-to-end latency and per-tenant fairness against a
// running system or a self-started one, each next to a ceiling measured in the same
// run on the same machine (raw JetStream publishes, the receiver under direct load),
// so results are reported as ratios that hold on a shared machine.
//
// Loads run open-loop at a fixed rate (latency is measured from each request's
// intended send time, so a stall is not hidden by the load slowing down) or flat out,
// over keep-alive connections, for a duration; latencies go into HDR histograms.
package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
)

// Scenario names.
const (
	// ScenarioIngest is POST /v1/events against the raw JetStream publish ceiling.
	ScenarioIngest = "ingest"
	// ScenarioDeliver is the worker draining a backlog into the receiver, against the
	// receiver's own ceiling.
	ScenarioDeliver = "deliver"
	// ScenarioE2E is ingest-accepted to receiver-verified latency.
	ScenarioE2E = "e2e"
	// ScenarioPipeline is sustained ingest with delivery running, with the CPU time of
	// each of the system's processes per delivered event (see pipeline.go).
	ScenarioPipeline = "pipeline"
	// ScenarioFairness is the other tenants' delivery throughput while one tenant's
	// endpoint hangs, and while another's is dead with Parked events parked, each
	// against a baseline without it (see fairness.go and parked.go).
	ScenarioFairness = "fairness"
	// ScenarioEdge is ingest at an edge gateway and the hub sourcing it, against the
	// single-server ingest (see edge.go).
	ScenarioEdge = "edge"
)

// Scenarios lists every scenario, in the order `all` runs them.
var Scenarios = []string{ScenarioIngest, ScenarioDeliver, ScenarioE2E, ScenarioPipeline, ScenarioFairness, ScenarioBatch, ScenarioEdge}

// Standard rates of the scenarios when no rate is given (0 = flat out).
const (
	StandardE2ERate      = 2000
	StandardFairnessRate = 1000
	// StandardIngestLatencyRate is the fixed rate of the ingest latency target, run by
	// `all` next to the flat-out ingest.
	StandardIngestLatencyRate = 5000
	// StandardPipelineLatencyRate is the fixed rate of the pipeline's e2e latency
	// target, run by `all` next to the flat-out pipeline.
	StandardPipelineLatencyRate = 5000
)

// Defaults applied by New to zero-valued Config fields.
const (
	DefaultDuration     = 10 * time.Second
	DefaultConnections  = 64
	DefaultPayloadBytes = 512
	DefaultTenants      = 4
	DefaultDrainTimeout = 30 * time.Second
	// ParkedPerSecond is how many events the fairness scenario parks at a dead
	// endpoint per second of Duration by default: 1,000,000 at DefaultDuration.
	ParkedPerSecond = 100_000
	// MaxCeilingDuration caps the default ceiling measurement.
	MaxCeilingDuration = 3 * time.Second
)

// ErrInvalidConfig is wrapped by every error New and ParseCases return for a setting
// that cannot work; the message names the setting.
var ErrInvalidConfig = errors.New("bench: invalid configuration")

// Case is one scenario run at one offered rate.
type Case struct {
	Scenario string
	// Rate is the offered load in events per second; 0 is flat out.
	Rate int
}

// String is the case as ParseCases reads it: scenario or scenario@rate.
func (c Case) String() string {
	if c.Rate == 0 {
		return c.Scenario
	}
	return c.Scenario + "@" + strconv.Itoa(c.Rate)
}

// StandardSet is what `all` runs: ingest flat out (the ratio target) and at
// 5,000 events/s (the latency target), deliver flat out, e2e at 2,000 events/s,
// pipeline flat out (throughput and CPU targets) and at 5,000 events/s (latency),
// fairness at 1,000 events/s, edge flat out.
func StandardSet() []Case {
	return []Case{
		{ScenarioIngest, 0},
		{ScenarioIngest, StandardIngestLatencyRate},
		{ScenarioDeliver, 0},
		{ScenarioE2E, StandardE2ERate},
		{ScenarioPipeline, 0},
		{ScenarioPipeline, StandardPipelineLatencyRate},
		{ScenarioFairness, StandardFairnessRate},
		{ScenarioEdge, 0},
	}
}

// standardRate is a scenario's rate when none is given.
func standardRate(scenario string) int {
	switch scenario {
	case ScenarioE2E:
		return StandardE2ERate
	case ScenarioFairness:
		return StandardFairnessRate
	}
	return 0
}

// ParseCases reads a comma-separated list of scenario or scenario@rate, or "all".
// rate, when not negative, is the rate of every item without its own @rate (and makes
// "all" run each scenario once at that rate); a negative rate means each scenario's
// standard rate.
func ParseCases(spec string, rate int) ([]Case, error) {
	spec = strings.TrimSpace(spec)
	if spec == "all" {
		if rate < 0 {
			return StandardSet(), nil
		}
		spec = strings.Join(Scenarios, ",")
	}
	var cases []Case
	for item := range strings.SplitSeq(spec, ",") {
		name, rateText, hasRate := strings.Cut(strings.TrimSpace(item), "@")
		if !known(name) {
			return nil, fmt.Errorf("%w: scenario %q: want one of %s or all", ErrInvalidConfig, name, strings.Join(Scenarios, ", "))
		}
		c := Case{Scenario: name, Rate: rate}
		if rate < 0 {
			c.Rate = standardRate(name)
		}
		if hasRate {
			n, err := strconv.Atoi(rateText)
			if err != nil || n < 0 {
				return nil, fmt.Errorf("%w: scenario %q: rate must be a whole number of events per second, 0 for flat out", ErrInvalidConfig, item)
			}
			c.Rate = n
		}
		if c.Scenario == ScenarioFairness && c.Rate == 0 {
			return nil, fmt.Errorf("%w: scenario fairness needs a fixed rate (it compares delivery at the same offered load)", ErrInvalidConfig)
		}
		cases = append(cases, c)
	}
	return cases, nil
}

func known(name string) bool {
	for _, s := range Scenarios {
		if s == name {
			return true
		}
	}
	return false
}

// Config is the benchmark's configuration. Zero values take the defaults above.
type Config struct {
	// Duration is each scenario's measured window (default 10s).
	Duration time.Duration
	// CeilingDuration is how long each ceiling is measured (default Duration, at most
	// MaxCeilingDuration).
	CeilingDuration time.Duration
	// Connections is the number of keep-alive HTTP connections of each load (default 64).
	Connections int
	// PayloadBytes is the size of each event body (default 512, at least 64).
	PayloadBytes int
	// Tenants is the number of well-behaved tenants in the fairness scenario (default 4).
	Tenants int
	// Backlog is the number of events the deliver scenario queues before it measures
	// (default 20,000 per second of Duration, at least 10,000).
	Backlog int
	// Parked is the number of events the fairness scenario parks at a dead endpoint
	// before it measures the other tenants next to it (default ParkedPerSecond per
	// second of Duration, at least 10,000: 1,000,000 at the default 10s; -1 leaves that
	// phase out).
	Parked int
	// DrainTimeout bounds the wait, after a load, for accepted events to reach the
	// receiver; the wait also ends after 5s without progress (default 30s).
	DrainTimeout time.Duration
	// Progress receives a line per second while a scenario runs (nil: none).
	Progress io.Writer
	// Logger receives warnings (default: discarded).
	Logger *slog.Logger
	// Edge is what the edge scenario needs (it starts its own hub and edge).
	Edge EdgeConfig
}

func (c Config) withDefaults() (Config, error) {
	if c.Duration == 0 {
		c.Duration = DefaultDuration
	}
	if c.Duration < 0 {
		return c, fmt.Errorf("%w: Duration must be positive, got %s", ErrInvalidConfig, c.Duration)
	}
	if c.CeilingDuration == 0 {
		c.CeilingDuration = min(c.Duration, MaxCeilingDuration)
	}
	if c.Connections == 0 {
		c.Connections = DefaultConnections
	}
	if c.PayloadBytes == 0 {
		c.PayloadBytes = DefaultPayloadBytes
	}
	if c.Tenants == 0 {
		c.Tenants = DefaultTenants
	}
	if c.Backlog == 0 {
		c.Backlog = max(10_000, int(20_000*c.Duration.Seconds()))
	}
	if c.DrainTimeout == 0 {
		c.DrainTimeout = DefaultDrainTimeout
	}
	if c.Parked == 0 {
		c.Parked = max(10_000, int(ParkedPerSecond*c.Duration.Seconds()))
	}
	if c.Progress == nil {
		c.Progress = io.Discard
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	switch {
	case c.CeilingDuration < 0:
		return c, fmt.Errorf("%w: CeilingDuration must be positive, got %s", ErrInvalidConfig, c.CeilingDuration)
	case c.Connections < 1 || c.Connections > 4096:
		return c, fmt.Errorf("%w: Connections must be 1..4096, got %d", ErrInvalidConfig, c.Connections)
	case c.PayloadBytes < minPayload || c.PayloadBytes > 1<<20:
		return c, fmt.Errorf("%w: PayloadBytes must be %d..1048576, got %d", ErrInvalidConfig, minPayload, c.PayloadBytes)
	case c.Tenants < 1 || c.Tenants > 1000:
		return c, fmt.Errorf("%w: Tenants must be 1..1000, got %d", ErrInvalidConfig, c.Tenants)
	case c.Backlog < 1:
		return c, fmt.Errorf("%w: Backlog must be positive, got %d", ErrInvalidConfig, c.Backlog)
	case c.Parked < -1:
		return c, fmt.Errorf("%w: Parked must be positive, or -1 for no parked phase, got %d", ErrInvalidConfig, c.Parked)
	case c.DrainTimeout < 0:
		return c, fmt.Errorf("%w: DrainTimeout must be positive, got %s", ErrInvalidConfig, c.DrainTimeout)
	}
	return c, nil
}

// Target is a running edgehook system the scenarios drive.
type Target struct {
	// APIURL is the gateway's base URL (http://host:port).
	APIURL string
	// AdminURL is the admin API's base URL (http://host:port), its own listener.
	AdminURL string
	// AdminToken is the admin API's bearer token; the bench creates its own tenants.
	AdminToken string
	// ReceiverURL is the receiver's base URL; the bench's tenants deliver to
	// ReceiverURL/webhooks/{tenantId} and the ceiling is measured against it.
	ReceiverURL string
	// NATSURL and NATSOptions open the bench's own NATS connection. Its user must be
	// able to create and delete a scratch stream, publish to events.*, read RECEIVED
	// with an ordered consumer, and read the EVENTS stream and deliver consumer info
	// (the local operator user of `edgehook up` can).
	NATSURL     string
	NATSOptions []nats.Option
	// NATSMonitorURL is the NATS server's HTTP monitoring (http://host:port), for its
	// memory and storage in the fairness scenario's parked phase ("": not reported).
	NATSMonitorURL string
	// WorkerMetrics gathers the worker's metrics (nil: not reported), for the retry
	// lateness of the fairness scenario's parked phase.
	WorkerMetrics prometheus.Gatherer
	// Processes are the system's own processes (gateway, worker, NATS server: one for
	// `edgehook up`), whose CPU time the pipeline scenario reads from /proc. Empty: the
	// system runs in the bench's own process, whose CPU time (load generator included)
	// is then the figure.
	Processes []Process
	// Shared marks a system the bench does not own: before each scenario it waits for
	// the earlier scenario's events to drain, and it suspends the tenants it created.
	Shared bool
}

// Process is one process of a system, named as the results report it.
type Process struct {
	Name string
	PID  int
}

// Needs says what a scenario needs running.
type Needs struct {
	// Worker is true for scenarios that measure delivery. The ingest scenario asks for
	// none: it measures the gateway as it runs at an edge node, next to its NATS
	// server, with the workers elsewhere.
	Worker bool
}

// Launcher provides the system one scenario (or one phase of it) runs against, and a
// release function the bench calls when done with it. A launcher for a self-started
// system starts a fresh one per call; one for a running system returns it every time
// (ignoring Needs).
type Launcher func(ctx context.Context, needs Needs) (Target, func(), error)

// Existing returns a Launcher for a running system.
func Existing(t Target) Launcher {
	t.Shared = true
	return func(context.Context, Needs) (Target, func(), error) { return t, func() {}, nil }
}

// Bench runs scenarios. Create it with New.
type Bench struct {
	cfg    Config
	launch Launcher
	log    *slog.Logger
	runID  string
}

// New validates cfg and returns a Bench that launches its systems with launch.
func New(cfg Config, launch Launcher) (*Bench, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if launch == nil {
		return nil, fmt.Errorf("%w: a Launcher is required", ErrInvalidConfig)
	}
	return &Bench{cfg: cfg, launch: launch, log: cfg.Logger, runID: runID()}, nil
}

// Config returns the configuration in effect, defaults applied.
func (b *Bench) Config() Config { return b.cfg }

// Run runs each case in order and returns one Result per case. It stops at the first
// case that fails (a system that cannot start, a NATS or admin API error) and returns
// the results so far with that error; failed requests under load are not such
// failures, they are counted in Result.Errors. Cancelling ctx ends the run early.
func (b *Bench) Run(ctx context.Context, cases []Case) ([]Result, error) {
	results := make([]Result, 0, len(cases))
	for _, c := range cases {
		var (
			r   Result
			err error
		)
		switch c.Scenario {
		case ScenarioIngest:
			r, err = b.ingest(ctx, c)
		case ScenarioDeliver:
			r, err = b.deliver(ctx, c)
		case ScenarioE2E:
			r, err = b.e2e(ctx, c)
		case ScenarioPipeline:
			r, err = b.pipeline(ctx, c)
		case ScenarioFairness:
			r, err = b.fairness(ctx, c)
		case ScenarioEdge:
			r, err = b.edge(ctx, c)
		case ScenarioBatch:
			r, err = b.batch(ctx, c)
		default:
			err = fmt.Errorf("%w: unknown scenario %q", ErrInvalidConfig, c.Scenario)
		}
		if err != nil {
			return results, fmt.Errorf("bench: %s: %w", c, err)
		}
		r.Scenario, r.RatePerS = c.Scenario, c.Rate
		r.Connections, r.PayloadBytes = b.cfg.Connections, b.cfg.PayloadBytes
		applyTarget(&r)
		results = append(results, r)
		if ctx.Err() != nil {
			return results, ctx.Err()
		}
	}
	return results, nil
}
