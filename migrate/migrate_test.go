package migrate_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgehook/edgehook/identity"
	"github.com/edgehook/edgehook/migrate"
	"github.com/edgehook/edgehook/vault"
	"github.com/edgehook/edgehook/webhook"
)

func TestTwoTableLayout(t *testing.T) {
	f := newFixture(t)
	now := time.Now().UTC()
	// acme rotated twice: the secret before the last rotation is still valid, the one
	// before that expired; both rotations stay in the history.
	acme := newLegacyTenant("acme")
	stillValid, expired := newSecretText(t), newSecretText(t)
	acme.lastUpdated = now.Add(-time.Hour).Format(time.RFC3339)
	acme.rotations = l(
		m(item{"rotatedAt": s(now.Add(-72 * time.Hour).Format(time.RFC3339)), "previousSecret": s(expired),
			"previousExpiresAt": s(now.Add(-48 * time.Hour).Format(time.RFC3339))}),
		m(item{"rotatedAt": n(fmt.Sprint(now.Add(-time.Hour).Unix())), "previousSecret": s(stillValid)}), // window: 24h
	)
	globex := newLegacyTenant("globex")
	globex.status, globex.plan, globex.createdAt = "suspended", "", "2023-11-14T22:13:20.5Z" // no plan: free
	initech := newLegacyTenant("Initech-42")
	initech.status, initech.plan, initech.createdAt = "ACTIVE", "Enterprise", "1700000000123" // epoch ms
	f.putTwoTable(t, acme, globex, initech)

	rep := f.run(t, migrate.Config{})
	wantCounts(t, rep, migrate.Counts{Read: 3, Created: 3})
	if rep.Layout != "two-table" || rep.DryRun {
		t.Errorf("report layout %q dry-run %t", rep.Layout, rep.DryRun)
	}

	for _, c := range []struct {
		lt           legacyTenant
		status, plan string
		created      time.Time
	}{
		{acme, identity.StatusActive, "pro", time.Unix(1700000000, 0)},
		{globex, identity.StatusSuspended, identity.DefaultPlan, time.Unix(1700000000, 5e8)},
		{initech, identity.StatusActive, "enterprise", time.UnixMilli(1700000000123)},
	} {
		tn := f.tenant(t, c.lt.tenantID, c.lt.apiKey)
		if tn.Status != c.status || tn.Plan != c.plan || !tn.CreatedAt.Equal(c.created) {
			t.Errorf("tenant %s: %+v, want status %s plan %s created %s", c.lt.tenantID, tn, c.status, c.plan, c.created)
		}
		cfg := f.config(t, c.lt.tenantID)
		if cfg.TargetURL != c.lt.targetURL || !cfg.Secret.Equal(mustSecret(t, c.lt.secret)) {
			t.Errorf("config of %s: target %s, secret carried over %t", c.lt.tenantID, cfg.TargetURL, cfg.Secret.Equal(mustSecret(t, c.lt.secret)))
		}
	}
	cfg := f.config(t, "acme")
	if len(cfg.Previous) != 1 || !cfg.Previous[0].Secret.Equal(mustSecret(t, stillValid)) {
		t.Errorf("acme's previous secrets: %d, want only the still-valid one", len(cfg.Previous))
	} else if want := now.Add(23 * time.Hour); cfg.Previous[0].ExpiresAt.Sub(want).Abs() > 2*time.Second {
		t.Errorf("previous secret expires %s, want rotation + 24h = %s", cfg.Previous[0].ExpiresAt, want)
	}
	if len(cfg.RotationHistory) != 2 {
		t.Errorf("acme's rotation history has %d entries, want 2", len(cfg.RotationHistory))
	}
	if !cfg.LastUpdated.Equal(now.Add(-time.Hour).Truncate(time.Second)) {
		t.Errorf("acme's lastUpdated %s, want the legacy one", cfg.LastUpdated)
	}
	// The worker signs with the current and the still-valid previous secret.
	if got := cfg.ActiveSecrets(time.Now()); len(got) != 2 {
		t.Errorf("%d active secrets, want 2", len(got))
	}
}

