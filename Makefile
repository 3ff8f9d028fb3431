SHELL := /bin/bash
GO ?= go
BBOLT_VERSION := $(shell $(GO) list -m -f '{{.Version}}' go.etcd.io/bbolt 2>/dev/null)
BBOLT := bin/bbolt
DOCKER_COMPOSE := $(shell docker compose version >/dev/null 2>&1 && echo "docker compose" || echo docker-compose)
# The course's compose file (generar-compose.sh writes it; committed as
# generated for 5). make docker-compose-up REPLICAS=3 writes a replicated
# central's file of its own, REPLICATED_FILE, and the tracked one stays as
# it is; down and logs use the replicated file while it exists.
COMPOSE_FILE ?= docker-compose-dev.yaml
REPLICATED_FILE := .data/docker-compose-replicas.yaml
ACTIVE_FILE = $(if $(wildcard $(REPLICATED_FILE)),$(REPLICATED_FILE),$(COMPOSE_FILE))
COMPOSE = $(DOCKER_COMPOSE) --project-directory $(CURDIR) -f $(ACTIVE_FILE)
# Mutual TLS for make demo and make docker-compose-up; TLS=0 turns it off.
TLS ?= 1
# make docker-compose-up's override: the admin listener (published on the
# host's 127.0.0.1:ADMIN_PORT, behind the token in .data/admin-token), agencies
# that start at once (no start.delay), and mutual TLS.
OVERRIDE := .data/docker-compose-override.yaml
ADMIN_PORT ?= 8080
ADMIN_TOKEN_FILE := .data/admin-token
PKI := .data/pki
# The store folder is mounted into the central, which runs as this user.
export TP0_UID := $(shell id -u)
export TP0_GID := $(shell id -g)
STORE ?= .data/server/bets.db

.PHONY: all build certs demo test test-short lint cross bench-tls bench-admin bench-swarm bench-cluster bench-cluster-quota bench-catchup bench-restart fuzz chaos bench bench-scale inspect \
	export branches docker-image docker-compose-up docker-compose-down docker-compose-logs fmt vet

all: build

VERSION := $(shell git describe --always --dirty 2>/dev/null || echo dev)
build:
	CGO_ENABLED=0 $(GO) build -ldflags "-X main.version=$(VERSION)" -o bin/server ./server
	CGO_ENABLED=0 $(GO) build -ldflags "-X main.version=$(VERSION)" -o bin/agency ./cmd/agency

# The whole system on this machine, no Docker: central + 5 agencies on 127.0.0.1,
# over mutual TLS (TLS=0: plaintext). KEEP=1 keeps the central up after the
# round, with its status page on DEMO_ADMIN (default 127.0.0.1:8080 with KEEP=1).
# REPLICAS=3: a replicated central instead, two rounds, the leader killed
# (-9) mid-round in each (scripts/demo-cluster.sh; mutual TLS between
# replicas and agencies, TLS=0: plaintext with CLUSTER_INSECURE=true).
KEEP ?= 0
DEMO_ADMIN ?=
REPLICAS ?= 1
demo: build
	@if [ "$(REPLICAS)" -gt 1 ]; then TLS=$(TLS) REPLICAS=$(REPLICAS) scripts/demo-cluster.sh; \
	else TLS=$(TLS) KEEP=$(KEEP) DEMO_ADMIN=$(DEMO_ADMIN) scripts/demo.sh; fi

# Delivery: branches ej1..ej8 at HEAD, each differing from it only in
# generar-compose.sh's EXERCISE line (the course's tests switch to them).
branches:
	scripts/branches.sh

# The course's bets.csv and the winners of a store file, read-only:
# make export STORE=.data/server/bets.db CSV=bets.csv WINNERS=winners.csv
CSV ?= bets.csv
WINNERS ?= winners.csv
export: build
	bin/server export --db $(STORE) --csv $(CSV) --winners $(WINNERS)

# Keys and certificates for mutual TLS in $(PKI): a CA, the central's pair,
# one per agency (AGENCIES, default 5) and, with REPLICAS=N above 1, one per
# replica (central-1..central-N); kept when valid, so it adds new ones.
AGENCIES ?= 5
certs:
	$(GO) run ./scripts/certs -out $(PKI) -agencies $(AGENCIES) $$([ "$(REPLICAS)" -gt 1 ] && echo -replicas $(REPLICAS))

