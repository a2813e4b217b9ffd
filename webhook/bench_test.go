package webhook_test

import (
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/edgehook/edgehook/webhook"
)

func BenchmarkSign(b *testing.B) {
	secrets := []webhook.Secret{mustNew(b), mustNew(b)}
	ts := time.Unix(1700000000, 0)
	for _, size := range []int{256, 4096} {
		body := make([]byte, size)
		b.Run(fmt.Sprintf("body=%d/Sign", size), func(b *testing.B) {
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				_ = webhook.Sign("msg_p5jXN8AQM9LWM0D4loKWxJek", ts, body, secrets[0])
			}
		})
		b.Run(fmt.Sprintf("body=%d/Signer", size), func(b *testing.B) {
			s := webhook.NewSigner(secrets[0])
			var dst []byte
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				dst = s.AppendSignature(dst[:0], "msg_p5jXN8AQM9LWM0D4loKWxJek", ts.Unix(), body)
			}
		})
		b.Run(fmt.Sprintf("body=%d/Signer-rotation", size), func(b *testing.B) {
			s := webhook.NewSigner(secrets...)
			var dst []byte
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				dst = s.AppendSignature(dst[:0], "msg_p5jXN8AQM9LWM0D4loKWxJek", ts.Unix(), body)
			}
		})
	}
}

func BenchmarkVerify(b *testing.B) {
	current, previous := mustNew(b), mustNew(b)
	now := time.Unix(1700000000, 0)
	ts := strconv.FormatInt(now.Unix(), 10)
	for _, size := range []int{256, 4096} {
		body := make([]byte, size)
		for _, tc := range []struct {
			name    string
			sig     string
			secrets []webhook.Secret
		}{
			{"one-secret", webhook.Sign("msg_1", now, body, current), []webhook.Secret{current}},
			// Worst case during rotation: the match is the last signature for the last secret.
			{"rotation", webhook.Sign("msg_1", now, body, current, previous), []webhook.Secret{current, previous}},
		} {
			b.Run(fmt.Sprintf("body=%d/%s", size, tc.name), func(b *testing.B) {
				b.SetBytes(int64(size))
				b.ReportAllocs()
				for b.Loop() {
					if err := webhook.Verify("msg_1", ts, tc.sig, body, now, webhook.DefaultTolerance, tc.secrets...); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "verifies/s")
			})
		}
	}
}