func TestSingleTableLayout(t *testing.T) {
	f := newFixture(t)
	on := newLegacyTenant("on")
	on.plan = "" // the legacy seed wrote no plan
	off := newLegacyTenant("off")
	off.status, off.lastUpdated = "suspended", "1710000000"
	b64 := newLegacyTenant("b64")
	b64.secret = plainBase64(t) // no whsec_ prefix: converted
	f.db.PutItems(t, legacyTable, []item{on.legacyItem(), off.legacyItem(), b64.legacyItem()})

	rep := f.run(t, migrate.Config{LegacyTable: legacyTable})
	wantCounts(t, rep, migrate.Counts{Read: 3, Created: 3})
	if rep.Layout != "single-table" {
		t.Errorf("layout %q", rep.Layout)
	}
	if tn := f.tenant(t, "on", on.apiKey); tn.Status != identity.StatusActive || tn.Plan != "free" {
		t.Errorf("isActive true: %+v", tn)
	}
	if tn := f.tenant(t, "off", off.apiKey); tn.Status != identity.StatusSuspended {
		t.Errorf("isActive false: %+v", tn)
	}
	if cfg := f.config(t, "off"); !cfg.LastUpdated.Equal(time.Unix(1710000000, 0)) {
		t.Errorf("updatedAt not carried over as lastUpdated: %s", cfg.LastUpdated)
	}
	f.tenant(t, "b64", b64.apiKey)
	if cfg := f.config(t, "b64"); !cfg.Secret.Equal(mustSecret(t, webhook.SecretPrefix+b64.secret)) {
		t.Error("a plain base64 secret was not carried over as whsec_ + the same base64")
	}
}

