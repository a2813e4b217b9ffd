package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/edgehook/edgehook/natsconf/natstest"
	"github.com/edgehook/edgehook/vault"
	"github.com/edgehook/edgehook/vault/vaulttest"
	"github.com/edgehook/edgehook/webhook"
)

// TestReceiverCommandRefusesUnsafeLimits checks the receiver's read limit and duplicate
// window settings: listed in -h, and refused with an error naming them when unsafe,
// by `receiver` and by `up` (whose RECEIVED stream takes the same window).
func TestReceiverCommandRefusesUnsafeLimits(t *testing.T) {
	_, help, err := runArgs(t, nil, "receiver", "-h")
	if err != nil {
		t.Fatalf("receiver -h: %v", err)
	}
	for _, env := range []string{"EDGEHOOK_RECEIVER_CONFIG_READ_RATE", "EDGEHOOK_RECEIVER_CONFIG_READ_BURST", "EDGEHOOK_RECEIVED_DUPLICATE_WINDOW"} {
		if !strings.Contains(help, env) {
			t.Errorf("receiver -h does not mention %s", env)
		}
	}
	for _, tc := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"EDGEHOOK_RECEIVED_DUPLICATE_WINDOW": "9m"}, "EDGEHOOK_RECEIVED_DUPLICATE_WINDOW"},
		{map[string]string{"EDGEHOOK_RECEIVER_CONFIG_READ_RATE": "0"}, "EDGEHOOK_RECEIVER_CONFIG_READ_RATE"},
		{map[string]string{"EDGEHOOK_RECEIVER_CONFIG_READ_BURST": "-1"}, "EDGEHOOK_RECEIVER_CONFIG_READ_BURST"},
	} {
		_, _, err := runArgs(t, tc.env, "receiver")
		var ue usageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("receiver with %v: %v, want a usage error naming %s", tc.env, err, tc.want)
		}
	}

	env := map[string]string{
		"EDGEHOOK_DATA_DIR": t.TempDir(), "EDGEHOOK_HTTP_ADDR": freeAddr(t), "EDGEHOOK_RECEIVER_ADDR": freeAddr(t),
		"EDGEHOOK_NATS_ADDR": freeAddr(t), "EDGEHOOK_ADMIN_ADDR": freeAddr(t), "EDGEHOOK_LOG_LEVEL": "error",
		"EDGEHOOK_ADMIN_TOKEN": "receiver-cmd-test-admin-token", "EDGEHOOK_RECEIVED_DUPLICATE_WINDOW": "9m",
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var stdout, stderr syncBuffer
	err = run(ctx, []string{"edgehook", "up"}, func(k string) string { return env[k] }, &stdout, &stderr)
	var ue usageError
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), "DuplicateWindow") || !strings.Contains(err.Error(), "Tolerance") {
		t.Errorf("up with a 9m received duplicate window: %v, want a usage error naming DuplicateWindow and Tolerance", err)
	}
}

// TestReceiverCommandLimitsConfigReads runs `edgehook receiver` with a read limit of
// one a second, two at once, and checks that webhooks in a row for tenants not in its
// cache are answered 503 with Retry-After past it.
func TestReceiverCommandLimitsConfigReads(t *testing.T) {
	ns := natstest.Start(t, nil)
	v := vaulttest.Setup(t)
	recv := freeAddr(t)
	startCommand(t, map[string]string{
		"EDGEHOOK_NATS_URL": ns.URL, "VAULT_ADDR": v.Addr, "EDGEHOOK_VAULT_MOUNT": v.Mount,
		"EDGEHOOK_VAULT_PREFIX": v.Prefix, "VAULT_TOKEN": v.Token(t, vault.RoleReceiver, 0),
		"EDGEHOOK_RECEIVER_ADDR": recv, "EDGEHOOK_LOG_LEVEL": "warn",
		// One read a second, two at once: the third in a row is over the limit.
		"EDGEHOOK_RECEIVER_CONFIG_READ_RATE": "1", "EDGEHOOK_RECEIVER_CONFIG_READ_BURST": "2",
	}, "receiver")
	waitHTTP(t, "http://"+recv+"/readyz")

	secret, err := webhook.NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	// Six in a row: the first two take the burst; a token comes back each second,
	// so at most that many more are read, and the rest are answered 503.
	var got []string
	reads := 0
	start := time.Now()
	for i := range 6 {
		id, now, body := fmt.Sprintf("msg_%d", i), time.Now(), `{}`
		req, err := http.NewRequest(http.MethodPost, fmt.Sprintf("http://%s/webhooks/made_up_%d", recv, i), strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set(webhook.HeaderID, id)
		req.Header.Set(webhook.HeaderTimestamp, fmt.Sprint(now.Unix()))
		req.Header.Set(webhook.HeaderSignature, webhook.Sign(id, now, []byte(body), secret))
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		switch {
		case res.StatusCode == http.StatusUnauthorized:
			reads++
		case res.StatusCode != http.StatusServiceUnavailable || res.Header.Get("Retry-After") == "":
			t.Errorf("webhook %d: %d (Retry-After %q), want 401, or 503 with Retry-After", i, res.StatusCode, res.Header.Get("Retry-After"))
		}
		got = append(got, fmt.Sprint(res.StatusCode))
	}
	refills := int(time.Since(start)/time.Second) + 1
	if got[0] != "401" || got[1] != "401" || reads > 2+refills || reads == 6 {
		t.Errorf("answers %v, want two 401s, then 503s but for at most %d refilled reads", got, refills)
	}
}
