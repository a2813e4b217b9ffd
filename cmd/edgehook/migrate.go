package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"github.com/edgehook/edgehook/admin"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/edgehook/edgehook/migrate"
	"github.com/edgehook/edgehook/natsconf"
)

const migrateUsage = `usage: edgehook migrate dynamodb [flags]

Imports the tenants of the legacy serverless system from DynamoDB: each API key (hashed)
with its tenant's status and plan into the identity bucket, each tenant's target URL and
signing secrets into Vault. Re-running it is safe: tenants already migrated identically
are skipped. ` + "`edgehook migrate dynamodb -h`" + ` lists the flags.`

// migrateFailureLines bounds the failures the text summary lists; --json lists all.
const migrateFailureLines = 1000

// migrateOptions are the settings of `edgehook migrate dynamodb`.
type migrateOptions struct {
	cfg      migrate.Config
	aws      migrate.AWSConfig
	json     bool
	logLevel string
	nats     natsOptions
	vault    vaultOptions
}

func (o *migrateOptions) register(s *settings) {
	s.String(&o.cfg.IdentityTable, "identity-table", "EDGEHOOK_MIGRATE_IDENTITY_TABLE", migrate.DefaultIdentityTable, "legacy table of API keys (apiKey → tenantId, status, plan, createdAt)")
	s.String(&o.cfg.ConfigTable, "config-table", "EDGEHOOK_MIGRATE_CONFIG_TABLE", migrate.DefaultConfigTable, "legacy table of webhook configuration (tenantId → targetUrl, webhookSecret, rotationHistory, lastUpdated)")
	s.String(&o.cfg.LegacyTable, "legacy-table", "EDGEHOOK_MIGRATE_LEGACY_TABLE", "", "the older single table (apiKey → tenantId, targetUrl, webhookSecret, isActive, plan, ...), e.g. "+migrate.DefaultLegacyTable+"; when set it is migrated instead of the two tables")
	s.Bool(&o.cfg.DryRun, "dry-run", "EDGEHOOK_MIGRATE_DRY_RUN", false, "read and check everything, say what would be done, write nothing")
	s.Int(&o.cfg.Segments, "segments", "EDGEHOOK_MIGRATE_SEGMENTS", migrate.DefaultSegments, "parallel scan segments per table")
	s.Int(&o.cfg.PageSize, "page-size", "EDGEHOOK_MIGRATE_PAGE_SIZE", 0, "items per scan page (0: DynamoDB's 1 MB pages)")
	s.Int(&o.cfg.Concurrency, "concurrency", "EDGEHOOK_MIGRATE_CONCURRENCY", migrate.DefaultConcurrency, "records written at once")
	s.Duration(&o.cfg.RotationWindow, "rotation-window", "EDGEHOOK_ROTATION_WINDOW", migrate.DefaultRotationWindow, "how long a previous secret of a legacy rotationHistory entry without its own expiry stays valid after the rotation")
	s.Bool(&o.json, "json", "", false, "print the summary as one JSON object")
	s.String(&o.aws.Profile, "aws-profile", "AWS_PROFILE", "", "AWS shared config profile (default: the standard AWS configuration)")
	s.String(&o.aws.Region, "aws-region", "AWS_REGION", "", "AWS region (default: the profile's)")
	s.String(&o.aws.EndpointURL, "aws-endpoint-url", "AWS_ENDPOINT_URL", "", "DynamoDB endpoint, for a DynamoDB-compatible server (default: AWS_ENDPOINT_URL_DYNAMODB, else AWS's)")
	s.String(&o.logLevel, "log-level", "EDGEHOOK_LOG_LEVEL", "info", "debug, info, warn or error")
	o.nats.register(s)
	o.vault.register(s)
}

// validate checks the settings, naming the one at fault.
func (o migrateOptions) validate() error {
	switch {
	case o.cfg.Segments < 1 || o.cfg.Segments > 1_000_000:
		return fmt.Errorf("--segments (EDGEHOOK_MIGRATE_SEGMENTS) must be 1 to 1000000, not %d", o.cfg.Segments)
	case o.cfg.Concurrency < 1:
		return fmt.Errorf("--concurrency (EDGEHOOK_MIGRATE_CONCURRENCY) must be at least 1, not %d", o.cfg.Concurrency)
	case o.cfg.PageSize < 0:
		return fmt.Errorf("--page-size (EDGEHOOK_MIGRATE_PAGE_SIZE) must not be negative")
	case o.cfg.RotationWindow <= 0:
		return fmt.Errorf("--rotation-window (EDGEHOOK_ROTATION_WINDOW) must be positive")
	case o.cfg.LegacyTable == "" && (o.cfg.IdentityTable == "" || o.cfg.ConfigTable == ""):
		return errors.New("--identity-table and --config-table (or --legacy-table) must name the legacy tables")
	}
	return nil
}

