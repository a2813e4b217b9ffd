package worker

import (
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseRetrySchedule(t *testing.T) {
	got, err := ParseRetrySchedule(" 5s, 5m,30m ,2h")
	if err != nil {
		t.Fatal(err)
	}
	if want := []time.Duration{5 * time.Second, 5 * time.Minute, 30 * time.Minute, 2 * time.Hour}; !slices.Equal(got, want) {
		t.Errorf("ParseRetrySchedule = %v, want %v", got, want)
	}
	def, err := ParseRetrySchedule("5s,5m,30m,2h,5h,10h,10h")
	if err != nil || !slices.Equal(def, DefaultRetrySchedule()) {
		t.Errorf("the documented default parses to %v (%v), want DefaultRetrySchedule", def, err)
	}
	for _, bad := range []string{"", "  ", "5s,,5m", "5", "soon", "5s,-1s"} {
		_, err := ParseRetrySchedule(bad)
		if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), "EDGEHOOK_RETRY_SCHEDULE") {
			t.Errorf("ParseRetrySchedule(%q) = %v, want ErrInvalidConfig naming EDGEHOOK_RETRY_SCHEDULE", bad, err)
		}
	}
}

func TestConfigDefaultsAndValidation(t *testing.T) {
	c, err := Config{}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if c.Concurrency != 256 || c.HTTPTimeout != 10*time.Second || c.ConnectTimeout != 5*time.Second ||
		c.MaxDeliver != 8 || c.MaxRetryAfter != time.Hour || c.DrainTimeout != 15*time.Second ||
		!slices.Equal(c.RetrySchedule, DefaultRetrySchedule()) || c.UserAgent == "" {
		t.Errorf("defaults = %+v", c)
	}
	for setting, cfg := range map[string]Config{
		"Concurrency":    {Concurrency: -1},
		"HTTPTimeout":    {HTTPTimeout: -time.Second},
		"ConnectTimeout": {ConnectTimeout: -time.Second},
		"RetrySchedule":  {RetrySchedule: []time.Duration{}},
		"MaxDeliver":     {MaxDeliver: -1},
		"MaxRetryAfter":  {MaxRetryAfter: -time.Second},
		"DrainTimeout":   {DrainTimeout: -time.Second},
	} {
		_, err := cfg.withDefaults()
		if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), setting) {
			t.Errorf("%s: %v, want ErrInvalidConfig naming the setting", setting, err)
		}
	}
	if _, err := New(Config{}, Deps{}); err == nil || !strings.Contains(err.Error(), "Deps.JS") {
		t.Errorf("New without deps = %v, want an error naming Deps.JS", err)
	}
}

func TestScheduledDelayWithJitter(t *testing.T) {
	schedule := []time.Duration{10 * time.Second, time.Minute}
	if got := jitter(10*time.Second, 0); got != 9*time.Second {
		t.Errorf("jitter low end = %s, want 9s", got)
	}
	if got := jitter(10*time.Second, 0.999999); got <= 10*time.Second || got > 11*time.Second {
		t.Errorf("jitter high end = %s, want just under 11s", got)
	}
	for attempt, base := range map[int]time.Duration{0: 10 * time.Second, 1: 10 * time.Second, 2: time.Minute, 9: time.Minute} {
		for range 100 {
			d := scheduledDelay(schedule, attempt)
			if d < base*9/10 || d > base*11/10 {
				t.Fatalf("delay after attempt %d = %s, want %s ±10%%", attempt, d, base)
			}
		}
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for v, want := range map[string]time.Duration{
		"120":                           2 * time.Minute,
		"0":                             0,
		"Fri, 02 Jan 2026 03:05:05 GMT": time.Minute,
		"Fri, 02 Jan 2026 03:00:00 GMT": 0, // in the past
	} {
		got, ok := parseRetryAfter(v, now)
		if !ok || got != want {
			t.Errorf("parseRetryAfter(%q) = %s, %v; want %s", v, got, ok, want)
		}
	}
	for _, bad := range []string{"", "-5", "soon", "1.5"} {
		if _, ok := parseRetryAfter(bad, now); ok {
			t.Errorf("parseRetryAfter(%q) accepted", bad)
		}
	}

	schedule := []time.Duration{time.Second}
	r := result{statusCode: http.StatusTooManyRequests, retryAfter: 3 * time.Hour, hasRetryAfter: true}
	if got := retryDelay(r, 1, schedule, time.Hour); got != time.Hour {
		t.Errorf("429 Retry-After 3h with cap 1h: delay %s, want 1h", got)
	}
	r = result{statusCode: http.StatusServiceUnavailable, retryAfter: 7 * time.Second, hasRetryAfter: true}
	if got := retryDelay(r, 1, schedule, time.Hour); got != 7*time.Second {
		t.Errorf("503 Retry-After 7s: delay %s, want 7s", got)
	}
	r = result{statusCode: http.StatusInternalServerError, retryAfter: 7 * time.Second, hasRetryAfter: true}
	if got := retryDelay(r, 1, schedule, time.Hour); got > 1100*time.Millisecond {
		t.Errorf("500 with Retry-After: delay %s, want the schedule (Retry-After only on 429/503)", got)
	}
}
