package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/edgehook/edgehook/natsconf"
	"github.com/edgehook/edgehook/receiver"
	"github.com/edgehook/edgehook/vault"
)

// upOptions are the settings of `edgehook up`.
type upOptions struct {
	dataDir      string
	receiverAddr string
	natsAddr     string
	// natsAllowRemote lets the embedded NATS server listen on a non-loopback address.
	natsAllowRemote bool
	logLevel        string
	topo            topologyOptions
	worker          workerOptions
	vault           vaultOptions
	gateway         gatewayOptions
	admin           adminOptions
}

func runUp(ctx context.Context, env *environment, args []string) error {
	var o upOptions
	s := newSettings("up", env.getenv, env.stderr)
	s.String(&o.dataDir, "data", "EDGEHOOK_DATA_DIR", "./data", "data directory (JetStream store, dev secret store)")
	s.String(&o.natsAddr, "nats-addr", "EDGEHOOK_NATS_ADDR", "127.0.0.1:4222", "where the embedded NATS server listens (for the nats CLI)")
	s.Bool(&o.natsAllowRemote, "nats-allow-remote", "EDGEHOOK_NATS_ALLOW_REMOTE", false, "let the embedded NATS server listen on a non-loopback EDGEHOOK_NATS_ADDR")
	s.String(&o.receiverAddr, "receiver-addr", "EDGEHOOK_RECEIVER_ADDR", "127.0.0.1:8090", "receiver listen address")
	s.String(&o.logLevel, "log-level", "EDGEHOOK_LOG_LEVEL", "info", "debug, info, warn or error")
	o.gateway.register(s)
	o.admin.register(s)
	o.topo.register(s)
	o.worker.register(s, true)
	o.vault.register(s)
	if err := s.parse(args); err != nil {
		return err
	}
	log, err := newLogger(env.stderr, o.logLevel)
	if err != nil {
		return err
	}
	if err := o.topo.resolve(); err != nil {
		return err
	}
	wcfg, err := o.worker.config(o.topo.Topology)
	if err != nil {
		return err
	}
	if err := o.topo.Validate(); err != nil {
		return usageError{err}
	}
	// The admin API takes the worker's rule for private targets (true by default here).
	o.admin.allowPrivate = o.worker.allowPrivate
	generatedToken := false
	if o.admin.token == "" {
		o.admin.token, err = randomToken()
		if err != nil {
			return err
		}
		generatedToken = true
	}

	if err := os.MkdirAll(o.dataDir, 0o700); err != nil {
		return fmt.Errorf("data directory %s (EDGEHOOK_DATA_DIR): %w", o.dataDir, err)
	}
	host, port, err := natsconf.SplitAddr(o.natsAddr)
	if err != nil {
		return usageError{fmt.Errorf("EDGEHOOK_NATS_ADDR: %w", err)}
	}
	if !natsconf.IsLoopback(host) && !o.natsAllowRemote {
		return usageError{fmt.Errorf("EDGEHOOK_NATS_ADDR=%s is not a loopback address: the embedded NATS server would be reachable from other machines; set EDGEHOOK_NATS_ALLOW_REMOTE=true if that is what you want", o.natsAddr)}
	}
	// Each component connects as its own least-privilege user; the nats CLI connects as
	// the operator, whose password is kept in the data directory.
	no := natsOptions{passwords: natsconf.Credentials{}}
	if no.passwords[natsconf.OperatorUser], err = operatorPassword(o.dataDir); err != nil {
		return err
	}
	for _, c := range natsconf.Components {
		if no.passwords[string(c)], err = randomToken(); err != nil {
			return err
		}
	}
	spec, err := natsconf.SingleServer(host, port, filepath.Join(o.dataDir, "jetstream"), no.passwords)
	if err != nil {
		return err
	}
	ns, err := natsconf.StartEmbedded(spec)
	if err != nil {
		return fmt.Errorf("embedded NATS on %s (EDGEHOOK_NATS_ADDR): %w", o.natsAddr, err)
	}
	defer func() { ns.Shutdown(); ns.WaitForShutdown() }()
	no.url = ns.ClientURL()
	no.inProcess = ns
	log.Info("embedded NATS started", "url", ns.ClientURL(), "store", filepath.Join(o.dataDir, "jetstream"))

	setupNC, setupJS, err := no.connect(natsconf.OperatorUser, log)
	if err != nil {
		return err
	}
	err = natsconf.Setup(ctx, setupJS, o.topo.Topology)
	setupNC.Close()
	if err != nil {
		return err
	}

	st := newStack(ctx, no, log)
	var store vault.ConfigStore
	if o.vault.addr != "" {
		client, err := o.vault.client(log, true)
		if err != nil {
			return st.abort(err)
		}
		st.startVault(client)
		store = client
		log.Info("webhook configuration in Vault", "addr", o.vault.addr)
	} else {
		path := filepath.Join(o.dataDir, "dev-secrets.json")
		if store, err = vault.OpenDevStore(path); err != nil {
			return st.abort(err)
		}
		fmt.Fprintf(env.stderr, "\n*** WARNING: VAULT_ADDR is not set. Webhook secrets are kept in a plain file, %s.\n*** This is for local development only; set VAULT_ADDR and VAULT_TOKEN in production.\n\n", path)
		log.Warn("using the embedded dev secret store; set VAULT_ADDR for production", "path", path)
	}

	procReg := newRegistry()
	gwReg, adReg, wkReg, rcReg := prometheus.NewRegistry(), prometheus.NewRegistry(), prometheus.NewRegistry(), prometheus.NewRegistry()
	all := prometheus.Gatherers{procReg, gwReg, wkReg, rcReg}

	if _, err := st.startGateway(o.gateway, gwReg, all); err != nil {
		return st.abort(err)
	}
	if _, err := st.startAdmin(o.admin, store, adReg, prometheus.Gatherers{procReg, adReg}); err != nil {
		return st.abort(err)
	}
	cache := vault.NewCache(store, vault.CacheConfig{TTL: o.vault.cacheTTL}, wkReg)
	if _, err := st.startWorker(wcfg, cache, wkReg); err != nil {
		return st.abort(err)
	}
	if err := st.startReceiver(receiver.Config{Addr: o.receiverAddr, DuplicateWindow: o.topo.ReceivedDuplicateWindow}, cache, rcReg, all); err != nil {
		return st.abort(err)
	}
	if _, err := st.startDLQ(wkReg); err != nil {
		return st.abort(err)
	}
	st.g.Go(func() error {
		if waitListening(st.ctx, o.gateway.httpAddr) && waitListening(st.ctx, o.admin.addr) && waitListening(st.ctx, o.receiverAddr) {
			printQuickStart(env, o, generatedToken)
		}
		return nil
	})
	return st.wait()
}

