package vault

import (
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/vault/api"
)

// Vault's user lockout defaults (Vault 1.13 and later, and OpenBao): an AppRole role id
// is locked out for DefaultLockoutDuration once DefaultLockoutThreshold failed logins
// follow one another with less than DefaultLockoutCounterReset between each and the
// next. A mount's user_lockout_config (sys/auth/<mount>/tune) can change them.
const (
	DefaultLockoutThreshold    = 5
	DefaultLockoutDuration     = 15 * time.Minute
	DefaultLockoutCounterReset = 15 * time.Minute
)

// ErrLockedOut is matched by errors of logins Vault refused because it locked the AppRole
// role id out after repeated failed logins. While locked out Vault refuses every login
// of the role id, with a correct secret id too, so the Client waits the lockout out.
var ErrLockedOut = errors.New("vault: AppRole role id locked out by Vault after repeated failed logins")

// Login retry delays for failures Vault does not count against the role id (Vault
// unreachable, sealed, a 5xx; every failure of a token or token file), and for the first
// quick retries of a counted one: loginRetryMin, doubling up to loginRetryMax.
const (
	loginRetryMin = 250 * time.Millisecond
	loginRetryMax = 15 * time.Second
)

// lockoutMargin is added to waits that must outlast one of Vault's lockout durations:
// Vault measures them in whole seconds from a failure it saw no later than we did.
const lockoutMargin = time.Second

// secretIDPoll is how often Run looks at the secret id file while a login is not due, to
// try a newly rendered secret id at once where the lockout budget allows.
const secretIDPoll = time.Second

// loginOutcome is what a failed login tells about Vault's lockout counter.
type loginOutcome int

const (
	// loginUncounted: a failure Vault does not count (no answer, sealed, 5xx, or a method
	// without lockout).
	loginUncounted loginOutcome = iota
	// loginCounted: Vault refused the credentials (400), which it counts against the role id.
	loginCounted
	// loginLocked: Vault answered 403, its answer while the role id is locked out.
	loginLocked
)

// classifyAppRoleLogin tells how Vault's lockout counter saw a failed AppRole login.
// Vault counts only refused credentials ("invalid role or secret ID", 400); other client
// errors are counted too, to stay on the safe side. A 403 on a login (an unauthenticated
// path) is Vault's lockout answer; Vault also gives it for a mount that does not exist.
func classifyAppRoleLogin(err error) loginOutcome {
	var re *api.ResponseError
	switch {
	case !errors.As(err, &re):
		return loginUncounted
	case re.StatusCode == 403:
		return loginLocked
	case re.StatusCode >= 400 && re.StatusCode < 500 && re.StatusCode != 429:
		return loginCounted
	}
	return loginUncounted
}

// loginSchedule decides when the next login may be tried. For AppRole it keeps the failed
// logins Vault counts against the role id below the lockout threshold: a few quick
// retries, then a wait longer than the counter reset so Vault's count starts again at
// one; a secret id that changed since the last failure may use one more attempt. After a
// lockout it waits the lockout (and the counter reset) out. Every login, from Run or
// from a request, goes through it, so no wake-up can bring a login forward.
type loginSchedule struct {
	threshold    int
	duration     time.Duration
	counterReset time.Duration

	next        time.Time // no login before this (zero: now)
	notBefore   time.Time // not even with a changed secret id (backoff after an uncounted failure)
	uncounted   int       // consecutive failures Vault does not count
	counted     int       // failures Vault counts since its counter last restarted, as far as we know
	lastCounted time.Time // when the last counted failure was answered
	lockedUntil time.Time // while Vault holds the role id locked out, at the latest
	failedCred  [32]byte  // digest of the secret id of the last counted failure
}

// quickBudget is how many counted failures in a row are retried quickly; one more is
// kept for a changed secret id, and one below the threshold is never used.
func (s *loginSchedule) quickBudget() int { return max(s.threshold-2, 1) }

// due reports whether a login may be tried at now; credChanged says whether the secret id
// differs from the one that failed last.
func (s *loginSchedule) due(now time.Time, credChanged bool) bool {
	if !now.Before(s.next) {
		return true
	}
	return credChanged && s.reserveLeft(now) && !now.Before(s.notBefore)
}

// reserveLeft reports whether a changed secret id may be tried before the wait ends.
func (s *loginSchedule) reserveLeft(now time.Time) bool {
	return s.counted > 0 && s.counted < s.threshold-1 && !now.Before(s.lockedUntil)
}

// failed records a failed login answered at now and sets when the next may be tried.
func (s *loginSchedule) failed(now time.Time, outcome loginOutcome, cred [32]byte) {
	if s.counted > 0 && now.Sub(s.lastCounted) > s.counterReset {
		s.counted = 0 // Vault restarts its count at the next failure
	}
	switch outcome {
	case loginUncounted:
		// No shorter than a wait the counted failures impose.
		s.notBefore = now.Add(backoff(s.uncounted))
		s.next = later(s.notBefore, s.hold())
		s.uncounted++
		return
	case loginLocked:
		// Vault counted at least threshold failures, the last one no later than now.
		s.counted, s.lastCounted = s.threshold, now
		s.lockedUntil = now.Add(s.duration + lockoutMargin)
		s.next = s.hold()
	case loginCounted:
		s.counted++
		s.lastCounted, s.failedCred = now, cred
		s.next = s.hold()
		if s.counted < s.quickBudget() {
			s.next = later(now.Add(backoff(s.counted-1)), s.next)
		}
	}
	s.uncounted, s.notBefore = 0, time.Time{}
}

// hold is the earliest login the failures Vault counted allow: once the quick budget is
// spent, a wait past the counter reset (so Vault's count restarts), and never before a
// lockout ends.
func (s *loginSchedule) hold() time.Time {
	if s.counted < s.quickBudget() {
		return s.lockedUntil
	}
	return later(s.lastCounted.Add(s.counterReset+lockoutMargin), s.lockedUntil)
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// succeeded forgets all failures: Vault clears its count on a successful login.
func (s *loginSchedule) succeeded() {
	*s = loginSchedule{threshold: s.threshold, duration: s.duration, counterReset: s.counterReset}
}

// lockedOut reports whether the last answer was Vault's lockout.
func (s *loginSchedule) lockedOut(now time.Time) bool { return now.Before(s.lockedUntil) }

// backoff is the delay after n earlier failures: loginRetryMin doubling up to loginRetryMax.
func backoff(n int) time.Duration {
	d := loginRetryMin
	for range n {
		d *= 2
		if d >= loginRetryMax {
			return loginRetryMax
		}
	}
	return d
}

// lockoutError is the error of a login Vault refused with its lockout answer.
func lockoutError(next time.Time, err error) error {
	return fmt.Errorf("%w: %w; next attempt at %s: %w", ErrNotAuthenticated, ErrLockedOut, next.UTC().Format(time.RFC3339), err)
}