// migrateRun is `edgehook migrate dynamodb`. It exits non-zero when any record failed,
// after migrating all the others.
func migrateRun(ctx context.Context, env *environment, args []string) error {
	if len(args) == 0 || args[0] != "dynamodb" {
		fmt.Fprintln(env.stderr, migrateUsage)
		if len(args) == 0 || strings.HasPrefix(args[0], "-") {
			return usageError{errors.New("migrate: say what to migrate from: `edgehook migrate dynamodb`")}
		}
		return usageError{fmt.Errorf("migrate: unknown source %q (only dynamodb)", args[0])}
	}
	var o migrateOptions
	s := newSettings("migrate dynamodb", env.getenv, env.stderr)
	o.register(s)
	if err := s.parse(args[1:]); err != nil {
		return err
	}
	if s.fs.NArg() > 0 {
		return usageError{fmt.Errorf("migrate dynamodb takes no arguments, got %q", s.fs.Args())}
	}
	// As in the AWS library, the service's own endpoint variable comes before the
	// general one.
	if v := env.getenv("AWS_ENDPOINT_URL_DYNAMODB"); v != "" && !migrateFlagSet(s, "aws-endpoint-url") {
		o.aws.EndpointURL = v
	}
	if err := o.validate(); err != nil {
		return usageError{err}
	}
	// Static credentials from the environment this command was given; without them the
	// AWS library's standard credential chain applies.
	o.aws.AccessKeyID, o.aws.SecretAccessKey, o.aws.SessionToken = env.getenv("AWS_ACCESS_KEY_ID"), env.getenv("AWS_SECRET_ACCESS_KEY"), env.getenv("AWS_SESSION_TOKEN")
	log, err := newLogger(env.stderr, o.logLevel)
	if err != nil {
		return err
	}

	o.aws.Log = log
	ddb, err := migrate.NewDynamoDBClient(ctx, o.aws)
	if err != nil {
		return usageError{fmt.Errorf("%w (AWS_REGION, AWS_PROFILE)", err)}
	}
	vc, err := o.vault.client(log, true)
	if err != nil {
		return err
	}
	// The admin API's NATS user may do all a migration does (write identity, announce
	// config changes) and the operator may do anything: either will do, with the
	// admin's inbox.
	nc, js, err := o.nats.connect(string(natsconf.Admin), log)
	if err != nil {
		return err
	}
	defer nc.Close()
	kv, err := js.KeyValue(ctx, natsconf.BucketIdentity)
	if err != nil {
		return fmt.Errorf("identity bucket (run `edgehook setup nats` first; migrate connects as the NATS user %s or %s): %w", natsconf.Admin, natsconf.OperatorUser, err)
	}

	vctx, stopVault := context.WithCancel(ctx)
	vaultDone := make(chan struct{})
	go func() { _ = vc.Run(vctx); close(vaultDone) }() // login, renewal; Run returns nil
	defer func() { stopVault(); <-vaultDone }()

	bar := migrateProgressTo(env.stderr)
	m, err := migrate.New(o.cfg, migrate.Deps{
		DynamoDB: ddb,
		Identity: kv,
		// Workers and receivers drop their cached copy of a config written here.
		Configs:  admin.Announcing(vc, nc, log),
		Progress: bar.draw,
		Log:      log,
	})
	if err != nil {
		return usageError{err}
	}
	rep, runErr := m.Run(ctx)
	bar.done()
	if err := nc.Flush(); err != nil { // the config change notices
		log.Warn("config change notices may not have been sent; caches refresh within their TTL", "error", err)
	}
	if o.json {
		err = migratePrintJSON(env.stdout, rep)
	} else {
		migratePrintSummary(env.stdout, rep)
	}
	switch {
	case runErr != nil:
		return runErr
	case err != nil:
		return err
	case rep.Failed > 0:
		return fmt.Errorf("migrate: %d of %d records failed (listed above); the others were migrated, and a re-run migrates the fixed ones", rep.Failed, rep.Read)
	}
	return nil
}

