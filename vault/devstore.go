package vault

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/edgehook/edgehook/identity"
)

// DevStore is the embedded development secret store that `edgehook up` uses when no
// Vault is configured. It keeps every tenant's configuration in memory and in one JSON
// file (mode 0600), rewritten atomically on each change (temporary file, fsync, rename,
// directory fsync), so a crash leaves either the old or the new file. Each entry has the
// same shape as the Vault KV v2 secret. It is safe for concurrent use within one process;
// two processes must not open the same file.
//
// A DevStore protects secrets only with file permissions: it is not for production.
type DevStore struct {
	path string
	now  func() time.Time

	mu      sync.Mutex
	records map[string]record
}

// devFile is the JSON document a DevStore keeps on disk.
type devFile struct {
	WebhookConfigs map[string]record `json:"webhookConfigs"`
}

// OpenDevStore opens the store kept in the file at path, creating its directory (mode
// 0700) if needed; a missing file is an empty store and is created on the first write.
// An existing file readable by group or others is tightened to 0600. Every stored record
// is checked on open, so a corrupt file is reported here rather than on a later read.
func OpenDevStore(path string) (*DevStore, error) {
	if path == "" {
		return nil, errors.New("vault: dev store path is empty")
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("vault: dev store directory: %w", err)
	}
	s := &DevStore{path: path, now: time.Now, records: map[string]record{}}
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return s, nil
	case err != nil:
		return nil, fmt.Errorf("vault: read dev store %s: %w", path, err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("vault: stat dev store %s: %w", path, err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		if err := os.Chmod(path, 0o600); err != nil {
			return nil, fmt.Errorf("vault: restrict dev store %s to mode 0600: %w", path, err)
		}
	}
	var f devFile
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("vault: decode dev store %s: %w", path, redactJSONError(err))
	}
	for id, r := range f.WebhookConfigs {
		if !identity.ValidTenantID(id) {
			return nil, fmt.Errorf("%w: dev store %s holds an invalid tenant id", ErrInvalidConfig, path)
		}
		if _, err := decodeRecord(id, r); err != nil {
			return nil, fmt.Errorf("vault: dev store %s: %w", path, err)
		}
		s.records[id] = r
	}
	return s, nil
}

// Path returns the file the store is kept in.
func (s *DevStore) Path() string { return s.path }

// WebhookConfig returns tenantID's configuration, or ErrNotFound.
func (s *DevStore) WebhookConfig(_ context.Context, tenantID string) (WebhookConfig, error) {
	s.mu.Lock()
	r, ok := s.records[tenantID]
	s.mu.Unlock()
	if !ok {
		return WebhookConfig{}, fmt.Errorf("%w: tenant %s", ErrNotFound, tenantID)
	}
	return decodeRecord(tenantID, r)
}

// PutWebhookConfig creates or replaces cfg.TenantID's configuration and returns once the
// file on disk holds it. On error the store's contents are unchanged (the file holds
// either the old or the new contents).
func (s *DevStore) PutWebhookConfig(_ context.Context, cfg WebhookConfig) error {
	r, err := encodeRecord(cfg, s.now())
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	old, had := s.records[cfg.TenantID]
	s.records[cfg.TenantID] = r
	if err := s.persistLocked(); err != nil {
		if had {
			s.records[cfg.TenantID] = old
		} else {
			delete(s.records, cfg.TenantID)
		}
		return fmt.Errorf("vault: put webhook config of tenant %s: %w", cfg.TenantID, err)
	}
	return nil
}

// DeleteWebhookConfig removes tenantID's configuration and returns once the file on disk
// no longer holds it; deleting a missing one is not an error.
func (s *DevStore) DeleteWebhookConfig(_ context.Context, tenantID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	old, had := s.records[tenantID]
	if !had {
		return nil
	}
	delete(s.records, tenantID)
	if err := s.persistLocked(); err != nil {
		s.records[tenantID] = old
		return fmt.Errorf("vault: delete webhook config of tenant %s: %w", tenantID, err)
	}
	return nil
}

// persistLocked writes every record to a temporary file beside the store's file, syncs
// it, renames it over the file and syncs the directory. s.mu must be held.
func (s *DevStore) persistLocked() error {
	b, err := json.MarshalIndent(devFile{WebhookConfigs: s.records}, "", "  ")
	if err != nil {
		return fmt.Errorf("encode dev store: %w", err)
	}
	dir := filepath.Dir(s.path)
	tmp, err := os.CreateTemp(dir, filepath.Base(s.path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("create temporary file: %w", err)
	}
	done := false
	defer func() {
		if !done {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	// CreateTemp already uses 0600; Chmod makes it independent of that detail.
	if err := tmp.Chmod(0o600); err != nil {
		return fmt.Errorf("chmod temporary file: %w", err)
	}
	if _, err := tmp.Write(b); err != nil {
		return fmt.Errorf("write temporary file: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("sync temporary file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("close temporary file: %w", err)
	}
	if err := os.Rename(tmp.Name(), s.path); err != nil {
		return fmt.Errorf("rename temporary file: %w", err)
	}
	done = true
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open directory for sync: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync directory: %w", err)
	}
	return nil
}
