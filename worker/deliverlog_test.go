package worker

import (
	"log/slog"
	"strings"
	"testing"

	"github.com/edgehook/edgehook/api/apitest"
	"github.com/edgehook/edgehook/status"
)

// syncBuffer collects a logger's output for the test to read.
type syncBuffer = apitest.Logs

// TestDeliveryIsLoggedAtDebugLevelOnly: a delivered webhook is one debug line naming
// its tenant and event, and nothing at the info level a service runs at.
func TestDeliveryIsLoggedAtDebugLevelOnly(t *testing.T) {
	for _, level := range []slog.Level{slog.LevelDebug, slog.LevelInfo} {
		t.Run(level.String(), func(t *testing.T) {
			e := newEnv(t, nil)
			var out syncBuffer
			e.logger = slog.New(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: level}))
			ep := newEndpoint(t, e.configs)
			tn := e.tenant(t, ep)
			r := e.start(t, e.config())
			id := e.publish(t, tn, []byte(`{}`))
			e.waitStatus(t, tn, id, status.Delivered)
			r.stop(t, testHTTPTimeout*5)
			var lines []string
			for l := range strings.Lines(out.String()) {
				if strings.Contains(l, "webhook delivered") {
					lines = append(lines, l)
				}
			}
			switch {
			case level == slog.LevelInfo && len(lines) != 0:
				t.Errorf("info-level log has delivery lines: %q", lines)
			case level == slog.LevelDebug && (len(lines) != 1 || !strings.Contains(lines[0], "tenant="+tn) || !strings.Contains(lines[0], "event="+id)):
				t.Errorf("debug-level log has %q, want one delivery line naming tenant %s and event %s", lines, tn, id)
			}
		})
	}
}
