// Package vaulttest is an in-process HTTP server implementing the subset of HashiCorp
// Vault's documented HTTP API that edgehook uses, for tests: KV v2 data, metadata and
// config (and plain KV v1 engines), token create/lookup/renew/revoke with TTLs and use
// counts, AppRole (with Vault's user lockout after repeated failed logins, tunable
// through sys/auth/<path>/tune), the config and roles of JWT auth methods (validated, the JWKS
// fetched from loopback URLs, but no JWT login), ACL policies (parsed from HCL and
// enforced with Vault's path rules), secrets engine and auth method mounts, and
// sys/health. Request and response JSON, status codes and error
// bodies follow Vault's, so the production client (github.com/hashicorp/vault/api)
// talks to it unchanged.
//
// It is a test server, not a product feature: state lives in memory, there is no
// storage, no audit log and no leases other than tokens.
package vaulttest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"
)

// Vault's system-wide default and maximum token TTL (768h).
const systemMaxTTL = 768 * time.Hour

// Server is a running vaulttest server on 127.0.0.1. Its methods are safe for
// concurrent use.
type Server struct {
	addr      string
	rootToken string
	now       func() time.Time
	http      *http.Server
	served    chan error // Serve's result

	mu         sync.Mutex
	sealed     bool
	policies   map[string]*policy // by lower-case name, without "root"
	tokens     map[string]*token  // by token id
	accessors  map[string]string  // token accessor -> token id
	mounts     map[string]*mount  // secrets engines by path with trailing slash
	authMounts map[string]*authMount
	kvReads    map[string]int // GET requests per KV v2 data path
}

// Start runs a server on a random 127.0.0.1 port and stops it when the test ends. Like
// `vault server -dev` it is unsealed, has a root token and a KV v2 engine at "secret/",
// and the token auth method; other auth methods must be enabled through sys/auth.
func Start(t testing.TB) *Server {
	t.Helper()
	s, err := start()
	if err != nil {
		t.Fatalf("vaulttest: %v", err)
	}
	t.Cleanup(func() {
		if err := s.close(); err != nil {
			t.Errorf("vaulttest: %v", err)
		}
	})
	return s
}

func start() (*Server, error) {
	s := &Server{
		now:        time.Now,
		policies:   map[string]*policy{},
		tokens:     map[string]*token{},
		accessors:  map[string]string{},
		mounts:     map[string]*mount{},
		authMounts: map[string]*authMount{},
		kvReads:    map[string]int{},
	}
	def, err := parsePolicy("default", defaultPolicy)
	if err != nil {
		return nil, err
	}
	s.policies["default"] = def
	now := s.now()
	for _, m := range []*mount{
		{path: "cubbyhole/", typ: "cubbyhole", description: "per-token private secret storage"},
		{path: "identity/", typ: "identity", description: "identity store"},
		{path: "sys/", typ: "system", description: "system endpoints used for control, policy and debugging"},
		{path: "secret/", typ: "kv", options: map[string]string{"version": "2"}, description: "key/value secret storage", kv: newKVStore()},
	} {
		m.accessor, m.uuid, m.created = m.typ+"_"+randomHex(4), randomUUID(), now
		s.mounts[m.path] = m
	}
	s.authMounts["token/"] = &authMount{path: "token/", typ: "token", accessor: "auth_token_" + randomHex(4), uuid: randomUUID(), description: "token based credentials"}
	root := s.newToken(tokenParams{policies: []string{"root"}, noDefault: true, orphan: true, displayName: "root", path: "auth/token/root"})
	s.rootToken = root.id

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s.addr = "http://" + ln.Addr().String()
	s.http = &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	s.served = make(chan error, 1)
	go func() { s.served <- s.http.Serve(ln) }()
	return s, nil
}

// close stops the server and reports how serving ended, if not by the shutdown.
func (s *Server) close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.http.Shutdown(ctx); err != nil {
		// A connection that never sent a request holds nothing to wait for.
		if cerr := s.http.Close(); cerr != nil {
			return cerr
		}
	}
	if err := <-s.served; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Addr returns the server's URL, e.g. "http://127.0.0.1:41234" (what VAULT_ADDR holds).
func (s *Server) Addr() string { return s.addr }

// RootToken returns the root token, whose policy allows everything.
func (s *Server) RootToken() string { return s.rootToken }

// KVReads returns how many read (GET) requests reached the KV v2 data path, given as
// Vault's logical path without /v1/, e.g. "secret/data/edgehook/webhook-config/t1",
// whatever their outcome.
func (s *Server) KVReads(path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.kvReads[path]
}

// TotalKVReads returns how many read requests reached any KV v2 data path.
func (s *Server) TotalKVReads() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, c := range s.kvReads {
		n += c
	}
	return n
}

// SetSealed seals or unseals the server. While sealed it answers every request except
// sys/health with 503 {"errors":["Vault is sealed"]}, as a sealed Vault does, and keeps
// its state for when it is unsealed.
func (s *Server) SetSealed(sealed bool) {
	s.mu.Lock()
	s.sealed = sealed
	s.mu.Unlock()
}

// randomHex returns n random bytes in hex.
func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

// randomUUID returns a random version 4 UUID.
func randomUUID() string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// randomToken returns a service token id in Vault's "hvs." format.
func randomToken() string {
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return "hvs." + string(b)
}

// defaultPolicy is the part of Vault's built-in "default" policy that concerns the
// endpoints vaulttest implements.
const defaultPolicy = `
# Allow tokens to look up their own properties
path "auth/token/lookup-self" {
    capabilities = ["read"]
}

# Allow tokens to renew themselves
path "auth/token/renew-self" {
    capabilities = ["update"]
}

# Allow tokens to revoke themselves
path "auth/token/revoke-self" {
    capabilities = ["update"]
}

# Allow a token to look up its own capabilities on a path
path "sys/capabilities-self" {
    capabilities = ["update"]
}

# Allow a token to manage its own cubbyhole
path "cubbyhole/*" {
    capabilities = ["create", "read", "update", "delete", "list"]
}
`
