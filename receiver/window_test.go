package receiver_test

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/edgehook/edgehook/natsconf"
	"github.com/edgehook/edgehook/receiver"
	"github.com/edgehook/edgehook/vault"
)

// TestNewRefusesADuplicateWindowUnderTwiceTolerance checks that the receiver will not
// run with a duplicate window that a replay within the timestamp tolerance can
// outlast, and that the error names both settings.
func TestNewRefusesADuplicateWindowUnderTwiceTolerance(t *testing.T) {
	e := start(t, receiver.Config{})
	deps := receiver.Deps{JS: e.js, Configs: vault.NewCache(e.configs, vault.CacheConfig{}, nil)}
	for _, tc := range []struct {
		name string
		cfg  receiver.Config
		ok   bool
	}{
		{"defaults (10m, 5m)", receiver.Config{}, true},
		{"exactly twice", receiver.Config{Tolerance: time.Minute, DuplicateWindow: 2 * time.Minute}, true},
		{"window under twice the default tolerance", receiver.Config{DuplicateWindow: 9 * time.Minute}, false},
		{"tolerance over half the default window", receiver.Config{Tolerance: 6 * time.Minute}, false},
		{"a second short", receiver.Config{Tolerance: time.Minute, DuplicateWindow: 2*time.Minute - time.Second}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := receiver.New(tc.cfg, deps)
			switch {
			case tc.ok && err != nil:
				t.Errorf("New: %v, want it accepted", err)
			case !tc.ok && (!errors.Is(err, receiver.ErrConfig) || !strings.Contains(err.Error(), "DuplicateWindow") || !strings.Contains(err.Error(), "Tolerance")):
				t.Errorf("New: %v; want an ErrConfig naming DuplicateWindow and Tolerance", err)
			}
		})
	}
}

// TestReplayWithinToleranceIsStoredOnce sends a webhook as early as its timestamp is
// accepted and replays it as late as it is accepted, against a RECEIVED stream whose
// duplicate window is exactly twice the tolerance: the replay is answered 204 but not
// stored again, and one a moment after the tolerance is refused as too old.
func TestReplayWithinToleranceIsStoredOnce(t *testing.T) {
	const tolerance = 2 * time.Second
	e := startWith(t, receiver.Config{Tolerance: tolerance, DuplicateWindow: 2 * tolerance}, setup{
		topology: func(tp *natsconf.Topology) { tp.ReceivedDuplicateWindow = 2 * tolerance },
	})
	secret := newSecret(t)
	e.tenant("acme", secret)

	ts := time.Now().Truncate(time.Second).Add(tolerance + time.Second)
	d := signed("acme", "msg_replayed", ts, []byte(`{"once":true}`), secret)
	sleepUntil(ts.Add(-tolerance))
	if res := e.send(t, d); res.status != http.StatusNoContent {
		t.Fatalf("first delivery, %s before its timestamp: %d %s, want 204", tolerance, res.status, res.body)
	}
	sleepUntil(ts.Add(tolerance - 600*time.Millisecond))
	if res := e.send(t, d); res.status != http.StatusNoContent {
		t.Fatalf("replay, just under %s after its timestamp: %d %s, want 204 (a duplicate)", tolerance, res.status, res.body)
	}
	if n := e.receivedCount(t); n != 1 {
		t.Errorf("RECEIVED holds %d messages after a replay within the tolerance, want 1", n)
	}
	if got := e.metric(t, "edgehook_webhooks_duplicate_total"); got != 1 {
		t.Errorf("edgehook_webhooks_duplicate_total = %v, want 1", got)
	}
	// Past the tolerance, to the nanosecond rather than the second, the replay is
	// refused: the duplicate window may no longer hold its id.
	sleepUntil(ts.Add(tolerance + 200*time.Millisecond))
	if res := e.send(t, d); res.status != http.StatusUnauthorized || res.body != errorBody("invalid_timestamp", "webhook-timestamp is too old") {
		t.Errorf("replay %s after its timestamp: %d %s, want 401 invalid_timestamp", tolerance+200*time.Millisecond, res.status, res.body)
	}
	if n := e.receivedCount(t); n != 1 {
		t.Errorf("RECEIVED holds %d messages, want 1", n)
	}
}

// sleepUntil sleeps until t (not at all if t has passed).
func sleepUntil(t time.Time) { time.Sleep(time.Until(t)) }
