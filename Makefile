# make test: the test suite (PostgreSQL too when FLOWD_TEST_DATABASE_URL is set).
# make bench: flowd-bench against the built binary; results in bench-results.json (BENCHMARKS.md).
#   make bench BENCH_FLAGS='--only sustained'   one section (ingest, overload, t2s, e2e, two, scale, idle, sustained, containers)

BENCH_FLAGS ?=
BENCH_BIN ?= $(or $(TMPDIR),/tmp)/flowd-bench/flowd

.PHONY: test bench
test:
	go test -race -timeout 30m ./...

bench:
	mkdir -p $(dir $(BENCH_BIN))
	go build -o $(BENCH_BIN) ./cmd/flowd
	go run ./cmd/flowd-bench --flowd $(BENCH_BIN) --out bench-results.json $(BENCH_FLAGS)
