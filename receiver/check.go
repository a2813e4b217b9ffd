package receiver

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"strconv"
	"time"

	"github.com/edgehook/edgehook/identity"
)

// Bounds of the Standard Webhooks headers, checked before anything is looked up.
const (
	// maxIDLen bounds webhook-id, which becomes part of the RECEIVED message id.
	maxIDLen = 256
	// maxTimestampLen fits any int64 in decimal, with its sign.
	maxTimestampLen = 20
	// maxSignatures and maxSignatureLen bound webhook-signature: one signature per
	// secret the sender signs with (two during a rotation), with room for other
	// versions beside v1.
	maxSignatures   = 8
	maxSignatureLen = 1024
)

// v1SigLen is the length of one base64 HMAC-SHA256, the value of a v1 signature.
var v1SigLen = base64.StdEncoding.EncodedLen(sha256.Size)

// precheck runs every check of a webhook that costs no lookup and no HMAC, in order:
// the tenant id's syntax, the three headers present and bounded, webhook-id's syntax,
// the timestamp within tolerance of now, webhook-signature well formed with a v1
// signature of the right length, and the body within MaxBodyBytes. It returns the
// answer and metric reason of the first that fails, or ok.
func (s *Server) precheck(tenant, id, ts, sig []byte, bodyLen int, now time.Time) (answer apiError, reason string, ok bool) {
	switch {
	case !identity.ValidTenantID(view(tenant)):
		// The same answer as for a wrong signature, as for an unknown tenant.
		return s.errs.badSignature, reasonUnauthorized, false
	case len(id) == 0 || len(ts) == 0 || len(sig) == 0:
		return s.errs.missingHeaders, reasonMissingHeaders, false
	case !validID(id):
		return s.errs.badID, reasonInvalidHeaders, false
	}
	if len(ts) > maxTimestampLen {
		return s.errs.badTimestamp, reasonInvalidTimestamp, false
	}
	sec, err := strconv.ParseInt(view(ts), 10, 64)
	if err != nil {
		return s.errs.badTimestamp, reasonInvalidTimestamp, false
	}
	// To the nanosecond of now, not the second: a timestamp is accepted for exactly
	// 2*Tolerance of the receiver's clock, which DuplicateWindow covers.
	switch age := now.Sub(time.Unix(sec, 0)); {
	case age > s.cfg.Tolerance:
		return s.errs.staleTimestamp, reasonStaleTimestamp, false
	case age < -s.cfg.Tolerance:
		return s.errs.futureTimestamp, reasonFutureTimestamp, false
	}
	if !wellFormedSignatures(sig) {
		return s.errs.badSignature, reasonUnauthorized, false
	}
	if bodyLen > s.cfg.MaxBodyBytes {
		return s.errs.tooLarge, reasonBodyTooLarge, false
	}
	return apiError{}, "", true
}

// validID reports whether id is 1 to maxIDLen visible ASCII characters.
func validID(id []byte) bool {
	if len(id) == 0 || len(id) > maxIDLen {
		return false
	}
	for _, c := range id {
		if c < 0x21 || c > 0x7e {
			return false
		}
	}
	return true
}

// wellFormedSignatures reports whether h, within maxSignatureLen and maxSignatures
// space-separated entries, holds at least one "v1,<base64 of an HMAC-SHA256>". Other
// entries are skipped, as verification skips them (other versions, or malformed).
func wellFormedSignatures(h []byte) bool {
	if len(h) > maxSignatureLen {
		return false
	}
	var buf [sha256.Size + 3]byte
	entries, v1 := 0, false
	for i := 0; i < len(h); {
		if h[i] == ' ' || h[i] == '\t' {
			i++
			continue
		}
		end := i
		for end < len(h) && h[end] != ' ' && h[end] != '\t' {
			end++
		}
		entry := h[i:end]
		i = end
		if entries++; entries > maxSignatures {
			return false
		}
		value, ok := bytes.CutPrefix(entry, []byte("v1,"))
		if !ok || len(value) != v1SigLen {
			continue
		}
		if n, err := base64.StdEncoding.Decode(buf[:], value); err == nil && n == sha256.Size {
			v1 = true
		}
	}
	return v1
}
