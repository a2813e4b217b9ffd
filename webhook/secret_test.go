package webhook_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/edgehook/edgehook/webhook"
)

func TestNewSecret(t *testing.T) {
	a, b := mustNew(t), mustNew(t)
	if a.IsZero() || a.Equal(b) {
		t.Fatalf("two new secrets: zero=%v equal=%v", a.IsZero(), a.Equal(b))
	}
	text := a.Reveal()
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(text, webhook.SecretPrefix))
	if !strings.HasPrefix(text, "whsec_") || err != nil || len(key) != webhook.SecretBytes || len(key) < 24 {
		t.Errorf("Reveal = whsec_ + %d bytes (err %v), want whsec_ + base64 of %d (≥ 24) bytes", len(key), err, webhook.SecretBytes)
	}
	back, err := webhook.ParseSecret(text)
	if err != nil || !back.Equal(a) {
		t.Errorf("ParseSecret(Reveal()) = %v, %v; want the same secret", back, err)
	}
}

func TestParseSecret(t *testing.T) {
	b64 := func(n int) string { return base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, n)) }
	cases := []struct {
		in string
		ok bool
	}{
		{specSecret, true},
		{"whsec_" + b64(32), true},
		{"whsec_" + b64(64), true},
		// Keys shorter than we generate still parse: peers may use them, and the
		// Standard Webhooks libraries accept any non-empty key.
		{"whsec_" + b64(16), true},
		{"whsec_" + b64(1), true},
		{"whsec_", false},
		{b64(32), false},                                    // no prefix
		{"WHSEC_" + b64(32), false},                         // prefix is case-sensitive
		{"whsec_" + b64(32)[1:], false},                     // not base64
		{"whsec_not base64!", false},                        // not base64
		{"whsec_" + strings.TrimRight(b64(32), "="), false}, // unpadded
	}
	for _, tc := range cases {
		sec, err := webhook.ParseSecret(tc.in)
		switch {
		case tc.ok && (err != nil || sec.IsZero()):
			t.Errorf("ParseSecret(%q) = %v, want a secret", tc.in, err)
		case !tc.ok && !errors.Is(err, webhook.ErrBadSecret):
			t.Errorf("ParseSecret(%q) = %v, want ErrBadSecret", tc.in, err)
		case !tc.ok && len(tc.in) > 8 && strings.Contains(err.Error(), tc.in[6:]):
			t.Errorf("ParseSecret error %q contains the input", err)
		}
	}
}

func TestSecretNeverPrints(t *testing.T) {
	sec := mustNew(t)
	key := strings.TrimPrefix(sec.Reveal(), webhook.SecretPrefix)

	var logs bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&logs, nil))
	logger.Info("rotated", "secret", sec, "secrets", []webhook.Secret{sec})
	logger.Info("config", slog.Any("cfg", struct{ S webhook.Secret }{sec}))
	j, err := json.Marshal(map[string]any{"secret": sec, "list": []webhook.Secret{sec}})
	if err != nil {
		t.Fatal(err)
	}
	outputs := map[string]string{
		"%v":   fmt.Sprintf("%v", sec),
		"%s":   fmt.Sprintf("%s", sec),
		"%+v":  fmt.Sprintf("%+v", struct{ S webhook.Secret }{sec}),
		"%#v":  fmt.Sprintf("%#v", sec),
		"%q":   fmt.Sprintf("%q", sec),
		"slog": logs.String(),
		"json": string(j),
		"err":  fmt.Errorf("wrapped: %v", sec).Error(),
	}
	for how, out := range outputs {
		if strings.Contains(out, key) {
			t.Errorf("%s prints the key: %s", how, out)
		}
		if !strings.Contains(out, "REDACTED") {
			t.Errorf("%s = %q, want REDACTED", how, out)
		}
	}
}