// TestMalformedItems puts one good tenant and a series of bad items in each layout:
// every bad item fails with its reason, the good ones migrate, and no reason shows a
// secret, an API key or a URL's credentials.
func TestMalformedItems(t *testing.T) {
	f := newFixture(t)
	good := newLegacyTenant("good")
	var secrets []string // what must never be printed
	bad := func(name string) legacyTenant {
		lt := newLegacyTenant(name)
		secrets = append(secrets, lt.apiKey, lt.secret)
		return lt
	}

	type badCase struct {
		tenantID string // as the failure names it
		apiKey   string // to tell failures without a tenant id apart
		table    string
		reason   string
		invalid  bool // matches ErrInvalidRecord
	}
	var cases []badCase
	var ids, cfgs []item
	add := func(c badCase, id, cfg item) {
		cases = append(cases, c)
		if id != nil {
			ids = append(ids, id)
		}
		if cfg != nil {
			cfgs = append(cfgs, cfg)
		}
	}
	ids, cfgs = append(ids, good.identityItem()), append(cfgs, good.configItem())

	noID := bad("noid")
	it := noID.identityItem()
	delete(it, "tenantId")
	add(badCase{"", noID.apiKey, identityTable, "tenantId: missing", true}, it, nil)

	badStatus := bad("badstatus")
	badStatus.status = "deleted"
	add(badCase{"badstatus", "", identityTable, `status: "deleted" is not active or suspended`, true}, badStatus.identityItem(), badStatus.configItem())

	creds := bad("creds")
	creds.targetURL = "https://admin:hunter2-password@hooks.example.com/x"
	secrets = append(secrets, "hunter2-password")
	add(badCase{"creds", "", configTable, "targetUrl: must be an absolute http or https URL", true}, creds.identityItem(), creds.configItem())

	relative := bad("relative")
	relative.targetURL = "/webhooks/relative"
	add(badCase{"relative", "", configTable, "targetUrl: must be an absolute", true}, relative.identityItem(), relative.configItem())

	badSecret := bad("badsecret")
	badSecret.secret = "whsec_test123" // the legacy docs' example: not base64
	add(badCase{"badsecret", "", configTable, "webhookSecret: is neither whsec_ + base64", true}, badSecret.identityItem(), badSecret.configItem())

	numID := bad("numid")
	it = numID.identityItem()
	it["tenantId"] = n("42")
	add(badCase{"", numID.apiKey, identityTable, "tenantId: must be a string (S), not N", true}, it, nil)

	// (DynamoDB itself refuses an apiKey or a config's tenantId that is not a string:
	// they are the tables' keys.)
	boolStatus := bad("boolstatus")
	it = boolStatus.identityItem()
	it["status"] = b(true)
	add(badCase{"boolstatus", "", identityTable, "status: must be a string (S), not BOOL", true}, it, boolStatus.configItem())

	numURL := bad("numurl")
	it = numURL.configItem()
	it["targetUrl"] = n("8080")
	add(badCase{"numurl", "", configTable, "targetUrl: must be a string (S), not N", true}, numURL.identityItem(), it)

	mapSecret := bad("mapsecret")
	it = mapSecret.configItem()
	it["webhookSecret"] = m(item{"value": s(mapSecret.secret)})
	add(badCase{"mapsecret", "", configTable, "webhookSecret: must be a string (S), not M", true}, mapSecret.identityItem(), it)

	badTime := bad("badtime")
	badTime.createdAt = "yesterday"
	add(badCase{"badtime", "", identityTable, `createdAt: "yesterday" is neither an ISO-8601 time nor epoch seconds`, true}, badTime.identityItem(), badTime.configItem())

	badPlan := bad("badplan")
	badPlan.plan = "gold"
	add(badCase{"badplan", "", identityTable, `plan: "gold" is not one of free, pro, enterprise`, true}, badPlan.identityItem(), badPlan.configItem())

	spaceID := bad("acme corp")
	add(badCase{"acme corp", "", identityTable, "tenantId: must be 1-64 characters", true}, spaceID.identityItem(), spaceID.configItem())

	badHistory := bad("badhistory")
	badHistory.rotations = s("2024-01-01")
	add(badCase{"badhistory", "", configTable, "rotationHistory: must be a list (L), not S", true}, badHistory.identityItem(), badHistory.configItem())

	badPrev := bad("badprev")
	badPrev.rotations = l(m(item{"rotatedAt": s(time.Now().Format(time.RFC3339)), "previousSecret": s("not a secret!")}))
	add(badCase{"badprev", "", configTable, "rotationHistory[0].previousSecret: is neither", true}, badPrev.identityItem(), badPrev.configItem())

	noConfig := bad("noconfig")
	add(badCase{"noconfig", "", configTable, "no item in the webhook config table", true}, noConfig.identityItem(), nil)

	orphan := bad("orphan")
	add(badCase{"orphan", "", configTable, "no item of the identity table has this tenantId", true}, nil, orphan.configItem())

	f.db.PutItems(t, identityTable, ids)
	f.db.PutItems(t, configTable, cfgs)
	rep := f.run(t, migrate.Config{})
	wantCounts(t, rep, migrate.Counts{Read: len(ids) + 1, Created: 1, Failed: len(cases)})
	f.tenant(t, "good", good.apiKey)
	for _, c := range cases {
		var fl migrate.Failure
		if c.apiKey != "" {
			fl = failureFor(t, rep, c.tenantID, c.apiKey)
		} else {
			fl = failureFor(t, rep, c.tenantID)
		}
		if !strings.Contains(fl.Reason, c.reason) || fl.Table != c.table || isInvalid(fl) != c.invalid {
			t.Errorf("tenant %q: failure %q in %s (invalid %t), want %q in %s", c.tenantID, fl.Reason, fl.Table, isInvalid(fl), c.reason, c.table)
		}
	}
	if l := leaks(fmt.Sprintf("%+v %v", rep, rep.Failures), secrets...); len(l) > 0 {
		t.Errorf("the report shows %d secrets or API keys", len(l))
	}
	// Only the good tenant reached edgehook.
	for _, c := range cases {
		if c.tenantID != "" && identity.ValidTenantID(c.tenantID) {
			if _, err := f.store.Get(context.Background(), c.tenantID); !errors.Is(err, identity.ErrNotFound) {
				t.Errorf("failed tenant %s has an identity record (%v)", c.tenantID, err)
			}
			if v := f.configVersion(t, c.tenantID); v != 0 {
				t.Errorf("failed tenant %s has a webhook config", c.tenantID)
			}
		}
	}

	// The single table's own malformations.
	lg := newLegacyTenant("lgood")
	strActive := newLegacyTenant("stractive")
	it = strActive.legacyItem()
	it["isActive"] = s("true")
	noActive := newLegacyTenant("noactive")
	it2 := noActive.legacyItem()
	delete(it2, "isActive")
	f.db.PutItems(t, legacyTable, []item{lg.legacyItem(), it, it2})
	rep = f.run(t, migrate.Config{LegacyTable: legacyTable})
	wantCounts(t, rep, migrate.Counts{Read: 3, Created: 1, Failed: 2})
	if fl := failureFor(t, rep, "stractive"); fl.Reason != "isActive: must be a boolean (BOOL), not S" || fl.Table != legacyTable {
		t.Errorf("isActive as a string: %q in %s", fl.Reason, fl.Table)
	}
	if fl := failureFor(t, rep, "noactive"); fl.Reason != "isActive: missing" {
		t.Errorf("no isActive: %q", fl.Reason)
	}
	if fl := failureFor(t, rep, "noactive"); fl.Key != migrate.KeyRef(noActive.apiKey) || !strings.HasPrefix(fl.Key, "sha256:") || len(fl.Key) != len("sha256:")+12 {
		t.Errorf("failure names the key as %q, want a 12-digit hash prefix", fl.Key)
	}
}

