package receiver

import "github.com/edgehook/edgehook/webhook"

// maxCachedVerifiers bounds one verifierCache; beyond it the cache starts over.
const maxCachedVerifiers = 256

// verifierCache keeps Signers by tenant for verifying, so a webhook does not pay for
// new HMAC states. A Signer is reused only while it holds exactly the secrets the
// tenant's configuration gives for this webhook: a rotation or an expired previous
// secret replaces it before anything is verified. Not safe for concurrent use: the
// Server pools them, one per handler call.
type verifierCache struct {
	byTenant map[string]*webhook.Signer
}

func newVerifierCache() any { return &verifierCache{byTenant: make(map[string]*webhook.Signer)} }

// get returns a Signer for key that holds exactly secrets. Callers use one key for
// every unknown tenant, so requests cannot fill the cache with made-up tenant ids.
func (c *verifierCache) get(key string, secrets []webhook.Secret) *webhook.Signer {
	if s, ok := c.byTenant[key]; ok && s.SignsWith(secrets...) {
		return s
	}
	if len(c.byTenant) >= maxCachedVerifiers {
		clear(c.byTenant)
	}
	s := webhook.NewSigner(secrets...)
	c.byTenant[key] = s
	return s
}
