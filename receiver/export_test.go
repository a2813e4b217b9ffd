package receiver

// The bounds of webhook-signature, for the external tests that must tell a request
// the receiver refuses for its size from one it refuses for its signature.
const (
	MaxSignatures   = maxSignatures
	MaxSignatureLen = maxSignatureLen
)
