SHELL := /bin/bash
GO ?= go
BBOLT_VERSION := $(shell $(GO) list -m -f '{{.Version}}' go.etcd.io/bbolt 2>/dev/null)
BBOLT := bin/bbolt
DOCKER_COMPOSE := $(shell docker compose version >/dev/null 2>&1 && echo "docker compose" || echo docker-compose)
COMPOSE_FILE ?= docker-compose-dev.yaml
COMPOSE := $(DOCKER_COMPOSE) --project-directory $(CURDIR) -f $(COMPOSE_FILE)
# Mutual TLS for make demo and make docker-compose-up; TLS=0 turns it off.
TLS ?= 1
TLS_OVERRIDE := .data/docker-compose-tls.yaml
PKI := .data/pki
# The store folder is mounted into the central, which runs as this user.
export TP0_UID := $(shell id -u)
export TP0_GID := $(shell id -g)
STORE ?= .data/server/bets.db

.PHONY: all build certs demo test test-short lint cross bench-tls bench-admin bench-swarm test-short fuzz chaos bench bench-scale inspect \
	docker-image docker-compose-up docker-compose-down docker-compose-logs fmt vet

all: build

build:
	CGO_ENABLED=0 $(GO) build -o bin/server ./server
	CGO_ENABLED=0 $(GO) build -o bin/agency ./cmd/agency

# The whole system on this machine, no Docker: central + 5 agencies on 127.0.0.1,
# over mutual TLS (TLS=0: plaintext).
demo: build
	TLS=$(TLS) scripts/demo.sh

# Keys and certificates for mutual TLS in $(PKI): a CA, the central's pair and
# one per agency (AGENCIES, default 5); kept when valid, so it adds new agencies.
AGENCIES ?= 5
certs:
	$(GO) run ./scripts/certs -out $(PKI) -agencies $(AGENCIES)

# The test command CI runs (see README): formatting, the cross-builds, vet,
# staticcheck, then every test under the race detector.
test: lint
	$(GO) test -race -timeout 30m ./...

# The same without the Docker, storm and other long end-to-end tests.
test-short: lint
	$(GO) test -race -short ./...

# Formatting (fails on any unformatted file), the cross-builds, vet and
# staticcheck at a pinned version (installed into bin/).
STATICCHECK_VERSION := v0.8.2
STATICCHECK := bin/staticcheck-$(STATICCHECK_VERSION)
lint: cross $(STATICCHECK)
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
		if [ -n "$$out" ]; then echo "gofmt: not formatted (run make fmt):"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(STATICCHECK) ./...

$(STATICCHECK):
	GOBIN=$(CURDIR)/bin $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	mv bin/staticcheck $@

# Every package builds where students work: macOS (Apple and Intel) and Windows.
cross:
	GOOS=darwin GOARCH=arm64 CGO_ENABLED=0 $(GO) build -o /dev/null ./...
	GOOS=darwin GOARCH=amd64 CGO_ENABLED=0 $(GO) build -o /dev/null ./...
	GOOS=windows GOARCH=amd64 CGO_ENABLED=0 $(GO) build -o /dev/null ./...

# Each fuzz target for FUZZTIME (their seed corpora also run in make test).
FUZZTIME ?= 60s
fuzz:
	$(GO) test -run '^$$' -fuzz FuzzReader -fuzztime $(FUZZTIME) ./protocol
	$(GO) test -run '^$$' -fuzz FuzzSession -fuzztime $(FUZZTIME) ./server

# The full kill -9 set: 5 runs x 5 kill points of the central, CHAOS_COUNT times
# (make test runs one run of 5 points).
CHAOS_COUNT ?= 2
chaos:
	TP0_CHAOS=1 $(GO) test -race -count=$(CHAOS_COUNT) -run 'Chaos|Hostile' -v ./e2e 2>&1 | grep -E '^(=== RUN|---|ok|FAIL|PASS)|chaos:|not reached'

fmt:
	gofmt -l -w .

vet:
	$(GO) vet ./...

