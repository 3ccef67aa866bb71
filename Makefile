# PMS — make run (the whole platform on embedded defaults) and make test are all you need.
SHELL := /bin/bash
GO ?= go
BIN := bin/pms
PKGS := ./...
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
BENCHTIME ?= 2s

.PHONY: run build test test-race test-race-unit attack screenshots lint fmt vet proto bench bench-search bench-create bench-kafka bench-hop fuzz clean image ops-test faults soak drill

## run: build and run every service in one process on embedded defaults (SQLite under ./data);
## the staff console is the gateway's root
run: build
	@echo "PMS staff console: http://$${PMS_GATEWAY_HTTP_ADDR:-127.0.0.1:4004}/"
	./$(BIN) all

## build: the single pms binary
build:
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN) ./cmd/pms

## test: every test, PostgreSQL included (skipped with a message when unreachable, except under
## CI=true), then the fast unit packages again under the race detector (test-race-unit)
test:
	$(GO) test -count=1 -timeout 15m $(PKGS)
	$(MAKE) test-race-unit

## test-race-unit: the race detector on the fast unit packages (pkg/..., transport/...), the
## part of test-race CI can afford on every run (the process suites in cmd/pms and ops/ run
## whole builds of pms and take long under -race on 2 cores: make test-race covers them).
## It runs -short: tests long for the data they check, not for goroutines meeting, skip or
## shrink there (dbtest.SkipShort), since the plain pass has just run them in full
RACE_UNIT_PKGS := ./pkg/... ./transport/...
test-race-unit:
	$(GO) test -race -short -count=1 -timeout 15m $(RACE_UNIT_PKGS)

## test-race: every package under the race detector (slow on 2 cores)
test-race:
	$(GO) test -race -count=1 -timeout 30m $(PKGS)

## attack: the hostile input suite (also part of make test): 3,881 generated hostile requests (exactly: hostileCases) through the gateway of pms all on PostgreSQL, answers counted by category and status; 0 5xx, 0 hangs, 0 data changed by a rejected request
attack:
	$(GO) test -count=1 -timeout 10m -run TestHostileInput -v ./cmd/pms/

## screenshots: the browser test (TestConsole, headless Debian chromium) saving every screen it
## checks under artifacts/console/, and the patient page the README shows (docs/console-patient.png)
screenshots:
	PMS_CONSOLE_SCREENSHOTS=$(CURDIR)/artifacts/console $(GO) test -count=1 -timeout 5m -run 'TestConsole$$' -v ./cmd/pms/
	cp artifacts/console/patient-billing.png docs/console-patient.png

## lint: gofmt, go vet and staticcheck must all be clean
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	$(GO) run $(STATICCHECK) $(PKGS)

## proto: regenerate the committed protobuf code (protoc + pinned plugins)
proto:
	bash proto/generate.sh

## bench: Go benchmarks (HTTP, gRPC, direct, audit writer; revocation latency p50/p99 over 1,000 revocations; analytics fold rate and lag at 5,000 events/s), a wrk run against `pms patient`, gateway vs direct vs nginx (ops/bench/gateway.sh: `pms all`, the gateway in process, every service its own process), the same hop with nothing of PMS in it (ops/bench/hop.sh), and the gateway with TLS + mTLS off and on (ops/bench/tls.sh), and the create vs pgbench (ops/bench/create.sh)
bench: build
	$(GO) test -run='^$$' -bench=. -skip='BenchmarkRevocationLatency|BenchmarkAnalytics' -benchmem -benchtime=$(BENCHTIME) ./pkg/... ./transport/... | tee bench.out
	$(GO) test -run='^$$' -bench=BenchmarkRevocationLatency -benchtime=1000x ./transport/grpc/ | tee -a bench.out
	$(GO) test -run='^$$' -bench=BenchmarkAnalyticsFold -benchtime=20000x ./transport/kafka/ | tee -a bench.out
	$(GO) test -run='^$$' -bench=BenchmarkAnalyticsKeepPace -benchtime=1x ./transport/kafka/ | tee -a bench.out
	bash ops/bench/wrk-patient.sh
	bash ops/bench/gateway.sh
	IN_PROCESS=1 bash ops/bench/gateway.sh
	SEPARATE=1 bash ops/bench/gateway.sh
	bash ops/bench/hop.sh
	bash ops/bench/tls.sh
	bash ops/bench/create.sh

## bench-create: issue 20 item 4: pgbench on the statements of one POST /patients (ops/bench/create.pgbench) vs POST /patients on `pms all`, direct and through the gateway, same sitting (ops/bench/create.sh; BASELINE=<older pms> adds that build)
bench-create: build
	bash ops/bench/create.sh | tee bench-create.out

## bench-search: req/s and p99 of each search kind and of the first page at SIZES patients (default "1000 100000"; SIZES="1000 100000 1000000" for the million), seeded with pms seed (ops/bench/search.sh)
SIZES ?= 1000 100000
bench-search: build
	SIZES="$(SIZES)" SEEDED="$(SEEDED)" bash ops/bench/search.sh | tee bench-search.out