# The test command CI runs (see README): formatting, the cross-builds, vet,
# staticcheck, then every test under the race detector: the end-to-end
# package last and alone, so that the course's replays read compose's logs
# on a machine no other package loads (compose interleaves containers' lines
# as they arrive; under load it can reorder lines a few ms apart).
test: lint
	$(GO) test -race -timeout 30m $$($(GO) list ./... | grep -v /e2e$$)
	$(GO) test -race -timeout 30m ./e2e

# The same without the Docker, storm and other long end-to-end tests.
test-short: lint
	$(GO) test -race -short ./...

# The tree (no tracked binary, store or file over 1 MiB: scripts/checktree),
# formatting (fails on any unformatted file), the cross-builds, vet and
# staticcheck at a pinned version (installed into bin/).
STATICCHECK_VERSION := v0.8.2
STATICCHECK := bin/staticcheck-$(STATICCHECK_VERSION)
lint: cross $(STATICCHECK)
	$(GO) run ./scripts/checktree
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
	$(GO) test -run '^$$' -fuzz FuzzFrameReader -fuzztime $(FUZZTIME) ./protocol
	$(GO) test -run '^$$' -fuzz FuzzSession -fuzztime $(FUZZTIME) ./central
	$(GO) test -run '^$$' -fuzz FuzzOpenDamaged -fuzztime $(FUZZTIME) ./store
	$(GO) test -run '^$$' -fuzz FuzzCannotWin -fuzztime $(FUZZTIME) ./store

# The full kill -9 set: 5 runs x 5 kill points of one central, CHAOS_COUNT
# times (make test runs one run of 5 points), and SEEDS randomized fault
# schedules against a cluster of three (make test runs two); a failed seed
# is printed with the command that replays it.
CHAOS_COUNT ?= 2
SEEDS ?= 20
chaos:
	TP0_CHAOS=1 TP0_CLUSTER_SEED_COUNT=$(SEEDS) $(GO) test -race -timeout 60m -count=$(CHAOS_COUNT) -run 'Chaos|Hostile' -v ./e2e 2>&1 | grep -E '^(=== RUN|\s*---|ok|FAIL|PASS)|chaos:|not reached'

fmt:
	gofmt -l -w .

vet:
	$(GO) vet ./...

# The bbolt CLI at the version in go.mod, installed into bin/ (go.mod is untouched).
$(BBOLT): go.mod
	GOBIN=$(CURDIR)/bin $(GO) install go.etcd.io/bbolt/cmd/bbolt@$(BBOLT_VERSION)

# The store's buckets, per-agency state and a few rows, read with the bbolt CLI.
# A running central holds the file's lock: bin/server export says so within
# seconds, where the bbolt CLI would wait for ever.
inspect: $(BBOLT) build
	@test -f $(STORE) || { echo "inspect: no store at $(STORE)"; exit 1; }
	@bin/server export --db $(STORE) --check
	@echo "== buckets"; $(BBOLT) buckets $(STORE)
	@for b in agencies finished winners delivered meta; do echo "== $$b"; \
		$(BBOLT) keys $(STORE) $$b | while read -r k; do printf '%s = %s\n' "$$k" "$$($(BBOLT) get $(STORE) $$b $$k)"; done; done
	@echo "== bets: $$(bin/server export --db $(STORE) --check | sed -n 's/.*, \([0-9][0-9]*\) bets, .*/\1/p') stored in $$($(BBOLT) keys $(STORE) bets | wc -l) batches; the first one's rows:"
	@$(BBOLT) keys $(STORE) bets | head -1 | while read -r k; do printf '%s =\n' "$$k"; $(BBOLT) get --format bytes $(STORE) bets "$$k" | head -5; done

# The course's images and names: server:latest and client:latest (an agency).
docker-image:
	docker build --build-arg VERSION=$(VERSION) -f ./server/Dockerfile -t "server:latest" .
	docker build --build-arg VERSION=$(VERSION) -f ./client/Dockerfile -t "client:latest" .

