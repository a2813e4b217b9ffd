// Package webhook implements the Standard Webhooks signature scheme: signing on the
// worker side and verification on the receiving side. Any Go program can use Verify to
// check webhooks sent by edgehook.
package webhook

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"strings"
)

// SecretPrefix starts every signing secret's text form.
const SecretPrefix = "whsec_"

// SecretBytes is the length of a newly generated signing key (the Standard Webhooks
// recommendation is at least 24).
const SecretBytes = 32

// ErrBadSecret is returned for a secret that is not "whsec_" + base64 of a non-empty
// key. The error never contains the secret.
var ErrBadSecret = errors.New("webhook: secret must be whsec_ followed by base64 of a non-empty key")

// Secret is a signing key. Its String, LogValue and MarshalJSON print REDACTED, so a
// secret cannot leak through a log line, an error or a JSON encoding by accident;
// Reveal gives the text form where it is meant to be shown or stored.
type Secret struct {
	key []byte
}

// NewSecret generates a random secret of SecretBytes bytes.
func NewSecret() (Secret, error) {
	key := make([]byte, SecretBytes)
	if _, err := rand.Read(key); err != nil {
		return Secret{}, fmt.Errorf("webhook: generate secret: %w", err)
	}
	return Secret{key: key}, nil
}

// ParseSecret parses the text form "whsec_<base64>". Like the Standard Webhooks
// libraries it accepts a key of any non-empty length, so a Go program can verify
// webhooks from any sender; the length rule is for generating keys (NewSecret).
func ParseSecret(s string) (Secret, error) {
	b64, ok := strings.CutPrefix(s, SecretPrefix)
	if !ok {
		return Secret{}, ErrBadSecret
	}
	key, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(key) == 0 {
		return Secret{}, ErrBadSecret
	}
	return Secret{key: key}, nil
}

// IsZero reports whether s holds no key.
func (s Secret) IsZero() bool { return len(s.key) == 0 }

// Equal reports whether two secrets hold the same key.
func (s Secret) Equal(o Secret) bool { return string(s.key) == string(o.key) }

// Reveal returns the text form "whsec_<base64>". Call it only where the secret is
// meant to leave the process: the API response that creates or rotates it, or the
// secret store.
func (s Secret) Reveal() string {
	return SecretPrefix + base64.StdEncoding.EncodeToString(s.key)
}

// String returns REDACTED.
func (s Secret) String() string { return "REDACTED" }

// GoString returns REDACTED, so %#v does not print the key either.
func (s Secret) GoString() string { return "REDACTED" }

// LogValue returns REDACTED for log/slog.
func (s Secret) LogValue() slog.Value { return slog.StringValue("REDACTED") }

// MarshalJSON encodes the secret as "REDACTED"; stores encode Reveal() explicitly.
func (s Secret) MarshalJSON() ([]byte, error) { return []byte(`"REDACTED"`), nil }
