# simtrail — make run (whole system, embedded JetStream + SQLite, :8080),
# make test (whole suite), make build (bin/simtrail), make bench, make proto,
# make lint, make tidy, make fuzz (short fuzzing of every provider parser).

MODULES := proto pkg services/alertwatcher services/ingest services/timeline services/thresholds services/simtrail
GO      ?= go
# go-sqlite3 is cgo; keep it on even where CGO_ENABLED defaults to 0.
export CGO_ENABLED := 1
TESTFLAGS ?= -race -count=1 -timeout 20m
FUZZTIME  ?= 20s

.PHONY: run build test bench proto lint tidy fuzz clean

build:
	@mkdir -p bin
	cd services/simtrail && $(GO) build -o ../../bin/simtrail .

run: build
	./bin/simtrail dev

test:
	@set -e; for m in $(MODULES); do \
		echo "== go test $$m"; \
		(cd $$m && $(GO) vet ./... && $(GO) test $(TESTFLAGS) ./...); \
	done

bench:
	@set -e; for m in $(MODULES); do \
		(cd $$m && $(GO) test -run='^$$' -bench=. -benchmem ./...); \
	done

fuzz:
	cd services/ingest && for f in FuzzParseDroam FuzzParseRoamify FuzzParseTruphone; do \
		$(GO) test -run='^$$' -fuzz="^$$f$$" -fuzztime=$(FUZZTIME) ./providers/ || exit 1; \
	done

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