// migrateFlagSet reports whether the command line set flag name.
func migrateFlagSet(s *settings, name string) bool {
	set := false
	s.fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// migrateProgress draws the progress line on stderr once a second: redrawn in place on
// a terminal, one line per update otherwise (logs, CI).
type migrateProgress struct {
	w        io.Writer
	terminal bool
	mu       sync.Mutex
	drawn    bool
}

const migrateBarWidth = 30

func migrateProgressTo(w io.Writer) *migrateProgress {
	p := &migrateProgress{w: w}
	if f, ok := w.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			p.terminal = true
		}
	}
	return p
}

func (p *migrateProgress) draw(pr migrate.Progress) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var b strings.Builder
	if p.terminal {
		b.WriteString("\r")
	}
	// DynamoDB's item count is an estimate: the bar never runs past full.
	if total := max(pr.Total, pr.Read); pr.Total > 0 {
		filled := migrateBarWidth * pr.Done() / total
		fmt.Fprintf(&b, "[%s%s] ", strings.Repeat("#", filled), strings.Repeat(".", migrateBarWidth-filled))
	}
	fmt.Fprintf(&b, "read %d  migrated %d  skipped %d  failed %d  %.0f records/s", pr.Read, pr.Migrated(), pr.Unchanged, pr.Failed, pr.Rate())
	if !p.terminal {
		b.WriteString("\n")
	}
	io.WriteString(p.w, b.String())
	p.drawn = true
}

func (p *migrateProgress) done() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.terminal && p.drawn {
		io.WriteString(p.w, "\n")
	}
}

// migratePrintSummary prints what the run did and every failure (the first
// migrateFailureLines), each with the tenant id and the API key's hash prefix, never a
// key or a secret.
func migratePrintSummary(w io.Writer, rep migrate.Report) {
	var b strings.Builder
	verb, prefix := "migrated", ""
	if rep.DryRun {
		verb, prefix = "would migrate", "dry run, nothing written: "
	}
	fmt.Fprintf(&b, "%sDynamoDB %s layout (%s)\n", prefix, rep.Layout, strings.Join(rep.Tables, ", "))
	fmt.Fprintf(&b, "  records read         %d\n", rep.Read)
	fmt.Fprintf(&b, "  %-20s %d (created %d, updated %d)\n", verb, rep.Migrated(), rep.Created, rep.Updated)
	fmt.Fprintf(&b, "  skipped (unchanged)  %d\n", rep.Unchanged)
	fmt.Fprintf(&b, "  failed               %d\n", rep.Failed)
	fmt.Fprintf(&b, "  took %s, %.0f records/s\n", rep.Elapsed.Round(time.Millisecond), rep.Rate())
	if len(rep.Failures) > 0 {
		b.WriteString("\nfailed records (tenantId, API key hash, table: reason):\n")
		for i, f := range rep.Failures {
			if i == migrateFailureLines {
				fmt.Fprintf(&b, "  ... and %d more (--json lists them all)\n", len(rep.Failures)-i)
				break
			}
			key := f.Key
			if key == "" {
				key = "-"
			}
			fmt.Fprintf(&b, "  %q  %s  %s: %s\n", f.TenantID, key, f.Table, f.Reason)
		}
	}
	io.WriteString(w, b.String())
}

// migrateJSON is the --json summary.
type migrateJSON struct {
	Layout           string            `json:"layout"`
	Tables           []string          `json:"tables"`
	DryRun           bool              `json:"dryRun"`
	Read             int               `json:"read"`
	Migrated         int               `json:"migrated"`
	Created          int               `json:"created"`
	Updated          int               `json:"updated"`
	Skipped          int               `json:"skipped"`
	Failed           int               `json:"failed"`
	ElapsedSeconds   float64           `json:"elapsedSeconds"`
	RecordsPerSecond float64           `json:"recordsPerSecond"`
	Failures         []migrate.Failure `json:"failures"`
}

func migratePrintJSON(w io.Writer, rep migrate.Report) error {
	out := migrateJSON{
		Layout: rep.Layout, Tables: rep.Tables, DryRun: rep.DryRun,
		Read: rep.Read, Migrated: rep.Migrated(), Created: rep.Created, Updated: rep.Updated,
		Skipped: rep.Unchanged, Failed: rep.Failed,
		ElapsedSeconds: rep.Elapsed.Seconds(), RecordsPerSecond: rep.Rate(),
		Failures: rep.Failures,
	}
	if out.Failures == nil {
		out.Failures = []migrate.Failure{}
	}
	enc := json.NewEncoder(w)
	return enc.Encode(out)
}
