package vault

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgehook/edgehook/webhook"
)

func TestDevStoreRoundTripAndReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "sub", "webhook-config.json")
	s, err := OpenDevStore(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.WebhookConfig(ctx, "ten_a"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("empty store: err = %v, want ErrNotFound", err)
	}
	a, b := testConfig(t, "ten_a"), testConfig(t, "ten_b")
	for _, c := range []WebhookConfig{a, b} {
		if err := s.PutWebhookConfig(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.WebhookConfig(ctx, "ten_a")
	if err != nil {
		t.Fatal(err)
	}
	assertSameConfig(t, got, a)

	// Replace b, delete a, then reopen: the file holds exactly what was written last.
	b.TargetURL = "https://new.example.com/b"
	b.Secret = newSecret(t)
	if err := s.PutWebhookConfig(ctx, b); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteWebhookConfig(ctx, "ten_a"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteWebhookConfig(ctx, "ten_a"); err != nil {
		t.Fatalf("deleting a missing config: %v", err)
	}

	s2, err := OpenDevStore(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s2.WebhookConfig(ctx, "ten_a"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted tenant after reopen: err = %v, want ErrNotFound", err)
	}
	got, err = s2.WebhookConfig(ctx, "ten_b")
	if err != nil {
		t.Fatal(err)
	}
	assertSameConfig(t, got, b)
}

func TestDevStoreFileShape(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "store.json")
	s, err := OpenDevStore(path)
	if err != nil {
		t.Fatal(err)
	}
	c := testConfig(t, "ten_shape")
	if err := s.PutWebhookConfig(ctx, c); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Fatalf("file mode %o, want 600", perm)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Fatalf("directory holds %d files (temporary files left behind?), want 1", len(entries))
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"webhookConfigs"`, `"ten_shape"`, `"targetUrl"`, `"webhookSecret": "` + c.Secret.Reveal() + `"`, `"previousSecrets"`, `"expiresAt"`, `"rotationHistory"`, `"rotatedAt"`, `"lastUpdated": "` + c.LastUpdated.Format(time.RFC3339Nano) + `"`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("file lacks %s:\n%s", want, b)
		}
	}
}

func TestDevStoreTightensLooseFileMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "store.json")
	if err := os.WriteFile(path, []byte(`{"webhookConfigs":{}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenDevStore(path); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Fatalf("file mode %o after open, want 600", perm)
	}
}

func TestDevStoreDropsExpiredPreviousSecrets(t *testing.T) {
	ctx := context.Background()
	s, err := OpenDevStore(filepath.Join(t.TempDir(), "store.json"))
	if err != nil {
		t.Fatal(err)
	}
	c := testConfig(t, "ten_exp")
	expired := newSecret(t)
	c.Previous = append(c.Previous, PreviousSecret{Secret: expired, ExpiresAt: time.Now().Add(-time.Second)})
	if err := s.PutWebhookConfig(ctx, c); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(s.Path())
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), expired.Reveal()) {
		t.Fatal("a secret past its window was written to the file")
	}
	got, err := s.WebhookConfig(ctx, "ten_exp")
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Previous) != 1 || !got.Previous[0].Secret.Equal(c.Previous[0].Secret) {
		t.Fatalf("got %d previous secrets, want only the unexpired one", len(got.Previous))
	}
}

