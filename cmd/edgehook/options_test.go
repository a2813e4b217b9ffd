package main

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/edgehook/edgehook/bench/cputime"
	"github.com/edgehook/edgehook/natsconf"
	"github.com/edgehook/edgehook/natsconf/natsproc"
	"github.com/edgehook/edgehook/natsconf/natstest"
)

// TestUpComponentsReachTheEmbeddedServerInProcess: the components of `up` talk to its
// embedded server over an in-memory connection, not loopback TCP (fewer syscalls per
// event), as the same least-privilege users: the URL they are given has nothing
// listening, yet they connect with their own password and not with a wrong one, and
// their permissions still hold.
func TestUpComponentsReachTheEmbeddedServerInProcess(t *testing.T) {
	ns, creds := startTestServer(t)
	nowhere := fmt.Sprintf("nats://127.0.0.1:%d", natsproc.FreePort(t))
	log := slog.New(slog.DiscardHandler)

	gw := natsOptions{url: nowhere, passwords: creds, inProcess: ns}
	nc, _, err := gw.connect(string(natsconf.Gateway), log)
	if err != nil {
		t.Fatalf("gateway over the in-process connection: %v", err)
	}
	defer nc.Close()
	if err := nc.Flush(); err != nil {
		t.Fatalf("flush: %v", err)
	}
	// The gateway may not read another component's inbox: the server refuses the
	// subscription, as it does over TCP.
	denied := make(chan error, 1)
	nc.SetErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		select {
		case denied <- err:
		default:
		}
	})
	if _, err := nc.SubscribeSync(natsconf.InboxPrefix(natsconf.Worker) + ".x"); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-denied:
		if !errors.Is(err, nats.ErrPermissionViolation) && !strings.Contains(strings.ToLower(err.Error()), "permission") {
			t.Errorf("subscribing to the worker's inbox: %v, want a permissions violation", err)
		}
	case <-time.After(10 * time.Second):
		t.Error("the gateway subscribed to the worker's inbox without a permissions violation")
	}

	wrong := natsOptions{url: nowhere, passwords: natsconf.Credentials{string(natsconf.Gateway): "not-the-password"}, inProcess: ns}
	if nc, _, err := wrong.connect(string(natsconf.Gateway), log); err == nil {
		nc.Close()
		t.Error("connected in-process with a wrong password")
	}
	// Without the in-process server the same options need the URL, which has nothing.
	if nc, _, err := (natsOptions{url: nowhere, passwords: creds}).connect(string(natsconf.Gateway), log); err == nil {
		nc.Close()
		t.Errorf("connected to %s, where nothing listens", nowhere)
	}
}

// TestInProcessConnectionsWriteWithoutDeadlineAndStillStop: the in-process connections
// of `up` write without the flusher's write deadline (TCP connections keep it), and a
// component publishing flat out when the embedded server stops is not left hanging:
// its writes fail, and closing its connection returns.
func TestInProcessConnectionsWriteWithoutDeadlineAndStillStop(t *testing.T) {
	ns, creds := startTestServer(t)
	log := slog.New(slog.DiscardHandler)

	tcp, _, err := (natsOptions{url: ns.ClientURL(), passwords: creds}).connect(string(natsconf.Gateway), log)
	if err != nil {
		t.Fatal(err)
	}
	defer tcp.Close()
	if tcp.Opts.FlusherTimeout != nats.DefaultFlusherTimeout {
		t.Errorf("TCP connection's flusher timeout %s, want the default %s", tcp.Opts.FlusherTimeout, nats.DefaultFlusherTimeout)
	}
	nc, _, err := (natsOptions{url: ns.ClientURL(), passwords: creds, inProcess: ns}).connect(string(natsconf.Gateway), log)
	if err != nil {
		t.Fatal(err)
	}
	if nc.Opts.FlusherTimeout != 0 {
		t.Errorf("in-process connection's flusher timeout %s, want none", nc.Opts.FlusherTimeout)
	}
	if err := nc.Flush(); err != nil {
		t.Fatalf("flush over the in-process connection: %v", err)
	}

	// Publish flat out (the gateway may publish events) while the server stops.
	stop := make(chan struct{})
	published := make(chan int)
	go func() {
		n, payload := 0, make([]byte, 4096)
		defer func() { published <- n }()
		for n < 1_000_000 {
			select {
			case <-stop:
				return
			default:
			}
			if err := nc.Publish(natsconf.EventSubject("t1"), payload); err != nil {
				return
			}
			n++
		}
	}()
	time.Sleep(50 * time.Millisecond)
	ns.Shutdown()
	ns.WaitForShutdown()
	closed := make(chan struct{})
	go func() { nc.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("closing the in-process connection hangs after the server stopped")
	}
	close(stop)
	if n := <-published; n == 0 {
		t.Error("nothing was published before the server stopped")
	}
}

// BenchmarkInProcessRequest measures a request and its reply over in-process
// connections to the embedded server, with nats.go's default flusher write deadline
// and without it (as `up` connects), reporting the process's CPU time per request.
func BenchmarkInProcessRequest(b *testing.B) {
	for _, tc := range []struct {
		name    string
		timeout time.Duration
	}{{"flusher-deadline", nats.DefaultFlusherTimeout}, {"no-deadline", 0}} {
		b.Run(tc.name, func(b *testing.B) {
			ns, creds := startTestServer(b)
			conn := func() *nats.Conn {
				nc, err := nats.Connect(ns.ClientURL(), nats.InProcessServer(ns), nats.FlusherTimeout(tc.timeout),
					nats.UserInfo(natsconf.OperatorUser, creds[natsconf.OperatorUser]))
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(nc.Close)
				return nc
			}
			responder, requester := conn(), conn()
			if _, err := responder.Subscribe("bench.echo", func(m *nats.Msg) { _ = m.Respond(m.Data) }); err != nil {
				b.Fatal(err)
			}
			if err := responder.Flush(); err != nil {
				b.Fatal(err)
			}
			payload := make([]byte, 512)
			b.ReportAllocs()
			cpu0 := cputime.Self()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := requester.Request("bench.echo", payload, 5*time.Second); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(cputime.Self()-cpu0)/1e3/float64(b.N), "cpu-µs/op")
		})
	}
}

// startTestServer starts an embedded single server with a user per component and the
// operator, each with its own password (returned), stopped when the test ends.
func startTestServer(t testing.TB) (*server.Server, natsconf.Credentials) {
	t.Helper()
	creds := natsconf.Credentials{natsconf.OperatorUser: "operator-password-0123"}
	for _, c := range natsconf.Components {
		creds[string(c)] = string(c) + "-password-0123"
	}
	spec, err := natsconf.SingleServer("127.0.0.1", -1, t.TempDir(), creds)
	if err != nil {
		t.Fatal(err)
	}
	return natstest.EmbeddedServer(t, spec), creds
}
