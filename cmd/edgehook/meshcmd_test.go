package main

import (
	"context"
	"errors"
	"io/fs"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestMeshCommand runs `edgehook mesh` in-process on a free port range, checks that it
// prints the addresses and the demo the README shows, runs that demo with bash (events
// accepted at edge a while its link is cut, delivered once it heals), then stops the
// mesh and checks that run returned nil and every nats-server it started has exited.
func TestMeshCommand(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	defaults := meshPortPlan{base: meshDefaultBasePort}
	for what, shown := range map[string]string{
		"addresses": meshRenderAddresses(defaults),
		"demo":      meshRenderDemo("<the token mesh printed>", defaults, "./mesh"),
	} {
		if !strings.Contains(string(readme), shown) {
			t.Errorf("README.md does not show the %s that mesh prints:\n%s", what, shown)
		}
	}
	binDir, err := filepath.Abs("../../bin")
	if err != nil {
		t.Fatal(err)
	}
	for _, tool := range []string{"nats-server", "nats"} {
		if _, err := os.Stat(filepath.Join(binDir, tool)); err != nil {
			t.Fatalf("%s is not installed in bin/ (run `make tools`): %v", tool, err)
		}
	}

	plan := meshPortPlan{base: meshCmdFreeRange(t)}
	dir := t.TempDir()
	const token = "mesh-command-test-admin-token"
	vars := map[string]string{
		"PATH":                 binDir + string(os.PathListSeparator) + os.Getenv("PATH"),
		"EDGEHOOK_ADMIN_TOKEN": token,
		"EDGEHOOK_LOG_LEVEL":   "warn",
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stdout, stderr := &syncBuffer{}, &syncBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"edgehook", "mesh", "--dir", dir, "--base-port", strconv.Itoa(plan.base)},
			func(k string) string { return vars[k] }, stdout, stderr)
	}()
	returned := false
	t.Cleanup(func() {
		if !returned {
			cancel()
			select {
			case <-done:
			case <-time.After(30 * time.Second):
				t.Errorf("mesh did not stop within 30s of its context being cancelled")
			}
		}
		if t.Failed() {
			t.Logf("stdout of mesh:\n%s\nstderr of mesh:\n%s", stdout.String(), stderr.String())
		}
	})

	begun := time.Now()
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(stdout.String(), "Ctrl-C stops the mesh.") {
		select {
		case err := <-done:
			returned = true
			t.Fatalf("mesh returned before its banner: %v", err)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("no banner from mesh within 60s")
		}
	}
	t.Logf("mesh up in %v", time.Since(begun).Round(time.Millisecond))
	out := stdout.String()
	demo := meshRenderDemo(token, plan, dir)
	for what, want := range map[string]string{"addresses": meshRenderAddresses(plan), "demo": demo} {
		if !strings.Contains(out, want) {
			t.Fatalf("mesh did not print the %s:\n%s", what, want)
		}
	}
	pids := meshCmdPids(t, out)

	// The demo, as printed, with the nats CLI of bin/.
	script := strings.ReplaceAll(demo, "bin/nats ", filepath.Join(binDir, "nats")+" ")
	sctx, scancel := context.WithTimeout(ctx, 90*time.Second)
	defer scancel()
	cmd := exec.CommandContext(sctx, "bash", "-euo", "pipefail", "-c", script)
	cmd.Dir = t.TempDir()
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir()) // no nats CLI context of the user's
	started := time.Now()
	shown, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("demo failed after %v: %v\n%s", time.Since(started), err, shown)
	}
	t.Logf("demo ran in %v", time.Since(started).Round(time.Millisecond))
	got := string(shown)
	for _, c := range []struct {
		want string
		n    int // how many times; 0: at least once
	}{
		{`"apiKey":"ehk_`, 1},
		{" HTTP 202\n", 3}, // one event before the cut, two during it
		{`{"edge":"a","cut":true}`, 1},
		{"edgehook_edge_hub_link_up 0\n", 1},
		{`"status":"queued","attempts":0`, 1}, // GET at edge a while cut off
		{"INGEST_a", 0},                       // the edge's own stream report
		{`{"edge":"a","cut":false}`, 1},
		{`"status":"delivered","attempts":1,"lastStatusCode":204`, 3}, // all three, after the heal
		{"ingest.a.* to events.{{wildcard(1)}}", 1},                   // EVENTS's source of edge a
		{"ingest.b.* to events.{{wildcard(1)}}", 1},
		{"RAFT Meta Group Information", 1}, // server report jetstream as sys
	} {
		n := strings.Count(got, c.want)
		if (c.n == 0 && n == 0) || (c.n > 0 && n != c.n) {
			t.Errorf("demo output shows %q %d times, want %d:\n%s", c.want, n, c.n, got)
		}
	}
	if !regexp.MustCompile(`(?m)^edgehook_edge_sourcing_lag_messages [2-9]$`).MatchString(got) {
		t.Errorf("demo output does not show edge a's two (or more) events waiting for the hub:\n%s", got)
	}
	if t.Failed() {
		return
	}

	cancel()
	stopping := time.Now()
	select {
	case err := <-done:
		returned = true
		t.Logf("mesh stopped in %v", time.Since(stopping).Round(time.Millisecond))
		if err != nil {
			t.Fatalf("mesh returned %v after its context was cancelled, want nil", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("mesh did not stop within 30s of its context being cancelled")
	}
	for name, pid := range pids {
		if runtime.GOOS == "linux" {
			if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("nats-server %s (pid %d) still there after mesh returned: %v", name, pid, err)
			}
		}
	}
	for _, mp := range plan.all() {
		if c, err := net.DialTimeout("tcp", meshAddr(mp.port), time.Second); err == nil {
			c.Close()
			t.Errorf("port %d (%s) still accepts connections after mesh returned", mp.port, mp.what)
		}
	}
}

// meshCmdPids returns the pid of each nats-server the banner lists, by server name.
func meshCmdPids(t *testing.T, banner string) map[string]int {
	t.Helper()
	line := regexp.MustCompile(`(?m)^nats-server processes: (.*)\.$`).FindStringSubmatch(banner)
	if line == nil {
		t.Fatalf("banner lists no nats-server processes:\n%s", banner)
	}
	pids := map[string]int{}
	for _, m := range regexp.MustCompile(`([a-z0-9-]+) pid (\d+)`).FindAllStringSubmatch(line[1], -1) {
		pid, _ := strconv.Atoi(m[2])
		pids[m[1]] = pid
	}
	if len(pids) != meshHubNodes+len(meshEdgeNames()) {
		t.Fatalf("banner lists %d nats-server processes (%v), want %d", len(pids), pids, meshHubNodes+len(meshEdgeNames()))
	}
	return pids
}

// meshCmdFreeRange returns a base port whose whole mesh range is free, below Linux's
// ephemeral ports so that no other test's random port lands in it meanwhile.
func meshCmdFreeRange(t *testing.T) int {
	t.Helper()
	var err error
	for range 20 {
		p := meshPortPlan{base: 20000 + rand.IntN(12000-meshPortSpan)}
		if err = p.checkFree(); err == nil {
			return p.base
		}
	}
	t.Fatalf("no free range of %d ports found: %v", meshPortSpan, err)
	return 0
}
