# messaging-stream: the two commands a new developer needs are `make demo` and `make test`.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

DDB_LOCAL_PACKAGE ?= amplify-dynamodb-simulator@2.9.30
DDB_LOCAL_DIR ?= $(CURDIR)/.cache/dynamodb-local
DDB_LOCAL_JAR := $(DDB_LOCAL_DIR)/package/emulator/DynamoDBLocal.jar
DDB_PORT ?= 8000
export DYNAMODB_LOCAL_DIR := $(DDB_LOCAL_DIR)/package/emulator

# How the Lambda's release builds are made (`make package`, and the bench's, so that it times what ships):
# AWS_LC_SYS_NO_JITTER_ENTROPY=1: aws-lc's CPU-jitter entropy source can add ~1 s to the first TLS handshake on a
# 128 MB function (~30 ms on this machine, measured by make bench-cold-start); the OS RNG (getrandom) remains its
# entropy source. aws-lc-sys reads it at compile time and rebuilds when it changes, so every release build sets it.
LAMBDA_BUILD_ENV := AWS_LC_SYS_NO_JITTER_ENTROPY=1

.PHONY: help
help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

.PHONY: java
java: ## Install Java 17 if there is none (DynamoDB Local runs on it)
	@command -v java >/dev/null || { apt-get update -qq && apt-get install -y -qq openjdk-17-jre-headless; }

.PHONY: redis-server
redis-server: ## Install Debian's redis-server, redis-cli and openssl if absent: the Valkey cache's tests run them, TLS only
	@command -v redis-server >/dev/null && command -v redis-cli >/dev/null && command -v openssl >/dev/null \
	  || { apt-get update -qq && apt-get install -y -qq redis-server redis-tools openssl; }

.PHONY: dynamodb-local-fetch
dynamodb-local-fetch: java $(DDB_LOCAL_JAR) ## Fetch the official DynamoDB Local (once) into .cache/

# The one DynamoDB Local a team's tools share: 127.0.0.1:$(DDB_PORT), -sharedDb (one database whatever the
# access key and region), data kept in $(DDB_SHARED_DATA) unless IN_MEMORY=1. Started and stopped by PID.
DDB_SHARED_PIDFILE ?= $(CURDIR)/.cache/dynamodb-local-shared.pid
DDB_SHARED_DATA ?= $(CURDIR)/.cache/dynamodb-local-data
IN_MEMORY ?=

.PHONY: dynamodb-local dynamodb-local-stop dynamodb-local-status
dynamodb-local: dynamodb-local-fetch ## Run the shared DynamoDB Local on 127.0.0.1:8000 (-sharedDb; IN_MEMORY=1: no files)
	@scripts/dynamodb-local.sh shared $(DDB_PORT) $(DDB_SHARED_PIDFILE) $(if $(IN_MEMORY),-,$(DDB_SHARED_DATA))

dynamodb-local-stop: ## Stop the shared DynamoDB Local (by its PID)
	@scripts/dynamodb-local.sh stop $(DDB_SHARED_PIDFILE)

dynamodb-local-status: ## Is the shared DynamoDB Local running?
	@scripts/dynamodb-local.sh status $(DDB_SHARED_PIDFILE) $(DDB_PORT)

$(DDB_LOCAL_JAR):
	@command -v npm >/dev/null || { apt-get update -qq && apt-get install -y -qq npm; }
	mkdir -p $(DDB_LOCAL_DIR)
	cd $(DDB_LOCAL_DIR) && rm -rf package && tarball=$$(npm pack --silent $(DDB_LOCAL_PACKAGE)) \
	  && tar xzf "$$tarball" package/emulator && rm -f "$$tarball"
	test -f $@

.PHONY: build
build: ## Build the Lambda and the ddb CLI (debug)
	cargo build --workspace --bins

.PHONY: demo
demo: dynamodb-local-fetch build ## Run the main job locally: DynamoDB Local, seed, a message, the rows moving
	scripts/demo.sh

.PHONY: test
test: dynamodb-local-fetch redis-server deploy-tools ## Install what the tests need, then run them all
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	$(MAKE) --no-print-directory deploy-check
	cargo test --workspace --all-targets

.PHONY: fmt
fmt:
	cargo fmt --all

# Each area keeps its targets in a fragment: deploy (template, policies, package), local (the local loop), ...
include $(sort $(wildcard mk/*.mk))
