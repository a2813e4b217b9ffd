package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"hash"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Standard Webhooks header names.
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

// DefaultTolerance is how far a webhook-timestamp may be from the verifier's clock.
const DefaultTolerance = 5 * time.Minute

// Verification errors. Verify wraps none of them with secret material.
var (
	ErrMissingHeaders   = errors.New("webhook: missing webhook-id, webhook-timestamp or webhook-signature")
	ErrInvalidTimestamp = errors.New("webhook: webhook-timestamp is not a unix time in seconds")
	ErrTimestampTooOld  = errors.New("webhook: webhook-timestamp is too old")
	ErrTimestampTooNew  = errors.New("webhook: webhook-timestamp is too far in the future")
	ErrNoSecrets        = errors.New("webhook: no secret to verify with")
	ErrNoMatch          = errors.New("webhook: no signature matches")
)

// sigLen is the length of one base64 HMAC-SHA256.
var sigLen = base64.StdEncoding.EncodedLen(sha256.Size)

// Signer computes signatures with a set of secrets. It reuses its HMAC states, so it
// allocates nothing per signature; it is not safe for concurrent use (give each
// goroutine its own).
type Signer struct {
	macs    []hash.Hash
	secrets []Secret // what macs were keyed with, for SignsWith
	sum     [sha256.Size]byte
	ts      [20]byte
	pre     []byte // "<msgID>.<timestamp>.", reused
}

// NewSigner returns a Signer for secrets, the current one first.
func NewSigner(secrets ...Secret) *Signer {
	s := &Signer{macs: make([]hash.Hash, 0, len(secrets)), secrets: slices.Clone(secrets)}
	for _, sec := range secrets {
		s.macs = append(s.macs, hmac.New(sha256.New, sec.key))
	}
	return s
}

// SignsWith reports whether s signs with exactly secrets, in that order (compared by
// key), so a caller that keeps Signers between messages can tell when a configuration
// change (a rotation, an expired previous secret) requires a new one. It allocates
// nothing. The comparison is not constant-time: use it on configured secrets, never
// on anything a request supplies.
func (s *Signer) SignsWith(secrets ...Secret) bool {
	if len(secrets) != len(s.secrets) {
		return false
	}
	for i, sec := range secrets {
		if !sec.Equal(s.secrets[i]) {
			return false
		}
	}
	return true
}

// AppendSignature appends the webhook-signature header value for the message to dst:
// one "v1,<base64>" per secret, separated by spaces.
func (s *Signer) AppendSignature(dst []byte, msgID string, timestamp int64, body []byte) []byte {
	ts := strconv.AppendInt(s.ts[:0], timestamp, 10)
	for i, mac := range s.macs {
		if i > 0 {
			dst = append(dst, ' ')
		}
		dst = append(dst, "v1,"...)
		dst = base64.StdEncoding.AppendEncode(dst, s.sign(mac, msgID, ts, body))
	}
	return dst
}

func (s *Signer) sign(mac hash.Hash, msgID string, ts, body []byte) []byte {
	s.pre = append(append(append(append(s.pre[:0], msgID...), '.'), ts...), '.')
	mac.Reset()
	mac.Write(s.pre)
	mac.Write(body)
	return mac.Sum(s.sum[:0])
}

// Sign returns the webhook-signature header value for a message signed at timestamp
// with each of secrets.
func Sign(msgID string, timestamp time.Time, body []byte, secrets ...Secret) string {
	return string(NewSigner(secrets...).AppendSignature(nil, msgID, timestamp.Unix(), body))
}

// Verify checks a webhook's Standard Webhooks headers against body: the timestamp must
// be within tolerance of now, and at least one v1 signature in signatureHeader must
// match one of secrets. Comparison is constant-time. A negative tolerance counts as
// zero.
func Verify(msgID, timestamp, signatureHeader string, body []byte, now time.Time, tolerance time.Duration, secrets ...Secret) error {
	if msgID == "" || timestamp == "" || signatureHeader == "" {
		return ErrMissingHeaders
	}
	ts, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil {
		return ErrInvalidTimestamp
	}
	if err := checkTimestamp(ts, now, tolerance); err != nil {
		return err
	}
	if len(secrets) == 0 {
		return ErrNoSecrets
	}
	return NewSigner(secrets...).verifySignatures(msgID, timestamp, signatureHeader, body)
}

// Verify is the package's Verify with s's secrets, for a verifier that keeps Signers
// between webhooks (see SignsWith); like every Signer method it is not safe for
// concurrent use.
func (s *Signer) Verify(msgID, timestamp, signatureHeader string, body []byte, now time.Time, tolerance time.Duration) error {
	if msgID == "" || timestamp == "" || signatureHeader == "" {
		return ErrMissingHeaders
	}
	ts, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil {
		return ErrInvalidTimestamp
	}
	if err := checkTimestamp(ts, now, tolerance); err != nil {
		return err
	}
	if len(s.macs) == 0 {
		return ErrNoSecrets
	}
	return s.verifySignatures(msgID, timestamp, signatureHeader, body)
}

// checkTimestamp checks ts against now within tolerance (negative counts as zero).
func checkTimestamp(ts int64, now time.Time, tolerance time.Duration) error {
	// The distance is computed in uint64, which holds it exactly for any two int64s.
	nowSec, tol := now.Unix(), uint64(max(tolerance/time.Second, 0))
	switch {
	case ts < nowSec && uint64(nowSec)-uint64(ts) > tol:
		return ErrTimestampTooOld
	case ts > nowSec && uint64(ts)-uint64(nowSec) > tol:
		return ErrTimestampTooNew
	}
	return nil
}

// verifySignatures reports whether a v1 signature in signatureHeader matches one of
// s's secrets, in constant time per comparison.
func (s *Signer) verifySignatures(msgID, timestamp, signatureHeader string, body []byte) error {
	var want, got [64]byte // sigLen (44) fits; stack buffers keep the loop allocation-free
	for _, mac := range s.macs {
		expected := base64.StdEncoding.AppendEncode(want[:0], s.sign(mac, msgID, []byte(timestamp), body))
		for sig := range strings.FieldsSeq(signatureHeader) {
			version, value, ok := strings.Cut(sig, ",")
			if !ok || version != "v1" || len(value) != sigLen {
				continue
			}
			if hmac.Equal(expected, got[:copy(got[:], value)]) {
				return nil
			}
		}
	}
	return ErrNoMatch
}
