package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/edgehook/edgehook/webhook"
)

// switchableTarget is the tenants' endpoint that answers 503 until fixed, then 204; it
// records the webhook-id of every request whose Standard Webhooks signature verifies
// against the secret of the tenant its path names, and counts the ones that do not.
type switchableTarget struct {
	srv *httptest.Server

	mu        sync.Mutex
	secrets   map[string]webhook.Secret // URL path -> the secret of its tenant
	fixed     bool
	failedIDs []string
	delivered []string
	badSigs   int
}

// switchableDownBody is what the target answers while down: text, then markup and
// script a page must show as text and never run.
const switchableDownBody = `upstream down for maintenance</td></tr><script>window.__pwned=1</script><img src=x onerror="window.__pwned=1">`

func newSwitchableTarget(t *testing.T) *switchableTarget {
	st := &switchableTarget{secrets: map[string]webhook.Secret{}}
	st.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		id := r.Header.Get(webhook.HeaderID)
		st.mu.Lock()
		defer st.mu.Unlock()
		if err := webhook.Verify(id, r.Header.Get(webhook.HeaderTimestamp), r.Header.Get(webhook.HeaderSignature), body,
			time.Now(), webhook.DefaultTolerance, st.secrets[r.URL.Path]); err != nil {
			st.badSigs++
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if !st.fixed {
			st.failedIDs = append(st.failedIDs, id)
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, switchableDownBody)
			return
		}
		st.delivered = append(st.delivered, id)
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(st.srv.Close)
	return st
}

// route sends the webhooks of a tenant created with secret to path.
func (st *switchableTarget) route(t *testing.T, path, secret string) {
	t.Helper()
	sec, err := webhook.ParseSecret(secret)
	if err != nil {
		t.Fatal(err)
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	st.secrets[path] = sec
}

func (st *switchableTarget) fix() {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.fixed = true
}

func (st *switchableTarget) got() (failed, delivered []string, badSigs int) {
	st.mu.Lock()
	defer st.mu.Unlock()
	return append([]string(nil), st.failedIDs...), append([]string(nil), st.delivered...), st.badSigs
}
