package webhook_test

import (
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/edgehook/edgehook/webhook"
)

func TestSignsWithComparesKeysAndOrder(t *testing.T) {
	a, _ := webhook.NewSecret()
	b, _ := webhook.NewSecret()
	aAgain, err := webhook.ParseSecret(a.Reveal()) // same key, another copy
	if err != nil {
		t.Fatal(err)
	}
	s := webhook.NewSigner(a, b)
	for _, c := range []struct {
		secrets []webhook.Secret
		want    bool
	}{
		{[]webhook.Secret{a, b}, true},
		{[]webhook.Secret{aAgain, b}, true},
		{[]webhook.Secret{b, a}, false}, // the order decides which signature comes first
		{[]webhook.Secret{a}, false},    // b expired
		{[]webhook.Secret{a, b, a}, false},
		{nil, false},
	} {
		if got := s.SignsWith(c.secrets...); got != c.want {
			t.Errorf("SignsWith(%d secrets) = %v, want %v", len(c.secrets), got, c.want)
		}
	}
	if !webhook.NewSigner().SignsWith() {
		t.Error("a signer without secrets does not sign with no secrets")
	}
	secrets := []webhook.Secret{a, b}
	if allocs := testing.AllocsPerRun(100, func() { s.SignsWith(secrets...) }); allocs != 0 {
		t.Errorf("SignsWith allocates %v times", allocs)
	}
}

// TestReusedSignerSignsAsAFreshOne: a Signer kept between messages gives each message
// the signature a new Signer would.
func TestReusedSignerSignsAsAFreshOne(t *testing.T) {
	a, _ := webhook.NewSecret()
	b, _ := webhook.NewSecret()
	s := webhook.NewSigner(a, b)
	var buf []byte
	for i, body := range []string{`{"n":1}`, `{"n":2,"longer":"body"}`, ``, `{"n":1}`} {
		buf = s.AppendSignature(buf[:0], "msg_"+body, int64(1700000000+i), []byte(body))
		want := webhook.NewSigner(a, b).AppendSignature(nil, "msg_"+body, int64(1700000000+i), []byte(body))
		if string(buf) != string(want) {
			t.Errorf("message %d: reused signer %q, fresh %q", i, buf, want)
		}
	}
}

// TestSignerVerifyAgreesWithVerify: the method a verifier keeps between webhooks
// answers exactly as the package function, for good and bad webhooks.
func TestSignerVerifyAgreesWithVerify(t *testing.T) {
	spec, err := webhook.ParseSecret(specSecret)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := webhook.NewSecret()
	at := time.Unix(specTimestamp, 0)
	ts := strconv.Itoa(specTimestamp)
	cases := []struct {
		id, ts, sig string
		now         time.Time
	}{
		{specMsgID, ts, specSignature, at},
		{specMsgID, ts, "v1,bad " + specSignature, at},
		{specMsgID, ts, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OA=", at},
		{specMsgID, ts, specSignature, at.Add(time.Hour)},
		{specMsgID, ts, specSignature, at.Add(-time.Hour)},
		{specMsgID, "soon", specSignature, at},
		{"", ts, specSignature, at},
		{specMsgID + "x", ts, specSignature, at},
	}
	for _, secrets := range [][]webhook.Secret{{spec}, {other, spec}, {other}, nil} {
		s := webhook.NewSigner(secrets...)
		for i, c := range cases {
			want := webhook.Verify(c.id, c.ts, c.sig, []byte(specPayload), c.now, webhook.DefaultTolerance, secrets...)
			if got := s.Verify(c.id, c.ts, c.sig, []byte(specPayload), c.now, webhook.DefaultTolerance); !errors.Is(got, want) || (want == nil) != (got == nil) {
				t.Errorf("case %d with %d secrets: Signer.Verify %v, Verify %v", i, len(secrets), got, want)
			}
		}
	}
	if err := webhook.NewSigner(spec).Verify(specMsgID, ts, specSignature, []byte(specPayload), at, webhook.DefaultTolerance); err != nil {
		t.Errorf("the specification's example does not verify: %v", err)
	}
}
