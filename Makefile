# messaging-stream: the two commands a new developer needs are `make demo` and `make test`.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

DDB_LOCAL_PACKAGE ?= amplify-dynamodb-simulator@2.9.30
DDB_LOCAL_DIR ?= $(CURDIR)/.cache/dynamodb-local
DDB_LOCAL_JAR := $(DDB_LOCAL_DIR)/package/emulator/DynamoDBLocal.jar
DDB_PORT ?= 8000
export DYNAMODB_LOCAL_DIR := $(DDB_LOCAL_DIR)/package/emulator

.PHONY: help
help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

.PHONY: java
java: ## Install Java 17 if there is none (DynamoDB Local runs on it)
	@command -v java >/dev/null || { apt-get update -qq && apt-get install -y -qq openjdk-17-jre-headless; }

.PHONY: dynamodb-local
dynamodb-local: java $(DDB_LOCAL_JAR) ## Fetch the official DynamoDB Local (once) into .cache/

$(DDB_LOCAL_JAR):
	@command -v npm >/dev/null || { apt-get update -qq && apt-get install -y -qq npm; }
	mkdir -p $(DDB_LOCAL_DIR)
	cd $(DDB_LOCAL_DIR) && rm -rf package && tarball=$$(npm pack --silent $(DDB_LOCAL_PACKAGE)) \
	  && tar xzf "$$tarball" package/emulator && rm -f "$$tarball"
	test -f $@

.PHONY: build
build: ## Build the Lambda and the ddb CLI (debug)
	cargo build --bins

.PHONY: demo
demo: dynamodb-local build ## Run the main job locally: DynamoDB Local, seed, a message, the rows moving
	DDB_PORT=$(DDB_PORT) scripts/demo.sh

.PHONY: test
test: dynamodb-local deploy-tools ## Install what the tests need, then run them all
	cargo fmt --all -- --check
	cargo clippy --all-targets -- -D warnings
	$(MAKE) --no-print-directory deploy-check
	cargo test --all-targets

.PHONY: fmt
fmt:
	cargo fmt --all

# Each area keeps its targets in a fragment: deploy (template, policies, package), local (the local loop), ...
include $(sort $(wildcard mk/*.mk))
