# edgehook. `make run` starts everything on embedded defaults; `make test` runs every test.
GO ?= go
BIN := $(CURDIR)/bin
NATS_SERVER_VERSION := v2.15.2
NATSCLI_VERSION := v0.5.0
FUZZTIME ?= 10s
# Inputs that reach new code are minimized before they join the corpus; bounding that keeps
# a short run from ending inside a minimization (reported as "context deadline exceeded").
FUZZMINIMIZETIME ?= 1s
export PATH := $(BIN):$(PATH)
# Debian's headless Chromium, for the console's browser tests.
CHROMIUM := /usr/bin/chromium
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

.PHONY: all build run run-mesh test test-vault tools unit fuzz vet bench bench-go clean

all: build

## build: compile bin/edgehook
build:
	$(GO) build -o $(BIN)/edgehook ./cmd/edgehook

## run: start the whole system (`edgehook up`) on its embedded defaults
run: build
	$(BIN)/edgehook up

## run-mesh: a 3-node hub and edges a and b on loopback, as real nats-server processes (from
## `make tools`), with their gateways and cuttable leaf links (`edgehook mesh`; see the README)
run-mesh: build
	$(BIN)/edgehook mesh

## tools: install the pinned nats-server and nats CLI into bin/, the npm test packages, and
## Debian's chromium (for the console's browser tests) when it is missing
tools: $(BIN)/.nats-server-$(NATS_SERVER_VERSION) $(BIN)/.nats-$(NATSCLI_VERSION) node_modules/.installed $(CHROMIUM)

$(BIN)/.nats-server-$(NATS_SERVER_VERSION):
	GOBIN=$(BIN) $(GO) install github.com/nats-io/nats-server/v2@$(NATS_SERVER_VERSION)
	touch $@

$(BIN)/.nats-$(NATSCLI_VERSION):
	GOBIN=$(BIN) $(GO) install github.com/nats-io/natscli/nats@$(NATSCLI_VERSION)
	touch $@

# The package lists are refreshed only when the install cannot find the package.
$(CHROMIUM):
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y chromium || { $(SUDO) apt-get update && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; }

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

## test: vet, every test, and a short run of each fuzz target
test: tools vet unit fuzz

vet:
	$(GO) vet ./...

# The parking test measures ten tenants' throughput on real processes against its own
# baseline (at least 90%, the acceptance of the issue that asked for it), so it runs
# alone, after the rest: beside the other packages' tests the two cores were short for
# the whole system, in its baseline too.
PARKING_TEST = ^TestParkingDeadEndpointDoesNotStallOthers$$
unit:
	$(GO) test -race -count=1 -timeout 25m -skip '$(PARKING_TEST)' ./...
	$(GO) test -race -count=1 -timeout 20m -run '$(PARKING_TEST)' ./cmd/edgehook

## test-vault: the Vault integration suite (client, auth, cache, policies, `setup vault`) against
## the real Vault or OpenBao at VAULT_ADDR; VAULT_TOKEN (root or equivalent) is used only for
## setup, and everything the tests create is unique to them and removed afterwards
test-vault:
	@if [ -z "$$VAULT_ADDR" ] || [ -z "$$VAULT_TOKEN" ]; then \
		echo "test-vault: set VAULT_ADDR and VAULT_TOKEN (root or equivalent) to the Vault or OpenBao to test against" >&2; \
		exit 2; \
	fi
	$(GO) test -count=1 ./vault/...

fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzIngestBody$$' -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINIMIZETIME) ./gateway
	$(GO) test -run '^$$' -fuzz '^FuzzBatchBody$$' -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINIMIZETIME) ./gateway
	$(GO) test -run '^$$' -fuzz '^FuzzVerify$$' -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINIMIZETIME) ./webhook
	$(GO) test -run '^$$' -fuzz '^FuzzReceiverRequest$$' -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINIMIZETIME) ./receiver
	$(GO) test -run '^$$' -fuzz '^FuzzAdminRequest$$' -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINIMIZETIME) ./admin

## bench: the standard benchmark set (`edgehook bench --scenario all`) on a self-started
## system, each figure next to its ceiling measured in the same run; prints the table
BENCH_DURATION ?= 10s
bench: build
	$(BIN)/edgehook bench --scenario all --duration $(BENCH_DURATION)

## bench-go: the go benchmarks of the hot paths
bench-go:
	$(GO) test -run '^$$' -bench . -benchtime 2s ./gateway ./worker ./receiver ./webhook

clean:
	rm -rf $(BIN) node_modules