// TestRerun migrates 100 tenants across several segments and small pages, then runs
// again: everything is unchanged and nothing is written. A changed legacy record is then
// updated, and a config changed in edgehook after the legacy record is left alone.
func TestRerun(t *testing.T) {
	f := newFixture(t)
	var tenants []legacyTenant
	for i := range 100 {
		lt := newLegacyTenant(fmt.Sprintf("t%03d", i))
		lt.lastUpdated = "1700000000"
		tenants = append(tenants, lt)
	}
	f.putTwoTable(t, tenants...)
	cfg := migrate.Config{Segments: 3, PageSize: 7, Concurrency: 5}
	wantCounts(t, f.run(t, cfg), migrate.Counts{Read: 100, Created: 100})

	writes := f.identityWrites(t)
	rep := f.run(t, cfg)
	wantCounts(t, rep, migrate.Counts{Read: 100, Unchanged: 100})
	if w := f.identityWrites(t); w != writes {
		t.Errorf("the re-run wrote %d identity records", w-writes)
	}
	for _, lt := range tenants[:10] {
		if v := f.configVersion(t, lt.tenantID); v != 1 {
			t.Errorf("config of %s at version %d after the re-run, want 1", lt.tenantID, v)
		}
	}

	// t000 is suspended in the legacy table, t001 gets a new target and secret there.
	t0, t1 := tenants[0], tenants[1]
	t0.status = "suspended"
	t1.targetURL, t1.secret, t1.lastUpdated = "https://new.example.com/hook", newSecretText(t), "1700000500"
	f.putTwoTable(t, t0, t1)
	// t002's secret was rotated in edgehook after the migration; the legacy record
	// changed too, but earlier.
	ctx := context.Background()
	rotated := f.config(t, "t002")
	fresh, _ := webhook.NewSecret()
	rotated.Secret, rotated.LastUpdated = fresh, time.Now().UTC()
	if err := f.configs.PutWebhookConfig(ctx, rotated); err != nil {
		t.Fatal(err)
	}
	t2 := tenants[2]
	t2.targetURL, t2.lastUpdated = "https://stale.example.com/", "1700000600"
	f.putTwoTable(t, t2)

	rep = f.run(t, cfg)
	wantCounts(t, rep, migrate.Counts{Read: 100, Updated: 2, Unchanged: 97, Failed: 1})
	if tn := f.tenant(t, "t000", t0.apiKey); tn.Status != identity.StatusSuspended {
		t.Errorf("t000 not suspended: %+v", tn)
	}
	if c := f.config(t, "t001"); c.TargetURL != t1.targetURL || !c.Secret.Equal(mustSecret(t, t1.secret)) {
		t.Errorf("t001's config not updated")
	}
	fl := failureFor(t, rep, "t002")
	if !errors.Is(fl.Err, migrate.ErrConflict) || !strings.Contains(fl.Reason, "changed in edgehook") || fl.Table != configTable {
		t.Errorf("t002: %q", fl.Reason)
	}
	if c := f.config(t, "t002"); !c.Secret.Equal(fresh) || c.TargetURL != tenants[2].targetURL {
		t.Errorf("the config rotated in edgehook was overwritten")
	}
}

func TestDryRunWritesNothing(t *testing.T) {
	f := newFixture(t)
	a, bb := newLegacyTenant("a"), newLegacyTenant("b")
	bb.status = "gone"
	f.putTwoTable(t, a, bb)
	rep := f.run(t, migrate.Config{DryRun: true})
	wantCounts(t, rep, migrate.Counts{Read: 2, Created: 1, Failed: 1})
	if !rep.DryRun {
		t.Error("report not marked dry-run")
	}
	if w := f.identityWrites(t); w != 0 {
		t.Errorf("dry run wrote %d identity records", w)
	}
	if v := f.configVersion(t, "a"); v != 0 {
		t.Error("dry run wrote a webhook config")
	}
	// After a real run, a dry run says unchanged.
	f.run(t, migrate.Config{})
	wantCounts(t, f.run(t, migrate.Config{DryRun: true}), migrate.Counts{Read: 2, Unchanged: 1, Failed: 1})
}