// operatorPasswordFile is where `up` keeps the NATS operator's password, in the data
// directory.
const operatorPasswordFile = "nats-operator.password"

// operatorPassword returns the operator's password from the data directory, creating
// it (mode 0600) on the first run.
func operatorPassword(dataDir string) (string, error) {
	path := filepath.Join(dataDir, operatorPasswordFile)
	b, err := os.ReadFile(path)
	if err == nil && len(strings.TrimSpace(string(b))) > 0 {
		return strings.TrimSpace(string(b)), nil
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("NATS operator password: %w", err)
	}
	pw, err := randomToken()
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(path, []byte(pw+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("NATS operator password: %w", err)
	}
	return pw, nil
}

// randomToken returns 32 random bytes, base64url, never beginning with '-': the tokens are
// also passwords people pass on command lines (`nats --password "$(cat …)"`), where a
// leading dash reads as a flag. One draw in 64 is drawn again.
func randomToken() (string, error) {
	var b [32]byte
	for {
		if _, err := rand.Read(b[:]); err != nil {
			return "", fmt.Errorf("generate a random token: %w", err)
		}
		if t := base64.RawURLEncoding.EncodeToString(b[:]); t[0] != '-' {
			return t, nil
		}
	}
}

// waitListening waits up to 10s for addr to accept TCP connections.
func waitListening(ctx context.Context, addr string) bool {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return true
		}
		time.Sleep(50 * time.Millisecond)
	}
	return false
}

