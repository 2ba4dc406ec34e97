# mk/reliability.mk: the reliability proof (issue 5, docs/RELIABILITY.md). Included by the top Makefile.
#
#   reliability        every part at full size, then the figures: target/reliability/figures.md
#   reliability-tests  parts 1-4 and 6 at full size (RELIABILITY_FULL=1), one test at a time
#   fuzz               part 5: each cargo-fuzz target for FUZZ_RUNS executions (default 1,000,000)
#   fuzz-tools         cargo-fuzz (pinned: CARGO_FUZZ_VERSION) from crates.io, unless that version is installed
# The quick slices (fixed seeds) run in `make test` as the test binary tests/reliability/main.rs.
#
# Fuzzing needs nightly-only rustc flags (-Zsanitizer, sancov); this machine has only a stable
# toolchain, so the fuzz targets build with RUSTC_BOOTSTRAP=1, which lets stable rustc take them.

RELIABILITY_DIR ?= target/reliability
RELIABILITY_REPORT ?= $(CURDIR)/$(RELIABILITY_DIR)/figures.jsonl
FUZZ_RUNS ?= 1000000
FUZZ_TARGETS ?= parse_event timestamp_order
FUZZ_SEED ?= 1
FUZZ_ENV ?= RUSTC_BOOTSTRAP=1
# Pinned, as the deploy checkers are: the version docs/RELIABILITY.md's fuzzing figures came from.
CARGO_FUZZ_VERSION ?= 0.13.2

.PHONY: reliability
reliability: dynamodb-local-fetch ## Full reliability run (faults, model, 10k soak, corpus, fuzz, privacy) and its figures
	mkdir -p $(RELIABILITY_DIR)
	rm -f $(RELIABILITY_REPORT) $(RELIABILITY_DIR)/fuzz-*.log $(RELIABILITY_DIR)/tests.log
	$(MAKE) --no-print-directory reliability-tests fuzz
	python3 mk/reliability-report.py $(RELIABILITY_DIR) | tee $(RELIABILITY_DIR)/figures.md

.PHONY: reliability-tests
# Each part in its own process, one test at a time: each gets a fresh DynamoDB Local, which slows
# down over a long run (per-cell times grew from 21 s to 190 s within one process), and the figures
# (times, records per second) are not shared with another part's load.
RELIABILITY_PARTS ?= corpus:: fuzz:: privacy:: proxy:: model:: soak:: faults::throttling_in_adaptive
RELIABILITY_RATES ?= 0.05 0.2 0.5
RELIABILITY_TEST = RELIABILITY_FULL=1 RELIABILITY_REPORT=$(RELIABILITY_REPORT) cargo test --test reliability
reliability-tests: dynamodb-local-fetch
	mkdir -p $(RELIABILITY_DIR)
	cargo test --test reliability --no-run
	for part in $(RELIABILITY_PARTS); do \
	  $(RELIABILITY_TEST) -- --test-threads=1 $$part 2>&1 | tee -a $(RELIABILITY_DIR)/tests.log; \
	done
	for rate in $(RELIABILITY_RATES); do \
	  RELIABILITY_FAULT_RATES=$$rate $(RELIABILITY_TEST) -- --test-threads=1 faults::every_fault 2>&1 \
	    | tee -a $(RELIABILITY_DIR)/tests.log; \
	done

.PHONY: fuzz-tools
fuzz-tools:
	@cargo fuzz --version 2>/dev/null | grep -x 'cargo-fuzz $(CARGO_FUZZ_VERSION)' >/dev/null \
	  || cargo install cargo-fuzz --version $(CARGO_FUZZ_VERSION) --locked

# Seeds: the events/, the bad-input corpus and every kept finding; libFuzzer grows the working
# corpus under fuzz/corpus/ (not committed). A finding is written to fuzz/artifacts/<target>/:
# copy it to fuzz/regressions/<target>/, where tests/reliability/fuzz.rs replays it in `make test`.
.PHONY: fuzz
fuzz: fuzz-tools
	mkdir -p $(RELIABILITY_DIR) fuzz/corpus/parse_event fuzz/corpus/timestamp_order
	cp events/*.json tests/corpus/*.json tests/corpus/*.txt fuzz/regressions/parse_event/* fuzz/corpus/parse_event/
	cp fuzz/seeds/timestamp_order/* fuzz/regressions/timestamp_order/* fuzz/corpus/timestamp_order/
	cd fuzz && $(FUZZ_ENV) cargo fuzz build -O
	for target in $(FUZZ_TARGETS); do \
	  (cd fuzz && $(FUZZ_ENV) cargo fuzz run -O $$target corpus/$$target -- \
	     -runs=$(FUZZ_RUNS) -seed=$(FUZZ_SEED) -max_len=8192 -print_final_stats=1) \
	     > $(RELIABILITY_DIR)/fuzz-$$target.log 2>&1 \
	  && echo "fuzz $$target: $$(grep -E '^Done' $(RELIABILITY_DIR)/fuzz-$$target.log)" \
	  || { echo "fuzz $$target: FINDING, see $(RELIABILITY_DIR)/fuzz-$$target.log and fuzz/artifacts/$$target/"; exit 1; }; \
	done
