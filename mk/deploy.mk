# mk/deploy.mk: offline checks of template.yaml and policies/, and the arm64 Lambda package (issue 3).
#
# Included from the top Makefile; also works alone from the crate root: `make -f mk/deploy.mk deploy-check`.
#   deploy-tools   linters in their own venvs under .venv-lint/, cfn-guard under .tools/ (each only if missing)
#   deploy-check   cfn-lint (SAM schema + the expanded template), checkov, parliament on each policy, cfn-guard
#   package        cargo lambda build --release --arm64 --output-format zip, and the zip's size
# Every path and version is a variable: override on the command line, e.g.
#   make -f mk/deploy.mk deploy-guard DEPLOY_TEMPLATE=/tmp/broken.yaml DEPLOY_BUILD_DIR=/tmp/out
# (tests/deploy_checkers.rs does exactly that with broken copies, to prove each checker can fail).
#
# Times measured on this project's 2-core machine (first run, then runs with everything in place):
#   venvs (pip cache cold): cfn-lint 11 s + aws-sam-translator 6 s, checkov 27 s, parliament 6 s;
#   cargo install cfn-guard 128 s (niced, sharing the cores with another build); all three venvs again with a warm
#   pip cache: 58 s. deploy-tools when everything is in place: < 0.1 s.
#   deploy-check: 7 s (checkov ~3-5 s of it, cfn-lint ~2 s with the SAM expansion, parliament and cfn-guard < 1 s).
#   cargo test --test 'deploy_*': 18 s before ReadCache had three choices, nearly all of it the broken copies run
#   through the checkers; 2026-12-07, with every choice checked, deploy_checkers alone took 48-73 s under load.
#   package: see the target below.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c

# This file's directory (mk/), wherever make was started from the crate root.
DEPLOY_MK_DIR := $(patsubst %/,%,$(dir $(lastword $(MAKEFILE_LIST))))

