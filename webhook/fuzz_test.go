package webhook_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/edgehook/edgehook/webhook"
)

// FuzzVerify checks, for arbitrary messages, keys and headers, that Verify never
// panics, that a signature made by Sign always verifies, and that flipping any one
// byte of the body makes it fail.
func FuzzVerify(f *testing.F) {
	specKey, _ := base64.StdEncoding.DecodeString(specSecret[len(webhook.SecretPrefix):])
	f.Add(specMsgID, int64(specTimestamp), []byte(specPayload), specKey, uint(3), "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", "1614265330")
	f.Add("msg_1", int64(0), []byte{}, []byte("k"), uint(0), "", "")
	f.Add("", int64(-1), []byte{0xff, 0x00, '.'}, bytes.Repeat([]byte{1}, 64), uint(1), "v1, v1,,v2", "-9223372036854775808")
	f.Add("id with spaces.and.dots", int64(1<<40), []byte("{\"a\":\"ü\"}"), bytes.Repeat([]byte{9}, 24), uint(100), "v1,AAAA v1,"+string(bytes.Repeat([]byte{'A'}, 44)), "+12")
	f.Add("msg", int64(-1<<63), []byte("oldest"), []byte("key"), uint(7), "v1,x", "9223372036854775807")
	f.Add("msg", int64(1<<63-1), []byte("newest"), []byte("key"), uint(9), "v1,x", "-9223372036854775808")
	f.Add("msg", int64(1700000000), []byte("x"), []byte("key"), uint(0), "\tv1,\x00  ", "99999999999999999999")

	f.Fuzz(func(t *testing.T, id string, ts int64, body, key []byte, flip uint, rawSig, rawTS string) {
		if len(key) == 0 {
			key = []byte{0}
		}
		secret, err := webhook.ParseSecret(webhook.SecretPrefix + base64.StdEncoding.EncodeToString(key))
		if err != nil {
			t.Fatalf("ParseSecret of a %d-byte key: %v", len(key), err)
		}
		now := time.Unix(ts, 0)

		// Arbitrary header values: any error is fine, a panic is not.
		_ = webhook.Verify(id, rawTS, rawSig, body, now, webhook.DefaultTolerance, secret)

		sig := webhook.Sign(id, now, body, secret)
		tsText := strconv.FormatInt(ts, 10)
		err = webhook.Verify(id, tsText, sig, body, now, webhook.DefaultTolerance, secret)
		if id == "" {
			if !errors.Is(err, webhook.ErrMissingHeaders) {
				t.Fatalf("empty id: %v, want ErrMissingHeaders", err)
			}
			return
		}
		if err != nil {
			t.Fatalf("Verify of Sign's own signature: %v", err)
		}
		if len(body) == 0 {
			return
		}
		tampered := bytes.Clone(body)
		tampered[flip%uint(len(tampered))] ^= 1 << (flip / uint(len(tampered)) % 8)
		if err := webhook.Verify(id, tsText, sig, tampered, now, webhook.DefaultTolerance, secret); !errors.Is(err, webhook.ErrNoMatch) {
			t.Fatalf("Verify with a flipped body byte: %v, want ErrNoMatch", err)
		}
	})
}