// TestConflicts: a legacy record never takes over an API key or a tenant that edgehook
// already has under another key, and writes nothing then.
func TestConflicts(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	// The legacy key of "thief" already belongs to edgehook tenant "owner".
	thief := newLegacyTenant("thief")
	if err := f.store.Create(ctx, identity.Tenant{TenantID: "owner", Status: identity.StatusActive, Plan: "pro"}, identity.HashKey([]byte(thief.apiKey))); err != nil {
		t.Fatal(err)
	}
	// Edgehook tenant "native" exists, with another key and its own config.
	native := newLegacyTenant("native")
	_, otherKey, _ := identity.NewAPIKey()
	if err := f.store.Create(ctx, identity.Tenant{TenantID: "native", Status: identity.StatusActive, Plan: "free"}, otherKey); err != nil {
		t.Fatal(err)
	}
	nativeSecret, _ := webhook.NewSecret()
	if err := f.configs.PutWebhookConfig(ctx, vault.WebhookConfig{TenantID: "native", TargetURL: "https://native.example.com/", Secret: nativeSecret}); err != nil {
		t.Fatal(err)
	}
	// "twice" has two legacy API keys: one is migrated, the other fails.
	twice1, twice2 := newLegacyTenant("twice"), newLegacyTenant("twice")
	f.putTwoTable(t, thief, native, twice1)
	f.db.PutItems(t, identityTable, []item{twice2.identityItem()})

	rep := f.run(t, migrate.Config{})
	wantCounts(t, rep, migrate.Counts{Read: 4, Created: 1, Failed: 3})
	if fl := failureFor(t, rep, "thief"); !errors.Is(fl.Err, migrate.ErrConflict) || !strings.Contains(fl.Reason, "belongs to tenant owner") {
		t.Errorf("thief: %q", fl.Reason)
	}
	if fl := failureFor(t, rep, "native"); !errors.Is(fl.Err, migrate.ErrConflict) || !strings.Contains(fl.Reason, "already exists in edgehook with another API key") {
		t.Errorf("native: %q", fl.Reason)
	}
	if c := f.config(t, "native"); !c.Secret.Equal(nativeSecret) || f.configVersion(t, "native") != 1 {
		t.Error("the native tenant's config was touched")
	}
	if v := f.configVersion(t, "thief"); v != 0 {
		t.Error("a config was written for the conflicting record")
	}
	fl := failureFor(t, rep, "twice")
	if !errors.Is(fl.Err, migrate.ErrConflict) {
		t.Errorf("twice: %q", fl.Reason)
	}
	// The key that was migrated works, with its config; the other one does not.
	migrated, refused := twice1, twice2
	if fl.Key == migrate.KeyRef(twice1.apiKey) {
		migrated, refused = twice2, twice1
	}
	f.tenant(t, "twice", migrated.apiKey)
	f.config(t, "twice")
	if _, err := identity.NewView(f.kv, nil).Authenticate(ctx, []byte(refused.apiKey)); !errors.Is(err, identity.ErrUnknownKey) {
		t.Errorf("the second key of twice: %v, want unknown", err)
	}
}

func TestProgressIsReported(t *testing.T) {
	f := newFixture(t)
	var tenants []legacyTenant
	for i := range 30 {
		tenants = append(tenants, newLegacyTenant(fmt.Sprintf("p%02d", i)))
	}
	f.putTwoTable(t, tenants...)
	var mu sync.Mutex
	var seen []migrate.Progress
	mg := f.migrator(t, migrate.Config{ProgressInterval: 5 * time.Millisecond}, func(p migrate.Progress) {
		mu.Lock()
		seen = append(seen, p)
		mu.Unlock()
	})
	rep, err := mg.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) == 0 {
		t.Fatal("no progress reported")
	}
	last := seen[len(seen)-1]
	// (dynalite, like DynamoDB between its six-hourly refreshes, may report no item
	// count: Total is an estimate.)
	if last.Counts != rep.Counts || last.Rate() <= 0 {
		t.Errorf("last progress %+v (rate %f), report %+v", last, last.Rate(), rep.Counts)
	}
}

func TestMissingTableStopsTheRun(t *testing.T) {
	f := newFixture(t)
	_, err := f.migrator(t, migrate.Config{LegacyTable: "NoSuchTable"}, nil).Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "NoSuchTable") {
		t.Fatalf("run on a missing table: %v", err)
	}
}