# The bbolt CLI at the version in go.mod, installed into bin/ (go.mod is untouched).
$(BBOLT): go.mod
	GOBIN=$(CURDIR)/bin $(GO) install go.etcd.io/bbolt/cmd/bbolt@$(BBOLT_VERSION)

# The store's buckets, per-agency state and a few rows, read with the bbolt CLI.
inspect: $(BBOLT)
	@test -f $(STORE) || { echo "inspect: no store at $(STORE)"; exit 1; }
	@echo "== buckets"; $(BBOLT) buckets $(STORE)
	@for b in agencies finished winners delivered meta; do echo "== $$b"; \
		$(BBOLT) keys $(STORE) $$b | while read -r k; do printf '%s = %s\n' "$$k" "$$($(BBOLT) get $(STORE) $$b $$k)"; done; done
	@echo "== bets: $$($(BBOLT) keys $(STORE) bets | wc -l) stored; first rows:"
	@$(BBOLT) keys $(STORE) bets | head -3 | while read -r k; do printf '%s = %s\n' "$$k" "$$($(BBOLT) get $(STORE) bets $$k)"; done

docker-image:
	docker build -f ./server/Dockerfile -t "server:latest" .
	docker build -f ./agency/Dockerfile -t "agency:latest" .

# Prepares .data/agency-N.csv for the agencies of $(COMPOSE_FILE), builds the
# images and starts everything in the background, over mutual TLS (TLS=0:
# plaintext, as the course's own tests run it).
docker-compose-up: docker-image
	@test -f $(COMPOSE_FILE) || { echo "no $(COMPOSE_FILE): run ./generar-compose.sh $(COMPOSE_FILE) N"; exit 1; }
	n=$$(grep -c 'container_name: client' $(COMPOSE_FILE) || true); \
	scripts/prepare-data.sh $$n && \
	if [ "$(TLS)" = 1 ]; then \
		$(GO) run ./scripts/certs -out $(PKI) -agencies $$n && $(GO) run ./scripts/compose -tls $(TLS_OVERRIDE) $$n; \
	else rm -f $(TLS_OVERRIDE); fi
	mkdir -p .data/server
	$(COMPOSE) $$(test -f $(TLS_OVERRIDE) && echo -f $(TLS_OVERRIDE)) up -d --build

# With many agencies the engine may still hold an endpoint on the network
# when down removes it: a second down, a moment later, finishes the job.
docker-compose-down:
	$(COMPOSE) stop -t 1
	$(COMPOSE) down || { sleep 2; $(COMPOSE) down; }

docker-compose-logs:
	$(COMPOSE) logs -f

# End-to-end figures on the official dataset (else generated data of its size),
# side by side with a minimal reference pipeline; BENCH_RUNS repetitions.
BENCH_RUNS ?= 5
bench: build
	$(GO) test -run '^$$' -bench . -benchmem ./protocol ./store ./agency
	$(GO) run ./scripts/bench -mode flow -runs $(BENCH_RUNS)

# make bench's end-to-end run with mutual TLS on and off, side by side.
bench-tls: build
	$(GO) run ./scripts/bench -mode flow -tls -runs $(BENCH_RUNS)

# make bench's end-to-end run with the admin listener on and scraped every second, and off.
bench-admin: build
	$(GO) run ./scripts/bench -mode flow -admin -runs $(BENCH_RUNS)

# A national network: 1 to 10,000 agencies as goroutines of one process (the
# agency package's own code), 1,000 bets each, against the real central; then
# the same with the central killed (-9) and restarted mid-run.
SWARM ?= 1,100,1000,10000
SWARM_KILL ?= 1000,10000
bench-swarm: build
	$(GO) run ./scripts/bench -mode swarm -agencies $(SWARM) -bets 1000
	$(GO) run ./scripts/bench -mode swarm -agencies $(SWARM_KILL) -bets 1000 -kill-after 2s
	$(GO) run ./scripts/bench -mode swarm -hold -agencies 10000 -bets 100

# Growth with agencies and bets (generated data), as a Markdown table.
bench-scale: build
	$(GO) run ./scripts/bench -mode scale -runs 1
