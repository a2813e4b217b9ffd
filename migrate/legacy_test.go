package migrate

import (
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/edgehook/edgehook/webhook"
)

func TestParseTime(t *testing.T) {
	for _, c := range []struct {
		av   types.AttributeValue
		want time.Time
	}{
		{&types.AttributeValueMemberS{Value: "1700000000"}, time.Unix(1700000000, 0)},
		{&types.AttributeValueMemberS{Value: " 1700000000.25 "}, time.Unix(1700000000, 25e7)},
		{&types.AttributeValueMemberN{Value: "1700000000"}, time.Unix(1700000000, 0)},
		{&types.AttributeValueMemberN{Value: "1700000000123"}, time.UnixMilli(1700000000123)},
		{&types.AttributeValueMemberS{Value: "2023-11-14T22:13:20Z"}, time.Unix(1700000000, 0)},
		{&types.AttributeValueMemberS{Value: "2023-11-14T23:13:20.5+01:00"}, time.Unix(1700000000, 5e8)},
		{&types.AttributeValueMemberS{Value: "2023-11-14T22:13:20.123456"}, time.Unix(1700000000, 123456000)}, // Python isoformat(), naive: UTC
		{&types.AttributeValueMemberS{Value: "2023-11-14 22:13:20"}, time.Unix(1700000000, 0)},
		{&types.AttributeValueMemberS{Value: "2023-11-14"}, time.Date(2023, 11, 14, 0, 0, 0, 0, time.UTC)},
	} {
		got, err := parseTime("createdAt", c.av)
		if err != nil || !got.Equal(c.want) || got.Location() != time.UTC {
			t.Errorf("%#v: %s (%v), want %s UTC", c.av, got, err, c.want)
		}
	}
	for _, av := range []types.AttributeValue{
		&types.AttributeValueMemberS{Value: "yesterday"},
		&types.AttributeValueMemberS{Value: "-5"},
		&types.AttributeValueMemberN{Value: "1e9"},
		&types.AttributeValueMemberS{Value: "14/11/2023"},
		&types.AttributeValueMemberBOOL{Value: true},
	} {
		if got, err := parseTime("createdAt", av); err == nil {
			t.Errorf("%#v parsed as %s", av, got)
		}
	}
}

// TestParseLegacySecret: a secret keeps the text the tenant's receivers have, read as a
// Standard Webhooks verifier reads it; only text with no single reading fails, and the
// failure never quotes it.
func TestParseLegacySecret(t *testing.T) {
	key := []byte("0123456789abcdef01234567")
	b64 := base64.StdEncoding.EncodeToString(key)
	hexish := "whsec_" + "5f1c0a9e2b7d4c3a8e6f1b2d3c4a5e6f" // the legacy seed's whsec_<uuid hex>: valid base64
	for _, c := range []struct {
		in   string
		want string // text form
	}{
		{"whsec_" + b64, "whsec_" + b64},
		{b64, "whsec_" + b64},
		{hexish, hexish},
	} {
		sec, err := parseLegacySecret("webhookSecret", c.in)
		if err != nil || sec.Reveal() != c.want {
			t.Errorf("%.12s...: %v", c.in, err)
		}
	}
	for _, in := range []string{"whsec_test123", "not base64 at all", "whsec_", "whsec_!!!!", "s3cr3t-value"} {
		_, err := parseLegacySecret("webhookSecret", in)
		if err == nil {
			t.Errorf("%q accepted", in)
			continue
		}
		if rest := strings.TrimPrefix(in, webhook.SecretPrefix); rest != "" && strings.Contains(err.Error(), rest) {
			t.Errorf("error %q quotes the secret", err)
		}
	}
}

func TestUsableAPIKey(t *testing.T) {
	for key, want := range map[string]bool{
		"tenant_acme_live_0123456789ab": true,
		"ehk_abc-DEF_123":               true,
		"":                              false,
		" leading":                      false,
		"trailing\t":                    false,
		"new\nline":                     false,
	} {
		if got := usableAPIKey(key); got != want {
			t.Errorf("usableAPIKey(%q) = %t", key, got)
		}
	}
}
