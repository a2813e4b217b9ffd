package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
)

// command is one edgehook subcommand.
type command struct {
	summary string
	run     func(ctx context.Context, env *environment, args []string) error
}

// environment is what every command gets from main: the process's environment and
// output streams, so tests can run commands in-process.
type environment struct {
	getenv func(string) string
	stdout io.Writer
	stderr io.Writer
}

func commands() map[string]command {
	return map[string]command{
		"up":       {"run everything in one process on an embedded NATS server", runUp},
		"gateway":  {"serve the tenant HTTP API (ingest, event status); holds no Vault token", runGateway},
		"admin":    {"serve the admin API (tenants, webhook configuration) on its own listener", runAdmin},
		"worker":   {"deliver events as signed webhooks", runWorker},
		"receiver": {"verify incoming webhooks and publish them to RECEIVED", runReceiver},
		"dlq":      {"dead-letter events that exhausted their attempts; `dlq replay` replays them", runDLQ},
		"setup":    {"create or update the JetStream layout (setup nats) or the Vault mount, policies and roles (setup vault)", runSetup},
		"tenant":   {"manage tenants through the admin API (create, get, update, rotate-secret)", runTenant},
		"bench":    {"measure ingest, delivery, e2e latency and fairness against this machine's ceilings", runBench},
		"migrate":  {"import tenants from the legacy DynamoDB tables (migrate dynamodb)", migrateRun},
		"mesh":     {"run a 3-node hub and edges a and b on loopback as real nats-server processes, with cuttable leaf links", runMesh},
	}
}

// run is the whole program: it dispatches args[1] to a subcommand.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	env := &environment{getenv: getenv, stdout: stdout, stderr: stderr}
	cmds := commands()
	if len(args) < 2 || args[1] == "-h" || args[1] == "--help" || args[1] == "help" {
		printUsage(stdout, cmds)
		if len(args) < 2 {
			return usageError{errors.New("no command given")}
		}
		return nil
	}
	cmd, ok := cmds[args[1]]
	if !ok {
		printUsage(stderr, cmds)
		return usageError{fmt.Errorf("unknown command %q", args[1])}
	}
	err := cmd.run(ctx, env, args[2:])
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	return err
}

func printUsage(w io.Writer, cmds map[string]command) {
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	b.WriteString("usage: edgehook <command> [flags]\n\ncommands:\n")
	for _, n := range names {
		fmt.Fprintf(&b, "  %-9s %s\n", n, cmds[n].summary)
	}
	b.WriteString("\n`edgehook <command> -h` lists a command's flags and their environment variables.\n")
	io.WriteString(w, b.String())
}

// exitCode is 2 for usage mistakes, 1 for everything else.
func exitCode(err error) int {
	var u usageError
	if errors.As(err, &u) {
		return 2
	}
	return 1
}

// newLogger returns the JSON logger services write to stderr.
func newLogger(w io.Writer, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, usageError{fmt.Errorf("EDGEHOOK_LOG_LEVEL=%q: want debug, info, warn or error", level)}
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l})), nil
}
