// Command edgehook is the one binary of the edgehook webhook delivery mesh.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
)

// gcPercent is the GOGC edgehook runs with when the environment sets none. Under `up`
// the live heap is mostly the NATS server's recent message blocks (50–100 MB at 5,000
// events/s), and at the runtime's default of 100 its collections made most of the
// e2e p99 at that rate (20–25 ms, against 14 ms at 200). The price: the heap may grow
// to three times the live heap instead of twice.
const gcPercent = 200

func main() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args, os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "edgehook:", err)
		os.Exit(exitCode(err))
	}
}
