package vault

import (
	"testing"
	"time"

	"github.com/edgehook/edgehook/webhook"
	"github.com/prometheus/client_golang/prometheus"
)

// newSecret returns a fresh random signing secret.
func newSecret(t testing.TB) webhook.Secret {
	t.Helper()
	s, err := webhook.NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// testConfig returns a complete configuration for tenantID with a current secret, one
// previous secret valid for another hour and one rotation in its history.
func testConfig(t testing.TB, tenantID string) WebhookConfig {
	t.Helper()
	now := time.Now().UTC().Truncate(time.Millisecond)
	return WebhookConfig{
		TenantID:        tenantID,
		TargetURL:       "https://hooks.example.com/" + tenantID,
		Secret:          newSecret(t),
		Previous:        []PreviousSecret{{Secret: newSecret(t), ExpiresAt: now.Add(time.Hour)}},
		RotationHistory: []Rotation{{RotatedAt: now.Add(-time.Minute), PreviousExpiresAt: now.Add(time.Hour)}},
		LastUpdated:     now,
	}
}

// assertSameConfig fails unless got holds exactly want's values.
func assertSameConfig(t testing.TB, got, want WebhookConfig) {
	t.Helper()
	if got.TenantID != want.TenantID || got.TargetURL != want.TargetURL {
		t.Fatalf("got tenant %q url %q, want %q %q", got.TenantID, got.TargetURL, want.TenantID, want.TargetURL)
	}
	if !got.Secret.Equal(want.Secret) {
		t.Fatalf("tenant %s: current secret differs", want.TenantID)
	}
	if len(got.Previous) != len(want.Previous) {
		t.Fatalf("tenant %s: %d previous secrets, want %d", want.TenantID, len(got.Previous), len(want.Previous))
	}
	for i := range want.Previous {
		if !got.Previous[i].Secret.Equal(want.Previous[i].Secret) || !got.Previous[i].ExpiresAt.Equal(want.Previous[i].ExpiresAt) {
			t.Fatalf("tenant %s: previous secret %d differs", want.TenantID, i)
		}
	}
	if len(got.RotationHistory) != len(want.RotationHistory) {
		t.Fatalf("tenant %s: %d rotations, want %d", want.TenantID, len(got.RotationHistory), len(want.RotationHistory))
	}
	for i := range want.RotationHistory {
		g, w := got.RotationHistory[i], want.RotationHistory[i]
		if !g.RotatedAt.Equal(w.RotatedAt) || !g.PreviousExpiresAt.Equal(w.PreviousExpiresAt) {
			t.Fatalf("tenant %s: rotation %d = %+v, want %+v", want.TenantID, i, g, w)
		}
	}
	if !got.LastUpdated.Equal(want.LastUpdated) {
		t.Fatalf("tenant %s: lastUpdated %v, want %v", want.TenantID, got.LastUpdated, want.LastUpdated)
	}
}

// counterValue returns the value of the counter named name in reg (0 if absent).
func counterValue(t testing.TB, reg prometheus.Gatherer, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			var sum float64
			for _, m := range mf.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
			return sum
		}
	}
	return 0
}