// quickStart is the script `up` prints and README.md shows (with the default
// addresses and "<the token up printed>"); a test runs it against a live system.
const quickStart = `export EDGEHOOK_ADMIN_TOKEN={{token}}
# 1. create a tenant at the admin API whose webhooks go to the local receiver ({tenantId} is filled in)
TENANT=$(curl -s -X POST http://{{admin}}/v1/tenants -H "Authorization: Bearer $EDGEHOOK_ADMIN_TOKEN" \
  -d '{"targetUrl":"http://{{receiver}}/webhooks/{tenantId}","plan":"free"}')
echo "$TENANT"
TENANT_ID=$(echo "$TENANT" | sed -E 's/.*"tenantId":"([^"]+)".*/\1/')
API_KEY=$(echo "$TENANT" | sed -E 's/.*"apiKey":"([^"]+)".*/\1/')
# 2. give the application a key that may only send events, and send one with it
SEND_KEY=$(curl -s -X POST http://{{admin}}/v1/tenants/$TENANT_ID/keys -H "Authorization: Bearer $EDGEHOOK_ADMIN_TOKEN" \
  -d '{"name":"app","scopes":["send"]}' | sed -E 's/.*"apiKey":"([^"]+)".*/\1/')
EVENT_ID=$(curl -s -X POST http://{{api}}/v1/events -H "Authorization: Bearer $SEND_KEY" \
  -d '{"type":"order.created","data":{"orderId":42}}' | sed -E 's/.*"eventId":"([^"]+)".*/\1/')
# 3. see it delivered (with the first key, which holds every scope), and the verified copy
#    the receiver put in the RECEIVED stream
sleep 1; curl -s http://{{api}}/v1/events/$EVENT_ID -H "Authorization: Bearer $API_KEY"; echo
bin/nats --server nats://{{nats}} --user operator --password="$(cat {{data}}/nats-operator.password)" \
  stream get RECEIVED --last-for "received.$TENANT_ID"
`

// quickStartAddrs are the addresses the quick-start script talks to.
type quickStartAddrs struct {
	api, admin, receiver, nats, data string
}

// renderQuickStart fills in the quick-start script. token is the admin token, or a
// placeholder when the user supplied it: `up` prints only a token it generated.
func renderQuickStart(token string, a quickStartAddrs) string {
	return strings.NewReplacer("{{token}}", token, "{{api}}", a.api, "{{admin}}", a.admin, "{{receiver}}", a.receiver,
		"{{nats}}", a.nats, "{{data}}", a.data).Replace(quickStart)
}

// suppliedTokenPlaceholder stands for the admin token in the quick start when the
// user supplied it.
const suppliedTokenPlaceholder = `"$EDGEHOOK_ADMIN_TOKEN"`

func printQuickStart(env *environment, o upOptions, generatedToken bool) {
	w := env.stdout
	fmt.Fprintf(w, "\nedgehook is up.\n  gateway   http://%s\n  portal    http://%s/portal/ (sign in with a read or manage API key)\n  admin API http://%s\n  console   http://%s/console/ (sign in with the admin token)\n  receiver  http://%s\n  nats      nats://%s\n\n",
		o.gateway.httpAddr, o.gateway.httpAddr, o.admin.addr, o.admin.addr, o.receiverAddr, o.natsAddr)
	token := suppliedTokenPlaceholder
	if generatedToken {
		token = o.admin.token
		fmt.Fprintf(w, "Admin token (generated; set EDGEHOOK_ADMIN_TOKEN to choose your own):\n  %s\n\n", token)
	} else {
		fmt.Fprintf(w, "Admin token: the one you set in EDGEHOOK_ADMIN_TOKEN (not printed).\n\n")
	}
	fmt.Fprintf(w, "Quick start (paste into another shell):\n\n%s\n", renderQuickStart(token, o.quickStartAddrs()))
}

func (o upOptions) quickStartAddrs() quickStartAddrs {
	return quickStartAddrs{api: o.gateway.httpAddr, admin: o.admin.addr, receiver: o.receiverAddr, nats: o.natsAddr, data: o.dataDir}
}
