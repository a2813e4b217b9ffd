package admin_test

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/edgehook/edgehook/admin"
	"github.com/edgehook/edgehook/admin/admintest"
	"github.com/edgehook/edgehook/api/apitest"
	"github.com/edgehook/edgehook/natsconf/natstest"
	"github.com/edgehook/edgehook/vault"
)

const testAdminToken = admintest.Token

// env is an admin API on 127.0.0.1 over a real embedded JetStream server.
type env struct {
	t      testing.TB
	nats   *natstest.Server
	js     jetstream.JetStream
	srv    *admintest.Server
	logs   *apitest.Logs
	client *http.Client
}

func start(t testing.TB, o admintest.Options) *env {
	t.Helper()
	ns := natstest.Start(t, nil)
	logs := &apitest.Logs{}
	o.Logger = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("admin logs:\n%s", logs.String())
		}
	})
	e := &env{t: t, nats: ns, js: ns.JetStream(t), logs: logs, client: &http.Client{Timeout: 15 * time.Second}}
	e.srv = admintest.Start(t, ns.Connect(t), o)
	t.Cleanup(e.client.CloseIdleConnections)
	return e
}

// do sends one request to the admin API.
func (e *env) do(method, path, token, body string, headers ...string) apitest.Response {
	e.t.Helper()
	return apitest.Do(e.t, e.client, method, e.srv.URL+path, token, body, headers...)
}

func (e *env) createTenant(body string) admin.CreatedTenant {
	e.t.Helper()
	return e.srv.CreateTenant(e.t, e.client, body)
}

// storedConfigs counts the webhook configurations in the store's file.
func (e *env) storedConfigs() int {
	e.t.Helper()
	b, err := os.ReadFile(e.srv.Configs.Path())
	if errors.Is(err, fs.ErrNotExist) {
		return 0
	}
	if err != nil {
		e.t.Fatal(err)
	}
	var f struct {
		WebhookConfigs map[string]json.RawMessage `json:"webhookConfigs"`
	}
	if err := json.Unmarshal(b, &f); err != nil {
		e.t.Fatal(err)
	}
	return len(f.WebhookConfigs)
}

// failingPuts is a fault injector: a ConfigStore whose writes fail.
type failingPuts struct {
	vault.ConfigStore
	err error
}

func (f failingPuts) PutWebhookConfig(context.Context, vault.WebhookConfig) error { return f.err }