DEPLOY_TEMPLATE ?= template.yaml
DEPLOY_POLICIES ?= $(sort $(wildcard policies/*.json))
DEPLOY_GUARD_RULES ?= tests/guard
DEPLOY_BUILD_DIR ?= target/deploy
DEPLOY_PYTHON ?= python3

LINT_VENV ?= .venv-lint
TOOLS_ROOT ?= .tools
PACKAGE_VENV ?= .venv-package

# Pinned: the checks must give the same answer on every machine. (cfn-lint 1.x does not run the SAM transform
# any more, so aws-sam-translator goes in its venv for mk/sam-transform.py. checkov and parliament each get a
# venv of their own: installed next to other tools they downgrade boto3 and cfn-lint.)
CFN_LINT_VERSION ?= 1.58.0
SAM_TRANSLATOR_VERSION ?= 1.115.0
CHECKOV_VERSION ?= 3.3.30
PARLIAMENT_VERSION ?= 1.6.4
CFN_GUARD_VERSION ?= 3.2.1
CARGO_LAMBDA_VERSION ?= 1.9.2

CFN_LINT := $(LINT_VENV)/cfn-lint/bin/cfn-lint
SAM_PYTHON := $(LINT_VENV)/cfn-lint/bin/python
CHECKOV := $(LINT_VENV)/checkov/bin/checkov
PARLIAMENT := $(LINT_VENV)/parliament/bin/parliament
CFN_GUARD := $(TOOLS_ROOT)/bin/cfn-guard

CFN_LINT_STAMP := $(LINT_VENV)/cfn-lint/.installed-$(CFN_LINT_VERSION)-sam-$(SAM_TRANSLATOR_VERSION)
CHECKOV_STAMP := $(LINT_VENV)/checkov/.installed-$(CHECKOV_VERSION)
PARLIAMENT_STAMP := $(LINT_VENV)/parliament/.installed-$(PARLIAMENT_VERSION)
CFN_GUARD_STAMP := $(TOOLS_ROOT)/.cfn-guard-$(CFN_GUARD_VERSION)
CARGO_LAMBDA_STAMP := $(PACKAGE_VENV)/.installed-cargo-lambda-$(CARGO_LAMBDA_VERSION)

PIP_QUIET := --quiet --disable-pip-version-check

# What parliament sees in place of the !Sub placeholders of policies/*.json. Every placeholder needs a value:
# a policy with one left over fails the check. The stream label is "*" because parliament splits ARNs on ":"
# and real labels (2026-01-01T00:00:00.000) contain colons.
POLICY_ACCOUNT ?= 123456789012
POLICY_REGION ?= us-east-1
POLICY_SUBST ?= \
  -e 's/\$${AWS::Partition}/aws/g' \
  -e 's/\$${AWS::Region}/$(POLICY_REGION)/g' \
  -e 's/\$${AWS::AccountId}/$(POLICY_ACCOUNT)/g' \
  -e 's/\$${TableName}/cruddur-messages/g' \
  -e 's/\$${AppName}/cruddur/g' \
  -e 's/\$${Env}/prod/g' \
  -e 's|\$${MessagesTable.StreamArn}|arn:aws:dynamodb:$(POLICY_REGION):$(POLICY_ACCOUNT):table/cruddur-messages/stream/*|g' \
  -e 's|\$${FailureQueue.Arn}|arn:aws:sqs:$(POLICY_REGION):$(POLICY_ACCOUNT):cruddur-messaging-stream-failures-prod|g' \
  -e 's|\$${FailureBucket.Arn}|arn:aws:s3:::cruddur-messaging-stream-failurebucket-1a2b3c4d5e6f|g' \
  -e 's|\$${ExecutionRole.Arn}|arn:aws:iam::$(POLICY_ACCOUNT):role/cruddur-messaging-stream-prod|g'

.PHONY: deploy-tools deploy-check deploy-cfn-lint deploy-checkov deploy-parliament deploy-guard package

deploy-tools: $(CFN_LINT_STAMP) $(CHECKOV_STAMP) $(PARLIAMENT_STAMP) $(CFN_GUARD_STAMP) ## Install the template/policy checkers (once)

$(CFN_LINT_STAMP):
	rm -rf $(LINT_VENV)/cfn-lint && $(DEPLOY_PYTHON) -m venv $(LINT_VENV)/cfn-lint
	$(LINT_VENV)/cfn-lint/bin/pip install $(PIP_QUIET) cfn-lint==$(CFN_LINT_VERSION) aws-sam-translator==$(SAM_TRANSLATOR_VERSION)
	touch $@

$(CHECKOV_STAMP):
	rm -rf $(LINT_VENV)/checkov && $(DEPLOY_PYTHON) -m venv $(LINT_VENV)/checkov
	$(LINT_VENV)/checkov/bin/pip install $(PIP_QUIET) checkov==$(CHECKOV_VERSION)
	touch $@

$(PARLIAMENT_STAMP):
	rm -rf $(LINT_VENV)/parliament && $(DEPLOY_PYTHON) -m venv $(LINT_VENV)/parliament
	$(LINT_VENV)/parliament/bin/pip install $(PIP_QUIET) parliament==$(PARLIAMENT_VERSION)
	touch $@

# ~2 min of compiling, once: skipped when the pinned version is already there.
$(CFN_GUARD_STAMP):
	if ! $(CFN_GUARD) --version 2>/dev/null | grep -q ' $(CFN_GUARD_VERSION)$$'; then \
	  cargo install cfn-guard --version $(CFN_GUARD_VERSION) --locked --root $(TOOLS_ROOT); \
	fi
	touch $@

deploy-check: deploy-cfn-lint deploy-checkov deploy-parliament deploy-guard ## Check template.yaml and policies/ offline
	@echo "deploy-check: cfn-lint, checkov, parliament and cfn-guard found nothing"

# The SAM template expanded to plain CloudFormation, as `sam deploy` would send it (see mk/sam-transform.py).
$(DEPLOY_BUILD_DIR)/template.cfn.json: $(DEPLOY_TEMPLATE) $(DEPLOY_MK_DIR)/sam-transform.py $(CFN_LINT_STAMP)
	mkdir -p $(@D)
	$(SAM_PYTHON) $(DEPLOY_MK_DIR)/sam-transform.py $(DEPLOY_TEMPLATE) $@

deploy-cfn-lint: $(CFN_LINT_STAMP) $(DEPLOY_BUILD_DIR)/template.cfn.json
	$(CFN_LINT) $(DEPLOY_TEMPLATE) $(DEPLOY_BUILD_DIR)/template.cfn.json

# Both forms: checkov knows some checks only for AWS::Serverless::Function, others only for AWS::Lambda::Function.
# A skipped check carries its reason in the template's Metadata (checkov: skip: id/comment).
deploy-checkov: $(CHECKOV_STAMP) $(DEPLOY_BUILD_DIR)/template.cfn.json
	$(CHECKOV) --skip-download --quiet --compact --framework cloudformation \
	  --file $(DEPLOY_TEMPLATE) --file $(DEPLOY_BUILD_DIR)/template.cfn.json

# parliament reads --string (its --file fails without a terminal). Any finding, even LOW, fails the check.
deploy-parliament: $(PARLIAMENT_STAMP)
	@mkdir -p $(DEPLOY_BUILD_DIR)/policies
	@failed=0; \
	for policy in $(DEPLOY_POLICIES); do \
	  out=$(DEPLOY_BUILD_DIR)/policies/$$(basename $$policy); \
	  sed $(POLICY_SUBST) $$policy > $$out; \
	  if grep -n '\$${' $$out; then \
	    echo "$$policy: placeholder without a value for parliament: add it to POLICY_SUBST in mk/deploy.mk"; failed=1; continue; \
	  fi; \
	  echo "parliament $$policy"; \
	  if ! $(PARLIAMENT) --string "$$(cat $$out)" < /dev/null; then \
	    echo "$$policy: parliament findings above"; failed=1; \
	  fi; \
	done; \
	test -n "$(DEPLOY_POLICIES)" || { echo "deploy-parliament: no policy files"; failed=1; }; \
	exit $$failed

deploy-guard: $(CFN_GUARD_STAMP)
	$(CFN_GUARD) validate --data $(DEPLOY_TEMPLATE) --rules $(DEPLOY_GUARD_RULES) --show-summary fail

# Release build for Lambda (arm64, zip) with cargo-lambda from PyPI, which brings zig as the cross linker, with
# $(LAMBDA_BUILD_ENV) (the Makefile says why).
# Measured here on 2026-11-22 with `make package`, when the package still held the tools (2 cores, shared with
# another build, niced): cargo-lambda venv 7 s; rust-std for aarch64 a few s; cold release build: dependencies
# 2 min 50 s, then the crate with LTO 1 min 15 s (~4 min in all); after a source change 1-5 min, depending on what
# else holds the cores. Zip 3.6 MB (3,610,205 bytes; bootstrap 8.0 MB stripped).
# 2026-12-07, the workspace's root package (the Lambda alone), `nice -n 19 make package CARGO_TARGET_DIR=/tmp/x`
# on a fresh target while four other builds held the 2 cores: 232 crates compiled (none of the tools'), 17 min 03 s;
# zip 4,062,113 bytes, bootstrap 9,092,216 bytes.
PACKAGE_BIN ?= messaging-stream
PACKAGE_TARGET ?= aarch64-unknown-linux-gnu

$(CARGO_LAMBDA_STAMP):
	rm -rf $(PACKAGE_VENV) && $(DEPLOY_PYTHON) -m venv $(PACKAGE_VENV)
	$(PACKAGE_VENV)/bin/pip install $(PIP_QUIET) cargo-lambda==$(CARGO_LAMBDA_VERSION)
	touch $@

# The zip's path is asked of cargo in the recipe's shell, which sees CARGO_TARGET_DIR however it was given
# (GNU make 4.3's $(shell) does not see a variable set on make's command line).
package: $(CARGO_LAMBDA_STAMP) ## Build the arm64 Lambda zip (release, LTO: several minutes)
	rustup target add $(PACKAGE_TARGET)
	PATH="$(abspath $(PACKAGE_VENV))/bin:$$PATH" $(LAMBDA_BUILD_ENV) \
	  cargo lambda build --release --arm64 --output-format zip --bin $(PACKAGE_BIN)
	@zip="$$(scripts/target-dir.sh)/lambda/$(PACKAGE_BIN)/bootstrap.zip"; \
	  echo "$$zip: $$(stat -c %s "$$zip") bytes ($$(du -h "$$zip" | cut -f1))"
