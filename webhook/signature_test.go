package webhook_test

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edgehook/edgehook/webhook"
)

// The example from the Standard Webhooks specification.
const (
	specSecret    = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	specMsgID     = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	specTimestamp = 1614265330
	specPayload   = `{"test": 2432232314}`
	specSignature = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
)

func mustParse(t testing.TB, s string) webhook.Secret {
	t.Helper()
	sec, err := webhook.ParseSecret(s)
	if err != nil {
		t.Fatalf("ParseSecret: %v", err)
	}
	return sec
}

func mustNew(t testing.TB) webhook.Secret {
	t.Helper()
	sec, err := webhook.NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	return sec
}

func TestSpecKnownAnswer(t *testing.T) {
	secret := mustParse(t, specSecret)
	ts := time.Unix(specTimestamp, 0)
	if got := webhook.Sign(specMsgID, ts, []byte(specPayload), secret); got != specSignature {
		t.Errorf("Sign = %q, want the spec's %q", got, specSignature)
	}
	err := webhook.Verify(specMsgID, strconv.Itoa(specTimestamp), specSignature, []byte(specPayload), ts, webhook.DefaultTolerance, secret)
	if err != nil {
		t.Errorf("Verify(spec example) = %v, want nil", err)
	}
}

func TestSignRotationHeader(t *testing.T) {
	current, previous := mustNew(t), mustNew(t)
	ts := time.Unix(1700000000, 0)
	body := []byte(`{"a":1}`)
	got := webhook.Sign("msg_1", ts, body, current, previous)
	want := webhook.Sign("msg_1", ts, body, current) + " " + webhook.Sign("msg_1", ts, body, previous)
	if got != want {
		t.Errorf("Sign with two secrets = %q, want the two single signatures joined by a space %q", got, want)
	}
	if n := len(strings.Fields(got)); n != 2 {
		t.Errorf("rotation header has %d signatures, want 2", n)
	}
	if webhook.Sign("msg_1", ts, body) != "" {
		t.Errorf("Sign with no secrets should be empty")
	}
}

