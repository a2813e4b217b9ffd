package console

import (
	"container/list"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"strings"
	"sync"
	"time"
)

// Sessions live on the server: the cookie holds only a random session id and an HMAC
// of it under a per-process key, and the store maps the id to the credential the user
// signed in with. A server-side store (rather than the credential encrypted into the
// cookie) lets every request re-check the credential, so a revoked key, a changed scope
// or a suspended tenant takes effect at the next click, and signing out really ends the
// session. The store is bounded: it holds at most max sessions, and since every session
// has the same lifetime, creation order is expiry order, so a full store drops the
// oldest session (expired or not) in O(1). Only a successful sign-in adds a session, so
// a stranger cannot grow it; a holder of a valid key can at worst push out older
// sessions, and each request of an unknown cookie costs one HMAC.

const (
	sessionIDBytes = 16
	macBytes       = 16
)

// session is one signed-in user.
type session struct {
	id      string
	cred    Secret
	expires time.Time
	csrf    string
	elem    *list.Element
}

// sessionStore is the bounded, expiring session table of one console.
type sessionStore struct {
	key []byte
	ttl time.Duration
	max int

	mu    sync.Mutex
	byID  map[string]*session
	order *list.List // of *session, oldest first
}

func newSessionStore(ttl time.Duration, max int) (*sessionStore, error) {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	return &sessionStore{key: key, ttl: ttl, max: max, byID: make(map[string]*session), order: list.New()}, nil
}

func (st *sessionStore) mac(purpose, v string) []byte {
	m := hmac.New(sha256.New, st.key)
	m.Write([]byte(purpose))
	m.Write([]byte{0})
	m.Write([]byte(v))
	return m.Sum(nil)[:macBytes]
}

// seal returns v followed by its MAC for purpose, as a cookie-safe string.
func (st *sessionStore) seal(purpose, v string) string {
	return v + "." + base64.RawURLEncoding.EncodeToString(st.mac(purpose, v))
}

// unseal checks a value made by seal and returns v, or false.
func (st *sessionStore) unseal(purpose, sealed string) (string, bool) {
	v, sig, ok := strings.Cut(sealed, ".")
	if !ok || len(sig) != base64.RawURLEncoding.EncodedLen(macBytes) {
		return "", false
	}
	got, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil || !hmac.Equal(got, st.mac(purpose, v)) {
		return "", false
	}
	return v, true
}

func randomToken(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// create stores a session for cred and returns it with the cookie value.
func (st *sessionStore) create(cred Secret, now time.Time) (*session, string, error) {
	id, err := randomToken(sessionIDBytes)
	if err != nil {
		return nil, "", err
	}
	s := &session{
		id:      id,
		cred:    cred,
		expires: now.Add(st.ttl),
		csrf:    base64.RawURLEncoding.EncodeToString(st.mac("csrf", id)),
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	for st.order.Len() >= st.max {
		st.removeLocked(st.order.Front().Value.(*session))
	}
	s.elem = st.order.PushBack(s)
	st.byID[id] = s
	return s, st.seal("session", id), nil
}

// lookup returns the live session a cookie names. It returns known=true when the
// cookie was one of ours (validly signed) even if the session is gone or expired,
// so the sign-in page can say the session ended.
func (st *sessionStore) lookup(cookie string, now time.Time) (s *session, known bool) {
	id, ok := st.unseal("session", cookie)
	if !ok {
		return nil, false
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	s = st.byID[id]
	if s == nil {
		return nil, true
	}
	if !now.Before(s.expires) {
		st.removeLocked(s)
		return nil, true
	}
	return s, true
}

// remove ends a session (signing out).
func (st *sessionStore) remove(s *session) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.byID[s.id] == s {
		st.removeLocked(s)
	}
}

func (st *sessionStore) removeLocked(s *session) {
	delete(st.byID, s.id)
	st.order.Remove(s.elem)
}

// len returns how many sessions the store holds.
func (st *sessionStore) len() int {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.order.Len()
}

// checkCSRF reports whether token is the session's CSRF token.
func (s *session) checkCSRF(token string) bool {
	return subtle.ConstantTimeCompare([]byte(token), []byte(s.csrf)) == 1
}

// newSignInToken returns a fresh double-submit token for the sign-in form, which has
// no session yet: the same random nonce goes into a signed cookie and the form.
func (st *sessionStore) newSignInToken() (nonce, cookie string, err error) {
	nonce, err = randomToken(16)
	if err != nil {
		return "", "", err
	}
	return nonce, st.seal("signin", nonce), nil
}

// checkSignInToken reports whether the form's token matches the signed cookie's.
func (st *sessionStore) checkSignInToken(cookie, form string) bool {
	nonce, ok := st.unseal("signin", cookie)
	return ok && form != "" && subtle.ConstantTimeCompare([]byte(nonce), []byte(form)) == 1
}
