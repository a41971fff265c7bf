# simtrail — make run (whole system, embedded JetStream + SQLite, :8080),
# make test (whole suite), make build (bin/simtrail), make bench (SPEC §9
# figures; bench-go: Go micro-benchmarks), make proto,
# make lint, make tidy, make fuzz (short fuzzing of every provider and query-parameter parser, the ack reader and the query scanner),
# make faults (fault-injection suite: real processes, SIGKILL, full disks,
# hostile clients; FAULTS_SHORT=1 is the CI form; needs root for tmpfs).

MODULES := proto pkg services/alertwatcher services/ingest services/timeline services/thresholds services/simtrail
GO      ?= go
# go-sqlite3 is cgo; keep it on even where CGO_ENABLED defaults to 0.
export CGO_ENABLED := 1
TESTFLAGS ?= -race -count=1 -timeout 20m
# A duration or a count of inputs per target (e.g. 100000x, what CI uses:
# a count has no deadline for the fuzzer to trip over).
FUZZTIME  ?= 20s
# Minimising an input that found new coverage may take up to 60 s by default
# and outlive a short -fuzztime.
FUZZMINTIME ?= 1s
FAULTS_SHORT ?=

.PHONY: run build test bench bench-go proto lint tidy fuzz faults clean

build:
	@mkdir -p bin
	cd services/simtrail && $(GO) build -o ../../bin/simtrail .

run: build
	./bin/simtrail dev

# Two passes: everything with the race detector, then the heavy tests
# (100k-event rebuilds) without it, since it slows SQLite-bound code ~10x.
test:
	@set -e; for m in $(MODULES); do \
		echo "== go test $$m"; \
		(cd $$m && $(GO) vet ./... && $(GO) test $(TESTFLAGS) ./...); \
	done
	@echo "== heavy tests (SIMTRAIL_HEAVY=1, no race detector)"
	@cd services/simtrail && SIMTRAIL_HEAVY=1 $(GO) test -count=1 -timeout 15m -run 'Heavy' ./...

# bench: the SPEC §9 measurements in one run (docs/performance.md); the
# table goes to stdout, progress to stderr. BENCHFLAGS passes options, e.g.
# make bench BENCHFLAGS="--events 100000 --profile-dir /tmp/prof".
# bench-go: the Go micro-benchmarks of every module.
BENCHFLAGS ?=
bench: build
	./bin/simtrail bench $(BENCHFLAGS)

bench-go:
	@set -e; for m in $(MODULES); do \
		(cd $$m && $(GO) test -run='^$$' -bench=. -benchmem ./...); \
	done

fuzz:
	cd services/ingest && for f in FuzzParseDroam FuzzParseRoamify FuzzParseTruphone FuzzDiffDroam FuzzDiffRoamify FuzzDiffTruphone; do \
		$(GO) test -run='^$$' -fuzz="^$$f$$" -fuzztime=$(FUZZTIME) -fuzzminimizetime=$(FUZZMINTIME) ./providers/ || exit 1; \
	done
	cd services/ingest && $(GO) test -run='^$$' -fuzz='^FuzzParseAck$$' -fuzztime=$(FUZZTIME) -fuzzminimizetime=$(FUZZMINTIME) .
	cd services/timeline && for f in FuzzQueryParams FuzzCursor FuzzDocJSON; do \
		$(GO) test -run='^$$' -fuzz="^$$f$$" -fuzztime=$(FUZZTIME) -fuzzminimizetime=$(FUZZMINTIME) . || exit 1; \
	done
	cd services/thresholds && for f in FuzzFleetQuery FuzzFleetCursor FuzzDerive; do \
		$(GO) test -run='^$$' -fuzz="^$$f$$" -fuzztime=$(FUZZTIME) -fuzzminimizetime=$(FUZZMINTIME) . || exit 1; \
	done
	cd pkg && $(GO) test -run='^$$' -fuzz='^FuzzAppendString$$' -fuzztime=$(FUZZTIME) -fuzzminimizetime=$(FUZZMINTIME) ./jsonx/
	cd pkg && $(GO) test -run='^$$' -fuzz='^FuzzQueryValue$$' -fuzztime=$(FUZZTIME) -fuzzminimizetime=$(FUZZMINTIME) ./httpx/
	cd pkg && $(GO) test -run='^$$' -fuzz='^FuzzDecodeWithoutRawBody$$' -fuzztime=$(FUZZTIME) -fuzzminimizetime=$(FUZZMINTIME) ./events/

# The fault suite builds simtrail (go build) and nats-server (from its module) and
# prints the fault table of docs/reliability.md (FAULTS_REPORT=file saves it).
faults:
	cd services/simtrail && FAULTS=1 FAULTS_SHORT=$(FAULTS_SHORT) $(GO) test -count=1 -timeout 30m -v -run '^Test' ./internal/faults/

proto:
	cd proto && protoc -I . --go_out=. --go_opt=paths=source_relative simtrail/v1/events.proto

lint:
	@set -e; for m in $(MODULES); do (cd $$m && $(GO) vet ./...); done
	@if command -v staticcheck >/dev/null; then for m in $(MODULES); do (cd $$m && staticcheck ./...); done; \
	else echo "staticcheck not installed: go install honnef.co/go/tools/cmd/staticcheck@latest"; fi

tidy:
	@set -e; for m in $(MODULES); do (cd $$m && $(GO) mod tidy); done

clean:
	rm -rf bin