func TestVerify(t *testing.T) {
	secret, previous, other := mustNew(t), mustNew(t), mustNew(t)
	now := time.Unix(1700000000, 0)
	nowStr := strconv.FormatInt(now.Unix(), 10)
	body := []byte(`{"type":"invoice.paid","amount":4200,"note":"ünïcödé ✓"}`)
	sig := webhook.Sign("msg_1", now, body, secret)
	sigValue := strings.TrimPrefix(sig, "v1,")
	at := func(d time.Duration) (string, string) {
		ts := now.Add(d)
		return strconv.FormatInt(ts.Unix(), 10), webhook.Sign("msg_1", ts, body, secret)
	}
	oldTS, oldSig := at(-webhook.DefaultTolerance - time.Second)
	edgeOldTS, edgeOldSig := at(-webhook.DefaultTolerance)
	newTS, newSig := at(webhook.DefaultTolerance + time.Second)
	edgeNewTS, edgeNewSig := at(webhook.DefaultTolerance)

	cases := []struct {
		name      string
		id, ts    string
		signature string
		body      []byte
		secrets   []webhook.Secret
		want      error
	}{
		{"valid", "msg_1", nowStr, sig, body, []webhook.Secret{secret}, nil},
		{"valid, second of two secrets", "msg_1", nowStr, sig, body, []webhook.Secret{other, secret}, nil},
		{"rotation header, verifier knows only the previous secret", "msg_1", nowStr,
			webhook.Sign("msg_1", now, body, other, previous), body, []webhook.Secret{previous}, nil},
		{"unknown versions are skipped", "msg_1", nowStr, "v2,abc v1a," + sigValue + " " + sig, body, []webhook.Secret{secret}, nil},
		{"extra whitespace between signatures", "msg_1", nowStr, "  v1,AAAA   " + sig + "  ", body, []webhook.Secret{secret}, nil},
		{"empty body", "msg_1", nowStr, webhook.Sign("msg_1", now, nil, secret), nil, []webhook.Secret{secret}, nil},
		{"exactly tolerance old", "msg_1", edgeOldTS, edgeOldSig, body, []webhook.Secret{secret}, nil},
		{"exactly tolerance ahead", "msg_1", edgeNewTS, edgeNewSig, body, []webhook.Secret{secret}, nil},

		{"wrong secret", "msg_1", nowStr, sig, body, []webhook.Secret{other}, webhook.ErrNoMatch},
		{"tampered body", "msg_1", nowStr, sig, []byte(`{"type":"invoice.paid","amount":4201}`), []webhook.Secret{secret}, webhook.ErrNoMatch},
		{"other message id", "msg_2", nowStr, sig, body, []webhook.Secret{secret}, webhook.ErrNoMatch},
		{"other timestamp within tolerance", "msg_1", strconv.FormatInt(now.Unix()+1, 10), sig, body, []webhook.Secret{secret}, webhook.ErrNoMatch},
		{"v1 signature under another version", "msg_1", nowStr, "v2," + sigValue, body, []webhook.Secret{secret}, webhook.ErrNoMatch},
		{"no comma", "msg_1", nowStr, "v1" + sigValue, body, []webhook.Secret{secret}, webhook.ErrNoMatch},
		{"truncated signature", "msg_1", nowStr, sig[:len(sig)-1], body, []webhook.Secret{secret}, webhook.ErrNoMatch},
		{"signature with trailing garbage", "msg_1", nowStr, sig + "=", body, []webhook.Secret{secret}, webhook.ErrNoMatch},
		{"raw base64 without version", "msg_1", nowStr, sigValue, body, []webhook.Secret{secret}, webhook.ErrNoMatch},

		{"missing id", "", nowStr, sig, body, []webhook.Secret{secret}, webhook.ErrMissingHeaders},
		{"missing timestamp", "msg_1", "", sig, body, []webhook.Secret{secret}, webhook.ErrMissingHeaders},
		{"missing signature", "msg_1", nowStr, "", body, []webhook.Secret{secret}, webhook.ErrMissingHeaders},
		{"timestamp not a number", "msg_1", "yesterday", sig, body, []webhook.Secret{secret}, webhook.ErrInvalidTimestamp},
		{"timestamp in milliseconds far ahead", "msg_1", nowStr + "000", sig, body, []webhook.Secret{secret}, webhook.ErrTimestampTooNew},
		{"timestamp with fraction", "msg_1", nowStr + ".5", sig, body, []webhook.Secret{secret}, webhook.ErrInvalidTimestamp},
		{"timestamp overflowing int64", "msg_1", "99999999999999999999", sig, body, []webhook.Secret{secret}, webhook.ErrInvalidTimestamp},
		{"stale", "msg_1", oldTS, oldSig, body, []webhook.Secret{secret}, webhook.ErrTimestampTooOld},
		{"future", "msg_1", newTS, newSig, body, []webhook.Secret{secret}, webhook.ErrTimestampTooNew},
		{"most negative timestamp", "msg_1", "-9223372036854775808", sig, body, []webhook.Secret{secret}, webhook.ErrTimestampTooOld},
		{"largest timestamp", "msg_1", "9223372036854775807", sig, body, []webhook.Secret{secret}, webhook.ErrTimestampTooNew},
		{"no secrets", "msg_1", nowStr, sig, body, nil, webhook.ErrNoSecrets},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := webhook.Verify(tc.id, tc.ts, tc.signature, tc.body, now, webhook.DefaultTolerance, tc.secrets...)
			if !errors.Is(err, tc.want) || (tc.want == nil && err != nil) {
				t.Errorf("Verify = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestVerifyToleranceIsTheCallers(t *testing.T) {
	secret := mustNew(t)
	now := time.Unix(1700000000, 0)
	sent := now.Add(-90 * time.Second)
	sig := webhook.Sign("msg_1", sent, nil, secret)
	ts := strconv.FormatInt(sent.Unix(), 10)
	if err := webhook.Verify("msg_1", ts, sig, nil, now, time.Minute, secret); !errors.Is(err, webhook.ErrTimestampTooOld) {
		t.Errorf("90s old with 1m tolerance: %v, want ErrTimestampTooOld", err)
	}
	if err := webhook.Verify("msg_1", ts, sig, nil, now, 2*time.Minute, secret); err != nil {
		t.Errorf("90s old with 2m tolerance: %v, want nil", err)
	}
}

func TestSignerMatchesSign(t *testing.T) {
	a, b := mustNew(t), mustNew(t)
	s := webhook.NewSigner(a, b)
	var buf []byte
	for i := range 3 { // reused state must not leak between messages
		id := "msg_" + strconv.Itoa(i)
		ts := time.Unix(1700000000+int64(i), 0)
		body := []byte(strings.Repeat("x", i*100))
		buf = s.AppendSignature(buf[:0], id, ts.Unix(), body)
		if want := webhook.Sign(id, ts, body, a, b); string(buf) != want {
			t.Errorf("message %d: Signer %q, Sign %q", i, buf, want)
		}
	}
	prefix := []byte("webhook-signature: ")
	if got := s.AppendSignature(prefix, "m", 1, nil); !strings.HasPrefix(string(got), string(prefix)+"v1,") {
		t.Errorf("AppendSignature did not append to dst: %q", got)
	}
}
