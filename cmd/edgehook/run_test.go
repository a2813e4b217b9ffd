package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func runArgs(t *testing.T, env map[string]string, args ...string) (string, string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := run(context.Background(), append([]string{"edgehook"}, args...), func(k string) string { return env[k] }, &out, &errOut)
	return out.String(), errOut.String(), err
}

func TestUsageMistakesExitTwoAndNameTheProblem(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"no command", nil, nil, "no command"},
		{"unknown command", nil, []string{"frobnicate"}, `unknown command "frobnicate"`},
		{"bad duration env", map[string]string{"EDGEHOOK_HTTP_TIMEOUT": "ten"}, []string{"worker"}, "EDGEHOOK_HTTP_TIMEOUT"},
		{"bad int env", map[string]string{"EDGEHOOK_MAX_DELIVER": "many"}, []string{"setup", "nats"}, "EDGEHOOK_MAX_DELIVER"},
		{"bad bool env", map[string]string{"EDGEHOOK_ALLOW_PRIVATE_TARGETS": "perhaps"}, []string{"up"}, "EDGEHOOK_ALLOW_PRIVATE_TARGETS"},
		{"bad retry schedule", map[string]string{"EDGEHOOK_RETRY_SCHEDULE": "5s,soon"}, []string{"up"}, "EDGEHOOK_RETRY_SCHEDULE"},
		{"bad log level", map[string]string{"EDGEHOOK_LOG_LEVEL": "loud"}, []string{"worker"}, "EDGEHOOK_LOG_LEVEL"},
		{"breaker max cooldown under the cooldown", map[string]string{"EDGEHOOK_BREAKER_COOLDOWN": "5s", "EDGEHOOK_BREAKER_MAX_COOLDOWN": "1s"}, []string{"worker"}, "EDGEHOOK_BREAKER_MAX_COOLDOWN"},
		{"breaker max cooldown under the cooldown, up", map[string]string{"EDGEHOOK_BREAKER_MAX_COOLDOWN": "1s"}, []string{"up"}, "EDGEHOOK_BREAKER_COOLDOWN"},
		{"worker without vault", nil, []string{"worker"}, "VAULT_ADDR"},
		{"receiver without vault", nil, []string{"receiver"}, "VAULT_ADDR"},
		{"lockout threshold under 1", map[string]string{"VAULT_ADDR": "http://127.0.0.1:1", "EDGEHOOK_VAULT_LOCKOUT_THRESHOLD": "0"}, []string{"worker"}, "EDGEHOOK_VAULT_LOCKOUT_THRESHOLD"},
		{"lockout duration not positive", map[string]string{"VAULT_ADDR": "http://127.0.0.1:1", "EDGEHOOK_VAULT_LOCKOUT_DURATION": "0s"}, []string{"receiver"}, "EDGEHOOK_VAULT_LOCKOUT_DURATION"},
		{"admin without token", nil, []string{"admin"}, "EDGEHOOK_ADMIN_TOKEN"},
		{"admin without vault", map[string]string{"EDGEHOOK_ADMIN_TOKEN": "a-long-enough-admin-token"}, []string{"admin"}, "VAULT_ADDR"},
		{"setup without target", nil, []string{"setup"}, "setup nats"},
		{"tenant without action", nil, []string{"tenant"}, "no action"},
		{"tenant without token", nil, []string{"tenant", "get", "ten_x"}, "EDGEHOOK_ADMIN_TOKEN"},
		{"tenant create without url", map[string]string{"EDGEHOOK_ADMIN_TOKEN": "x"}, []string{"tenant", "create"}, "--target-url"},
		{"unknown flag", nil, []string{"gateway", "--no-such-flag"}, "no-such-flag"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, stderr, err := runArgs(t, tc.env, tc.args...)
			if err == nil {
				t.Fatal("no error")
			}
			if code := exitCode(err); code != 2 {
				t.Errorf("exit code %d, want 2 (%v)", code, err)
			}
			if !strings.Contains(err.Error()+stderr, tc.want) {
				t.Errorf("error %q (stderr %q) does not mention %q", err, stderr, tc.want)
			}
		})
	}
}

func TestHelpListsEveryFlagWithItsEnvironmentVariable(t *testing.T) {
	for _, cmd := range []string{"up", "gateway", "admin", "worker", "receiver"} {
		_, stderr, err := runArgs(t, nil, cmd, "-h")
		if err != nil {
			t.Fatalf("%s -h: %v", cmd, err)
		}
		for _, env := range []string{"EDGEHOOK_LOG_LEVEL"} {
			if !strings.Contains(stderr, env) {
				t.Errorf("%s -h does not mention %s", cmd, env)
			}
		}
	}
	_, stderr, _ := runArgs(t, nil, "up", "-h")
	for _, env := range []string{"EDGEHOOK_HTTP_ADDR", "EDGEHOOK_ADMIN_ADDR", "EDGEHOOK_RECEIVER_ADDR", "EDGEHOOK_NATS_ADDR", "EDGEHOOK_ADMIN_TOKEN",
		"EDGEHOOK_RETRY_SCHEDULE", "EDGEHOOK_MAX_DELIVER", "EDGEHOOK_ALLOW_PRIVATE_TARGETS", "VAULT_ADDR", "EDGEHOOK_DATA_DIR"} {
		if !strings.Contains(stderr, env) {
			t.Errorf("up -h does not mention %s", env)
		}
	}
	_, stderr, _ = runArgs(t, nil, "admin", "-h")
	for _, env := range []string{"EDGEHOOK_ADMIN_ADDR", "EDGEHOOK_ADMIN_TOKEN", "EDGEHOOK_NATS_URL", "VAULT_ADDR", "VAULT_ROLE_ID", "EDGEHOOK_ALLOW_PRIVATE_TARGETS"} {
		if !strings.Contains(stderr, env) {
			t.Errorf("admin -h does not mention %s", env)
		}
	}
	_, stderr, _ = runArgs(t, nil, "gateway", "-h")
	for _, env := range []string{"EDGEHOOK_ADMIN_TOKEN", "VAULT_ADDR", "VAULT_TOKEN"} {
		if strings.Contains(stderr, env) {
			t.Errorf("gateway -h offers %s: the gateway holds no Vault token and serves no admin API", env)
		}
	}
	// A secret given in the environment is not echoed as a flag default.
	_, stderr, _ = runArgs(t, map[string]string{"EDGEHOOK_ADMIN_TOKEN": "s3cr3t-admin", "VAULT_TOKEN": "s3cr3t-vault"}, "up", "-h")
	if strings.Contains(stderr, "s3cr3t") {
		t.Errorf("help output shows a secret from the environment")
	}
}

func TestWorkerRefusesPrivateTargetsByDefaultAndUpAllowsThem(t *testing.T) {
	var w workerOptions
	s := newSettings("worker", func(string) string { return "" }, &bytes.Buffer{})
	w.register(s, false)
	if err := s.parse(nil); err != nil || w.allowPrivate {
		t.Errorf("worker default allows private targets (%v)", err)
	}
	var u workerOptions
	s = newSettings("up", func(string) string { return "" }, &bytes.Buffer{})
	u.register(s, true)
	if err := s.parse(nil); err != nil || !u.allowPrivate {
		t.Errorf("up default refuses private targets (%v)", err)
	}
}