## bench-hop: issue 20 item 3's floor: the hop with nothing of PMS in it (a bare net/http + grpc-go gateway, net/http's reverse proxy, nginx) in front of a bare upstream, CPU a request of each hop (ops/bench/hop.sh; HOP_FLAGS="-conns=4 -bufs=0" varies grpc-go's connections and buffers)
bench-hop:
	bash ops/bench/hop.sh | tee bench-hop.out

## bench-kafka: the outbox on PostgreSQL and the embedded broker: drain 100k, one event at a time after 300k marked rows, keep pace, latency at 500 events/s (creates) and at 5,000 events/s (straight into the outbox)
bench-kafka:
	$(GO) test -run='^$$' -bench=BenchmarkOutbox -benchtime=1x -timeout 10m ./transport/kafka/ | tee bench-kafka.out

## fuzz: run every fuzz target of every package that has one, one at a time, for FUZZTIME each (their seeds already run in make test)
FUZZTIME ?= 30s
# Minimizing each new interesting input may take go test's default 60s, which on large
# inputs stalls a 30s run at 0 execs/s; a short bound keeps the time for fuzzing.
FUZZMINIMIZETIME ?= 5s
fuzz:
	@for p in $$(grep -rl --include='*_test.go' '^func Fuzz' . | xargs -n1 dirname | sort -u); do \
		for t in $$($(GO) test -list '^Fuzz' $$p/ | grep '^Fuzz'); do \
			echo "== $$p $$t"; \
			$(GO) test -run='^$$' -fuzz="^$$t$$" -fuzztime=$(FUZZTIME) -fuzzminimizetime=$(FUZZMINIMIZETIME) $$p/ || exit 1; done; done

## faults: the fault suite with the long outages (broker 30 s, billing 30 s, PostgreSQL refusing connections 30 s); make test runs it with 10 s / 5 s / 15 s (PostgreSQL 15 s: longer than the audit writer's 5 s retry window)
faults:
	set -o pipefail; FAULTS_BROKER_DOWN=30s FAULTS_BILLING_DOWN=30s FAULTS_PG_DOWN=30s $(GO) test -count=1 -v -timeout 30m ./ops/faults/ | tee faults.out | grep -E '^(=== RUN|--- |ok|FAIL)|FIGURES'

## soak: every service a separate process on PostgreSQL, a mixed load through the gateway at 0.35
## of the measured peak (SOAK_LOAD) for DURATION; per-interval req/s, errors, late, p50/p99,
## each process's RSS and the machine's busy share, printed and written to soak.csv. SOAK_INTERVAL (default 1m), SOAK_PEAK_DURATION (20s),
## SOAK_P99_WINDOW (5m: each operation's p99 over the first and last 5 minutes too);
## raise SOAK_TIMEOUT for runs over 1h45m. SOAK_PATIENTS=N bulk-seeds N patients first,
## SOAK_RETENTION=2m shortens the command/reply/dead-letter retention; SOAK_GOMAXPROCS (default 1,
## 0 for Go's own) is every platform process's GOMAXPROCS; heap and 20 s CPU profiles
## of patient, billing, analytics, the gateway and auth (minute 2, end) go next to soak.csv.
DURATION ?= 10m
SOAK_TIMEOUT ?= 2h
soak:
	SOAK_DURATION=$(DURATION) SOAK_CSV=$(CURDIR)/soak.csv $(GO) test -count=1 -run '^TestSoak$$' -v -timeout $(SOAK_TIMEOUT) ./ops/soak/

## image: the container image (needs a Docker engine; not run on our machines): docker build -f ops/Dockerfile
IMAGE ?= pms:latest
image:
	docker build -f ops/Dockerfile -t $(IMAGE) .

## ops-test: promtool checks and rule unit tests, amtool, the compose file, the static build, a live Prometheus scraping pms all, and alert delivery (Prometheus → Alertmanager → webhook)
ops-test:
	promtool check config prometheus.yml ops/prometheus/local.yml
	promtool check rules ops/prometheus/rules.yml
	promtool test rules ops/prometheus/rules_test.yml
	amtool check-config ops/alertmanager/alertmanager.yml
	$(GO) test -count=1 -run 'TestCompose|TestPromtool|TestImageBuildStatic|TestOpsMetricsAndPrometheus|TestHealthCommand' ./cmd/pms/
	$(GO) test -count=1 -v -run TestAlertDelivery ./ops/alerts/

## drill: the PostgreSQL point-in-time restore drill (root, pgbackrest): its own cluster, an encrypted pgBackRest repository, the platform under load, a named restore point, a disaster, the restore; prints RTO, RPO and sizes
drill:
	set -o pipefail; $(GO) test -count=1 -v -run TestPointInTimeRestore ./ops/restore/ | grep -E '^(=== RUN|--- |ok|FAIL)|FIGURES|full backup'

clean:
	rm -rf bin data bench.out bench-create.out bench-hop.out bench-kafka.out faults.out soak.csv heap-*.pb.gz cpu-*.pb.gz