# Prepares .data/agency-N.csv for the agencies of $(COMPOSE_FILE), builds the
# images and starts everything in the background with the operator's
# override (REPLICAS=3: a replicated central, server, central2 and central3,
# over mutual TLS between them too, in $(REPLICATED_FILE): the tracked file
# is left as it is). The override: mutual TLS (TLS=0: plaintext, as the
# course's own tests run it)
# and the status page on http://127.0.0.1:$(ADMIN_PORT) (user any, password
# the token in .data/admin-token).
docker-compose-up: docker-image
	@test -f $(COMPOSE_FILE) || { echo "no $(COMPOSE_FILE): run ./generar-compose.sh $(COMPOSE_FILE) N"; exit 1; }
	n=$$(grep -c 'container_name: client' $(COMPOSE_FILE) || true); \
	rm -f $(REPLICATED_FILE); \
	if [ "$(REPLICAS)" -gt 1 ]; then mkdir -p .data && ./generar-compose.sh $(REPLICATED_FILE) $$n --replicas $(REPLICAS) || exit 1; fi && \
	scripts/prepare-data.sh $$n && \
	if [ "$(TLS)" = 1 ]; then $(GO) run ./scripts/certs -out $(PKI) -agencies $$n -replicas $(REPLICAS); fi && \
	$(GO) run ./scripts/compose -override $$([ "$(TLS)" = 1 ] && echo -tls) -admin-port $(ADMIN_PORT) -replicas $(REPLICAS) $(OVERRIDE) $$n
	mkdir -p .data/server
	@test -s $(ADMIN_TOKEN_FILE) || { umask 077; od -An -N24 -tx1 /dev/urandom | tr -d ' \n' > $(ADMIN_TOKEN_FILE); }
	f=$(COMPOSE_FILE); if [ "$(REPLICAS)" -gt 1 ]; then f=$(REPLICATED_FILE); fi; \
	TP0_ADMIN_TOKEN=$$(cat $(ADMIN_TOKEN_FILE)) $(DOCKER_COMPOSE) --project-directory $(CURDIR) -f $$f -f $(OVERRIDE) up -d --build || { \
		echo "docker-compose-up: failed; if host port $(ADMIN_PORT) is in use, pick another: make docker-compose-up ADMIN_PORT=8081" >&2; exit 1; }
	@echo "status page: http://127.0.0.1:$(ADMIN_PORT)/ (any user, password: the token in $(ADMIN_TOKEN_FILE))"

# With many agencies the engine may still hold an endpoint on the network
# when down removes it: a second down, a moment later, finishes the job.
docker-compose-down:
	$(COMPOSE) stop -t 1
	$(COMPOSE) down || { sleep 2; $(COMPOSE) down; }
	rm -f $(REPLICATED_FILE)

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
	$(GO) run ./scripts/bench -mode swarm -hold -agencies 9999 -bets 100

# One central against a cluster of 3 (processes on this machine), with
# raft's log in raft-wal and in raft-boltdb: the official dataset's size
# over 5 agencies, 10 × 20,000 and 1,000 agencies; then the failover time
# (kill -9 of the leader → new leader → first ack, median of 5).
bench-cluster: build
	$(GO) run ./scripts/bench -mode cluster -shapes 5x0,10x20000,1000x0 -logstores wal,boltdb -failovers 5 -replicas 3

# The same shapes with each central in a CPU cgroup of its own (0.25 of a
# core each, as on a machine of its own; the agencies in one of 0.75): one
# central against three replicas at equal per-node CPU, and each node's CPU
# per stored bet. Needs root (cgroup v1 cpu or v2).
bench-cluster-quota: build
	$(GO) run ./scripts/bench -mode cluster -cgroups -shapes 5x0,10x40000,1000x0 -logstores wal -runs 3

# A follower stopped (SIGTERM) for 20 s while 10 agencies send 2 M bets,
# started again: exec to the leader's applied index, 5 runs and the median.
bench-catchup: build
	$(GO) run ./scripts/bench -mode catchup -agencies 10 -bets 200000 -down 20s -runs 5

# A replica's restarts with a large store (RESTART_AGENCIES x 1,000 bets;
# 10,000: 10 M bets): exec to serving after a clean stop (the store trusted)
# and after kill -9 (rebuilt from the snapshot and the log), and the longest
# apply while snapshots were taken.
RESTART_AGENCIES ?= 10000
bench-restart: build
	$(GO) run ./scripts/bench -mode restart -agencies $(RESTART_AGENCIES) -bets 1000

# Growth with agencies and bets (generated data), as a Markdown table.
bench-scale: build
	$(GO) run ./scripts/bench -mode scale -runs 1