func TestDevStoreConcurrentWriters(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "store.json")
	s, err := OpenDevStore(path)
	if err != nil {
		t.Fatal(err)
	}
	const writers, perWriter = 8, 10
	final := make([]WebhookConfig, writers*perWriter)
	var wg sync.WaitGroup
	errs := make(chan error, writers*perWriter*3)
	for w := range writers {
		wg.Go(func() {
			for i := range perWriter {
				id := fmt.Sprintf("ten_%d_%d", w, i)
				c := testConfig(t, id)
				if err := s.PutWebhookConfig(ctx, c); err != nil {
					errs <- err
				}
				// Every other tenant is rewritten once and every fifth deleted.
				if i%2 == 0 {
					c.TargetURL += "/v2"
					if err := s.PutWebhookConfig(ctx, c); err != nil {
						errs <- err
					}
				}
				if i%5 == 4 {
					if err := s.DeleteWebhookConfig(ctx, id); err != nil {
						errs <- err
					}
					c = WebhookConfig{}
				}
				final[w*perWriter+i] = c
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	reopened, err := OpenDevStore(path)
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range final {
		id := fmt.Sprintf("ten_%d_%d", i/perWriter, i%perWriter)
		for name, store := range map[string]*DevStore{"live": s, "reopened": reopened} {
			got, err := store.WebhookConfig(ctx, id)
			if want.TenantID == "" {
				if !errors.Is(err, ErrNotFound) {
					t.Fatalf("%s %s: err = %v, want ErrNotFound", name, id, err)
				}
				continue
			}
			if err != nil {
				t.Fatalf("%s %s: %v", name, id, err)
			}
			assertSameConfig(t, got, want)
		}
	}
}

func TestDevStoreRejectsInvalidConfig(t *testing.T) {
	ctx := context.Background()
	s, err := OpenDevStore(filepath.Join(t.TempDir(), "store.json"))
	if err != nil {
		t.Fatal(err)
	}
	valid := testConfig(t, "ten_ok")
	cases := map[string]func(*WebhookConfig){
		"bad tenant id":     func(c *WebhookConfig) { c.TenantID = "../etc" },
		"empty tenant id":   func(c *WebhookConfig) { c.TenantID = "" },
		"no target":         func(c *WebhookConfig) { c.TargetURL = "" },
		"relative target":   func(c *WebhookConfig) { c.TargetURL = "/hook" },
		"ftp target":        func(c *WebhookConfig) { c.TargetURL = "ftp://x.example/" },
		"no secret":         func(c *WebhookConfig) { c.Secret = webhook.Secret{} },
		"empty prev secret": func(c *WebhookConfig) { c.Previous[0].Secret = webhook.Secret{} },
	}
	for name, mutate := range cases {
		t.Run(name, func(t *testing.T) {
			c := valid
			c.Previous = append([]PreviousSecret(nil), valid.Previous...)
			mutate(&c)
			err := s.PutWebhookConfig(ctx, c)
			if !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("err = %v, want ErrInvalidConfig", err)
			}
			if strings.Contains(err.Error(), "whsec_") {
				t.Fatalf("error contains a secret: %v", err)
			}
		})
	}
	if _, err := os.Stat(s.Path()); !os.IsNotExist(err) {
		t.Fatalf("rejected writes created the file (stat err %v)", err)
	}
}

func TestDevStoreFailedWriteLeavesStoreUnchanged(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "d")
	s, err := OpenDevStore(filepath.Join(dir, "store.json"))
	if err != nil {
		t.Fatal(err)
	}
	orig := testConfig(t, "ten_x")
	if err := s.PutWebhookConfig(ctx, orig); err != nil {
		t.Fatal(err)
	}
	// With the directory gone no temporary file can be created (even as root).
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	changed := testConfig(t, "ten_x")
	if err := s.PutWebhookConfig(ctx, changed); err == nil {
		t.Fatal("put succeeded without a directory")
	} else if strings.Contains(err.Error(), changed.Secret.Reveal()) || strings.Contains(err.Error(), orig.Secret.Reveal()) {
		t.Fatalf("error contains a secret: %v", err)
	}
	if err := s.PutWebhookConfig(ctx, testConfig(t, "ten_new")); err == nil {
		t.Fatal("put succeeded without a directory")
	}
	if err := s.DeleteWebhookConfig(ctx, "ten_x"); err == nil {
		t.Fatal("delete succeeded without a directory")
	}
	got, err := s.WebhookConfig(ctx, "ten_x")
	if err != nil {
		t.Fatal(err)
	}
	assertSameConfig(t, got, orig)
	if _, err := s.WebhookConfig(ctx, "ten_new"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("failed put of a new tenant is visible: err = %v", err)
	}
}

// TestDevStoreCorruptFileErrorsHideSecrets opens files whose records are broken in
// ways that put a secret next to (or in) the bad field; no error may quote it.
func TestDevStoreCorruptFileErrorsHideSecrets(t *testing.T) {
	secret := newSecret(t).Reveal()
	short := webhook.SecretPrefix + "c2VjcmV0LW5vdC1iYXNlNjQ" // base64 without its padding
	cases := map[string]string{
		"secret not base64":      `{"webhookConfigs":{"ten_a":{"targetUrl":"https://x.example","webhookSecret":"` + short + `","lastUpdated":"2025-01-01T00:00:00Z"}}}`,
		"secret without prefix":  `{"webhookConfigs":{"ten_a":{"targetUrl":"https://x.example","webhookSecret":"` + strings.TrimPrefix(secret, "whsec_") + `","lastUpdated":"2025-01-01T00:00:00Z"}}}`,
		"secret in a time field": `{"webhookConfigs":{"ten_a":{"targetUrl":"https://x.example","webhookSecret":"` + secret + `","lastUpdated":"` + secret + `"}}}`,
		"secret as a number":     `{"webhookConfigs":{"ten_a":{"targetUrl":"https://x.example","webhookSecret":12345678901234}}}`,
		"bad previous secret":    `{"webhookConfigs":{"ten_a":{"targetUrl":"https://x.example","webhookSecret":"` + secret + `","previousSecrets":[{"webhookSecret":"` + short + `!","expiresAt":"2999-01-01T00:00:00Z"}],"lastUpdated":"2025-01-01T00:00:00Z"}}}`,
		"truncated file":         `{"webhookConfigs":{"ten_a":{"targetUrl":"https://x.example","webhookSecret":"` + secret,
		"bad tenant id":          `{"webhookConfigs":{"` + secret + `":{"targetUrl":"https://x.example","webhookSecret":"` + secret + `","lastUpdated":"2025-01-01T00:00:00Z"}}}`,
	}
	for name, content := range cases {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "store.json")
			if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := OpenDevStore(path)
			if err == nil {
				t.Fatal("corrupt file opened without error")
			}
			msg := err.Error()
			for _, s := range []string{secret, strings.TrimPrefix(secret, "whsec_"), short, "c2VjcmV0", "12345678901234"} {
				if strings.Contains(msg, s) {
					t.Fatalf("error quotes stored secret material %q: %v", s, msg)
				}
			}
		})
	}
}
