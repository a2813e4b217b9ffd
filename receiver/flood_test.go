package receiver_test

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgehook/edgehook/bench/cputime"
	"github.com/edgehook/edgehook/receiver"
)

// lineCounter is a log sink that counts lines and keeps the first few.
type lineCounter struct {
	mu    sync.Mutex
	lines int
	kept  []string
}

func (c *lineCounter) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lines += bytes.Count(p, []byte{'\n'})
	if len(c.kept) < 50 {
		c.kept = append(c.kept, string(p))
	}
	return len(p), nil
}

func (c *lineCounter) count() (int, string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lines, strings.Join(c.kept, "")
}

// rssBytes is the process's resident set after a full collection returned what it
// could to the OS.
func rssBytes(t testing.TB) int64 {
	t.Helper()
	runtime.GC()
	debug.FreeOSMemory()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				t.Fatalf("VmRSS line %q: %v", line, err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmRSS in /proc/self/status")
	return 0
}

// flood sends n webhooks to distinct made-up tenant ids over conns keep-alive
// connections, pipelining batches of requests, and returns the count of each status.
// The webhooks are well formed (valid tenant id syntax, headers, a current timestamp,
// a v1 signature of the right length), so every one reaches the config lookup.
func flood(t testing.TB, addr string, run string, first, n, conns int) map[int]int {
	t.Helper()
	const batch = 128
	sig := "v1," + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0x5a}, 32))
	var next atomic.Int64
	next.Store(int64(first))
	end := int64(first + n)
	var mu sync.Mutex
	statuses := map[int]int{}
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	for range conns {
		wg.Go(func() {
			conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
			if err != nil {
				errs <- err
				return
			}
			defer conn.Close()
			br := bufio.NewReaderSize(conn, 64<<10)
			var req []byte
			local := map[int]int{}
			for {
				lo := next.Add(batch) - batch
				if lo >= end {
					break
				}
				hi := min(lo+batch, end)
				ts := strconv.FormatInt(time.Now().Unix(), 10)
				req = req[:0]
				for i := lo; i < hi; i++ {
					id := strconv.FormatInt(i, 36)
					req = fmt.Appendf(req, "POST /webhooks/ghost_%s_%s HTTP/1.1\r\nHost: receiver\r\n"+
						"webhook-id: floodmsg_%s\r\nwebhook-timestamp: %s\r\nwebhook-signature: %s\r\n"+
						"Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}", run, id, id, ts, sig)
				}
				if err := conn.SetDeadline(time.Now().Add(30 * time.Second)); err != nil {
					errs <- err
					return
				}
				if _, err := conn.Write(req); err != nil {
					errs <- err
					return
				}
				for range hi - lo {
					status, err := readResponse(br)
					if err != nil {
						errs <- err
						return
					}
					local[status]++
				}
			}
			mu.Lock()
			for k, v := range local {
				statuses[k] += v
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("flood client: %v", err)
	}
	return statuses
}

// readResponse reads one HTTP/1.1 response with a Content-Length body from br and
// returns its status code, allocating nothing.
func readResponse(br *bufio.Reader) (int, error) {
	line, err := br.ReadSlice('\n')
	if err != nil {
		return 0, err
	}
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.1 ")) {
		return 0, fmt.Errorf("status line %q", line)
	}
	status, err := strconv.Atoi(string(line[9:12]))
	if err != nil {
		return 0, fmt.Errorf("status line %q", line)
	}
	length := -1
	for {
		h, err := br.ReadSlice('\n')
		if err != nil {
			return 0, err
		}
		if len(h) <= 2 {
			break
		}
		if v, ok := bytes.CutPrefix(h, []byte("Content-Length: ")); ok {
			if length, err = strconv.Atoi(string(bytes.TrimSpace(v))); err != nil {
				return 0, fmt.Errorf("header %q", h)
			}
		}
	}
	if length < 0 {
		return 0, fmt.Errorf("response %d without Content-Length", status)
	}
	_, err = br.Discard(length)
	return status, err
}

// TestFloodOfUnknownTenants sends 200,000 webhooks to distinct made-up tenant ids and
// checks what the issue measured: the receiver's memory stays flat (RSS growth under
// 20 MB), config reads stay within the read limit, and the log is a bounded number of
// lines. Every webhook is answered 401 (read, not found) or 503 (over the limit).
func TestFloodOfUnknownTenants(t *testing.T) {
	logs := &lineCounter{}
	started := time.Now()
	e := startWith(t, receiver.Config{}, setup{logs: logs, level: slog.LevelDebug}) // nothing per rejection even at debug
	addr := e.srv.Addr()
	run := strconv.FormatInt(time.Now().UnixNano(), 36)
	const (
		warm  = 5_000
		total = 200_000
		conns = 4
	)

	// Warm up connections, pools and metric series, so what follows is growth.
	flood(t, addr, run, 0, warm, conns)
	rssBefore := rssBytes(t)
	readsBefore := e.configs.reads.Load()
	linesBefore, _ := logs.count()

	floodStart, cpuStart := time.Now(), cputime.Self()
	statuses := flood(t, addr, run, warm, total, conns)
	elapsed, cpu := time.Since(floodStart), cputime.Self()-cpuStart

	rssAfter := rssBytes(t)
	reads := e.configs.reads.Load()
	lines, sample := logs.count()
	// The bucket started full at New, and refills at the rate since.
	readBound := int64(receiver.DefaultConfigReadBurst + receiver.DefaultConfigReadRate*time.Since(started).Seconds())
	growth := rssAfter - rssBefore
	t.Logf("%d webhooks to unknown tenants in %s (%.0f/s), %.1f µs of CPU each (receiver, NATS and client in one process): statuses %v",
		total, elapsed.Round(time.Millisecond), float64(total)/elapsed.Seconds(), float64(cpu.Microseconds())/total, statuses)
	t.Logf("RSS %.1f MB -> %.1f MB (growth %.2f MB); config reads %d during the flood, %d in all (bound %d); log lines %d during the flood, %d in all",
		float64(rssBefore)/(1<<20), float64(rssAfter)/(1<<20), float64(growth)/(1<<20), reads-readsBefore, reads, readBound, lines-linesBefore, lines)

	if statuses[401]+statuses[503] != total {
		t.Errorf("statuses %v: want every one of %d answered 401 or 503", statuses, total)
	}
	if growth >= 20<<20 {
		t.Errorf("RSS grew by %.1f MB, want under 20 MB", float64(growth)/(1<<20))
	}
	if reads > readBound {
		t.Errorf("%d config reads, want at most the limiter's %d", reads, readBound)
	}
	// One line per kind per interval, plus the start-up lines.
	intervals := int(time.Since(started)/receiver.DefaultRejectLogInterval) + 1
	if maxLines := 2*intervals + 4; lines > maxLines {
		t.Errorf("%d log lines under the flood, want at most %d:\n%s", lines, maxLines, sample)
	}
	if strings.Contains(sample, "floodmsg_") {
		t.Errorf("logs carry a webhook-id the caller sent:\n%s", sample)
	}
}
